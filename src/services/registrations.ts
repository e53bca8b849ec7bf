import type { DescMethod } from "@bufbuild/protobuf";
import { AdminService } from "../../gen/entitlements/v1/admin_service_pb.js";
import { EntitlementService } from "../../gen/entitlements/v1/entitlement_service_pb.js";
import { SubscriptionService } from "../../gen/entitlements/v1/subscription_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type { Administration } from "../app/administration.ts";
import type { CatalogAdministration } from "../app/catalog-administration.ts";
import type { Entitlements } from "../app/entitlements.ts";
import type { HealthMonitor } from "../app/health-monitor.ts";
import type { SignIns } from "../app/sign-ins.ts";
import type { TermsAdministration } from "../app/terms-administration.ts";
import type { PlanChanges } from "../app/plan-changes.ts";
import type { UsageChanges } from "../app/usage-changes.ts";
import type { Reservations } from "../app/reservations.ts";
import type { EntitlementWatches } from "../app/entitlement-watches.ts";
import type { WebhookEndpoints } from "../app/webhook-endpoints.ts";
import { ACCOUNT_TERMS_METHODS } from "./account-terms-methods.ts";
import { serviceOrSuperadminGate, serviceTokenGate, superadminGate, userTokenGate, type ServiceToken } from "../auth/gates.ts";
import type { UserTokenVerifier } from "../auth/user-tokens.ts";
import type { Logger } from "../platform/logger.ts";
import type { ServiceRegistration } from "../transport/routes.ts";
import { AdminServiceImpl } from "./admin-service.ts";
import { EntitlementServiceImpl } from "./entitlement-service.ts";
import { HealthServiceImpl } from "./health-service.ts";
import { ReflectionIndex, ReflectionV1alphaServiceImpl, ReflectionV1ServiceImpl } from "./reflection-service.ts";
import { PUBLIC_SUBSCRIPTION_METHODS, SubscriptionServiceImpl } from "./subscription-service.ts";

/** The services the server answers for, reflection and health included. */
export const SERVED_SERVICES = [
  EntitlementService,
  SubscriptionService,
  AdminService,
  Health,
  ServerReflectionV1,
  ServerReflectionV1alpha,
] as const;

/** RPCs that need no credential. */
export const PUBLIC_METHODS: readonly DescMethod[] = PUBLIC_SUBSCRIPTION_METHODS;

export type ServiceDependencies = {
  readonly entitlements: Entitlements;
  readonly administration: Administration;
  readonly catalogs: CatalogAdministration;
  readonly terms: TermsAdministration;
  readonly planChanges: PlanChanges;
  readonly usageChanges: UsageChanges;
  readonly reservations: Reservations;
  readonly watches: EntitlementWatches;
  readonly webhooks: WebhookEndpoints;
  readonly signIns: SignIns;
  readonly health: HealthMonitor;
  readonly serviceTokens: readonly ServiceToken[];
  readonly verifyUserToken: UserTokenVerifier;
  readonly logger: Logger;
};

/** Every RPC service and the credential each one requires. */
export function serviceRegistrations(deps: ServiceDependencies): ServiceRegistration[] {
  const { entitlements, administration, catalogs, terms, planChanges, usageChanges, reservations, watches, signIns, verifyUserToken, logger } = deps;
  const reflection = new ReflectionIndex(SERVED_SERVICES);
  const userGate = (publicMethods: readonly DescMethod[]) =>
    userTokenGate({ verify: verifyUserToken, admit: (user) => signIns.admit(user), publicMethods, logger });
  const adminGate = superadminGate(userGate([]), (userId) => signIns.isSuperadmin(userId));
  return [
    {
      service: EntitlementService,
      implementation: new EntitlementServiceImpl({ entitlements, terms, planChanges, usageChanges, reservations, watches }),
      requestGate: serviceOrSuperadminGate(serviceTokenGate(deps.serviceTokens), adminGate, ACCOUNT_TERMS_METHODS),
    },
    {
      service: SubscriptionService,
      implementation: new SubscriptionServiceImpl(entitlements, terms, watches, (user) => signIns.admit(user)),
      requestGate: userGate(PUBLIC_SUBSCRIPTION_METHODS),
    },
    {
      service: AdminService,
      implementation: new AdminServiceImpl(administration, entitlements, catalogs, deps.webhooks),
      requestGate: adminGate,
    },
    // Health and reflection answer without credentials, as load balancers and tools expect.
    { service: Health, implementation: new HealthServiceImpl(deps.health) },
    { service: ServerReflectionV1, implementation: new ReflectionV1ServiceImpl(reflection) },
    { service: ServerReflectionV1alpha, implementation: new ReflectionV1alphaServiceImpl(reflection) },
  ];
}
