import { InvalidArgumentError } from "./errors.ts";

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

export function pageSize(value: number): number {
  if (value === 0) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(value) || value < 1 || value > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError([
      { field: "page_size", description: `must be between 1 and ${MAX_PAGE_SIZE} (0 means ${DEFAULT_PAGE_SIZE})` },
    ]);
  }
  return value;
}

/**
 * An opaque keyset page token: the position after which the next page starts, bound to the
 * filters it was issued for, so a token cannot be replayed against another query.
 */
export function encodePageToken(after: string, filters: unknown): string {
  return Buffer.from(JSON.stringify({ after, filters })).toString("base64url");
}

export function decodePageToken(token: string, filters: unknown): string | undefined {
  if (token === "") return undefined;
  try {
    const decoded = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { after?: unknown; filters?: unknown };
    if (typeof decoded.after === "string" && JSON.stringify(decoded.filters) === JSON.stringify(filters)) {
      return decoded.after;
    }
  } catch {
    // Falls through to the refusal.
  }
  throw new InvalidArgumentError([
    { field: "page_token", description: "is not a token of this query; start again without one" },
  ]);
}

/**
 * One page of `rows`, fetched one past `pageSize` to tell whether another page follows, and the
 * token of that page ("" on the last): the position of the page's last row.
 */
export function pageOf<T>(
  rows: readonly T[],
  pageSize: number,
  positionOf: (row: T) => string,
  filters: unknown,
): { readonly items: readonly T[]; readonly nextPageToken: string } {
  const items = rows.slice(0, pageSize);
  const last = items.at(-1);
  return { items, nextPageToken: rows.length > pageSize && last !== undefined ? encodePageToken(positionOf(last), filters) : "" };
}
