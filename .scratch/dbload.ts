import { IncrementBatcher } from "../src/db/increment-batcher.ts";
import { createDatabasePool } from "../src/db/pool.ts";
import { migrate } from "../src/db/migrate.ts";
import { seedCatalog } from "../src/db/seed.ts";
import { loadDefaultCatalog } from "../src/app/catalog-file.ts";
import { createLogger } from "../src/platform/logger.ts";
import pg from "pg";
const admin = new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:5432/postgres" });
await admin.connect(); await admin.query("drop database if exists dbload with (force)"); await admin.query("create database dbload"); await admin.end();
const url = "postgres://postgres@127.0.0.1:5432/dbload";
await migrate(url, createLogger("warn"));
const pool = await createDatabasePool(url, { maxPoolSize: 16 });
await seedCatalog(pool, await loadDefaultCatalog());
const batcher = new IncrementBatcher(pool);
const periodStart = new Date("2026-12-01T00:00:00Z");
const MAX = 2n ** 53n - 1n;
async function load(name: string, step: (w: number) => Promise<unknown>, inFlight = 16, seconds = 4) {
  let n = 0; let stop = false;
  const workers = Array.from({ length: inFlight }, async (_, w) => { while (!stop) { await step(w); n++; } });
  await new Promise((r) => setTimeout(r, seconds * 1000)); stop = true; await Promise.all(workers);
  console.log(name, (n / seconds).toFixed(0), "/s");
}
const now = () => new Date();
const inc = (w: number) => batcher.submit({ userId: `i${w % 8}`, metric: "compute_minutes", periodStart, amount: 1n, ceiling: MAX, now: now() });
let phase = 0;
const item = (w: number, hold: boolean) => ({ userId: `r${phase}-${w % 8}`, items: [{ metric: "compute_minutes", periodStart, amount: 10n, ceiling: MAX, limit: null }], key: undefined, now: now(), keyExpiresAt: new Date(Date.now() + 1e9), ...(hold ? { holdUntil: new Date(Date.now() + 60000) } : {}) });
const reserve = (w: number) => batcher.submitItems(item(w, true));
const consume = (w: number) => batcher.submitItems(item(w, false));
const pair = async (w: number) => { const o = await reserve(w); if (o.kind !== "granted") throw new Error("x"); await batcher.submitSettlement({ userId: `r${phase}-${w % 8}`, reservationId: o.reservationId!, commit: [{ metric: "compute_minutes", amount: 7n, ceiling: MAX }], now: now() }); };
for (let round = 0; round < 2; round++) {
  phase++; await load("increment", inc);
  phase++; await load("consume1", consume);
  phase++; await load("pair", pair);
  phase++; await load("reserve", reserve);
}
await pool.end();
