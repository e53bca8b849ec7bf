import { sql, type CommonQueryMethods } from "slonik";

/** Records the user on first sight; a no-op for a known user. */
export async function ensureAccount(db: CommonQueryMethods, userId: string, now: Date): Promise<void> {
  await db.query(sql.unsafe`
    insert into accounts (user_id, created_at) values (${userId}, ${sql.timestamp(now)})
    on conflict (user_id) do nothing
  `);
}

/**
 * Locks the account row until the transaction ends, so that changes to one user's subscription
 * are serialized. FOR NO KEY UPDATE leaves concurrent increments (which only take a key-share
 * lock through their foreign key) unblocked.
 */
export async function lockAccount(db: CommonQueryMethods, userId: string): Promise<void> {
  await db.query(sql.unsafe`
    select 1 from accounts where user_id = ${userId} for no key update
  `);
}
