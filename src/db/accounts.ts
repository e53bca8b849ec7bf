import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";
import type { AccountRecord, AccountStatus } from "../domain/accounts.ts";
import type { PlanCommitments } from "../domain/subscriptions.ts";
import { NO_TERMS, type AccountTerms } from "../domain/terms.ts";
import { overrideInForce, overridesInForce } from "./overrides.ts";
import { grantInForce, grantsInForce } from "./usage-grants.ts";
import { pendingChange } from "./scheduled-changes.ts";
import { runningTrial } from "./trials.ts";


const ACCOUNT_COLUMNS = sql.fragment`
  user_id, email, status, suspended_reason, is_superadmin, created_at, tokens_valid_after
`;

const accountRow = z
  .object({
    user_id: z.string(),
    email: z.string().nullable(),
    status: z.enum(["active", "suspended"]),
    suspended_reason: z.string().nullable(),
    is_superadmin: z.boolean(),
    created_at: timestampColumn,
    tokens_valid_after: timestampColumn.nullable(),
  })
  .transform(
    (row): AccountRecord => ({
      userId: row.user_id,
      email: row.email,
      status: row.status,
      suspendedReason: row.suspended_reason,
      isSuperadmin: row.is_superadmin,
      createdAt: row.created_at,
      tokensValidAfter: row.tokens_valid_after,
    }),
  );

/** Records the user on first sight; a no-op for a known user. */
export async function ensureAccount(db: CommonQueryMethods, userId: string, now: Date): Promise<void> {
  await db.query(sql.unsafe`
    insert into accounts (user_id, created_at) values (${userId}, ${sql.timestamp(now)})
    on conflict (user_id) do nothing
  `);
}

/**
 * Records a signed-in user and their email when their token tells it; writes nothing when the
 * account already holds that email.
 */
export async function recordSignIn(
  db: CommonQueryMethods,
  userId: string,
  email: string | undefined,
  now: Date,
): Promise<void> {
  await db.query(sql.unsafe`
    insert into accounts (user_id, created_at, email) values (${userId}, ${sql.timestamp(now)}, ${email ?? null})
    on conflict (user_id) do update set email = excluded.email
      where excluded.email is not null and accounts.email is distinct from excluded.email
  `);
}

/**
 * Locks the account row until the transaction ends, so that changes to one account are
 * serialized, and returns it. FOR NO KEY UPDATE leaves concurrent increments (which only take a
 * key-share lock through their foreign key) unblocked.
 */
export async function lockAccount(db: CommonQueryMethods, userId: string): Promise<AccountRecord | null> {
  return db.maybeOne(sql.type(accountRow)`
    select ${ACCOUNT_COLUMNS} from accounts where user_id = ${userId} for no key update
  `);
}

export async function findAccount(db: CommonQueryMethods, userId: string): Promise<AccountRecord | null> {
  return db.maybeOne(sql.type(accountRow)`select ${ACCOUNT_COLUMNS} from accounts where user_id = ${userId}`);
}

/** What every entitlement decision needs about a user, in one round trip. */
export type AccountStanding = PlanCommitments & {
  readonly status: AccountStatus;
  readonly tokensValidAfter: Date | null;
  /** How many change feed events the account has had (0 for a user never seen). */
  readonly revision: bigint;
  /** When it was read from the database (an answer's as_of). */
  readonly readAt: Date;
  /** Overrides and grants in force when it was read; each still lapses at its own expiry. */
  readonly terms: AccountTerms;
};

const standingRow = z
  .object({
    status: z.enum(["active", "suspended"]).nullable(),
    tokens_valid_after: timestampColumn.nullable(),
    revision: z.bigint().nullable(),
    plan_code: z.string().nullable(),
    plan_version: z.number().nullable(),
    started_at: timestampColumn.nullable(),
    expires_at: timestampColumn.nullable(),
    trial_plan: z.string().nullable(),
    trial_version: z.number().nullable(),
    trial_started_at: timestampColumn.nullable(),
    trial_ends_at: timestampColumn.nullable(),
    change_plan: z.string().nullable(),
    change_effective_at: timestampColumn.nullable(),
    overrides: z.array(overrideInForce).nullable(),
    grants: z.array(grantInForce).nullable(),
  });

/**
 * The account's standing, current subscription and terms in force at `at`; a user never seen is
 * active, on no subscription, with no terms.
 */
export async function findAccountStanding(db: CommonQueryMethods, userId: string, at: Date): Promise<AccountStanding> {
  const row = await db.one(sql.prepared("account_standing", standingRow)`
    select a.status, a.tokens_valid_after, a.revision, s.plan_code, s.plan_version, s.started_at, s.expires_at,
      trial.plan_code as trial_plan, trial.plan_version as trial_version, trial.started_at as trial_started_at, trial.ends_at as trial_ends_at,
      change.plan_code as change_plan, change.effective_at as change_effective_at,
      ${overridesInForce(at)} as overrides, ${grantsInForce(at)} as grants
    from (select ${userId}::text as user_id) as wanted
    left join accounts a on a.user_id = wanted.user_id
    left join subscriptions s on s.user_id = wanted.user_id and s.ended_at is null
    ${runningTrial(at)}
    ${pendingChange}
  `);
  const terms = row.overrides === null && row.grants === null ? NO_TERMS : { overrides: row.overrides ?? [], grants: row.grants ?? [] };
  return {
    status: row.status ?? "active",
    tokensValidAfter: row.tokens_valid_after,
    revision: row.revision ?? 0n,
    readAt: at,
    subscription:
      row.plan_code === null || row.plan_version === null || row.started_at === null
        ? null
        : { userId, planCode: row.plan_code, planVersion: row.plan_version, startedAt: row.started_at, expiresAt: row.expires_at, endedAt: null },
    trial:
      row.trial_plan === null || row.trial_version === null || row.trial_started_at === null || row.trial_ends_at === null
        ? null
        : { userId, planCode: row.trial_plan, planVersion: row.trial_version, startedAt: row.trial_started_at, endsAt: row.trial_ends_at },
    scheduledChange: row.change_plan === null || row.change_effective_at === null ? null : { planCode: row.change_plan, effectiveAt: row.change_effective_at },
    terms,
  };
}

export type AccountFilter = {
  /** Prefix of the user id or the email; "" for all. */
  readonly query: string;
  readonly planCode: string | undefined;
  readonly defaultPlanCode: string;
  readonly status: AccountStatus | undefined;
  /** Keyset position: accounts after this user id (byte order). */
  readonly afterUserId: string | undefined;
  readonly limit: number;
  readonly now: Date;
};

function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
}

/** Accounts in user id byte order, filtered by prefix, current plan and status. */
export async function listAccounts(db: CommonQueryMethods, filter: AccountFilter): Promise<readonly AccountRecord[]> {
  const conditions = [sql.fragment`true`];
  if (filter.query !== "") {
    const pattern = likePrefix(filter.query);
    conditions.push(sql.fragment`(a.user_id collate "C" like ${pattern} or a.email collate "C" like ${pattern.toLowerCase()})`);
  }
  if (filter.status !== undefined) conditions.push(sql.fragment`a.status = ${filter.status}`);
  if (filter.afterUserId !== undefined) conditions.push(sql.fragment`a.user_id collate "C" > ${filter.afterUserId}`);
  if (filter.planCode !== undefined) {
    const current = sql.fragment`
      select s.plan_code from subscriptions s
      where s.user_id = a.user_id and s.ended_at is null
        and (s.expires_at is null or s.expires_at > ${sql.timestamp(filter.now)})
    `;
    conditions.push(
      filter.planCode === filter.defaultPlanCode
        ? sql.fragment`coalesce((${current}), ${filter.defaultPlanCode}) = ${filter.defaultPlanCode}`
        : sql.fragment`(${current}) = ${filter.planCode}`,
    );
  }
  return db.any(sql.type(accountRow)`
    select ${ACCOUNT_COLUMNS} from accounts a
    where ${sql.join(conditions, sql.fragment` and `)}
    order by a.user_id collate "C"
    limit ${filter.limit}
  `);
}

export async function setAccountStatus(
  db: CommonQueryMethods,
  userId: string,
  status: AccountStatus,
  reason: string | null,
): Promise<AccountRecord> {
  return db.one(sql.type(accountRow)`
    update accounts set status = ${status}, suspended_reason = ${reason}
    where user_id = ${userId}
    returning ${ACCOUNT_COLUMNS}
  `);
}

export async function setSuperadmin(db: CommonQueryMethods, userId: string, isSuperadmin: boolean): Promise<AccountRecord> {
  return db.one(sql.type(accountRow)`
    update accounts set is_superadmin = ${isSuperadmin} where user_id = ${userId}
    returning ${ACCOUNT_COLUMNS}
  `);
}

export async function setTokensValidAfter(db: CommonQueryMethods, userId: string, validAfter: Date): Promise<void> {
  await db.query(sql.unsafe`
    update accounts set tokens_valid_after = ${sql.timestamp(validAfter)} where user_id = ${userId}
  `);
}

const accountCountsRow = z.object({ total: z.bigint(), suspended: z.bigint() });

export async function countAccounts(db: CommonQueryMethods): Promise<{ total: bigint; suspended: bigint }> {
  return db.one(sql.type(accountCountsRow)`
    select
      (select count(*) from accounts) as total,
      (select count(*) from accounts where status = 'suspended') as suspended
  `);
}
