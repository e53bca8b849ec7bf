-- Up Migration

-- Account standing and administration.
alter table accounts
  add column email text check (email is null or char_length(email) between 3 and 320),
  add column status text not null default 'active' check (status in ('active', 'suspended')),
  add column suspended_reason text,
  add column is_superadmin boolean not null default false,
  -- User JWTs issued (iat) before this instant are refused; null: none revoked.
  add column tokens_valid_after timestamptz,
  add check ((status = 'suspended') = (suspended_reason is not null));

-- Keyset pagination and prefix search in byte order, which an index serves for LIKE 'prefix%'.
create index accounts_user_id_bytes on accounts ((user_id collate "C"));
create index accounts_email_bytes on accounts ((email collate "C")) where email is not null;
create index accounts_suspended on accounts (user_id) where status = 'suspended';

-- Current subscriptions by plan, for statistics.
create index subscriptions_current_by_plan on subscriptions (plan_code) where ended_at is null;

-- Usage rows are appended in time order: a BRIN index finds a period's rows for statistics at
-- almost no cost to the increments (it does not touch `used`, so counter updates stay HOT).
create index usage_counters_period on usage_counters using brin (period_start);

-- Every administrative action, written in the transaction of the change it records.
create table audit_events (
  id bigint generated always as identity primary key,
  actor_id text not null,
  action text not null,
  target_user_id text not null,
  reason text not null default '',
  at timestamptz not null
);
create index audit_events_by_target on audit_events (target_user_id, id desc);

-- Down Migration

drop table audit_events;
drop index usage_counters_period;
drop index subscriptions_current_by_plan;
drop index accounts_suspended;
drop index accounts_email_bytes;
drop index accounts_user_id_bytes;
alter table accounts
  drop column tokens_valid_after,
  drop column is_superadmin,
  drop column suspended_reason,
  drop column status,
  drop column email;
