import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * A path inside the package (migrations/, gen/), whether the code runs from src/ or from the
 * built dist/src/: the nearest folder up from here that has a package.json and the entry.
 */
export function packagePath(...segments: string[]): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, ...segments);
    if (existsSync(path.join(dir, "package.json")) && existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`${segments.join("/")} was not found in the package`);
  }
}
