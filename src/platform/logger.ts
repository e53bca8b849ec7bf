import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

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
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 }));
}
