import { z } from "zod";
import type { ServiceToken } from "./auth/gates.ts";

const PORT_MESSAGE = "must be a port number from 0 to 65535 (0: any free port)";
const port = z.coerce.number({ error: PORT_MESSAGE }).int({ error: PORT_MESSAGE }).min(0, { error: PORT_MESSAGE }).max(65535, { error: PORT_MESSAGE });

/** `name=` before a token names its callers in audit events (`service:name`); a token may contain `=` itself. */
const NAMED_TOKEN = /^([a-z][a-z0-9_-]{0,31})=(.+)$/;

const tokenList = z
  .string()
  .default("")
  .transform((value) =>
    value
      .split(",")
      .map((entry) => entry.trim())
      .filter((entry) => entry !== "")
      .map((entry): ServiceToken => {
        const named = NAMED_TOKEN.exec(entry);
        return named === null ? { name: undefined, token: entry } : { name: named[1], token: named[2]! };
      }),
  )
  .pipe(
    z
      .array(z.object({ name: z.string().or(z.undefined()), token: z.string().min(16, "each service token must be at least 16 characters") }))
      .refine((tokens) => new Set(tokens.flatMap((token) => (token.name === undefined ? [] : [token.name]))).size === tokens.filter((token) => token.name !== undefined).length, "each name is given once")
      .transform((tokens) => tokens.map((token): ServiceToken => ({ name: token.name, token: token.token }))),
  );

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION_MESSAGE = "must be a duration such as 500ms, 5s, 30m or 24h";
/** A duration such as `5s` or `30m`, in ms. */
const duration = z
  .string()
  .regex(/^[0-9]{1,9}(ms|s|m|h)$/, DURATION_MESSAGE)
  .transform((text) => {
    const [, amount, unit] = /^([0-9]+)(ms|s|m|h)$/.exec(text)!;
    return Number(amount) * DURATION_UNITS_MS[unit as keyof typeof DURATION_UNITS_MS];
  });
const urlList = z
  .string()
  .default("")
  .transform((value) => value.split(",").map((entry) => entry.trim()).filter((entry) => entry !== ""))
  .pipe(z.array(z.url({ protocol: /^https?$/, error: "each must be an http or https URL" })));

/** A browser origin: scheme, host and port, nothing after. */
const ORIGIN = /^https?:\/\/[^/\s?#]+$/;
const originList = z
  .string()
  .default("")
  .transform((value) => value.split(",").map((entry) => entry.trim()).filter((entry) => entry !== ""))
  .pipe(
    z
      .array(z.string().refine((entry) => entry === "*" || ORIGIN.test(entry), "each must be an origin such as https://app.example.com (no path), or *"))
      .refine((origins) => !origins.includes("*") || origins.length === 1, "* stands alone: it allows every origin"),
  );

const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === "" ? undefined : value));

/** The whole configuration of the service, read once from the environment at start. */
const configSchema = z.object({
  DATABASE_URL: optionalString.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
      .optional(),
  ),
  DATABASE_SESSION_URL: optionalString.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
      .optional(),
  ),
  DATABASE_PREPARED_STATEMENTS: z.enum(["on", "off"]).default("on"),
  CATALOG_FILE: optionalString,
  HOST: z.string().min(1).default("127.0.0.1"),
  GRPC_PORT: port.default(50051),
  HTTP_PORT: port.default(8080),
  SERVICE_TOKENS: tokenList,
  JWT_SECRET: optionalString.pipe(
    z.string().min(32, "must be at least 32 characters").optional(),
  ),
  JWT_JWKS_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  JWT_CLOCK_TOLERANCE_SECONDS: z.coerce.number().int().min(0).max(300).default(30),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DATA_DIR: z.string().min(1).default(".data"),
  EMBEDDED_PG_PORT: port.optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(2).max(1000).default(10),
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(10).max(600_000).default(5000),
  DATABASE_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(10).max(60_000).default(2000),
  MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(100_000).default(512),
  STANDING_CACHE_TTL_MS: z.coerce.number().int().min(0).max(3_600_000).default(5000),
  STANDING_CACHE_SIZE: z.coerce.number().int().min(0).max(10_000_000).default(100_000),
  USAGE_CACHE_TTL_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
  USAGE_CACHE_SIZE: z.coerce.number().int().min(0).max(10_000_000).default(100_000),
  MAX_MESSAGE_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  WATCH_MAX_STREAMS: z.coerce.number().int().min(0).max(1_000_000).default(1000),
  WATCH_HEARTBEAT_MS: z.coerce.number().int().min(100).max(300_000).default(15_000),
  WATCH_MAX_BACKLOG: z.coerce.number().int().min(1).max(10_000_000).default(10_000),
  EVENT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(35),
  WEBHOOK_URLS: urlList,
  CORS_ORIGINS: originList,
  WEBHOOK_SECRET: optionalString.pipe(z.string().regex(/^whsec_[A-Za-z0-9+/]{32,}={0,2}$/, "must be whsec_ and at least 24 bytes in base64").optional()),
  WEBHOOK_RETRY_DELAYS: z
    .string()
    .default("1s,5s,30s,5m,30m,1h")
    .transform((value) => value.split(",").map((entry) => entry.trim()))
    .pipe(z.array(duration).min(1)),
  WEBHOOK_RETRY_FOR: z.string().default("24h").pipe(duration),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  TLS_CERT: optionalString,
  TLS_KEY: optionalString,
  TLS_CLIENT_CA: optionalString,
});

export type Config = {
  /** PostgreSQL to use; absent: start the embedded one under `dataDir`. */
  readonly databaseUrl: string | undefined;
  /** A direct PostgreSQL session (migrations, LISTEN) when DATABASE_URL is a pooler; default DATABASE_URL. */
  readonly databaseSessionUrl: string | undefined;
  /** Named prepared statements (DATABASE_PREPARED_STATEMENTS); off behind PgBouncer before 1.21. */
  readonly databasePreparedStatements: boolean;
  readonly host: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly serviceTokens: readonly ServiceToken[];
  /** HS256 secret for user JWTs. */
  readonly jwtSecret: string | undefined;
  /** JWKS of an identity provider for RS256/ES256 user JWTs. */
  readonly jwtJwksUrl: string | undefined;
  readonly jwtIssuer: string | undefined;
  readonly jwtAudience: string | undefined;
  readonly jwtClockToleranceSeconds: number;
  readonly logLevel: z.infer<typeof configSchema>["LOG_LEVEL"];
  readonly dataDir: string;
  /** The embedded PostgreSQL's port (loopback); absent: a free one. */
  readonly embeddedPgPort: number | undefined;
  /** A catalog file (docs/catalog.md) applied at start; absent: the default catalog, into an empty database only. */
  readonly catalogFile: string | undefined;
  readonly databasePoolSize: number;
  /** Bounds every statement: a slow database answers deadline_exceeded, never holds on. */
  readonly databaseStatementTimeoutMs: number;
  /** How long to wait for a connection (new, or free in the pool) before unavailable. */
  readonly databaseConnectTimeoutMs: number;
  /** Calls served at once; past it, calls are shed with unavailable at once. */
  readonly maxInFlight: number;
  /** How long an account's cached standing may be trusted without a change notification. */
  readonly standingCacheTtlMs: number;
  /** Most account standings held in memory (0: no cache). */
  readonly standingCacheSize: number;
  /**
   * How long a cached usage amount may answer CheckQuota here (GetUsage always reads the
   * database); this replica's own increments evict it at once, other replicas' within this bound
   * (0: no cache).
   */
  readonly usageCacheTtlMs: number;
  /** Most usage rows held in memory (0: no cache). */
  readonly usageCacheSize: number;
  /** Largest request message (or /v1 body) accepted; larger ones are refused. */
  readonly maxMessageBytes: number;
  /** How long SIGTERM waits for in-flight calls before closing their connections. */
  readonly shutdownTimeoutMs: number;
  /** Open WatchEntitlements streams this replica serves at once; beyond, resource_exhausted. */
  readonly watchMaxStreams: number;
  /** How often a quiet watch gets a heartbeat. */
  readonly watchHeartbeatMs: number;
  /** Events waiting for a slow watcher beyond which its stream is ended with resource_exhausted. */
  readonly watchMaxBacklog: number;
  /** How long change feed events are kept (a watch resumes, a webhook is retried, within it). */
  readonly eventRetentionDays: number;
  /** Endpoints every event is POSTed to, besides those admins make (docs/events.md: webhooks). */
  readonly webhookUrls: readonly string[];
  /** Browser origins the HTTP port answers with CORS (`*`: any); none: no CORS headers. */
  readonly corsOrigins: readonly string[];
  /** The Standard Webhooks secret (whsec_...) signing what goes to `webhookUrls`. */
  readonly webhookSecret: string | undefined;
  /** Waits after each failed delivery attempt; the last one repeats. */
  readonly webhookRetryDelaysMs: readonly number[];
  /** How long after its first attempt a delivery is retried before it is given up. */
  readonly webhookRetryForMs: number;
  /** How long an endpoint has to answer 2xx. */
  readonly webhookTimeoutMs: number;
  /** PEM file paths: TLS on both ports; with a client CA, callers need a certificate it signed. */
  readonly tls: { readonly certFile: string; readonly keyFile: string; readonly clientCaFile: string | undefined } | undefined;
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Reads the configuration from the environment; throws a ConfigError naming every bad value. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = issue.path.join(".");
      // The value as given, unless it may hold a secret.
      const given = env[name] !== undefined && !/SECRET|TOKEN|URL|PASSWORD/.test(name) ? ` (got ${JSON.stringify(env[name])})` : "";
      return `  ${name || "environment"}: ${issue.message}${given}`;
    });
    throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  }
  const values = parsed.data;
  if ((values.TLS_CERT === undefined) !== (values.TLS_KEY === undefined)) {
    throw new ConfigError("invalid configuration:\n  TLS_CERT and TLS_KEY: set both, or neither");
  }
  if (values.DATABASE_SESSION_URL !== undefined && values.DATABASE_URL === undefined) {
    throw new ConfigError("invalid configuration:\n  DATABASE_SESSION_URL: needs DATABASE_URL");
  }
  if (values.WEBHOOK_URLS.length > 0 && values.WEBHOOK_SECRET === undefined) {
    throw new ConfigError("invalid configuration:\n  WEBHOOK_SECRET: needed with WEBHOOK_URLS, to sign what is sent (whsec_ and 24 or more random bytes in base64)");
  }
  if (values.TLS_CLIENT_CA !== undefined && values.TLS_CERT === undefined) {
    throw new ConfigError("invalid configuration:\n  TLS_CLIENT_CA: needs TLS_CERT and TLS_KEY");
  }
  return {
    databaseUrl: values.DATABASE_URL,
    databaseSessionUrl: values.DATABASE_SESSION_URL ?? values.DATABASE_URL,
    databasePreparedStatements: values.DATABASE_PREPARED_STATEMENTS === "on",
    catalogFile: values.CATALOG_FILE,
    host: values.HOST,
    grpcPort: values.GRPC_PORT,
    httpPort: values.HTTP_PORT,
    serviceTokens: values.SERVICE_TOKENS,
    jwtSecret: values.JWT_SECRET,
    jwtJwksUrl: values.JWT_JWKS_URL,
    jwtIssuer: values.JWT_ISSUER,
    jwtAudience: values.JWT_AUDIENCE,
    jwtClockToleranceSeconds: values.JWT_CLOCK_TOLERANCE_SECONDS,
    logLevel: values.LOG_LEVEL,
    dataDir: values.DATA_DIR,
    embeddedPgPort: values.EMBEDDED_PG_PORT,
    databasePoolSize: values.DATABASE_POOL_SIZE,
    databaseStatementTimeoutMs: values.DATABASE_STATEMENT_TIMEOUT_MS,
    databaseConnectTimeoutMs: values.DATABASE_CONNECT_TIMEOUT_MS,
    maxInFlight: values.MAX_IN_FLIGHT,
    maxMessageBytes: values.MAX_MESSAGE_BYTES,
    standingCacheTtlMs: values.STANDING_CACHE_TTL_MS,
    standingCacheSize: values.STANDING_CACHE_SIZE,
    usageCacheTtlMs: values.USAGE_CACHE_TTL_MS,
    usageCacheSize: values.USAGE_CACHE_SIZE,
    shutdownTimeoutMs: values.SHUTDOWN_TIMEOUT_MS,
    watchMaxStreams: values.WATCH_MAX_STREAMS,
    watchHeartbeatMs: values.WATCH_HEARTBEAT_MS,
    watchMaxBacklog: values.WATCH_MAX_BACKLOG,
    eventRetentionDays: values.EVENT_RETENTION_DAYS,
    webhookUrls: values.WEBHOOK_URLS,
    corsOrigins: values.CORS_ORIGINS,
    webhookSecret: values.WEBHOOK_SECRET,
    webhookRetryDelaysMs: values.WEBHOOK_RETRY_DELAYS,
    webhookRetryForMs: values.WEBHOOK_RETRY_FOR,
    webhookTimeoutMs: values.WEBHOOK_TIMEOUT_MS,
    tls:
      values.TLS_CERT === undefined || values.TLS_KEY === undefined
        ? undefined
        : { certFile: values.TLS_CERT, keyFile: values.TLS_KEY, clientCaFile: values.TLS_CLIENT_CA },
  };
}
