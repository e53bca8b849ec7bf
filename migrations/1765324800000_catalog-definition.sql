-- Up Migration

-- The rest of what a catalog file declares (docs/catalog.md): features with descriptions, each
-- version's billing interval and trial, the default plan, and plans and metrics that a later
-- catalog no longer lists (archived: kept for the subscriptions and usage that refer to them).
create table features (
  code text primary key check (code ~ '^[a-z][a-z0-9_]{0,63}$'),
  description text not null default '',
  archived_at timestamptz
);
insert into features (code) select distinct feature from plan_features;
alter table plan_features add foreign key (feature) references features (code);

alter table plan_versions
  add column billing_interval text not null default 'month' check (billing_interval in ('month', 'year')),
  add column trial_days integer check (trial_days between 1 and 365);
alter table plan_versions alter column billing_interval drop default;

alter table plans add column archived_at timestamptz;
alter table metrics add column archived_at timestamptz;

-- One row: the plan of users without a subscription.
create table catalog_settings (
  singleton boolean primary key default true check (singleton),
  default_plan text not null references plans (code)
);
insert into catalog_settings (default_plan) select code from plans where code = 'free';

-- Down Migration

drop table catalog_settings;
alter table metrics drop column archived_at;
alter table plans drop column archived_at;
alter table plan_versions drop column trial_days, drop column billing_interval;
alter table plan_features drop constraint plan_features_feature_fkey;
drop table features;
