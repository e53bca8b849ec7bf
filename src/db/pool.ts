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
};

export async function createDatabasePool(
  databaseUrl: string,
  options: PoolOptions,
): Promise<DatabasePool> {
  return createPool(databaseUrl, {
    interceptors: [resultParserInterceptor],
    typeParsers: createTypeParserPreset(),
    maxPoolSize: options.maxPoolSize,
    captureStackTrace: false,
  });
}
