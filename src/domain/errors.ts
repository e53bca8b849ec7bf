/** A refusal the caller can act on; transport/interceptors/error-mapping.ts maps each kind to its code. */
export abstract class EntitlementError extends Error {}

export type FieldViolation = { readonly field: string; readonly description: string };

/** The request is malformed; the same request will never succeed. */
export class InvalidArgumentError extends EntitlementError {
  override name = "InvalidArgumentError";
  readonly violations: readonly FieldViolation[];

  constructor(violations: readonly FieldViolation[]) {
    super(violations.map((violation) => `${violation.field}: ${violation.description}`).join("; "));
    this.violations = violations;
  }
}

/** What can be looked for by name and not found. */
export type ResourceType = "plan" | "metric" | "account" | "grant" | "reservation" | "webhook endpoint";

/** A named plan or metric does not exist in the catalog. */
export class UnknownResourceError extends EntitlementError {
  override name = "UnknownResourceError";
  readonly resourceType: ResourceType;
  readonly resourceName: string;

  constructor(resourceType: ResourceType, resourceName: string) {
    super(`unknown ${resourceType} "${resourceName}"`);
    this.resourceType = resourceType;
    this.resourceName = resourceName;
  }
}

/** An idempotency key was reused for a different increment. */
export class IdempotencyKeyReusedError extends EntitlementError {
  override name = "IdempotencyKeyReusedError";
  readonly idempotencyKey: string;

  constructor(idempotencyKey: string) {
    super(
      `idempotency key "${idempotencyKey}" was already used for another metric or amount; ` +
        "use a new key for a new increment",
    );
    this.idempotencyKey = idempotencyKey;
  }
}

/** The account is suspended: it is denied everything until reactivated. */
export class AccountSuspendedError extends EntitlementError {
  override name = "AccountSuspendedError";
  readonly userId: string;

  constructor(userId: string) {
    super(`account "${userId}" is suspended`);
    this.userId = userId;
  }
}

/** The caller is authenticated but may not do this. */
export class PermissionDeniedError extends EntitlementError {
  override name = "PermissionDeniedError";
}

/** The request is well-formed but conflicts with the current state. */
export class FailedPreconditionError extends EntitlementError {
  override name = "FailedPreconditionError";
}

/** A position asked for lies outside what is kept (older than retention, or not reached yet). */
export class OutOfRangeError extends EntitlementError {
  override name = "OutOfRangeError";
}

/** A bound of this replica is reached (open watches, a watcher's backlog): retry later, or elsewhere. */
export class CapacityError extends EntitlementError {
  override name = "CapacityError";
}

/** This replica is going away: retry on another one. */
export class ShuttingDownError extends EntitlementError {
  override name = "ShuttingDownError";
}
