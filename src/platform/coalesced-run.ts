import { AsyncResource } from "node:async_hooks";

/**
 * Background work that runs one pass at a time. Asked for while a pass runs, it runs one more
 * pass after it, however often it was asked meanwhile; a failed pass is handed to `failed` and
 * ends the run, so the next request starts afresh. Passes run outside the async context of
 * whatever asked for them (a call, its transaction, its deadline).
 */
export class CoalescedRun {
  readonly #pass: () => Promise<void>;
  readonly #failed: (error: unknown) => void;
  readonly #stopped: () => boolean;
  readonly #detached = AsyncResource.bind((run: () => Promise<void>) => run());
  #running: Promise<void> | undefined;
  #again = false;

  constructor(options: { readonly pass: () => Promise<void>; readonly failed: (error: unknown) => void; readonly stopped: () => boolean }) {
    this.#pass = options.pass;
    this.#failed = options.failed;
    this.#stopped = options.stopped;
  }

  /** Runs a pass now, or once more after the one under way. */
  request(): void {
    if (this.#stopped()) return;
    this.#again = true;
    this.#running ??= this.#detached(() => this.#run());
  }

  async #run(): Promise<void> {
    try {
      while (this.#again && !this.#stopped()) {
        this.#again = false;
        await this.#pass();
      }
    } catch (error) {
      this.#failed(error);
    } finally {
      this.#running = undefined;
    }
  }
}
