import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** What the batching needs of sonic-boom (pino.destination's stream). */
type LineTarget = Pick<ReturnType<typeof pino.destination>, "write" | "flush" | "flushSync"> & { readonly destroyed?: boolean };

/**
 * Hands the lines logged in one turn of the event loop to sonic-boom as one write. sonic-boom
 * appends each write to its pending string and measures that string, copying it whole each time:
 * a write per line made a busy replica copy kilobytes per call (docs/performance.md).
 */
export class TurnBatchedDestination implements DestinationStream {
  readonly #target: LineTarget;
  #lines: string[] = [];

  constructor(target: LineTarget) {
    this.#target = target;
  }

  write(line: string): void {
    if (this.#lines.push(line) === 1) setImmediate(this.#release);
  }

  /** Writes what is pending to the file now, as pino's final flush does. */
  flushSync(): void {
    if (this.#lines.length === 0 || this.#target.destroyed) return;
    this.#release();
    this.#target.flushSync();
  }

  /** Writes what is pending, then calls back once sonic-boom has written it. */
  flush(callback?: (error?: Error) => void): void {
    this.#release();
    this.#target.flush(callback);
  }

  readonly #release = (): void => {
    if (this.#lines.length === 0) return;
    const text = this.#lines.length === 1 ? this.#lines[0]! : this.#lines.join("");
    this.#lines = [];
    this.#target.write(text);
  };
}

/**
 * JSON logs, on stdout unless told otherwise; tokens and credentials never reach them. Stdout is
 * written asynchronously, in writes of at least 4 KiB or every 100 ms (pino flushes what is left
 * when the process exits): a write per line, synchronous or handed to the thread pool, costs a
 * cached call dearly under load (docs/performance.md).
 */
export function createLogger(level: LevelWithSilent, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: "entitlements" },
    redact: { paths: ["*.authorization", "*.token", "*.serviceToken"], censor: "[redacted]" },
  };
  return pino(options, destination ?? stdoutDestination());
}

let stdout: TurnBatchedDestination | undefined;

/** Stdout, one destination for every logger of the process. */
function stdoutDestination(): TurnBatchedDestination {
  if (stdout === undefined) {
    const destination = new TurnBatchedDestination(pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 }));
    // After sonic-boom's own exit hook (registered first): what the last turn logged is written too.
    process.once("exit", () => destination.flushSync());
    stdout = destination;
  }
  return stdout;
}
