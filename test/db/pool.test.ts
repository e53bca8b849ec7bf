import { beforeAll, describe, expect, it } from "vitest";
import { SchemaValidationError, sql } from "slonik";
import { z } from "zod";
import { createDatabasePool, statementTimeoutOf } from "../../src/db/pool.ts";
import { createTestDatabase, type TestDatabase } from "../support/database.ts";

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});

describe("the pool", () => {
  it("checks every row of a typed query against its schema", async () => {
    await expect(database.pool.one(sql.type(z.object({ code: z.number() }))`select 'free' as code`)).rejects.toBeInstanceOf(
      SchemaValidationError,
    );
  });

  it("returns the parsed (transformed) row", async () => {
    const row = await database.pool.one(sql.type(z.object({ n: z.bigint().transform(String) }))`select 42::int8 as n`);
    expect(row).toEqual({ n: "42" });
  });
});

describe("behind a transaction pooler", () => {
  const prepared = sql.prepared("pool_test_statement", z.object({ n: z.number() }))`select 1 as n`;
  const namedStatements = sql.type(z.object({ n: z.number() }))`select count(*)::int as n from pg_prepared_statements where name = 'pool_test_statement'`;

  it("names sql.prepared statements by default, and sends them unnamed with preparedStatements off", async () => {
    for (const preparedStatements of [true, false]) {
      // One connection: the statement and the look at pg_prepared_statements share its session.
      const pool = await createDatabasePool(database.sessionUrl, { maxPoolSize: 1, preparedStatements });
      try {
        await pool.one(prepared);
        expect({ preparedStatements, named: (await pool.one(namedStatements)).n }).toEqual({ preparedStatements, named: preparedStatements ? 1 : 0 });
      } finally {
        await pool.end();
      }
    }
  });

  it("sends no session settings at connection start with sessionSettings off (PgBouncer refuses them)", async () => {
    const timeouts = sql.type(z.object({ statement: z.string(), idle: z.string() }))`
      select current_setting('statement_timeout') as statement, current_setting('idle_in_transaction_session_timeout') as idle`;
    const direct = await createDatabasePool(database.sessionUrl, { maxPoolSize: 1, statementTimeoutMs: 1234 });
    const pooled = await createDatabasePool(database.sessionUrl, { maxPoolSize: 1, statementTimeoutMs: 1234, sessionSettings: false });
    try {
      expect(await direct.one(timeouts)).toEqual({ statement: "1234ms", idle: "10s" });
      expect(await pooled.one(timeouts)).not.toMatchObject({ statement: "1234ms" });
      expect(await statementTimeoutOf(direct)).toBe("1234ms");
    } finally {
      await Promise.all([direct.end(), pooled.end()]);
    }
  });
});
