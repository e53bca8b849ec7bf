import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
import type { PastTrial, TrialRecord } from "../domain/subscriptions.ts";

const trialColumns = z.object({ user_id: z.string(), plan_code: z.string(), plan_version: z.number(), started_at: timestampColumn, ends_at: timestampColumn });

function trialOf(row: z.infer<typeof trialColumns>): TrialRecord {
  return { userId: row.user_id, planCode: row.plan_code, planVersion: row.plan_version, startedAt: row.started_at, endsAt: row.ends_at };
}

const trialRow = trialColumns.transform(trialOf);

/**
 * Starts a trial of the plan's latest version committed in the database; null when the account
 * already had a trial of this plan (one per plan, ever). Run it under the account's lock.
 */
export async function insertTrial(
  db: CommonQueryMethods,
  trial: { readonly userId: string; readonly planCode: string; readonly startedAt: Date; readonly endsAt: Date; readonly createdBy: string },
): Promise<TrialRecord | null> {
  return db.maybeOne(sql.type(trialRow)`
    insert into trials (user_id, plan_code, plan_version, started_at, ends_at, created_by)
    values (
      ${trial.userId}, ${trial.planCode},
      (select max(version) from plan_versions where plan_code = ${trial.planCode}),
      ${sql.timestamp(trial.startedAt)}, ${sql.timestamp(trial.endsAt)}, ${trial.createdBy}
    )
    on conflict (user_id, plan_code) do nothing
    returning user_id, plan_code, plan_version, started_at, ends_at
  `);
}

/**
 * Ends the account's running trial at `at` (a plan change or another trial took over): converted
 * when the change was to the trial's plan. Returns the trial ended, or null when none ran.
 */
export async function endRunningTrial(db: CommonQueryMethods, userId: string, at: Date, convertedTo: string | undefined): Promise<TrialRecord | null> {
  return db.maybeOne(sql.type(trialRow)`
    update trials set ended_at = ${sql.timestamp(at)}, converted = plan_code = ${convertedTo ?? null}::text is true
    where user_id = ${userId} and ended_at is null and ends_at > ${sql.timestamp(at)}
    returning user_id, plan_code, plan_version, started_at, ends_at
  `);
}

/** The trial of the standing query (db/accounts.ts), whose user is `wanted.user_id`: the one running at `at`. */
export function runningTrial(at: Date) {
  return sql.fragment`left join lateral (
    select t.plan_code, t.plan_version, t.started_at, t.ends_at from trials t
    where t.user_id = wanted.user_id and t.ended_at is null and t.ends_at > ${sql.timestamp(at)}
    order by t.started_at desc limit 1
  ) trial on true`;
}

const pastTrialRow = trialColumns
  .extend({ ended_at: timestampColumn.nullable() })
  .transform((row): PastTrial => ({ trial: trialOf(row), endedAt: row.ended_at }));

/** Every trial the account had or has, newest first. */
export async function findTrials(db: CommonQueryMethods, userId: string): Promise<readonly PastTrial[]> {
  return db.any(sql.type(pastTrialRow)`
    select user_id, plan_code, plan_version, started_at, ends_at, ended_at
    from trials where user_id = ${userId}
    order by started_at desc
  `);
}
