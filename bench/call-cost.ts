/**
 * The service's own CPU a cached read costs, without sockets: the grpc-js handlers of the composed
 * service (gate, interceptors, implementation, log line to /dev/null, metrics) called in this
 * process with a stand-in for grpc-js's call, at 64 in flight. grpc-js's and Node's HTTP/2 work is
 * not in it, so what the service adds shows steadily (±10%) where whole-process runs drift by
 * ±20%: the tool for A/B runs of small changes (two checkouts, alternated). Run: npm run
 * bench:call-cost. BENCH_CALLS (say "CheckQuota") narrows it, BENCH_CALL_COUNT (default 200000)
 * sets the calls of each method, split over five rounds whose median is shown.
 */
// V8 set as the CLI sets it for the service.
import "../src/platform/collector.ts";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { pino } from "pino";
import { EntitlementService } from "../gen/entitlements/v1/entitlement_service_pb.js";
import { loadDefaultCatalog } from "../src/app/catalog-file.ts";
import { changeListener, composeService } from "../src/compose.ts";
import { loadConfig } from "../src/config.ts";
import { migrate } from "../src/db/migrate.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { seedCatalog } from "../src/db/seed.ts";
import { createLogger, TurnBatchedDestination } from "../src/platform/logger.ts";
import { createGrpcServer } from "../src/transport/grpc/grpc-server.ts";
import { methodCalls } from "../src/transport/method-calls.ts";
import { routerOptions } from "../src/transport/routes.ts";
import { benchDatabaseServer, freshDatabase, table } from "./support.ts";

const CALL_COUNT = Number(process.env.BENCH_CALL_COUNT ?? 200_000);
const ROUNDS = 5;
const IN_FLIGHT = 64;
const TOKEN = "bench-service-token-0123456789";
const m = EntitlementService.method;
const requests: Record<string, [DescMessage, object]> = {
  GetPlan: [m.getPlan.input, { userId: "bench-user" }],
  HasFeature: [m.hasFeature.input, { userId: "bench-user", feature: "api_access" }],
  CheckQuota: [m.checkQuota.input, { userId: "bench-user", metric: "jobs", amount: 1n }],
};
const names = Object.keys(requests).filter((name) => process.env.BENCH_CALLS === undefined || process.env.BENCH_CALLS.split(",").includes(name));

const database = await benchDatabaseServer();
const databaseUrl = await freshDatabase(database.serverUrl, "entitlements_bench_call_cost");
const quiet = createLogger("warn");
await migrate(databaseUrl, quiet);
const pool = await createDatabasePool(databaseUrl, { maxPoolSize: 4 });
await seedCatalog(pool, await loadDefaultCatalog());
// Every call's line written as the service writes stdout, to /dev/null.
const logger = createLogger("info", new TurnBatchedDestination(pino.destination({ dest: "/dev/null", sync: false, minLength: 4096, periodicFlush: 100 })));
const config = loadConfig({ SERVICE_TOKENS: TOKEN, JWT_SECRET: "bench-jwt-secret-0123456789-0123456789" });
const service = await composeService(config, pool, { logger });
// The standing cache is trusted only while change notifications arrive.
const listener = changeListener(service, databaseUrl, quiet);
await listener.start();
const { served } = service;
const methods = methodCalls(served.registrations, { interceptors: routerOptions(served, 1000).interceptors, logger, metrics: served.metrics });
const server = createGrpcServer({ methods, maxMessageBytes: 1 << 20, logger: quiet });
// grpc-js's table of handlers by path (private): the very functions it would call.
const handlers = (server as unknown as { handlers: Map<string, { func: (call: unknown, callback: (error: unknown) => void) => void }> }).handlers;

/** What the handler reads of grpc-js's call: the headers h2load sends, a peer, no deadline. */
function standInCall(request: Buffer) {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${TOKEN}`);
  metadata.set("user-agent", "h2load nghttp2/1.52.0");
  return { metadata, request, getDeadline: () => Infinity, getPeer: () => "ipv4:127.0.0.1:51234", once() {}, sendMetadata() {} };
}

/** µs of wall time a call, `calls` calls at IN_FLIGHT in flight. */
async function measure(name: string, calls: number): Promise<number> {
  const [schema, init] = requests[name]!;
  const request = Buffer.from(toBinary(schema, create(schema, init as never)));
  const handler = handlers.get(`/${EntitlementService.typeName}/${name}`)!.func;
  let started = 0;
  const worker = async () => {
    while (started < calls) {
      started++;
      await new Promise<void>((resolve, reject) => handler(standInCall(request), (error) => (error ? reject(error as Error) : resolve())));
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return ((performance.now() - start) * 1000) / calls;
}

try {
  for (const name of names) await measure(name, CALL_COUNT / 10);
  const perCall = new Map<string, number[]>(names.map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) for (const name of names) perCall.get(name)!.push(await measure(name, CALL_COUNT / ROUNDS));
  const rows = [["call", "µs a call (median)", "rounds"]];
  for (const [name, values] of perCall) {
    const sorted = [...values].sort((a, b) => a - b);
    rows.push([name, sorted[Math.floor(ROUNDS / 2)]!.toFixed(2), values.map((value) => value.toFixed(1)).join(" ")]);
  }
  process.stdout.write(`Call cost: the service's own work a cached read, in process, ${IN_FLIGHT} in flight, ${CALL_COUNT} calls each in ${ROUNDS} rounds.\n\n${table(rows)}\n`);
} finally {
  await listener.stop();
  await pool.end();
  await database.stop();
}
