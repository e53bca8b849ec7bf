import type { Logger } from "./logger.ts";

/**
 * The log of a dependency that can be down (the database, the notification connection): one
 * line when it goes down, one every `remindEveryMs` while it stays down, one when it is back;
 * the error's message, never its stack, as an operator reads them.
 */
export class OutageLog {
  readonly #logger: Logger;
  readonly #messages: { readonly down: string; readonly stillDown: string; readonly back: string };
  readonly #remindEveryMs: number;
  readonly #now: () => number;
  #downSince: number | undefined;
  #remindedAt = 0;

  constructor(
    logger: Logger,
    messages: { readonly down: string; readonly stillDown: string; readonly back: string },
    options: { readonly remindEveryMs?: number; readonly now?: () => number } = {},
  ) {
    this.#logger = logger;
    this.#messages = messages;
    this.#remindEveryMs = options.remindEveryMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  /** It failed (again). */
  down(error: unknown): void {
    const now = this.#now();
    const reason = error instanceof Error ? error.message : String(error);
    if (this.#downSince === undefined) {
      this.#downSince = this.#remindedAt = now;
      this.#logger.warn({ reason }, this.#messages.down);
    } else if (now - this.#remindedAt >= this.#remindEveryMs) {
      this.#remindedAt = now;
      this.#logger.warn({ reason, downForMs: now - this.#downSince }, this.#messages.stillDown);
    }
  }

  /** It works: a line only if it was down. */
  up(): void {
    if (this.#downSince === undefined) return;
    this.#logger.info({ downForMs: this.#now() - this.#downSince }, this.#messages.back);
    this.#downSince = undefined;
  }
}
