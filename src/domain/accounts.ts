import { freeText } from "./validation.ts";

export type AccountStatus = "active" | "suspended";

export type AccountRecord = {
  readonly userId: string;
  readonly email: string | null;
  readonly status: AccountStatus;
  readonly suspendedReason: string | null;
  readonly isSuperadmin: boolean;
  readonly createdAt: Date;
  readonly tokensValidAfter: Date | null;
};

export const MAX_REASON_LENGTH = 1000;
export const MAX_EMAIL_LENGTH = 320;

/**
 * Whether a user JWT issued at `issuedAt` is still honoured. A token without `iat` cannot be
 * placed before or after a revocation, so once sessions were revoked it is refused.
 */
export function isSessionValid(tokensValidAfter: Date | null, issuedAt: Date | undefined): boolean {
  if (tokensValidAfter === null) return true;
  return issuedAt !== undefined && issuedAt.getTime() >= tokensValidAfter.getTime();
}

/**
 * The revocation instant for a revocation made at `at`: the next whole second, because `iat` has
 * whole seconds. Every token issued up to and during that second is refused.
 */
export function revocationInstant(at: Date): Date {
  return new Date(Math.floor(at.getTime() / 1000) * 1000 + 1000);
}

/** A reason for the audit trail (a suspension, an override, a grant): trimmed free text of 1 to MAX_REASON_LENGTH characters. */
export function auditReason(value: string): string {
  return freeText(value.trim(), "reason", MAX_REASON_LENGTH);
}

/** An email from a JWT claim, kept only when it looks like one (no spaces or control characters). */
export function claimedEmail(value: unknown): string | undefined {
  if (typeof value !== "string" || value.length > MAX_EMAIL_LENGTH || !value.isWellFormed()) return undefined;
  return /^[^\s\p{Cc}@]+@[^\s\p{Cc}@]+$/u.test(value) ? value.toLowerCase() : undefined;
}

/** The user a verified credential (a user JWT) speaks for. */
export type UserIdentity = {
  readonly userId: string;
  /** The token's `iat`, when it has one. */
  readonly issuedAt: Date | undefined;
  /** The token's `exp`, when it has one: a stream it opened ends then. */
  readonly expiresAt: Date | undefined;
  /** The token's `email` claim, when it holds an email. */
  readonly email: string | undefined;
};
