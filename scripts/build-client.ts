// Builds clients/node: its TypeScript compiled with declarations, and the generated code it
// imports copied as buf wrote it (JavaScript with its own .d.ts), so the package carries the real
// declarations rather than ones tsc would re-derive from the JavaScript.
import { execFileSync } from "node:child_process";
import { cp, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const client = path.join(root, "clients", "node");
const dist = path.join(client, "dist");

await rm(dist, { recursive: true, force: true });
execFileSync(path.join(root, "node_modules", ".bin", "tsc"), ["-p", path.join(client, "tsconfig.json")], { stdio: "inherit" });
// The messages of the EntitlementService contract and the google.rpc details its errors carry.
for (const folder of ["entitlements", "google"]) {
  await cp(path.join(root, "gen", folder), path.join(dist, "gen", folder), {
    recursive: true,
    filter: (source) => !source.endsWith(".json"),
  });
}
const files = await readdir(path.join(dist, "gen"), { recursive: true });
process.stdout.write(`clients/node/dist: index.js, index.d.ts and ${files.filter((file) => file.endsWith(".js")).length} generated modules\n`);
