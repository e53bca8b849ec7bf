import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** JSON logs on stdout; tokens and credentials never reach them. */
export function createLogger(level: LevelWithSilent): Logger {
  return pino({
    level,
    base: { service: "entitlements" },
    redact: { paths: ["*.authorization", "*.token", "*.serviceToken"], censor: "[redacted]" },
  });
}
