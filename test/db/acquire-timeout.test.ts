import { sql, type DatabasePool } from "slonik";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { ConnectionAcquireTimeoutError } from "../../src/db/acquire-timeout.ts";
import { createDatabasePool } from "../../src/db/pool.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});

const one = sql.type(z.object({ n: z.number() }))`select 1 as n`;

/** Holds the pool's one connection until `release` is called; resolves once it holds it. */
async function holdConnection(pool: DatabasePool): Promise<{ release: () => void; released: Promise<void> }> {
  let release!: () => void;
  let holding!: () => void;
  const held = new Promise<void>((resolve) => (holding = resolve));
  const released = pool.connect(() => {
    holding();
    return new Promise<void>((resolve) => (release = resolve));
  });
  await held;
  return { release, released };
}

describe("waiting for a pool connection", () => {
  it("is bounded by the connect timeout, counted as waiting meanwhile, and the pool serves again once one is free", async () => {
    const pool = await createDatabasePool(database.url, { maxPoolSize: 1, connectTimeoutMs: 200 });
    try {
      const { release, released } = await holdConnection(pool);
      const started = performance.now();
      const waiter = pool.oneFirst(one);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(pool.state().waitingClients).toBe(1);
      await expect(waiter).rejects.toBeInstanceOf(ConnectionAcquireTimeoutError);
      expect(performance.now() - started).toBeLessThan(2000);
      expect(pool.state().waitingClients).toBe(0);
      release();
      await released;
      await expect(pool.oneFirst(one)).resolves.toBe(1);
    } finally {
      await pool.end();
    }
  });

  it("hands a freed connection to the caller who waited longest", async () => {
    const pool = await createDatabasePool(database.url, { maxPoolSize: 1, connectTimeoutMs: 5000 });
    try {
      const { release, released } = await holdConnection(pool);
      const order: number[] = [];
      const waiters = [1, 2, 3].map((n) => pool.oneFirst(one).then(() => order.push(n)));
      release();
      await Promise.all([released, ...waiters]);
      expect(order).toEqual([1, 2, 3]);
    } finally {
      await pool.end();
    }
  });
});
