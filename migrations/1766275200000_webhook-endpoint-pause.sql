-- Up Migration

-- A paused endpoint's deliveries wait (UpdateWebhookEndpoint); null while they go out.
alter table webhook_endpoints add column paused_at timestamptz;

-- Down Migration
alter table webhook_endpoints drop column paused_at;
