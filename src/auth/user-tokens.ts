import {
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWTVerifyGetKey,
  type JWTHeaderParameters,
} from "jose";
import { claimedEmail, type UserIdentity } from "../domain/accounts.ts";
import { InvalidArgumentError } from "../domain/errors.ts";
import { userId as validUserId } from "../domain/validation.ts";

export type UserTokenOptions = {
  /** HS256 secret. */
  readonly secret?: string | undefined;
  /** A JWKS endpoint for RS256 and ES256 tokens. */
  readonly jwksUrl?: string | undefined;
  readonly issuer?: string | undefined;
  readonly audience?: string | undefined;
  readonly clockToleranceSeconds: number;
  /** Most verified tokens remembered (0: verify every time). */
  readonly cacheSize?: number;
};

/** How long a verified token is remembered at most, whatever its own expiry. */
const VERIFIED_TOKEN_TTL_MS = 60_000;

/** Why a token was refused; logged, never sent to the caller. */
export class InvalidUserTokenError extends Error {
  override name = "InvalidUserTokenError";
}

export type UserTokenVerifier = (token: string) => Promise<UserIdentity>;

const ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"];

/**
 * Verifies user JWTs with jose. The algorithm allowlist is fixed by configuration and each
 * algorithm family has its own key, so `alg: none` and algorithm confusion (an HS256 token
 * "signed" with an RSA public key) fail like any forgery. `exp` and `sub` are required.
 */
export function createUserTokenVerifier(options: UserTokenOptions): UserTokenVerifier {
  const secret = options.secret === undefined ? undefined : new TextEncoder().encode(options.secret);
  const jwks = options.jwksUrl === undefined ? undefined : createRemoteJWKSet(new URL(options.jwksUrl));
  const algorithms = [...(secret === undefined ? [] : ["HS256"]), ...(jwks === undefined ? [] : ASYMMETRIC_ALGORITHMS)];
  const key: JWTVerifyGetKey = async (header: JWTHeaderParameters, token) => {
    if (header.alg === "HS256" && secret !== undefined) return secret;
    if (jwks !== undefined && ASYMMETRIC_ALGORITHMS.includes(header.alg)) return jwks(header, token);
    throw new InvalidUserTokenError(`no key for alg ${header.alg}`);
  };
  // Verified tokens, by their exact text: a signature check is the dearest part of a /v1 call.
  // Entries end at the token's own expiry (with the allowed skew) or after a minute; revocation
  // and suspension are checked on every call regardless, after this.
  const verified = new Map<string, { readonly identity: UserIdentity; readonly validUntil: number }>();
  const cacheSize = options.cacheSize ?? 10_000;
  return async (token) => {
    if (algorithms.length === 0) {
      throw new InvalidUserTokenError("no JWT_SECRET or JWT_JWKS_URL is configured");
    }
    const remembered = verified.get(token);
    if (remembered !== undefined) {
      if (Date.now() < remembered.validUntil) return remembered.identity;
      verified.delete(token);
    }
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms,
        issuer: options.issuer,
        audience: options.audience,
        clockTolerance: options.clockToleranceSeconds,
        requiredClaims: ["exp", "sub"],
      });
      const identity: UserIdentity = {
        userId: validUserId(payload.sub ?? "", "sub"),
        issuedAt: payload.iat === undefined ? undefined : new Date(payload.iat * 1000),
        expiresAt: payload.exp === undefined ? undefined : new Date(payload.exp * 1000),
        email: claimedEmail(payload.email),
      };
      if (cacheSize > 0) {
        if (verified.size >= cacheSize) verified.delete(verified.keys().next().value!);
        const expiresAt = (payload.exp ?? 0) * 1000 + options.clockToleranceSeconds * 1000;
        verified.set(token, { identity, validUntil: Math.min(expiresAt, Date.now() + VERIFIED_TOKEN_TTL_MS) });
      }
      return identity;
    } catch (error) {
      if (error instanceof joseErrors.JOSEError || error instanceof InvalidArgumentError || error instanceof InvalidUserTokenError) {
        throw new InvalidUserTokenError(error.message, { cause: error });
      }
      throw error;
    }
  };
}
