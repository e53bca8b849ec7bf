import { beforeAll, describe, expect, it } from "vitest";
import { SchemaValidationError, sql } from "slonik";
import { z } from "zod";
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
