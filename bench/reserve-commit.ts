/**
 * Reserve+Commit against IncrementUsage (bench/rpc.ts runs it when BENCH_CALLS is unset or holds
 * "ReserveCommit"). A reservation's commit needs the id its reserve answered, which h2load cannot
 * chain, so both sides are driven by the typed client (gRPC) from this process: IncrementUsage
 * calls, then Reserve+Commit pairs, alternated REPEAT times in one sitting; the row is the median
 * pair by ratio. Calls/s counts RPCs answered (two per pair); the target is half of
 * IncrementUsage's calls/s.
 */
import { createEntitlementClient, type EntitlementClient } from "../clients/node/src/index.ts";
import { cpuSeconds, percentile, seconds, table, type Result } from "./support.ts";

const USERS = 8;

/** `inFlight` workers each repeating `step` for `seconds` after 1 s of warm-up. */
async function clientLoad(inFlight: number, serverPid: number, step: (worker: number) => Promise<void>): Promise<Result> {
  let measuring = false;
  let stop = false;
  const latencies: number[] = [];
  let failed = 0;
  const workers = Array.from({ length: inFlight }, async (_, worker) => {
    while (!stop) {
      const started = performance.now();
      const ok = await step(worker).then(() => true, () => false);
      if (!measuring) continue;
      if (ok) latencies.push(performance.now() - started);
      else failed++;
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  measuring = true;
  const cpuBefore = await cpuSeconds(serverPid);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  measuring = false;
  const cpuUsed = (await cpuSeconds(serverPid)) - cpuBefore;
  stop = true;
  await Promise.all(workers);
  latencies.sort((a, b) => a - b);
  const rps = latencies.length / seconds;
  return { rps, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), failed, cpuUsPerCall: (cpuUsed * 1e6) / latencies.length };
}

/** The comparison's table for the service at `baseUrl` (gRPC), whose process is `serverPid`. */
export async function reserveCommitTable(options: { baseUrl: string; token: string; serverPid: number; inFlights: readonly number[]; repeat: number }): Promise<string> {
  const client: EntitlementClient = createEntitlementClient({ baseUrl: options.baseUrl, token: options.token, timeoutMs: 10_000 });
  const increment = (worker: number) => client.incrementUsage({ userId: `bench-inc-${(worker % USERS) + 1}`, metric: "compute_minutes", amount: 1n }).then(() => undefined);
  const reserveCommit = async (worker: number) => {
    const userId = `bench-reserve-${(worker % USERS) + 1}`;
    const { reservation } = await client.reserveUsage({ userId, items: [{ metric: "compute_minutes", amount: 10n }], ttlSeconds: 60 });
    await client.commitReservation({ userId, reservationId: reservation!.id, actual: [{ metric: "compute_minutes", amount: 7n }] });
  };
  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
  const rows: (string | number)[][] = [
    ["in flight", "IncrementUsage calls/s", "Reserve+Commit calls/s", "ratio", "pairs/s", "increment p99 ms", "pair p99 ms", "increment CPU µs", "pair CPU µs", "target"],
  ];
  for (const inFlight of options.inFlights) {
    const pairs: { increments: Result; reserveCommits: Result; ratio: number }[] = [];
    for (let i = 0; i < options.repeat; i++) {
      const increments = await clientLoad(inFlight, options.serverPid, increment);
      const reserveCommits = await clientLoad(inFlight, options.serverPid, reserveCommit);
      pairs.push({ increments, reserveCommits, ratio: (2 * reserveCommits.rps) / increments.rps });
    }
    pairs.sort((x, y) => x.ratio - y.ratio);
    const { increments, reserveCommits, ratio } = pairs[Math.floor(pairs.length / 2)]!;
    const failed = increments.failed + reserveCommits.failed;
    rows.push([
      inFlight, fmt(increments.rps), fmt(2 * reserveCommits.rps), ratio.toFixed(2), fmt(reserveCommits.rps), fmt(increments.p99), fmt(reserveCommits.p99),
      fmt(increments.cpuUsPerCall), fmt(reserveCommits.cpuUsPerCall), ">= 0.5x", ...(failed > 0 ? [`(${failed} failed)`] : []),
    ]);
  }
  return (
    `\nReserve+Commit: the typed client (gRPC) in the benchmark's process, IncrementUsage of ${USERS} users' counters, then ` +
    `ReserveUsage of 10 and CommitReservation of 7 for ${USERS} other users, alternated ${options.repeat} times; the median ` +
    `pair by ratio. Calls/s counts RPCs answered, two per pair. The load generator shares the cores and costs about as ` +
    `much per RPC as the service, so a pair's two round trips weigh on both. CPU µs is the service's per call or per pair.\n\n${table(rows)}\n`
  );
}
