import { z } from "zod";
import { withAcquireTimeout } from "./acquire-timeout.ts";
import {
  createPool,
  sql,
  createTypeParserPreset,
  SchemaValidationError,
  type DatabasePool,
  type Interceptor,
} from "slonik";

/** Every row of a typed query (`sql.type(schema)`) is checked against its schema. */
const resultParserInterceptor: Interceptor = {
  name: "result-parser",
  transformRowAsync: async (context, query, row) => {
    const parser = context.resultParser;
    if (parser === undefined) {
      return row;
    }
    const result = await parser["~standard"].validate(row);
    if (result.issues !== undefined) {
      throw new SchemaValidationError(query, row, result.issues);
    }
    return result.value as typeof row;
  },
};

/** Where the service reaches PostgreSQL. */
export type DatabaseAddress = {
  /** The pool's connections: PostgreSQL itself, or a transaction pooler (PgBouncer) in front. */
  readonly url: string;
  /** A direct session, for what needs one: migrations and their advisory lock, LISTEN. */
  readonly sessionUrl: string;
  /** Named prepared statements; off for a pooler that cannot carry them (PgBouncer before 1.21). */
  readonly preparedStatements: boolean;
};

/** A pooler sits between the pool and PostgreSQL when the session goes elsewhere. */
export function isPooled(address: DatabaseAddress): boolean {
  return address.url !== address.sessionUrl;
}

/** The pool options an address asks for: unnamed statements, no session settings behind a pooler. */
export function poolOptionsFor(address: DatabaseAddress): Pick<PoolOptions, "preparedStatements" | "sessionSettings"> {
  return { preparedStatements: address.preparedStatements, sessionSettings: !isPooled(address) };
}

/** Sends every statement unnamed: Slonik names those made with `sql.prepared`. */
const unnamedStatementsInterceptor: Interceptor = {
  name: "unnamed-statements",
  transformQuery: (_context, query) => ({ sql: query.sql, values: query.values }),
};

export type PoolOptions = {
  readonly maxPoolSize: number;
  /** false: statements go unnamed (DATABASE_PREPARED_STATEMENTS=off). */
  readonly preparedStatements?: boolean;
  /**
   * false (behind a pooler): no session settings at connection start, which PgBouncer refuses
   * ("unsupported startup parameter") and could not keep per client anyway; the pooler or the
   * role then sets statement_timeout (docs/scaling.md).
   */
  readonly sessionSettings?: boolean;
  /** More interceptors, after the row schema check (such as query metrics). */
  readonly interceptors?: readonly Interceptor[];
  readonly statementTimeoutMs?: number;
  /** Bounds opening a connection and waiting for a free one (ConnectionAcquireTimeoutError). */
  readonly connectTimeoutMs?: number;
};

export async function createDatabasePool(
  databaseUrl: string,
  options: PoolOptions,
): Promise<DatabasePool> {
  const sessionSettings = options.sessionSettings ?? true;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  const pool = await createPool(databaseUrl, {
    interceptors: [
      ...(options.preparedStatements === false ? [unnamedStatementsInterceptor] : []),
      resultParserInterceptor,
      ...(options.interceptors ?? []),
    ],
    typeParsers: createTypeParserPreset(),
    maxPoolSize: options.maxPoolSize,
    statementTimeout: sessionSettings ? (options.statementTimeoutMs ?? 5000) : "DISABLE_TIMEOUT",
    connectionTimeout: connectTimeoutMs,
    // An outage should fail calls fast (callers retry), not stack up reconnect attempts.
    connectionRetryLimit: 1,
    idleInTransactionSessionTimeout: sessionSettings ? 10_000 : "DISABLE_TIMEOUT",
    captureStackTrace: false,
    // Slonik's default reset runs DISCARD ALL after every checkout: a round trip per query. The
    // service never leaves session state behind (settings are SET LOCAL, inside transactions).
    resetConnection: async () => {},
  });
  return withAcquireTimeout(pool, options.maxPoolSize, connectTimeoutMs);
}

/** The statement_timeout the pool's connections run with ("0": none). */
export async function statementTimeoutOf(pool: DatabasePool): Promise<string> {
  return pool.oneFirst(sql.type(z.object({ statement_timeout: z.string() }))`show statement_timeout`);
}
