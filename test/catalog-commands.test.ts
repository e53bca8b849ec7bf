import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { sql } from "slonik";
import { z } from "zod";
import { createTestDatabase, type TestDatabase } from "./support/database.ts";

const cli = fileURLToPath(new URL("../src/cli.ts", import.meta.url));
const defaultFile = fileURLToPath(new URL("../catalog/default.yaml", import.meta.url));
const run = promisify(execFile);

/** `entitlements catalog ...` against this file's database: its output, or its failure. */
function catalog(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return run(process.execPath, [cli, "catalog", ...args], { env: { ...process.env, LOG_LEVEL: "silent", ...database.env } }).then(
    ({ stdout, stderr }) => ({ stdout, stderr, code: 0 }),
    (error: { stdout: string; stderr: string; code: number }) => ({ stdout: error.stdout, stderr: error.stderr, code: error.code }),
  );
}

let database: TestDatabase;
let directory: string;
beforeAll(async () => {
  database = await createTestDatabase({ empty: true });
  directory = await mkdtemp(path.join(tmpdir(), "catalog-commands-"));
});

/** The default catalog file's text with `edit` applied, written to `name`. */
async function fileWith(name: string, edit: (text: string) => string): Promise<string> {
  const file = path.join(directory, name);
  await writeFile(file, edit(await readFile(defaultFile, "utf8")));
  return file;
}

const versionsOf = (code: string) =>
  database.pool.anyFirst(sql.type(z.object({ version: z.number() }))`select version from plan_versions where plan_code = ${code} order by version`);

describe("the catalog commands", () => {
  it("apply a file to an empty database, then find nothing to change in it or in its export", async () => {
    expect((await catalog(["export"])).stderr).toContain("holds no catalog");
    const first = await catalog(["apply", defaultFile]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("default_plan: (none) -> free");
    expect(first.stdout).toContain("plans.pro: added");
    expect((await catalog(["apply", defaultFile])).stdout.trim()).toBe("no changes");
    const exported = await catalog(["export"]);
    expect(exported.stdout).toMatch(/^default_plan: free\n/);
    const exportFile = path.join(directory, "exported.yaml");
    await writeFile(exportFile, exported.stdout);
    expect((await catalog(["validate", exportFile])).code).toBe(0);
    expect((await catalog(["diff", exportFile])).stdout.trim()).toBe("no changes");
  });

  it("diff and dry-run write nothing; apply publishes new versions and archives what the file drops", async () => {
    const raised = await fileWith("raised.yaml", (text) =>
      text.replace("price_cents: 1999", "price_cents: 2499").replace(/\n  enterprise:[\s\S]*$/, "\n"),
    );
    const expected = ["plans.pro: new version (price_cents 1999 -> 2499)", "plans.enterprise: archived (its subscribers keep it)"];
    expect((await catalog(["diff", raised])).stdout.trim().split("\n")).toEqual(expected);
    expect((await catalog(["apply", raised, "--dry-run"])).stdout.trim().split("\n")).toEqual(expected);
    expect(await versionsOf("pro")).toEqual([1]);
    const applied = await catalog(["apply", raised]);
    expect(applied.stdout.trim().split("\n")).toEqual([...expected, "applied 2 changes"]);
    expect(await versionsOf("pro")).toEqual([1, 2]);
    expect(await database.pool.oneFirst(sql.type(z.object({ archived: z.boolean() }))`select archived_at is not null as archived from plans where code = 'enterprise'`)).toBe(true);
    expect((await catalog(["apply", raised])).stdout.trim()).toBe("no changes");
    expect((await catalog(["export"])).stdout).not.toContain("enterprise");
  });

  it("refuse a file that does not validate, or a reset changed under counted usage, writing nothing", async () => {
    const invalid = await fileWith("invalid.yaml", (text) => text.replace("jobs: 500", "jbos: 500"));
    expect(await catalog(["apply", invalid])).toMatchObject({ code: 1, stderr: 'plans.pro.quotas.jbos: unknown metric "jbos"\n' });
    await database.pool.query(sql.unsafe`
      insert into accounts (user_id, created_at) values ('counted', now());
    `);
    await database.pool.query(sql.unsafe`
      insert into usage_counters (user_id, metric_code, period_start, used, updated_at) values ('counted', 'jobs', date_trunc('month', now()), 3, now())
    `);
    const weekly = await fileWith("weekly.yaml", (text) => text.replace("jobs:            { reset: month", "jobs:            { reset: week "));
    const refused = await catalog(["apply", weekly]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('metrics.jobs.reset: cannot change from "month" to "week": usage has been counted on it');
    expect((await catalog(["diff", weekly])).stdout).toContain("metrics.jobs: reset month -> week");
  });

  it("refuse removing a metric that a plan version subscribers are on limits", async () => {
    await database.pool.query(sql.unsafe`insert into accounts (user_id, created_at) values ('subscriber', now())`);
    await database.pool.query(sql.unsafe`
      insert into subscriptions (user_id, plan_code, plan_version, started_at)
      select 'subscriber', 'pro', max(version), now() from plan_versions where plan_code = 'pro'
    `);
    const withoutCompute = await fileWith("without-compute.yaml", (text) => text.replace(/\n  compute_minutes: [^\n]*/, "").replaceAll(/compute_minutes: unlimited, /g, ""));
    expect(await readFile(withoutCompute, "utf8")).not.toContain("compute_minutes");
    const refused = await catalog(["apply", withoutCompute]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe("metrics.compute_minutes: cannot be removed: a plan version subscribers are on limits it");
  });
});
