import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";

/**
 * Secrets for running on the embedded default, generated once and kept in the data folder so
 * that the server, the CLI's `token` command and restarts agree. Never used with DATABASE_URL.
 */
const devSecretsSchema = z.object({
  serviceToken: z.string().min(16),
  jwtSecret: z.string().min(32),
  postgresPassword: z.string().min(16),
});

export type DevSecrets = z.infer<typeof devSecretsSchema>;

function secret(): string {
  return randomBytes(32).toString("base64url");
}

export async function loadDevSecrets(dataDir: string): Promise<DevSecrets> {
  const file = path.join(dataDir, "dev-secrets.json");
  try {
    return devSecretsSchema.parse(JSON.parse(await readFile(file, "utf8")));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const secrets: DevSecrets = { serviceToken: `dev_${secret()}`, jwtSecret: secret(), postgresPassword: secret() };
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, JSON.stringify(secrets, null, 2) + "\n", { mode: 0o600, flag: "wx" });
  return secrets;
}
