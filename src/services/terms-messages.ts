import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { EntitlementSource, GrantSchema, OverrideSchema, type Grant, type Override } from "../../gen/entitlements/v1/terms_pb.js";
import type { EntitlementSource as DomainSource, GrantRecord, OverrideRecord } from "../domain/terms.ts";

/** Conversions of per-account terms to the messages of the contract. */

export const ENTITLEMENT_SOURCES: Record<DomainSource, EntitlementSource> = {
  plan: EntitlementSource.PLAN,
  override: EntitlementSource.OVERRIDE,
};

/** Whether a message shows the term's reason: admins and backends see it, users on /v1 do not. */
export type ReasonShown = "with reason" | "without reason";

export function overrideMessage(override: OverrideRecord, shown: ReasonShown = "with reason"): Override {
  return create(OverrideSchema, {
    userId: override.userId,
    target: override.kind === "feature" ? { case: "feature", value: override.target } : { case: "metric", value: override.target },
    enabled: override.kind === "feature" ? override.enabled : undefined,
    limit: override.kind === "quota" ? (override.limit ?? undefined) : undefined,
    expiresAt: override.expiresAt === null ? undefined : timestampFromDate(override.expiresAt),
    reason: shown === "with reason" ? override.reason : "",
    createdAt: timestampFromDate(override.createdAt),
  });
}

export function grantMessage(grant: GrantRecord, shown: ReasonShown = "with reason"): Grant {
  return create(GrantSchema, {
    id: grant.id,
    metric: grant.metric,
    amount: grant.amount,
    remaining: grant.remaining,
    expiresAt: grant.expiresAt === null ? undefined : timestampFromDate(grant.expiresAt),
    createdAt: timestampFromDate(grant.createdAt),
    reason: shown === "with reason" ? grant.reason : "",
    revokedAt: grant.revokedAt === null ? undefined : timestampFromDate(grant.revokedAt),
  });
}
