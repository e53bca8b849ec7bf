type Pending<I, O> = { readonly input: I; readonly resolve: (output: O) => void; readonly reject: (error: unknown) => void };

/**
 * Coalesces calls that arrive while earlier ones are being served into batches: `run` gets the
 * inputs of a batch in arrival order and returns one output per input. At most `maxConcurrent`
 * batches run at once; a call arriving when a slot is free starts a batch of its own at once, so
 * a quiet service adds no latency.
 */
export class Coalescer<I, O> {
  readonly #run: (inputs: readonly I[]) => Promise<readonly O[]>;
  readonly #maxBatch: number;
  readonly #maxConcurrent: number;
  #queue: Pending<I, O>[] = [];
  #running = 0;

  constructor(run: (inputs: readonly I[]) => Promise<readonly O[]>, options: { maxBatch?: number; maxConcurrent?: number } = {}) {
    this.#run = run;
    this.#maxBatch = options.maxBatch ?? 256;
    this.#maxConcurrent = options.maxConcurrent ?? 2;
  }

  submit(input: I): Promise<O> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ input, resolve, reject });
      if (this.#running < this.#maxConcurrent) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running++;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        await this.#run(batch.map((pending) => pending.input)).then(
          (outputs) => batch.forEach((pending, index) => pending.resolve(outputs[index]!)),
          (error: unknown) => batch.forEach((pending) => pending.reject(error)),
        );
      }
    } finally {
      this.#running--;
    }
  }
}
