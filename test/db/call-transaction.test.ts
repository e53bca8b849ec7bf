import { beforeAll, describe, expect, it, vi } from "vitest";
import { sql, type DatabasePool } from "slonik";
import { z } from "zod";
import { createContextValues } from "@connectrpc/connect";
import { afterCallCommit, CallTransactions, queriesOf } from "../../src/db/call-transaction.ts";
import { callDeadlineKey } from "../../src/transport/call-lifecycle.ts";
import { deadlineInterceptor } from "../../src/transport/interceptors/deadline.ts";
import { createDatabasePool } from "../../src/db/pool.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

const interceptors = new WeakMap<DatabasePool, ReturnType<typeof deadlineInterceptor>>();

/** A call through the pool's deadline interceptor with a 300 ms deadline; `work` is the call. */
function callWithDeadline<T>(pool: DatabasePool, work: () => Promise<T>): Promise<T> {
  let interceptor = interceptors.get(pool);
  if (interceptor === undefined) {
    interceptor = deadlineInterceptor(new CallTransactions(pool), 5000);
    interceptors.set(pool, interceptor);
  }
  const request = { contextValues: createContextValues().set(callDeadlineKey, Date.now() + 300) };
  return interceptor((async () => ({ message: await work() })) as never)(request as never).then((response) => (response as unknown as { message: T }).message);
}

/** A pool whose transactions are `transaction` (a spy). */
const poolWith = (transaction: unknown) => ({ transaction, configuration: { maxPoolSize: 10, connectionTimeout: 1000 } }) as unknown as DatabasePool;

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
  await database.pool.query(sql.unsafe`create table deadline_probe (id text primary key)`);
});

const probeRows = () => database.pool.anyFirst(sql.type(z.object({ id: z.string() }))`select id from deadline_probe order by id`);

describe("the deadline interceptor", () => {
  it("opens no transaction for a call that runs no query", async () => {
    const transaction = vi.fn();
    const answer = await callWithDeadline(poolWith(transaction), async () => "from memory");
    expect(answer).toBe("from memory");
    expect(transaction).not.toHaveBeenCalled();
  });

  it("runs a call's queries in one transaction bounded by what is left of the deadline", async () => {
    const [timeout, first, second] = await callWithDeadline(database.pool, async () => {
      const db = queriesOf(database.pool);
      const setting = await db.oneFirst(sql.type(z.object({ t: z.string() }))`select current_setting('statement_timeout') as t`);
      const ids = await Promise.all([1, 2].map(() => db.oneFirst(sql.type(z.object({ x: z.string() }))`select txid_current()::text as x`)));
      return [setting, ...ids] as const;
    });
    expect(Number.parseInt(timeout, 10)).toBeGreaterThan(0);
    expect(Number.parseInt(timeout, 10)).toBeLessThanOrEqual(300);
    expect(first).toBe(second);
  });

  it("commits a call that succeeds, then runs what waited for the commit", async () => {
    const seen: string[][] = [];
    await callWithDeadline(database.pool, async () => {
      await queriesOf(database.pool).query(sql.unsafe`insert into deadline_probe (id) values ('committed')`);
      afterCallCommit(() => void probeRows().then((rows) => seen.push([...rows])));
    });
    await vi.waitFor(() => expect(seen).toEqual([["committed"]]));
  });

  it("runs what waited for the commit of a call that ran no query of its own", async () => {
    const afterCommit = vi.fn();
    await callWithDeadline(poolWith(vi.fn()), async () => afterCallCommit(afterCommit));
    expect(afterCommit).toHaveBeenCalledOnce();
  });

  it("refuses a query the call leaves behind, rather than open a transaction nothing ends", async () => {
    const transaction = vi.fn();
    const late = await callWithDeadline(poolWith(transaction), async () => {
      const db = queriesOf(database.pool);
      return () => db.query(sql.unsafe`select 1`);
    });
    await expect(late()).rejects.toThrow("the call has ended");
    expect(transaction).not.toHaveBeenCalled();
  });

  it("rolls back a call that fails, and runs nothing that waited for a commit", async () => {
    const afterCommit = vi.fn();
    const failure = callWithDeadline(database.pool, async () => {
      await queriesOf(database.pool).query(sql.unsafe`insert into deadline_probe (id) values ('rolled-back')`);
      afterCallCommit(afterCommit);
      throw new Error("the call failed");
    });
    await expect(failure).rejects.toThrow("the call failed");
    expect(await probeRows()).not.toContain("rolled-back");
    expect(afterCommit).not.toHaveBeenCalled();
  });

  it("leaves a connection for the pool's other callers, so a call never waits on the one it holds", async () => {
    const pool = await createDatabasePool(database.url, {
      maxPoolSize: 2,
      connectTimeoutMs: 1000,
      preparedStatements: process.env.DATABASE_PREPARED_STATEMENTS !== "off",
    });
    try {
      // Each call opens its transaction, then waits for work through the pool (as an increment
      // waits for group commit). Two such transactions at once would hold both connections.
      const calls = [1, 2, 3, 4].map((n) =>
        callWithDeadline(pool, async () => {
          await queriesOf(pool).query(sql.unsafe`insert into deadline_probe (id) values (${`held-${n}`})`);
          await new Promise((resolve) => setTimeout(resolve, 20));
          return pool.oneFirst(sql.type(z.object({ n: z.number() }))`select ${n}::int as n`);
        }),
      );
      expect(await Promise.all(calls)).toEqual([1, 2, 3, 4]);
      expect(await probeRows()).toEqual(expect.arrayContaining(["held-1", "held-2", "held-3", "held-4"]));
    } finally {
      await pool.end();
    }
  });
});
