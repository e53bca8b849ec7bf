import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll } from "vitest";
import { freePort } from "../../src/db/embedded.ts";

const cli = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

/** Every process a test file spawned, killed after the file (a hook in a hook would never run). */
const spawned = new Set<ChildProcess>();
afterAll(() => {
  for (const child of spawned) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

export type ServiceProcess = {
  readonly process: ChildProcess;
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Everything the process printed so far. */
  output(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
};

/**
 * `entitlements serve` in a process of its own, ready to answer; killed after the file. `env`
 * adds to this process's environment; an undefined value removes the variable.
 */
export async function spawnService(env: Record<string, string | undefined>): Promise<ServiceProcess> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const childEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "warn", GRPC_PORT: String(grpcPort), HTTP_PORT: String(httpPort), ...env };
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete childEnv[name];
  const child = spawn(process.execPath, [cli, "serve"], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  spawned.add(child);
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("Entitlement service ready")) resolve();
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`the service exited with ${code}:\n${output}`)));
  });
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode !== null) return child.exitCode;
    child.kill(signal);
    const [code] = (await once(child, "exit")) as [number | null];
    return code;
  };
  return { process: child, grpcPort, httpPort, output: () => output, stop };
}
