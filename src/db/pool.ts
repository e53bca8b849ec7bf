import {
  createPool,
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

export type PoolOptions = {
  readonly maxPoolSize: number;
  /** More interceptors, after the row schema check (such as query metrics). */
  readonly interceptors?: readonly Interceptor[];
  readonly statementTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
};

export async function createDatabasePool(
  databaseUrl: string,
  options: PoolOptions,
): Promise<DatabasePool> {
  return createPool(databaseUrl, {
    interceptors: [resultParserInterceptor, ...(options.interceptors ?? [])],
    typeParsers: createTypeParserPreset(),
    maxPoolSize: options.maxPoolSize,
    statementTimeout: options.statementTimeoutMs ?? 5000,
    connectionTimeout: options.connectTimeoutMs ?? 2000,
    // An outage should fail calls fast (callers retry), not stack up reconnect attempts.
    connectionRetryLimit: 1,
    idleInTransactionSessionTimeout: 10_000,
    captureStackTrace: false,
    // Slonik's default reset runs DISCARD ALL after every checkout: a round trip per query. The
    // service never leaves session state behind (settings are SET LOCAL, inside transactions).
    resetConnection: async () => {},
  });
}
