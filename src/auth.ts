import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";

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

/** The token of an `authorization: Bearer <token>` header, or undefined. */
export function bearerToken(headers: Headers): string | undefined {
  const match = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(headers.get("authorization") ?? "");
  return match?.[1];
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/**
 * A request gate for backend callers: the bearer token must be one of the service tokens,
 * compared in constant time (against fixed-length digests, so neither the content nor the
 * length of a token leaks). With no tokens configured, only loopback callers are let in.
 */
export function serviceTokenGate(serviceTokens: readonly string[]): (context: HandlerContext) => void {
  const digests = serviceTokens.map(digest);
  return (context) => {
    if (digests.length === 0) {
      if (isLoopbackAddress(context.values.get(peerAddressKey))) return;
      throw new ConnectError("a service token is required", Code.Unauthenticated);
    }
    const token = bearerToken(context.requestHeader);
    if (token === undefined) {
      throw new ConnectError("a service token is required (authorization: Bearer <token>)", Code.Unauthenticated);
    }
    const presented = digest(token);
    let matched = false;
    for (const candidate of digests) {
      matched = timingSafeEqual(presented, candidate) || matched;
    }
    if (!matched) {
      throw new ConnectError("invalid service token", Code.Unauthenticated);
    }
  };
}
