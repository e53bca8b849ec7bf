import { InvalidArgumentError } from "../domain/errors.ts";

const strict = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder("utf-8");
const REPLACEMENT = "\uFFFD";

/** The path (`userId`, `items[0].metric`) of the first key or string in `json` holding U+FFFD. */
function pathOfReplacement(json: unknown, path: string): string | undefined {
  if (typeof json === "string") return json.includes(REPLACEMENT) ? path : undefined;
  if (Array.isArray(json)) {
    for (const [index, item] of json.entries()) {
      const found = pathOfReplacement(item, `${path}[${index}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof json !== "object" || json === null) return undefined;
  for (const [key, value] of Object.entries(json)) {
    const keyPath = path === "" ? key : `${path}.${key}`;
    if (key.includes(REPLACEMENT)) return keyPath;
    const found = pathOfReplacement(value, keyPath);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The text of a JSON body. Ill-formed UTF-8 is refused, naming the field it is in: decoded
 * leniently, distinct byte strings (`u-\xff`, `u-\xfe`) would become one id (`u-\uFFFD`).
 */
export function decodeJsonText(bytes: Uint8Array): string {
  try {
    return strict.decode(bytes);
  } catch {
    let field: string | undefined;
    try {
      field = pathOfReplacement(JSON.parse(lenient.decode(bytes)), "");
    } catch {
      // Not JSON either: the body as a whole is named.
    }
    throw new InvalidArgumentError([{ field: field ?? "body", description: "is not well-formed UTF-8" }]);
  }
}

/** The bytes a percent-encoded string stands for: `%XX` escapes, other characters as UTF-8. */
export function percentDecodedBytes(raw: string, plusIsSpace = false): Uint8Array {
  const bytes = Buffer.from(plusIsSpace ? raw.replaceAll("+", " ") : raw, "utf8");
  let length = 0;
  for (let index = 0; index < bytes.length; index += 1) {
    const byte = bytes[index]!;
    const escape = byte === 0x25 ? bytes.subarray(index + 1, index + 3).toString("latin1") : "";
    if (/^[0-9A-Fa-f]{2}$/.test(escape)) {
      bytes[length++] = Number.parseInt(escape, 16);
      index += 2;
    } else {
      bytes[length++] = byte;
    }
  }
  return bytes.subarray(0, length);
}

/**
 * A percent-encoded path segment or query part, decoded as the WHATWG URL parser decodes it (a `%`
 * that starts no escape is itself; `+` is a space in queries), except that bytes that are not
 * well-formed UTF-8 are refused, naming `field`, where the parser would make them U+FFFD and so
 * merge distinct values.
 */
export function decodePercentEncoded(raw: string, field: string, plusIsSpace = false): string {
  // Without an escape there are no bytes to check: Node's parser admits only ASCII in a URL.
  if (!raw.includes("%")) return plusIsSpace ? raw.replaceAll("+", " ") : raw;
  try {
    return strict.decode(percentDecodedBytes(raw, plusIsSpace));
  } catch {
    throw new InvalidArgumentError([{ field, description: "is not well-formed UTF-8" }]);
  }
}

/** The query's parameters, decoded as URLSearchParams decodes them, ill-formed UTF-8 refused. */
export function queryParameters(search: string): [string, string][] {
  const parameters: [string, string][] = [];
  for (const part of search.slice(1).split("&")) {
    if (part === "") continue;
    const equals = part.indexOf("=");
    const name = decodePercentEncoded(equals === -1 ? part : part.slice(0, equals), "query", true);
    parameters.push([name, equals === -1 ? "" : decodePercentEncoded(part.slice(equals + 1), name, true)]);
  }
  return parameters;
}
