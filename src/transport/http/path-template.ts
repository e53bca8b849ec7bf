import { decodePercentEncoded } from "../well-formed-text.ts";

/**
 * google.api.http path templates (https://google.aip.dev/127):
 *   Template = "/" Segments [ ":" Verb ] ; Segment = "*" | "**" | LITERAL | Variable ;
 *   Variable = "{" FieldPath [ "=" Segments ] "}"
 * compiled to a matcher that returns the field values a path binds.
 */
export type PathTemplate = {
  readonly template: string;
  /** Field paths bound by the template's variables, in order. */
  readonly fieldPaths: readonly string[];
  /** The values a matching path binds; a value that is not well-formed UTF-8 is InvalidArgumentError. */
  match(path: string): ReadonlyMap<string, string> | undefined;
};

export class PathTemplateError extends Error {
  override name = "PathTemplateError";
}

const LITERAL = /^[A-Za-z0-9._~!$&'()+,;=@-]+$/;
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A regular expression source for slash-separated segments (inside or outside a variable). */
function segmentsSource(segments: readonly string[], template: string, isLastPart: boolean): string {
  return segments
    .map((segment, index) => {
      if (segment === "*") return "[^/]+";
      if (segment === "**") {
        if (!isLastPart || index !== segments.length - 1) {
          throw new PathTemplateError(`"**" must be the last segment of ${template}`);
        }
        return ".+";
      }
      if (!LITERAL.test(segment)) throw new PathTemplateError(`bad segment "${segment}" in ${template}`);
      return escapeRegExp(segment);
    })
    .join("/");
}

export function compilePathTemplate(template: string): PathTemplate {
  if (!template.startsWith("/")) throw new PathTemplateError(`${template} must start with "/"`);
  const verbAt = template.lastIndexOf(":");
  const hasVerb = verbAt > template.lastIndexOf("}") && verbAt > template.lastIndexOf("/");
  const path = hasVerb ? template.slice(0, verbAt) : template;
  const verb = hasVerb ? template.slice(verbAt + 1) : undefined;
  if (verb !== undefined && !LITERAL.test(verb)) throw new PathTemplateError(`bad verb in ${template}`);

  // Split on "/" outside of braces.
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const char of path.slice(1)) {
    if (char === "{") depth++;
    if (char === "}") depth--;
    if (depth < 0 || depth > 1) throw new PathTemplateError(`unbalanced braces in ${template}`);
    if (char === "/" && depth === 0) {
      parts.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  if (depth !== 0) throw new PathTemplateError(`unbalanced braces in ${template}`);
  parts.push(current);

  const fieldPaths: string[] = [];
  const sources = parts.map((part, index) => {
    const isLastPart = index === parts.length - 1;
    const variable = /^\{([^=}]+)(?:=([^}]+))?\}$/.exec(part);
    if (variable === null) return segmentsSource([part], template, isLastPart);
    const [, fieldPath = "", pattern = "*"] = variable;
    if (!FIELD_PATH.test(fieldPath)) throw new PathTemplateError(`bad field path "${fieldPath}" in ${template}`);
    if (fieldPaths.includes(fieldPath)) throw new PathTemplateError(`"${fieldPath}" is bound twice in ${template}`);
    fieldPaths.push(fieldPath);
    return `(${segmentsSource(pattern.split("/"), template, isLastPart)})`;
  });
  const regExp = new RegExp(`^/${sources.join("/")}${verb === undefined ? "" : `:${escapeRegExp(verb)}`}$`);

  return {
    template,
    fieldPaths,
    match(requestPath) {
      const match = regExp.exec(requestPath);
      if (match === null) return undefined;
      const values = new Map<string, string>();
      fieldPaths.forEach((fieldPath, index) => {
        // A multi-segment value keeps its slashes; each segment is percent-decoded.
        const raw = match[index + 1] ?? "";
        values.set(fieldPath, raw.split("/").map((segment) => decodePercentEncoded(segment, fieldPath)).join("/"));
      });
      return values;
    },
  };
}
