/**
 * RPC throughput and latency next to each one's limit on this machine, in one run:
 * - the service (its own process: `entitlements serve`, LOG_LEVEL=info, the log to /dev/null),
 * - a bare @grpc/grpc-js server and a bare Node HTTP server answering constants (bare-servers.ts),
 * - pgbench running the increment's upsert at the same concurrency,
 * - a minimal server doing only the work every call must do (minimal-servers.ts), whose ratio to
 *   the limit shows how close any server can come to it here.
 * Load comes from h2load (Debian's nghttp2-client), one thread. Run: npm run bench
 * BENCH_SECONDS (default 4) sets each measurement's length, BENCH_REPEAT (default 3) how many
 * times each triple is measured (the median ratio is shown); BENCH_CALLS (say "GetPlan,me") and
 * BENCH_IN_FLIGHT (say "64") narrow the run; BENCH_DEADLINE (say "1S") sends that gRPC deadline
 * with every call; BENCH_CPU_PROFILE=<dir> writes the service's CPU profile there (node
 * --cpu-prof) when it stops. BENCH_PGBOUNCER_URL (a PgBouncer in transaction mode in front of
 * DATABASE_URL's server) adds a second service reaching the same database through it, with
 * DATABASE_PREPARED_STATEMENTS=${BENCH_PREPARED_STATEMENTS:-off}, measured in a row after each of
 * the first's: the pooler's cost, A/B in one run. BENCH_CALLS "terms" compares CheckQuota and
 * IncrementUsage for users with and without per-account terms, alternated in one run;
 * "ReserveCommit" compares Reserve+Commit pairs with IncrementUsage (reserve-commit.ts).
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { SignJWT } from "jose";
import { EntitlementService } from "../gen/entitlements/v1/entitlement_service_pb.js";
import { freePort } from "../src/db/embedded.ts";
import { migrate } from "../src/db/migrate.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { seedCatalog } from "../src/db/seed.ts";
import { loadDefaultCatalog } from "../src/app/catalog-file.ts";
import { reserveCommitTable } from "./reserve-commit.ts";
import { pgbench } from "./pgbench.ts";
import { CONSUME_USER, giveTerms, INCREMENT_USERS, TERMS_USER, unlimitConsumers } from "./bench-users.ts";
import { createLogger } from "../src/platform/logger.ts";
import {
  benchDatabaseServer,
  ensureTool,
  freshDatabase,
  grpcBody,
  h2load,
  rssMb,
  seconds,
  serviceArgs,
  startProcess,
  table,
  type Result,
} from "./support.ts";
const CONCURRENCY = (process.env.BENCH_IN_FLIGHT ?? "1,16,64").split(",").map(Number);
const CALLS = process.env.BENCH_CALLS?.split(",");
const selected = (name: string) => CALLS === undefined || CALLS.includes(name);
const CPU_PROFILE = process.env.BENCH_CPU_PROFILE;
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const DEADLINE = process.env.BENCH_DEADLINE;
const TOKEN = "bench-service-token-0123456789";
const JWT_SECRET = "bench-jwt-secret-0123456789-0123456789";
const PGBOUNCER_URL = process.env.BENCH_PGBOUNCER_URL;

await ensureTool("h2load", "nghttp2-client");
const directory = await mkdtemp(path.join(tmpdir(), "entitlements-bench-rpc-"));
const database = await benchDatabaseServer();
const children: ChildProcess[] = [];
try {
  const databaseUrl = await freshDatabase(database.serverUrl, "entitlements_bench_rpc");
  const logger = createLogger("warn");
  await migrate(databaseUrl, logger);
  const pool = await createDatabasePool(databaseUrl, { maxPoolSize: 2 });
  await seedCatalog(pool, await loadDefaultCatalog());
  await giveTerms(pool);
  await unlimitConsumers(pool);
  await pool.end();

  const [grpcPort, httpPort, bareGrpcPort, bareHttpPort, minimalGrpcPort, minimalHttpPort] = await Promise.all([
    freePort(), freePort(), freePort(), freePort(), freePort(), freePort(),
  ]);
  const service = await startProcess(
    [...(CPU_PROFILE === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", CPU_PROFILE]), ...serviceArgs],
    { DATABASE_URL: databaseUrl, SERVICE_TOKENS: TOKEN, JWT_SECRET, GRPC_PORT: String(grpcPort), HTTP_PORT: String(httpPort), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "info", DATABASE_POOL_SIZE: "16" },
    /Entitlement service ready/,
    "stderr",
  );
  children.push(service);
  let pooledUrl: string | undefined;
  if (PGBOUNCER_URL !== undefined) {
    const url = new URL(PGBOUNCER_URL);
    url.pathname = new URL(databaseUrl).pathname;
    pooledUrl = url.toString();
  }
  const [pooledGrpcPort, pooledHttpPort] = await Promise.all([freePort(), freePort()]);
  const pooled =
    pooledUrl === undefined
      ? undefined
      : await startProcess(
          serviceArgs,
          {
            DATABASE_URL: pooledUrl, DATABASE_SESSION_URL: databaseUrl, DATABASE_PREPARED_STATEMENTS: process.env.BENCH_PREPARED_STATEMENTS ?? "off",
            SERVICE_TOKENS: TOKEN, JWT_SECRET, GRPC_PORT: String(pooledGrpcPort), HTTP_PORT: String(pooledHttpPort), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "info", DATABASE_POOL_SIZE: "16",
          },
          /Entitlement service ready/,
          "stderr",
        );
  if (pooled !== undefined) children.push(pooled);
  const bare = await startProcess(["bench/bare-servers.ts", String(bareGrpcPort), String(bareHttpPort)], {}, /ready/, "stdout");
  children.push(bare);
  const minimal = await startProcess(
    // The service's Node.js flags: the minimal server is tuned as the service is.
    [...serviceArgs.filter((arg) => arg.startsWith("--")), "bench/minimal-servers.ts", String(minimalGrpcPort), String(minimalHttpPort), databaseUrl],
    { SERVICE_TOKENS: TOKEN, JWT_SECRET },
    /ready/,
    "stderr",
  );
  children.push(minimal);

  const methods = EntitlementService.method;
  const user = { userId: "bench-user" };
  const bodies = {
    GetPlan: [await grpcBody(directory, "get-plan", methods.getPlan.input, user)],
    HasFeature: [await grpcBody(directory, "has-feature", methods.hasFeature.input, { ...user, feature: "api_access" })],
    CheckQuota: [await grpcBody(directory, "check-quota", methods.checkQuota.input, { ...user, metric: "jobs", amount: 1n })],
    IncrementUsage: await Promise.all(
      Array.from({ length: INCREMENT_USERS }, (_, i) =>
        grpcBody(directory, `increment-${i}`, methods.incrementUsage.input, { userId: `bench-inc-${i + 1}`, metric: "compute_minutes", amount: 1n }),
      ),
    ),
    // Three metrics at once, all or nothing (jobs and api_calls made unlimited for these users).
    ConsumeUsage: await Promise.all(
      Array.from({ length: INCREMENT_USERS }, (_, i) =>
        grpcBody(directory, `consume-${i}`, methods.consumeUsage.input, {
          userId: `${CONSUME_USER}-${i + 1}`,
          items: ["compute_minutes", "jobs", "api_calls"].map((metric) => ({ metric, amount: 1n })),
        }),
      ),
    ),
  };
  // The same calls for users with one quota override and two grants on the metric they use.
  const withTerms = {
    CheckQuota: [await grpcBody(directory, "check-quota-terms", methods.checkQuota.input, { userId: TERMS_USER, metric: "jobs", amount: 1n })],
    IncrementUsage: await Promise.all(
      Array.from({ length: INCREMENT_USERS }, (_, i) =>
        grpcBody(directory, `increment-terms-${i}`, methods.incrementUsage.input, { userId: `${TERMS_USER}-${i + 1}`, metric: "compute_minutes", amount: 1n }),
      ),
    ),
  };
  const grpcHeaders = [
    "content-type: application/grpc",
    "te: trailers",
    `authorization: Bearer ${TOKEN}`,
    // A deadline on every call, as most real clients send one (grpc-timeout syntax, say "1S").
    ...(DEADLINE === undefined ? [] : [`grpc-timeout: ${DEADLINE}`]),
  ];
  const jwt = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("bench-user").setIssuedAt().setExpirationTime("1h").sign(new TextEncoder().encode(JWT_SECRET));

  const rows: (string | number)[][] = [
    ["call", "in flight", "calls/s", "p50 ms", "p99 ms", "CPU µs/call", "limit", "limit calls/s", "limit p99 ms", "limit CPU µs/call", "ratio", "minimal p99 ms", "minimal ratio", "target"],
  ];
  let peakRss = 0;
  let barePeakRss = 0;
  const fmt = (n: number) => (Number.isNaN(n) ? "-" : n >= 100 ? n.toFixed(0) : n.toFixed(2));
  /**
   * One row: the service, its limit and the minimal server measured one after the other, REPEAT
   * times; the row shows the triple whose service ratio is the median, so a passing disturbance on
   * the shared cores moves none of them.
   */
  const cell = async (
    call: string,
    inFlight: number,
    limitName: string,
    target: string,
    measure: () => Promise<Result>,
    limit: () => Promise<Result>,
    measureMinimal: () => Promise<Result>,
  ) => {
    const triples: { measured: Result; limit: Result; minimal: Result; ratio: number }[] = [];
    for (let i = 0; i < REPEAT; i++) {
      const measured = await measure();
      peakRss = Math.max(peakRss, await rssMb(service.pid!));
      const reference = await limit();
      barePeakRss = Math.max(barePeakRss, await rssMb(bare.pid!));
      triples.push({ measured, limit: reference, minimal: await measureMinimal(), ratio: measured.rps / reference.rps });
    }
    triples.sort((x, y) => x.ratio - y.ratio);
    const { measured, limit: reference, minimal, ratio } = triples[Math.floor(triples.length / 2)]!;
    rows.push([
      call, inFlight, fmt(measured.rps), fmt(measured.p50), fmt(measured.p99), fmt(measured.cpuUsPerCall),
      limitName, fmt(reference.rps), fmt(reference.p99), fmt(reference.cpuUsPerCall), ratio.toFixed(2),
      fmt(minimal.p99), (minimal.rps / reference.rps).toFixed(2), target,
    ]);
    const failed = measured.failed + minimal.failed;
    if (failed > 0) rows.at(-1)!.push(`(${failed} failed)`);
  };
  // Every server answers reads for a while before the first row, so that row, too, measures
  // processes as warm as the later rows do (a service started a second ago is still compiling).
  for (const [port, pid] of [[grpcPort, service.pid!], [bareGrpcPort, bare.pid!], [minimalGrpcPort, minimal.pid!]] as const) {
    await h2load({ url: `http://127.0.0.1:${port}/${EntitlementService.typeName}/GetPlan`, bodies: bodies.GetPlan, inFlight: 16, headers: grpcHeaders, directory, serverPid: pid });
  }
  for (const [name, files] of Object.entries(bodies).filter(([name]) => selected(name))) {
    // ConsumeUsage's target: at least half of IncrementUsage's calls/s (compare the rows).
    const increments = name === "IncrementUsage" || name === "ConsumeUsage";
    for (const inFlight of CONCURRENCY) {
      const path = `/${EntitlementService.typeName}/${name}`;
      // Issue 19 raised GetPlan's and CheckQuota's target at 16-64 in flight to 0.85x.
      const raised = (name === "GetPlan" || name === "CheckQuota") && inFlight >= 16;
      const ratioTarget = increments ? 0.4 : raised ? 0.85 : 0.7;
      const target = `>= ${ratioTarget}x${inFlight === 64 ? `, p99 <= ${increments ? 25 : 10} ms` : ""}`;
      const grpcLoad = (port: number, pid: number) => () =>
        h2load({ url: `http://127.0.0.1:${port}${path}`, bodies: inFlight === 1 ? files.slice(0, 1) : files, inFlight, headers: grpcHeaders, directory, serverPid: pid });
      const limit = increments
        ? () => pgbench(databaseUrl, inFlight, INCREMENT_USERS, directory)
        : () => h2load({ url: `http://127.0.0.1:${bareGrpcPort}${path}`, bodies: files, inFlight, headers: grpcHeaders, directory, serverPid: bare.pid! });
      const limitName = increments ? "pgbench upsert" : "bare grpc-js";
      const minimalLoad = grpcLoad(minimalGrpcPort, minimal.pid!);
      await cell(`${name} (gRPC)`, inFlight, limitName, target, grpcLoad(grpcPort, service.pid!), limit, minimalLoad);
      if (pooled !== undefined) {
        await cell(`${name} (gRPC) via PgBouncer`, inFlight, limitName, target, grpcLoad(pooledGrpcPort, pooled.pid!), limit, minimalLoad);
      }
    }
  }
  const termsRows: (string | number)[][] = [["call", "in flight", "plain calls/s", "with terms calls/s", "ratio", "plain p99 ms", "with terms p99 ms", "target"]];
  for (const name of selected("terms") ? (["CheckQuota", "IncrementUsage"] as const) : []) {
    for (const inFlight of CONCURRENCY) {
      const load = (files: string[]) => () =>
        h2load({ url: `http://127.0.0.1:${grpcPort}/${EntitlementService.typeName}/${name}`, bodies: inFlight === 1 ? files.slice(0, 1) : files, inFlight, headers: grpcHeaders, directory, serverPid: service.pid! });
      // A then B, REPEAT times, in one sitting: the median ratio of the pairs.
      const pairs: { plain: Result; terms: Result; ratio: number }[] = [];
      for (let i = 0; i < REPEAT; i++) {
        const plain = await load(bodies[name])();
        const terms = await load(withTerms[name])();
        pairs.push({ plain, terms, ratio: terms.rps / plain.rps });
      }
      pairs.sort((x, y) => x.ratio - y.ratio);
      const { plain, terms, ratio } = pairs[Math.floor(pairs.length / 2)]!;
      termsRows.push([`${name} (gRPC)`, inFlight, fmt(plain.rps), fmt(terms.rps), ratio.toFixed(2), fmt(plain.p99), fmt(terms.p99), ">= 0.85x"]);
    }
  }
  for (const inFlight of selected("me") ? CONCURRENCY : []) {
    const headers = [`authorization: Bearer ${jwt}`];
    const get = (port: number, pid: number) => () =>
      h2load({ url: `http://127.0.0.1:${port}/v1/subscription/me`, bodies: [undefined], inFlight, headers, http1: true, directory, serverPid: pid });
    await cell(
      "GET /v1/subscription/me (HTTP/1.1)", inFlight, "bare node:http", ">= 0.5x",
      get(httpPort, service.pid!), get(bareHttpPort, bare.pid!), get(minimalHttpPort, minimal.pid!),
    );
  }
  const reserveCommit = selected("ReserveCommit")
    ? await reserveCommitTable({ baseUrl: `http://127.0.0.1:${grpcPort}`, token: TOKEN, serverPid: service.pid!, inFlights: CONCURRENCY, repeat: REPEAT })
    : "";
  process.stdout.write(
    `RPC benchmark: each row is the median (by the service's ratio) of ${REPEAT} triples of measurements (service, limit, ` +
      `minimal server), ${seconds} s each after 1 s of warm-up; before the first row each server answered ${seconds + 1} s of ` +
      `GetPlan at 16 in flight. The minimal server (minimal-servers.ts) does only what every call ` +
      `must: it checks the credential, sends a request id, writes the log line and metrics and, for IncrementUsage, runs ` +
      `pgbench's upsert through node-postgres; its ratio bounds what the service's can be on this machine. The service, ` +
      `the reference servers and the load generator are separate processes on the same ` +
      `${(await import("node:os")).availableParallelism()} cores: the service and each reference server are one Node.js ` +
      `process (the service and the minimal server with npm start's Node flags, ` +
      `${serviceArgs.filter((arg) => arg.startsWith("--")).join(" ")}; the bare servers with Node's defaults), h2load one ` +
      `thread, pgbench one thread (PostgreSQL as configured). IncrementUsage and pgbench spread over ` +
      `${INCREMENT_USERS} users' counters. pgbench reports average latency (shown as p50). CPU µs/call is the server ` +
      `process's user + system time over the measurement divided by the calls answered (PostgreSQL's not included).\n\n` +
      table(rows) +
      `\n\nRSS under load (peak sampled after each measurement): the service ${peakRss.toFixed(0)} MB, ` +
      `the bare servers ${barePeakRss.toFixed(0)} MB\n` +
      (termsRows.length === 1
        ? ""
        : `\nPer-account terms: each call for a user without terms, then for a user with one quota override and two grants ` +
          `on the metric (within the allowance: nothing is drawn), alternated ${REPEAT} times; the median pair by ratio.\n\n` +
          `${table(termsRows)}\n`) +
      reserveCommit,
  );
} finally {
  // Waits for the exits: the service drains and writes its profile first.
  await Promise.all(children.map((child) => new Promise((resolve) => (child.once("exit", resolve), child.kill("SIGTERM")))));
  await database.stop();
  await rm(directory, { recursive: true, force: true });
}
