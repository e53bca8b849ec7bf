import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** JSON logs, on stdout unless told otherwise; tokens and credentials never reach them. */
export function createLogger(level: LevelWithSilent, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: "entitlements" },
    redact: { paths: ["*.authorization", "*.token", "*.serviceToken"], censor: "[redacted]" },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
