-- Up Migration

-- The secret an endpoint had before its last rotation keeps signing until `previous_secret_expires_at`
-- (docs/events.md: rotating a secret), so receivers switch without refusing a delivery.
alter table webhook_endpoints
  add column previous_secret text,
  add column previous_secret_expires_at timestamptz,
  add constraint webhook_endpoints_previous_secret check ((previous_secret is null) = (previous_secret_expires_at is null));

-- Down Migration
alter table webhook_endpoints
  drop constraint webhook_endpoints_previous_secret,
  drop column previous_secret_expires_at,
  drop column previous_secret;
