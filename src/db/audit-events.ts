import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";

export type AuditEventRecord = {
  readonly id: bigint;
  readonly actorId: string;
  readonly action: string;
  readonly targetUserId: string;
  readonly reason: string;
  /** What the action touched (the metrics a usage reset set back to zero); empty for most. */
  readonly details: Readonly<Record<string, string>>;
  readonly at: Date;
};

const auditEventRow = z
  .object({
    id: z.bigint(),
    actor_id: z.string(),
    action: z.string(),
    target_user_id: z.string(),
    reason: z.string(),
    details: z.record(z.string(), z.string()),
    at: timestampColumn,
  })
  .transform(
    (row): AuditEventRecord => ({
      id: row.id,
      actorId: row.actor_id,
      action: row.action,
      targetUserId: row.target_user_id,
      reason: row.reason,
      details: row.details,
      at: row.at,
    }),
  );

/** Records an action; run it in the transaction of the change it records. */
export async function recordAuditEvent(
  db: CommonQueryMethods,
  event: Omit<AuditEventRecord, "id" | "details"> & { readonly details?: Readonly<Record<string, string>> },
): Promise<void> {
  await db.query(sql.unsafe`
    insert into audit_events (actor_id, action, target_user_id, reason, details, at)
    values (${event.actorId}, ${event.action}, ${event.targetUserId}, ${event.reason}, ${sql.jsonb(event.details ?? {})}, ${sql.timestamp(event.at)})
  `);
}

/** Events newest first, optionally about one user, before a keyset position (an event id). */
export async function listAuditEvents(
  db: CommonQueryMethods,
  filter: { readonly targetUserId: string | undefined; readonly beforeId: bigint | undefined; readonly limit: number },
): Promise<readonly AuditEventRecord[]> {
  const conditions = [sql.fragment`true`];
  if (filter.targetUserId !== undefined) conditions.push(sql.fragment`target_user_id = ${filter.targetUserId}`);
  if (filter.beforeId !== undefined) conditions.push(sql.fragment`id < ${filter.beforeId}`);
  return db.any(sql.type(auditEventRow)`
    select id, actor_id, action, target_user_id, reason, details, at from audit_events
    where ${sql.join(conditions, sql.fragment` and `)}
    order by id desc
    limit ${filter.limit}
  `);
}
