import {
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWTVerifyGetKey,
  type JWTHeaderParameters,
} from "jose";
import { claimedEmail } from "./domain/accounts.ts";
import { InvalidArgumentError } from "./domain/errors.ts";
import { userId as validUserId } from "./domain/validation.ts";

/** The user a verified JWT speaks for. */
export type UserIdentity = {
  readonly userId: string;
  /** The token's `iat`, when it has one. */
  readonly issuedAt: Date | undefined;
  /** The token's `email` claim, when it holds an email. */
  readonly email: string | undefined;
};

export type UserTokenOptions = {
  /** HS256 secret. */
  readonly secret?: string | undefined;
  /** A JWKS endpoint for RS256 and ES256 tokens. */
  readonly jwksUrl?: string | undefined;
  readonly issuer?: string | undefined;
  readonly audience?: string | undefined;
  readonly clockToleranceSeconds: number;
};

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
  return async (token) => {
    if (algorithms.length === 0) {
      throw new InvalidUserTokenError("no JWT_SECRET or JWT_JWKS_URL is configured");
    }
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms,
        issuer: options.issuer,
        audience: options.audience,
        clockTolerance: options.clockToleranceSeconds,
        requiredClaims: ["exp", "sub"],
      });
      return {
        userId: validUserId(payload.sub ?? "", "sub"),
        issuedAt: payload.iat === undefined ? undefined : new Date(payload.iat * 1000),
        email: claimedEmail(payload.email),
      };
    } catch (error) {
      if (error instanceof joseErrors.JOSEError || error instanceof InvalidArgumentError || error instanceof InvalidUserTokenError) {
        throw new InvalidUserTokenError(error.message, { cause: error });
      }
      throw error;
    }
  };
}
