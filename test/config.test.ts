import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.ts";

describe("loadConfig", () => {
  it("has defaults for everything", () => {
    expect(loadConfig({})).toMatchObject({
      databaseUrl: undefined,
      host: "127.0.0.1",
      grpcPort: 50051,
      httpPort: 8080,
      serviceTokens: [],
      jwtSecret: undefined,
      logLevel: "info",
    });
  });

  it("reads the PgBouncer settings: a direct session URL and unnamed statements", () => {
    const config = loadConfig({
      DATABASE_URL: "postgres://u@pgbouncer:6432/x",
      DATABASE_SESSION_URL: "postgres://u@db:5432/x",
      DATABASE_PREPARED_STATEMENTS: "off",
    });
    expect(config).toMatchObject({ databaseUrl: "postgres://u@pgbouncer:6432/x", databaseSessionUrl: "postgres://u@db:5432/x", databasePreparedStatements: false });
    expect(() => loadConfig({ DATABASE_SESSION_URL: "postgres://u@db:5432/x" })).toThrow("DATABASE_SESSION_URL: needs DATABASE_URL");
    expect(() => loadConfig({ DATABASE_URL: "postgres://u@db/x", DATABASE_PREPARED_STATEMENTS: "no" })).toThrow(ConfigError);
  });

  it("reads every variable", () => {
    const config = loadConfig({
      DATABASE_URL: "postgres://u@db:5432/x",
      HOST: "0.0.0.0",
      GRPC_PORT: "6000",
      HTTP_PORT: "6001",
      SERVICE_TOKENS: " token-aaaaaaaaaaaaaaaa , billing=token-bbbbbbbbbbbbbbbb=,",
      JWT_SECRET: "s".repeat(32),
      LOG_LEVEL: "debug",
    });
    expect(config).toMatchObject({
      databaseUrl: "postgres://u@db:5432/x",
      databaseSessionUrl: "postgres://u@db:5432/x",
      databasePreparedStatements: true,
      host: "0.0.0.0",
      grpcPort: 6000,
      httpPort: 6001,
      serviceTokens: [
        { name: undefined, token: "token-aaaaaaaaaaaaaaaa" },
        // A name is what comes before the first "="; a token may hold "=" (base64) itself.
        { name: "billing", token: "token-bbbbbbbbbbbbbbbb=" },
      ],
      logLevel: "debug",
    });
  });

  it("refuses a service token name given twice", () => {
    expect(() => loadConfig({ SERVICE_TOKENS: "ops=token-aaaaaaaaaaaaaaaa,ops=token-bbbbbbbbbbbbbbbb" })).toThrow(/SERVICE_TOKENS: each name is given once/);
  });

  it("names every bad value at once", () => {
    const read = () => loadConfig({ GRPC_PORT: "seventy", DATABASE_URL: "mysql://x", SERVICE_TOKENS: "short", LOG_LEVEL: "loud" });
    expect(read).toThrow(ConfigError);
    try {
      read();
    } catch (error) {
      const message = (error as Error).message;
      for (const name of ["GRPC_PORT", "DATABASE_URL", "SERVICE_TOKENS", "LOG_LEVEL"]) {
        expect(message).toContain(name);
      }
    }
  });

  it("reads the usage cache's bounds, and refuses staleness over a minute", () => {
    expect(loadConfig({})).toMatchObject({ usageCacheTtlMs: 1000, usageCacheSize: 100_000 });
    expect(loadConfig({ USAGE_CACHE_TTL_MS: "0", USAGE_CACHE_SIZE: "50" })).toMatchObject({ usageCacheTtlMs: 0, usageCacheSize: 50 });
    expect(() => loadConfig({ USAGE_CACHE_TTL_MS: "60001" })).toThrow(/USAGE_CACHE_TTL_MS/);
    expect(() => loadConfig({ USAGE_CACHE_SIZE: "-1" })).toThrow(/USAGE_CACHE_SIZE/);
  });

  it("refuses a short JWT secret and out-of-range ports", () => {
    expect(() => loadConfig({ JWT_SECRET: "short" })).toThrow(/JWT_SECRET/);
    expect(() => loadConfig({ HTTP_PORT: "70000" })).toThrow(/HTTP_PORT/);
  });

  it("reads the change feed's and webhooks' settings, durations with their units", () => {
    const secret = `whsec_${Buffer.alloc(32, 1).toString("base64")}`;
    expect(loadConfig({})).toMatchObject({ watchMaxStreams: 1000, eventRetentionDays: 35, webhookUrls: [], webhookRetryDelaysMs: [1000, 5000, 30_000, 300_000, 1_800_000, 3_600_000], webhookRetryForMs: 86_400_000, webhookTimeoutMs: 10_000 });
    const config = loadConfig({ WEBHOOK_URLS: " https://a.example/h , http://b.example/h", WEBHOOK_SECRET: secret, WEBHOOK_RETRY_DELAYS: "500ms,2m", WEBHOOK_RETRY_FOR: "1h" });
    expect(config).toMatchObject({ webhookUrls: ["https://a.example/h", "http://b.example/h"], webhookSecret: secret, webhookRetryDelaysMs: [500, 120_000], webhookRetryForMs: 3_600_000 });
    expect(() => loadConfig({ WEBHOOK_URLS: "https://a.example/h" })).toThrow("WEBHOOK_SECRET: needed with WEBHOOK_URLS");
    expect(() => loadConfig({ WEBHOOK_URLS: "ftp://a.example/h", WEBHOOK_SECRET: secret })).toThrow("WEBHOOK_URLS");
    expect(() => loadConfig({ WEBHOOK_RETRY_DELAYS: "1s,soon" })).toThrow("must be a duration such as 500ms, 5s, 30m or 24h");
    expect(() => loadConfig({ WEBHOOK_SECRET: "hunter2" })).toThrow("WEBHOOK_SECRET: must be whsec_");
  });

  it("takes browser origins for CORS: exact origins, or * alone", () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(loadConfig({ CORS_ORIGINS: " https://app.example.com , http://localhost:5173" }).corsOrigins).toEqual(["https://app.example.com", "http://localhost:5173"]);
    expect(loadConfig({ CORS_ORIGINS: "*" }).corsOrigins).toEqual(["*"]);
    expect(() => loadConfig({ CORS_ORIGINS: "https://app.example.com/path" })).toThrow("CORS_ORIGINS");
    expect(() => loadConfig({ CORS_ORIGINS: "app.example.com" })).toThrow("must be an origin");
    expect(() => loadConfig({ CORS_ORIGINS: "*,https://app.example.com" })).toThrow("* stands alone");
  });

  it("takes TLS files together, the client CA only with them", () => {
    expect(loadConfig({ TLS_CERT: "c.pem", TLS_KEY: "k.pem", TLS_CLIENT_CA: "ca.pem" }).tls).toEqual({
      certFile: "c.pem",
      keyFile: "k.pem",
      clientCaFile: "ca.pem",
    });
    expect(loadConfig({}).tls).toBeUndefined();
    expect(() => loadConfig({ TLS_CERT: "c.pem" })).toThrow(/TLS_CERT and TLS_KEY/);
    expect(() => loadConfig({ TLS_CLIENT_CA: "ca.pem" })).toThrow(/TLS_CLIENT_CA/);
  });
});
