import { hash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Logger } from "../platform/logger.ts";
import type { UserIdentity } from "../domain/accounts.ts";
import { InvalidUserTokenError, type UserTokenVerifier } from "./user-tokens.ts";

/** The remote address of the connection a call came in on, set by the server adapters. */
export const peerAddressKey = createContextKey<string | undefined>(undefined, {
  description: "remote address of the caller",
});

export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const unmapped = address.startsWith("::ffff:") ? address.slice(7) : address;
  if (isIP(unmapped) === 4) return unmapped.startsWith("127.");
  return unmapped === "::1";
}

export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || isLoopbackAddress(host);
}

/** The token of an `authorization: Bearer <token>` header value, or undefined. */
export function bearerCredential(authorization: string | null | undefined): string | undefined {
  const match = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(authorization ?? "");
  return match?.[1];
}

/** The token of an `authorization: Bearer <token>` header, or undefined. */
export function bearerToken(headers: Headers): string | undefined {
  return bearerCredential(headers.get("authorization"));
}

function digest(value: string): Buffer {
  return hash("sha256", value, "buffer");
}

/** A service token, and the name its callers are known by in audit events (SERVICE_TOKENS `billing=TOKEN`). */
export type ServiceToken = { readonly name: string | undefined; readonly token: string };

/** How audit events name a backend: `service:billing`, or `service` for an unnamed token. */
export function serviceActor(token: ServiceToken): string {
  return token.name === undefined ? "service" : `service:${token.name}`;
}

/**
 * Which service token a token is (its actor), or undefined: compared in constant time against
 * every configured one (fixed-length digests, so neither the content nor the length of a token
 * leaks). A token once accepted is then known by value, so its callers skip the digest
 * (docs/performance.md): a lookup hit tells only what the answer does, that this very token is
 * valid, and the map holds at most the configured tokens.
 */
export function serviceTokenMatcher(serviceTokens: readonly ServiceToken[]): (token: string) => string | undefined {
  const digests = serviceTokens.map((serviceToken) => digest(serviceToken.token));
  const accepted = new Map<string, string>();
  return (token) => {
    const known = accepted.get(token);
    if (known !== undefined) return known;
    const presented = digest(token);
    let matched: ServiceToken | undefined;
    digests.forEach((candidate, index) => {
      if (timingSafeEqual(presented, candidate)) matched = serviceTokens[index];
    });
    if (matched === undefined) return undefined;
    const actor = serviceActor(matched);
    accepted.set(token, actor);
    return actor;
  };
}

/** The backend a call came from (`service:billing`), set by the service token gate. */
export const serviceCallerKey = createContextKey<string | undefined>(undefined, { description: "the service token's actor" });

/** Who made a call, as audit events name them: the backend's actor, or the signed-in user's id. */
export function callerOf(context: HandlerContext): string {
  return context.values.get(serviceCallerKey) ?? authenticatedUser(context).userId;
}

/**
 * A request gate for backend callers: the bearer token must be one of the service tokens
 * (serviceTokenMatcher). With no tokens configured, only loopback callers are let in.
 */
export function serviceTokenGate(serviceTokens: readonly ServiceToken[]): (context: HandlerContext) => void {
  const matches = serviceTokenMatcher(serviceTokens);
  return (context) => {
    if (serviceTokens.length === 0) {
      if (isLoopbackAddress(context.values.get(peerAddressKey))) {
        context.values.set(serviceCallerKey, "service:loopback");
        return;
      }
      throw new ConnectError("a service token is required", Code.Unauthenticated);
    }
    const token = bearerToken(context.requestHeader);
    if (token === undefined) {
      throw new ConnectError("a service token is required (authorization: Bearer <token>)", Code.Unauthenticated);
    }
    const actor = matches(token);
    if (actor === undefined) {
      throw new ConnectError("invalid service token", Code.Unauthenticated);
    }
    context.values.set(serviceCallerKey, actor);
  };
}

/** The user a call authenticated as, set by the user token gate. */
export const authenticatedUserKey = createContextKey<UserIdentity | undefined>(undefined, {
  description: "the user the call authenticated as",
});

/** The authenticated user of a call that passed the user token gate. */
export function authenticatedUser(context: HandlerContext): UserIdentity {
  const user = context.values.get(authenticatedUserKey);
  if (user === undefined) {
    // Only reachable if a method was registered without the gate: fail closed.
    throw new ConnectError("a user credential is required", Code.Unauthenticated);
  }
  return user;
}

export type UserGateOptions = {
  readonly verify: UserTokenVerifier;
  /** Whether the account still honours this token (false once its sessions were revoked). */
  readonly admit: (user: UserIdentity) => Promise<boolean>;
  /** Methods that need no credential. */
  readonly publicMethods?: readonly DescMethod[];
  readonly logger: Logger;
};

/**
 * A request gate for public callers: a valid, unrevoked user JWT (`authorization: Bearer <JWT>`),
 * except on the public methods. Every refusal says the same thing, so a caller learns nothing of
 * why its token failed; the reason goes to the debug log.
 */
export function userTokenGate(options: UserGateOptions): (context: HandlerContext) => Promise<void> {
  const open = new Set(options.publicMethods ?? []);
  return async (context) => {
    if (open.has(context.method)) return;
    const token = bearerToken(context.requestHeader);
    if (token === undefined) {
      throw new ConnectError("a user token is required (authorization: Bearer <JWT>)", Code.Unauthenticated);
    }
    let user: UserIdentity;
    try {
      user = await options.verify(token);
    } catch (error) {
      if (error instanceof InvalidUserTokenError) {
        options.logger.debug({ reason: error.message }, "user token refused");
        throw new ConnectError("invalid user token", Code.Unauthenticated);
      }
      options.logger.warn({ err: error }, "user token could not be verified");
      throw new ConnectError("user tokens cannot be verified right now; retry later", Code.Unavailable);
    }
    if (!(await options.admit(user))) {
      options.logger.debug({ userId: user.userId }, "user token refused: sessions revoked");
      throw new ConnectError("invalid user token", Code.Unauthenticated);
    }
    context.values.set(authenticatedUserKey, user);
  };
}

/** A user token gate that also requires the user to be a superadmin in good standing. */
export function superadminGate(
  userGate: (context: HandlerContext) => Promise<void>,
  isSuperadmin: (userId: string) => Promise<boolean>,
): (context: HandlerContext) => Promise<void> {
  return async (context) => {
    await userGate(context);
    if (!(await isSuperadmin(authenticatedUser(context).userId))) {
      throw new ConnectError("superadmins only", Code.PermissionDenied);
    }
  };
}

/**
 * A request gate for backends that also lets superadmins in on `adminMethods`: a service token,
 * or there a superadmin's user token. A caller with neither hears what it could have sent.
 */
export function serviceOrSuperadminGate(
  serviceGate: (context: HandlerContext) => void,
  adminGate: (context: HandlerContext) => Promise<void>,
  adminMethods: readonly DescMethod[],
): (context: HandlerContext) => void | Promise<void> {
  const admitted = new Set(adminMethods);
  return (context) => {
    if (!admitted.has(context.method)) return serviceGate(context);
    try {
      serviceGate(context);
      return;
    } catch (serviceRefusal) {
      return adminGate(context).catch((adminRefusal: unknown) => {
        if (adminRefusal instanceof ConnectError && adminRefusal.code === Code.Unauthenticated) {
          throw new ConnectError("a service token or a superadmin's user token is required", Code.Unauthenticated, undefined, undefined, serviceRefusal);
        }
        throw adminRefusal;
      });
    }
  };
}
