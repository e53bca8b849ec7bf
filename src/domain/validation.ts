import { InvalidArgumentError } from "./errors.ts";
import { ENTITLEMENT_EVENT_TYPES, MAX_WATCHED_USERS, type EntitlementEventType } from "./entitlement-events.ts";

export const MAX_USER_ID_LENGTH = 128;
export const MAX_NAME_LENGTH = 64;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** Length in characters (code points), as PostgreSQL's char_length counts. */
function characterLength(value: string): number {
  let length = 0;
  for (const _ of value) length++;
  return length;
}

function hasControlCharacters(value: string): boolean {
  return /\p{Cc}/u.test(value);
}

/** Any non-empty string of at most 128 characters without control characters. */
export function userId(value: string, field = "user_id"): string {
  if (value === "") {
    throw new InvalidArgumentError([{ field, description: "must not be empty" }]);
  }
  if (characterLength(value) > MAX_USER_ID_LENGTH) {
    throw new InvalidArgumentError([
      { field, description: `must be at most ${MAX_USER_ID_LENGTH} characters` },
    ]);
  }
  if (hasControlCharacters(value) || !value.isWellFormed()) {
    throw new InvalidArgumentError([
      { field, description: "must be well-formed text without control characters" },
    ]);
  }
  return value;
}

export const MAX_SEARCH_LENGTH = 320;

/**
 * Free text such as a reason: 1 to `maxLength` characters of well-formed text without NUL, which
 * PostgreSQL's text cannot hold. Line breaks and tabs are kept.
 */
export function freeText(value: string, field: string, maxLength: number): string {
  if (value === "" || characterLength(value) > maxLength) {
    throw new InvalidArgumentError([{ field, description: `must be 1 to ${maxLength} characters` }]);
  }
  if (value.includes("\u0000") || !value.isWellFormed()) {
    throw new InvalidArgumentError([{ field, description: "must be well-formed text without NUL characters" }]);
  }
  return value;
}

/** A search prefix (of a user id or an email); may be empty. */
export function searchPrefix(value: string, field = "query"): string {
  if (characterLength(value) > MAX_SEARCH_LENGTH || hasControlCharacters(value) || !value.isWellFormed()) {
    throw new InvalidArgumentError([
      { field, description: `must be at most ${MAX_SEARCH_LENGTH} characters without control characters` },
    ]);
  }
  return value;
}

/** A catalog name (plan, metric or feature): lower-case letters, digits and underscores. */
export function catalogName(value: string, field: string): string {
  if (value === "") {
    throw new InvalidArgumentError([{ field, description: "must not be empty" }]);
  }
  if (value.length > MAX_NAME_LENGTH || !/^[a-z][a-z0-9_]*$/.test(value)) {
    throw new InvalidArgumentError([
      {
        field,
        description: `must be 1 to ${MAX_NAME_LENGTH} lower-case letters, digits or underscores, starting with a letter`,
      },
    ]);
  }
  return value;
}

/** An optional idempotency key; the empty string means none. */
export function idempotencyKey(value: string): string | undefined {
  if (value === "") {
    return undefined;
  }
  if (
    characterLength(value) > MAX_IDEMPOTENCY_KEY_LENGTH ||
    hasControlCharacters(value) ||
    !value.isWellFormed()
  ) {
    throw new InvalidArgumentError([
      {
        field: "idempotency_key",
        description: `must be at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters without control characters`,
      },
    ]);
  }
  return value;
}

/** An idempotency key the call cannot go without. */
export function requiredIdempotencyKey(value: string): string {
  const key = idempotencyKey(value);
  if (key === undefined) {
    throw new InvalidArgumentError([{ field: "idempotency_key", description: "is required: a retry with the same key returns the first result" }]);
  }
  return key;
}

/** An identifier the service issued as a UUID (a grant's). */
export function uuid(value: string, field: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)) {
    throw new InvalidArgumentError([{ field, description: "must be an id the service issued (a UUID)" }]);
  }
  return value.toLowerCase();
}

/** A whole number of units between `min` and `max`. */
export function unitsBetween(value: bigint, min: bigint, max: bigint, field: string): bigint {
  if (value < min || value > max) {
    throw new InvalidArgumentError([{ field, description: `must be between ${min} and ${max}` }]);
  }
  return value;
}

/** Most items one ConsumeUsage, ReserveUsage or CommitReservation call may hold. */
export const MAX_USAGE_ITEMS = 16;

/** The longest a reservation holds: a day. */
export const MAX_RESERVATION_SECONDS = 86_400;

/**
 * The items of an all-or-nothing consumption: 1 to MAX_USAGE_ITEMS, each metric once (as a
 * catalog name), each amount from `minAmount` to `maxAmount`; `field` names them in errors.
 */
export function usageItems(
  items: readonly { readonly metric: string; readonly amount: bigint }[],
  maxAmount: bigint,
  field = "items",
  minAmount = 1n,
): { metric: string; amount: bigint }[] {
  if (items.length === 0 || items.length > MAX_USAGE_ITEMS) {
    throw new InvalidArgumentError([{ field, description: `must hold 1 to ${MAX_USAGE_ITEMS} items` }]);
  }
  const seen = new Set<string>();
  return items.map((item, index) => {
    const metric = catalogName(item.metric, `${field}[${index}].metric`);
    if (seen.has(metric)) {
      throw new InvalidArgumentError([{ field: `${field}[${index}].metric`, description: `"${metric}" is listed twice: one item per metric` }]);
    }
    seen.add(metric);
    if (item.amount < minAmount || item.amount > maxAmount) {
      throw new InvalidArgumentError([{ field: `${field}[${index}].amount`, description: `must be between ${minAmount} and ${maxAmount}` }]);
    }
    return { metric, amount: item.amount };
  });
}

/** The users of one watch: 1 to MAX_WATCHED_USERS valid ids; one given twice counts once. */
export function watchedUsers(values: readonly string[], field = "user_ids"): string[] {
  const distinct = [...new Set(values)];
  if (distinct.length === 0 || distinct.length > MAX_WATCHED_USERS) {
    throw new InvalidArgumentError([{ field, description: `must hold 1 to ${MAX_WATCHED_USERS} user ids (got ${distinct.length})` }]);
  }
  values.forEach((value, index) => userId(value, `${field}[${index}]`));
  return distinct;
}

/** A position of the change feed (or an account revision): 0 or more. */
export function feedPosition(value: bigint, field: string): bigint {
  if (value < 0n) throw new InvalidArgumentError([{ field, description: "must be 0 or more" }]);
  return value;
}

/** An optional min_revision: 0 or more when given. */
export function minRevision(value: bigint | undefined, field = "min_revision"): bigint | undefined {
  return value === undefined ? undefined : feedPosition(value, field);
}

/** Longest webhook URL accepted. */
export const MAX_WEBHOOK_URL_LENGTH = 2048;

/** A webhook endpoint's URL: absolute, http or https. */
export function webhookUrl(value: string, field = "url"): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (value.length > MAX_WEBHOOK_URL_LENGTH || url === undefined || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new InvalidArgumentError([{ field, description: `must be an absolute http or https URL of at most ${MAX_WEBHOOK_URL_LENGTH} characters` }]);
  }
  return value;
}

/** How long a rotated-out webhook secret still signs unless told: a day (as Svix does). */
export const DEFAULT_SECRET_OVERLAP_SECONDS = 86_400;
/** The longest a rotated-out webhook secret may keep signing: a week. */
export const MAX_SECRET_OVERLAP_SECONDS = 7 * 86_400;

/** RotateWebhookSecret's `overlap_seconds`, in ms: 0 to a week, unset a day. */
export function secretOverlapMs(value: number | undefined, field = "overlap_seconds"): number {
  if (value === undefined) return DEFAULT_SECRET_OVERLAP_SECONDS * 1000;
  if (!Number.isInteger(value) || value < 0 || value > MAX_SECRET_OVERLAP_SECONDS) {
    throw new InvalidArgumentError([{ field, description: `must be 0 to ${MAX_SECRET_OVERLAP_SECONDS} (7 days)` }]);
  }
  return value * 1000;
}

/** The last instant PostgreSQL's timestamptz and every client's calendar agree on: the end of the year 9999. */
export const LATEST_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59);

/** A time a filter names (`since`, say): from 1970 to the year 9999. */
export function instant(value: Date, field: string): Date {
  const ms = value.getTime();
  if (Number.isNaN(ms) || ms < 0 || ms > LATEST_INSTANT) {
    throw new InvalidArgumentError([{ field, description: "must be a time from 1970 to the year 9999" }]);
  }
  return value;
}

/** Event types of the change feed (docs/events.md), each once. */
export function eventTypes(values: readonly string[], field = "event_types"): EntitlementEventType[] {
  const known = new Set<string>(ENTITLEMENT_EVENT_TYPES);
  values.forEach((value, index) => {
    if (!known.has(value)) throw new InvalidArgumentError([{ field: `${field}[${index}]`, description: `is not an event type (docs/events.md): "${value.slice(0, 64)}"` }]);
  });
  return [...new Set(values)] as EntitlementEventType[];
}
