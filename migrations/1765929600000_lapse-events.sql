-- Up Migration

-- What ends at its own time (a trial, an override, a grant, a subscription) changes a user's
-- entitlements with no call: the lapse sweeper writes its change feed event once it is due and
-- marks it announced here. What had lapsed before this migration is not announced now.
alter table trials add column lapse_announced boolean not null default false;
alter table entitlement_overrides add column lapse_announced boolean not null default false;
alter table usage_grants add column lapse_announced boolean not null default false;
alter table subscriptions add column lapse_announced boolean not null default false;

update trials set lapse_announced = true where ends_at <= now() or ended_at is not null;
update entitlement_overrides set lapse_announced = true where expires_at <= now();
update usage_grants set lapse_announced = true where expires_at <= now() or remaining = 0 or revoked_at is not null;
update subscriptions set lapse_announced = true where expires_at <= now() or ended_at is not null;

-- The sweeper's search: only rows that will lapse and have not been announced.
create index trials_lapsing on trials (ends_at) where not lapse_announced and ended_at is null;
create index entitlement_overrides_lapsing on entitlement_overrides (expires_at) where not lapse_announced and expires_at is not null;
create index usage_grants_lapsing on usage_grants (expires_at) where not lapse_announced and expires_at is not null;
create index subscriptions_lapsing on subscriptions (expires_at) where not lapse_announced and expires_at is not null and ended_at is null;

-- Down Migration

alter table subscriptions drop column lapse_announced;
alter table usage_grants drop column lapse_announced;
alter table entitlement_overrides drop column lapse_announced;
alter table trials drop column lapse_announced;
