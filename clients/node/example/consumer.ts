// A consumer of the packed client, as a team would write one: every EntitlementService RPC and
// every error helper, compiled with `tsc --strict` against the installed package and run against
// a service (test/e2e/client-package.test.ts). BASE_URL, TOKEN and PROTOCOL come from the
// environment.
import {
  Code,
  ConnectError,
  ReservationState,
  badRequestOf,
  createEntitlementClient,
  errorInfoOf,
  quotaFailureOf,
  resourceInfoOf,
  type EntitlementClient,
  type ErrorReason,
  type LocalEntitlementClient,
} from "@entitlements/client";

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const client: EntitlementClient = createEntitlementClient({
  baseUrl: env("BASE_URL"),
  token: env("TOKEN"),
  protocol: env("PROTOCOL") === "connect" ? "connect" : "grpc",
});

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`unexpected: ${what}`);
}

async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  const error = await call.then(() => undefined, (e: unknown) => ConnectError.from(e));
  if (error === undefined) throw new Error("the call should have failed");
  return error;
}

const userId = `consumer-${env("PROTOCOL")}`;

const { plans } = await client.listPlans({});
check(plans.some((plan) => plan.code === "pro"), "ListPlans has pro");
check((await client.getPlan({ userId })).plan?.code === "free", "GetPlan: free");
check((await client.hasFeature({ userId, feature: "api_access" })).enabled, "HasFeature");
check((await client.checkQuota({ userId, metric: "jobs", amount: 1n })).allowed, "CheckQuota");
check((await client.incrementUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "job-1" })).quota?.used === 1n, "IncrementUsage");
check((await client.getUsage({ userId })).quotas.length > 0, "GetUsage");

await client.setFeatureOverride({ userId, feature: "sso", enabled: true, reason: "pilot" });
await client.setQuotaOverride({ userId, metric: "api_calls", limit: 500n, reason: "pilot" });
check((await client.listOverrides({ userId })).overrides.length === 2, "ListOverrides");
await client.clearOverride({ userId, target: { case: "feature", value: "sso" } });
const { grant } = await client.grantUsage({ userId, metric: "jobs", amount: 5n, idempotencyKey: "credit-1", reason: "outage" });
check((await client.listGrants({ userId })).grants.length === 1, "ListGrants");
await client.revokeGrant({ userId, grantId: grant!.id });

await client.startTrial({ userId, planCode: "pro", days: 14 });
await client.schedulePlanChange({ userId, planCode: "enterprise", when: { case: "atPeriodEnd", value: true } });
await client.cancelScheduledChange({ userId });
check((await client.upgradePlan({ userId, planCode: "pro" })).subscription?.planCode === "pro", "UpgradePlan");

const consumed = await client.consumeUsage({ userId, items: [{ metric: "jobs", amount: 2n }, { metric: "api_calls", amount: 3n }], idempotencyKey: "job-2" });
check(consumed.quotas.map((quota) => quota.used).join() === "3,3", "ConsumeUsage");
check((await client.refundUsage({ userId, metric: "jobs", amount: 1n, idempotencyKey: "refund-1", reason: "failed" })).quota?.used === 2n, "RefundUsage");
check((await client.setUsage({ userId, metric: "storage_mb", value: 64n })).quota?.used === 64n, "SetUsage");

const held = await client.reserveUsage({ userId, items: [{ metric: "compute_minutes", amount: 60n }], ttlSeconds: 600 });
const reservationId = held.reservation!.id;
check(held.reservation?.state === ReservationState.HELD, "ReserveUsage");
check((await client.commitReservation({ userId, reservationId, actual: [{ metric: "compute_minutes", amount: 17n }] })).quotas[0]?.used === 17n, "CommitReservation");
check((await client.getReservation({ userId, reservationId })).reservation?.state === ReservationState.COMMITTED, "GetReservation");
const other = await client.reserveUsage({ userId, items: [{ metric: "jobs", amount: 1n }], ttlSeconds: 60 });
check((await client.releaseReservation({ userId, reservationId: other.reservation!.id })).reservation?.state === ReservationState.RELEASED, "ReleaseReservation");

// Every error detail the service sends, read through the helpers.
const exhausted = await refusal(client.incrementUsage({ userId, metric: "jobs", amount: 10_000n }));
check(exhausted.code === Code.ResourceExhausted, "resource_exhausted");
check(quotaFailureOf(exhausted)?.violations[0]?.quotaMetric === "jobs", "QuotaFailure");
const reason: ErrorReason | undefined = errorInfoOf(exhausted)?.reason;
check(reason === "QUOTA_EXCEEDED", "ErrorInfo QUOTA_EXCEEDED");
const reused = await refusal(client.incrementUsage({ userId, metric: "jobs", amount: 2n, idempotencyKey: "job-1" }));
check(errorInfoOf(reused)?.reason === "IDEMPOTENCY_KEY_REUSED" && errorInfoOf(reused)?.metadata["idempotency_key"] === "job-1", "ErrorInfo IDEMPOTENCY_KEY_REUSED");
const invalid = await refusal(client.incrementUsage({ userId, metric: "jobs", amount: 0n }));
check(badRequestOf(invalid)?.fieldViolations[0]?.field === "amount", "BadRequest");
const unknown = await refusal(client.getReservation({ userId, reservationId: "00000000-0000-4000-8000-000000000000" }));
check(unknown.code === Code.NotFound && resourceInfoOf(unknown)?.resourceType === "reservation", "ResourceInfo");

// HasFeature and GetPlan from memory, kept current by a watch: a change shows up without a call.
const local: LocalEntitlementClient = createEntitlementClient({
  baseUrl: env("BASE_URL"),
  token: env("TOKEN"),
  protocol: env("PROTOCOL") === "connect" ? "connect" : "grpc",
  local: { maxStalenessMs: 5000, maxUsers: 1000 },
});
await local.local.follow([userId]);
check((await local.getPlan({ userId })).plan?.code === "pro", "local GetPlan");
await client.upgradePlan({ userId, planCode: "enterprise" });
for (let tries = 0; (await local.getPlan({ userId })).plan?.code !== "enterprise"; tries++) {
  if (tries > 500) throw new Error("unexpected: the local client never heard of the change");
  await new Promise((resolve) => setTimeout(resolve, 10));
}
check(local.local.size === 1, "local client holds the user");
local.close();

console.log(`ok: every RPC and error helper over ${env("PROTOCOL")}`);
