/** Users bench:rpc seeds beyond the plain ones: those with per-account terms, and the ConsumeUsage users. */
import type { DatabasePool } from "slonik";
import { ensureAccount } from "../src/db/accounts.ts";
import { upsertOverride } from "../src/db/overrides.ts";
import { insertGrant } from "../src/db/usage-grants.ts";

/** Users whose counters the increments spread over. */
export const INCREMENT_USERS = 8;
export const TERMS_USER = "bench-terms";
export const CONSUME_USER = "bench-consume";

/** No limit on jobs and api_calls for the ConsumeUsage users, so every call counts. */
export async function unlimitConsumers(pool: DatabasePool): Promise<void> {
  const at = new Date();
  for (let i = 1; i <= INCREMENT_USERS; i++) {
    const userId = `${CONSUME_USER}-${i}`;
    await ensureAccount(pool, userId, at);
    for (const metric of ["jobs", "api_calls"]) {
      await upsertOverride(pool, { kind: "quota", target: metric, limit: null, expiresAt: null, userId, reason: "bench", createdBy: "bench", createdAt: at });
    }
  }
}

/** One quota override and two grants for the users of the "with terms" rows, on the metric each uses. */
export async function giveTerms(pool: DatabasePool): Promise<void> {
  const at = new Date();
  const expiresAt = new Date(at.getTime() + 86_400_000);
  const users: [string, string][] = [[TERMS_USER, "jobs"], ...Array.from({ length: INCREMENT_USERS }, (_, i): [string, string] => [`${TERMS_USER}-${i + 1}`, "compute_minutes"])];
  for (const [userId, metric] of users) {
    await ensureAccount(pool, userId, at);
    await upsertOverride(pool, { kind: "quota", target: metric, limit: 10n ** 15n, expiresAt, userId, reason: "bench", createdBy: "bench", createdAt: at });
    for (const [key, expiry] of [["a", expiresAt], ["b", null]] as const) {
      await insertGrant(pool, { userId, metric, amount: 1000n, expiresAt: expiry, idempotencyKey: key, reason: "bench", createdBy: "bench", createdAt: at });
    }
  }
}
