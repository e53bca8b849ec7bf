import type { CommonQueryMethods, DatabasePool } from "slonik";
import { findAccount, recordSignIn } from "../db/accounts.ts";
import { queriesOf } from "../db/call-transaction.ts";
import { isSessionValid, type UserIdentity } from "../domain/accounts.ts";
import type { Clock } from "../domain/clock.ts";
import type { Entitlements } from "./entitlements.ts";

const MAX_REMEMBERED_SIGN_INS = 10_000;

/**
 * The sign-in side of user sessions: the port the user-token gates admit users through. It
 * records who signed in (and with which email) and tells whether their sessions still stand.
 */
export class SignIns {
  readonly #pool: DatabasePool;
  readonly #entitlements: Entitlements;
  readonly #clock: Clock;
  /** (user, email) pairs this process recorded lately: a sign-in is written once, not per call. */
  readonly #recorded = new Set<string>();

  constructor(pool: DatabasePool, entitlements: Entitlements, clock: Clock) {
    this.#pool = pool;
    this.#entitlements = entitlements;
    this.#clock = clock;
  }

  /** The call's deadline-bound transaction, or the pool (db/call-transaction.ts). */
  get #db(): CommonQueryMethods {
    return queriesOf(this.#pool);
  }

  /** Whether a verified user token is still honoured; records the user and their email. */
  async admit(user: UserIdentity): Promise<boolean> {
    if (user.email !== undefined) {
      const signIn = `${user.userId}\u0000${user.email}`;
      if (!this.#recorded.has(signIn)) {
        await recordSignIn(this.#db, user.userId, user.email, this.#clock.now());
        if (this.#recorded.size >= MAX_REMEMBERED_SIGN_INS) {
          this.#recorded.delete(this.#recorded.values().next().value!);
        }
        this.#recorded.add(signIn);
      }
    }
    const { tokensValidAfter } = await this.#entitlements.standing(user.userId);
    return isSessionValid(tokensValidAfter, user.issuedAt);
  }

  async isSuperadmin(userId: string): Promise<boolean> {
    const account = await findAccount(this.#db, userId);
    return account !== null && account.isSuperadmin && account.status === "active";
  }
}
