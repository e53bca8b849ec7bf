// Fails when src/ breaks the layout docs/architecture.md describes: an import cycle (type-only
// imports included), an import that points up the layers, a file over 300 lines, or more than
// 8 files at the root of src/. Run by .ci/run; `npm run check:structure` locally.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { parseCircular, parseDependencyTree } from "dpdm";

/** Each folder of src/ and its layer: a file may import its own layer and the ones below. */
const LAYERS: Readonly<Record<string, number>> = {
  domain: 0,
  platform: 1,
  db: 2,
  app: 3,
  auth: 4,
  transport: 5,
  services: 6,
  "": 7,
};
const MAX_LINES = 300;
const MAX_ROOT_FILES = 8;

const root = path.resolve(import.meta.dirname, "..");
const src = path.join(root, "src");

/** The src/ folder a file sits in ("" for the root of src/), or undefined outside src/. */
function folderOf(file: string): string | undefined {
  const relative = path.relative(src, path.resolve(root, file));
  if (relative.startsWith("..")) return undefined;
  const parts = relative.split(path.sep);
  return parts.length === 1 ? "" : parts[0];
}

const problems: string[] = [];
const tree = await parseDependencyTree("src/**/*.ts", { context: root, transform: false });
for (const cycle of parseCircular(tree)) {
  problems.push(`import cycle: ${[...cycle, cycle[0]].join(" -> ")}`);
}
for (const [file, dependencies] of Object.entries(tree)) {
  const from = folderOf(file);
  if (from === undefined || dependencies === null) continue;
  for (const dependency of dependencies) {
    const to = dependency.id === null ? undefined : folderOf(dependency.id);
    if (from === "domain" && to !== "domain") {
      problems.push(`${file} imports ${dependency.request}: domain/ imports nothing outside itself`);
    } else if (to !== undefined && (LAYERS[to] ?? Infinity) > (LAYERS[from] ?? -Infinity)) {
      problems.push(`${file} imports ${dependency.request}: ${to || "src/"} is above ${from || "src/"}`);
    }
  }
}

const entries = await readdir(src, { recursive: true, withFileTypes: true });
const files = entries.filter((entry) => entry.isFile() && entry.name.endsWith(".ts"));
for (const file of files) {
  const full = path.join(file.parentPath, file.name);
  const lines = (await readFile(full, "utf8")).split("\n").length - 1;
  if (lines > MAX_LINES) problems.push(`${path.relative(root, full)} has ${lines} lines (at most ${MAX_LINES})`);
}
const rootFiles = files.filter((file) => file.parentPath === src);
if (rootFiles.length > MAX_ROOT_FILES) {
  problems.push(`src/ holds ${rootFiles.length} files at its root (at most ${MAX_ROOT_FILES})`);
}

for (const problem of problems) console.error(problem);
if (problems.length > 0) process.exit(1);
console.log(`src/: ${files.length} files in layers, no cycle, none over ${MAX_LINES} lines`);
