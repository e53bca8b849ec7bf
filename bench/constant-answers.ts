/**
 * The constants the reference servers answer (bare-servers.ts, minimal-servers.ts), built from
 * the same generated types and messages as the service's answers.
 */
import { create, toBinary, toJsonString, type DescMessage, type DescMethod } from "@bufbuild/protobuf";
import { GetMySubscriptionResponseSchema } from "../gen/entitlements/v1/subscription_service_pb.js";
import { loadDefaultCatalog } from "../src/app/catalog-file.ts";
import { plansOf } from "../src/domain/catalog.ts";
import { quotaState } from "../src/domain/quota.ts";
import { planMessage, quotaStatusMessage } from "../src/services/messages.ts";

const plan = planMessage({ ...plansOf(await loadDefaultCatalog())[0]!, version: 1 });
const quota = quotaStatusMessage(quotaState({ code: "jobs", resetPeriod: "month", description: "" }, 10n, 3n, new Date()));
const responses: Record<string, unknown> = {
  getPlan: { plan },
  hasFeature: { enabled: true, planCode: "free" },
  checkQuota: { allowed: true, quota },
  incrementUsage: { quota, replayed: false },
  upgradePlan: { plan },
  listPlans: { plans: [plan] },
  getUsage: { quotas: [quota] },
};

/** An EntitlementService method's constant answer, encoded. */
export function constantAnswer(method: DescMethod): Buffer {
  const output = method.output as DescMessage;
  return Buffer.from(toBinary(output, create(output, responses[method.localName] as never)));
}

/** GET /v1/subscription/me's constant answer, as JSON. */
export const constantMe = toJsonString(GetMySubscriptionResponseSchema, create(GetMySubscriptionResponseSchema, { plan }), { alwaysEmitImplicit: true });
