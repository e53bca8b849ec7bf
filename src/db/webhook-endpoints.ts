import { sql, type CommonQueryMethods } from "slonik";
import { z } from "zod";
import { timestampColumn } from "./columns.ts";

/** Where change feed events are POSTed; the signing secret is read only to sign. */
export type WebhookEndpointRecord = {
  readonly id: string;
  readonly url: string;
  /** Empty: every type. */
  readonly eventTypes: readonly string[];
  /** Declared by WEBHOOK_URLS at start rather than by an admin. */
  readonly fromConfiguration: boolean;
  readonly createdAt: Date;
  /** Until when the secret it had before its last rotation still signs; null when none does. */
  readonly previousSecretExpiresAt: Date | null;
  /** When it was paused: its deliveries wait. Null while they go out. */
  readonly pausedAt: Date | null;
};

const ENDPOINT_COLUMNS = sql.fragment`id, url, event_types, source, created_at, previous_secret_expires_at, paused_at`;

const endpointRow = z
  .object({
    id: z.string(),
    url: z.string(),
    event_types: z.array(z.string()),
    source: z.enum(["api", "env"]),
    created_at: timestampColumn,
    previous_secret_expires_at: timestampColumn.nullable(),
    paused_at: timestampColumn.nullable(),
  })
  .transform(
    (row): WebhookEndpointRecord => ({
      id: row.id,
      url: row.url,
      eventTypes: row.event_types,
      fromConfiguration: row.source === "env",
      createdAt: row.created_at,
      previousSecretExpiresAt: row.previous_secret_expires_at,
      pausedAt: row.paused_at,
    }),
  );

export async function insertWebhookEndpoint(
  db: CommonQueryMethods,
  endpoint: { readonly url: string; readonly eventTypes: readonly string[]; readonly secret: string; readonly at: Date },
): Promise<WebhookEndpointRecord> {
  return db.one(sql.type(endpointRow)`
    insert into webhook_endpoints (url, event_types, secret, created_at)
    values (${endpoint.url}, ${sql.array(endpoint.eventTypes, "text")}, ${endpoint.secret}, ${sql.timestamp(endpoint.at)})
    returning ${ENDPOINT_COLUMNS}
  `);
}

/** Every endpoint, oldest first. */
export async function listWebhookEndpoints(db: CommonQueryMethods): Promise<readonly WebhookEndpointRecord[]> {
  return db.any(sql.type(endpointRow)`select ${ENDPOINT_COLUMNS} from webhook_endpoints order by created_at, id`);
}

/** Deletes an endpoint and its pending deliveries; the endpoint, or null when there was none. */
export async function deleteWebhookEndpoint(db: CommonQueryMethods, id: string): Promise<WebhookEndpointRecord | null> {
  return db.maybeOne(sql.type(endpointRow)`delete from webhook_endpoints where id = ${id} returning ${ENDPOINT_COLUMNS}`);
}

export async function findWebhookEndpoint(db: CommonQueryMethods, id: string): Promise<WebhookEndpointRecord | null> {
  return db.maybeOne(sql.type(endpointRow)`select ${ENDPOINT_COLUMNS} from webhook_endpoints where id = ${id}`);
}

/** What UpdateWebhookEndpoint changes; what is absent stays. */
export type EndpointChanges = { readonly url?: string; readonly eventTypes?: readonly string[]; readonly paused?: boolean };

/** Changes an endpoint made through the API (pausing one keeps when it was first paused); null when there is none. */
export async function updateWebhookEndpoint(db: CommonQueryMethods, id: string, changes: EndpointChanges, at: Date): Promise<WebhookEndpointRecord | null> {
  const url = changes.url === undefined ? sql.fragment`url` : sql.fragment`${changes.url}`;
  const eventTypes = changes.eventTypes === undefined ? sql.fragment`event_types` : sql.fragment`${sql.array(changes.eventTypes, "text")}`;
  const pausedAt =
    changes.paused === undefined ? sql.fragment`paused_at` : changes.paused ? sql.fragment`coalesce(paused_at, ${sql.timestamp(at)})` : sql.fragment`null`;
  return db.maybeOne(sql.type(endpointRow)`
    update webhook_endpoints set url = ${url}, event_types = ${eventTypes}, paused_at = ${pausedAt}
    where id = ${id} and source = 'api'
    returning ${ENDPOINT_COLUMNS}
  `);
}

/**
 * Gives an endpoint made through the API the secret `secret`; the one it replaces signs until
 * `previousUntil` (none does when that is not after `at`), and an older one stops. Null when
 * there is no such endpoint.
 */
export async function rotateWebhookSecret(
  db: CommonQueryMethods,
  rotation: { readonly id: string; readonly secret: string; readonly previousUntil: Date; readonly at: Date },
): Promise<WebhookEndpointRecord | null> {
  const overlapping = rotation.previousUntil.getTime() > rotation.at.getTime();
  return db.maybeOne(sql.type(endpointRow)`
    update webhook_endpoints
    set previous_secret = case when ${overlapping} then secret end,
        previous_secret_expires_at = case when ${overlapping} then ${sql.timestamp(rotation.previousUntil)}::timestamptz end,
        secret = ${rotation.secret}
    where id = ${rotation.id} and source = 'api'
    returning ${ENDPOINT_COLUMNS}
  `);
}

/** The URL of an endpoint and the secrets that sign for it at `at` (its own, then a rotated-out one still in its overlap); null when there is none. */
export async function findSigningTarget(db: CommonQueryMethods, id: string, at: Date): Promise<{ url: string; secrets: readonly string[] } | null> {
  const row = await db.maybeOne(sql.type(z.object({ url: z.string(), secret: z.string(), previous_secret: z.string().nullable() }))`
    select url, secret, case when previous_secret_expires_at > ${sql.timestamp(at)} then previous_secret end as previous_secret
    from webhook_endpoints where id = ${id}
  `);
  return row === null ? null : { url: row.url, secrets: row.previous_secret === null ? [row.secret] : [row.secret, row.previous_secret] };
}

/** Erases the secrets rotated out whose overlap ended by `at`: none is kept longer than it signs. */
export async function eraseLapsedSecrets(db: CommonQueryMethods, at: Date): Promise<number> {
  const { rowCount } = await db.query(sql.unsafe`
    update webhook_endpoints set previous_secret = null, previous_secret_expires_at = null
    where previous_secret_expires_at <= ${sql.timestamp(at)}
  `);
  return rowCount;
}

/**
 * Makes the endpoints declared at start exactly `urls`, each signed with `secret`: new ones are
 * added, ones no longer declared deleted, kept ones take the secret given; a kept one whose
 * secret changes still signs with the old one until `previousUntil`.
 */
export async function syncConfiguredEndpoints(db: CommonQueryMethods, urls: readonly string[], secret: string, at: Date, previousUntil: Date): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(sql.unsafe`delete from webhook_endpoints where source = 'env' and url <> all(${sql.array(urls, "text")})`);
    await tx.query(sql.unsafe`
      insert into webhook_endpoints (url, event_types, secret, source, created_at)
      select url, '{}', ${secret}, 'env', ${sql.timestamp(at)} from unnest(${sql.array(urls, "text")}) as declared (url)
      on conflict (url) where source = 'env' do update
      set secret = excluded.secret,
          previous_secret = case when webhook_endpoints.secret <> excluded.secret then webhook_endpoints.secret else webhook_endpoints.previous_secret end,
          previous_secret_expires_at = case when webhook_endpoints.secret <> excluded.secret then ${sql.timestamp(previousUntil)}::timestamptz
            else webhook_endpoints.previous_secret_expires_at end
    `);
  });
}
