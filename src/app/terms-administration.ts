import type { CommonQueryMethods, DatabasePool } from "slonik";
import { queriesOf } from "../db/call-transaction.ts";
import { deleteOverride, findOverrides, upsertOverride } from "../db/overrides.ts";
import { findGrants, insertGrant, revokeGrant } from "../db/usage-grants.ts";
import { isGauge, type Metric } from "../domain/catalog.ts";
import type { Clock } from "../domain/clock.ts";
import { IdempotencyKeyReusedError, InvalidArgumentError, UnknownResourceError } from "../domain/errors.ts";
import type { GrantRecord, Override, OverrideRecord } from "../domain/terms.ts";
import { changeAccount, nothingForUnknownAccount } from "./account-changes.ts";
import type { Entitlements } from "./entitlements.ts";

/** An override to set: what it overrides, until when, and why. */
export type OverrideRequest = Override & { readonly userId: string; readonly reason: string };

export type GrantRequest = {
  readonly userId: string;
  readonly metric: string;
  readonly amount: bigint;
  readonly expiresAt: Date | null;
  readonly idempotencyKey: string;
  readonly reason: string;
};

/**
 * Per-account terms: overrides that beat the plan and usage grants on top of it. Every change is
 * audited with its actor and evicts the account on every replica (account-changes.ts); terms can
 * be set before a user's first call.
 */
export class TermsAdministration {
  readonly #pool: DatabasePool;
  readonly #entitlements: Entitlements;
  readonly #clock: Clock;

  /** The call's deadline-bound transaction, or the pool (db/call-transaction.ts). */
  get #db(): CommonQueryMethods {
    return queriesOf(this.#pool);
  }

  constructor(pool: DatabasePool, entitlements: Entitlements, clock: Clock) {
    this.#pool = pool;
    this.#entitlements = entitlements;
    this.#clock = clock;
  }

  async setOverride(actor: string, request: OverrideRequest): Promise<OverrideRecord> {
    this.#checkTarget(request.kind, request.target);
    const at = this.#clock.now();
    const record: OverrideRecord = { ...request, createdBy: actor, createdAt: at };
    const change = { actor, userId: request.userId, action: "override.set", reason: `${describeOverride(request)}: ${request.reason}`, at, createAccount: true };
    return changeAccount(this.#db, this.#entitlements, change, async (tx) => ({ result: await upsertOverride(tx, record), changed: true }));
  }

  /** Removes an override; null (and nothing audited) when the account had none. */
  async clearOverride(actor: string, userId: string, kind: Override["kind"], target: string): Promise<OverrideRecord | null> {
    const at = this.#clock.now();
    const change = { actor, userId, action: "override.clear", reason: `${kind} ${target}`, at };
    return changeAccount(this.#db, this.#entitlements, change, async (tx) => {
      const cleared = await deleteOverride(tx, userId, kind, target);
      return { result: cleared, changed: cleared !== null };
    }).catch(nothingForUnknownAccount(userId));
  }

  listOverrides(userId: string): Promise<readonly OverrideRecord[]> {
    return findOverrides(this.#db, userId, this.#clock.now());
  }

  /** Grants units of a counter once per idempotency key; the key again returns the first grant. */
  async grantUsage(actor: string, request: GrantRequest): Promise<{ grant: GrantRecord; replayed: boolean }> {
    const metric = this.#metric(request.metric);
    if (isGauge(metric)) {
      throw new InvalidArgumentError([{ field: "metric", description: `"${metric.code}" is a gauge (a level in use): only counters take grants` }]);
    }
    const at = this.#clock.now();
    const reason = `${request.amount} ${metric.code}: ${request.reason}`;
    const change = { actor, userId: request.userId, action: "grant.create", reason, at, createAccount: true };
    const outcome = await changeAccount(this.#db, this.#entitlements, change, async (tx) => {
      const granted = await insertGrant(tx, { ...request, createdBy: actor, createdAt: at });
      return { result: granted, changed: !granted.replayed };
    });
    if (outcome.replayed && (outcome.grant.metric !== request.metric || outcome.grant.amount !== request.amount)) {
      throw new IdempotencyKeyReusedError(request.idempotencyKey);
    }
    return outcome;
  }

  listGrants(userId: string, includeSpent: boolean): Promise<readonly GrantRecord[]> {
    return findGrants(this.#db, userId, { includeSpent, at: this.#clock.now() });
  }

  /** Revokes a grant; revoking it again changes (and audits) nothing. */
  async revokeGrant(actor: string, userId: string, grantId: string): Promise<GrantRecord> {
    const at = this.#clock.now();
    const change = { actor, userId, action: "grant.revoke", reason: grantId, at };
    return changeAccount(this.#db, this.#entitlements, change, async (tx) => {
      const outcome = await revokeGrant(tx, userId, grantId, at);
      if (outcome === null) throw new UnknownResourceError("grant", grantId);
      return { result: outcome.grant, changed: outcome.revoked };
    });
  }

  #metric(code: string): Metric {
    const metric = this.#entitlements.catalog.metric(code);
    if (metric === undefined) throw new InvalidArgumentError([{ field: "metric", description: `"${code}" is not a metric of the catalog` }]);
    return metric;
  }

  #checkTarget(kind: Override["kind"], target: string): void {
    if (kind === "quota") {
      this.#metric(target);
    } else if (!this.#entitlements.catalog.hasFeature(target)) {
      throw new InvalidArgumentError([{ field: "feature", description: `"${target}" is not a feature of the catalog` }]);
    }
  }
}

/** An override as its audit event tells it: `feature sso on`, `quota jobs 2000 until …`. */
function describeOverride(override: Override): string {
  const value = override.kind === "feature" ? (override.enabled ? "on" : "off") : (override.limit?.toString() ?? "unlimited");
  const until = override.expiresAt === null ? "" : ` until ${override.expiresAt.toISOString()}`;
  return `${override.kind} ${override.target} ${value}${until}`;
}
