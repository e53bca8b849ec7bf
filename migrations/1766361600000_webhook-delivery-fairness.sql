-- Up Migration

-- Deliveries are claimed endpoint by endpoint (at most a few under way for each): the due ones of
-- an endpoint in the order they are tried, and its leased ones, counted.
create index webhook_deliveries_endpoint_due on webhook_deliveries (endpoint_id, next_attempt_at, position)
  where delivered_at is null and abandoned_at is null;
create index webhook_deliveries_leased on webhook_deliveries (endpoint_id)
  where leased_until is not null and delivered_at is null and abandoned_at is null;
-- The claim no longer reads due deliveries across endpoints.
drop index webhook_deliveries_due;

-- Down Migration
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where delivered_at is null and abandoned_at is null;
drop index webhook_deliveries_leased;
drop index webhook_deliveries_endpoint_due;
