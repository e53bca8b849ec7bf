-- Up Migration

-- Metered metrics. A metric with reset_period 'never' is a gauge (a level such as storage);
-- the others are counters that start again every UTC calendar day or month.
create table metrics (
  code text primary key check (code ~ '^[a-z][a-z0-9_]{0,63}$'),
  reset_period text not null check (reset_period in ('day', 'month', 'never')),
  description text not null default ''
);

-- The plan catalog. Money is integer minor units (cents).
create table plans (
  code text primary key check (code ~ '^[a-z][a-z0-9_]{0,63}$'),
  display_name text not null check (display_name <> ''),
  price_cents bigint not null check (price_cents >= 0),
  currency text not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
  rate_limit_multiplier numeric(8, 3) not null check (rate_limit_multiplier > 0)
);

-- The limit of each metric on each plan; a null limit is unlimited.
create table plan_quotas (
  plan_code text not null references plans (code) on delete cascade,
  metric_code text not null references metrics (code),
  quota_limit bigint check (quota_limit >= 0),
  primary key (plan_code, metric_code)
);

-- Named feature flags of each plan.
create table plan_features (
  plan_code text not null references plans (code) on delete cascade,
  feature text not null check (feature ~ '^[a-z][a-z0-9_]{0,63}$'),
  enabled boolean not null,
  primary key (plan_code, feature)
);

-- Every user the service has seen. Ids come from the callers and need no registration.
create table accounts (
  user_id text primary key check (char_length(user_id) between 1 and 128),
  created_at timestamptz not null
);

-- Subscriptions with their history: a plan change ends the current row (ended_at) and inserts
-- a new one. A row whose expires_at has passed has lapsed: the user is on free.
create table subscriptions (
  id bigint generated always as identity primary key,
  user_id text not null references accounts (user_id),
  plan_code text not null references plans (code),
  started_at timestamptz not null,
  expires_at timestamptz,
  ended_at timestamptz,
  check (expires_at is null or expires_at > started_at),
  check (ended_at is null or ended_at >= started_at)
);

-- At most one current (not replaced) subscription per user.
create unique index subscriptions_one_current_per_user on subscriptions (user_id)
  where ended_at is null;
create index subscriptions_history on subscriptions (user_id, started_at desc);

-- Usage per user, metric and period. A counter has one row per UTC period (period_start);
-- a gauge has a single row at the epoch. user_id leads the key so counters can be sharded by user.
create table usage_counters (
  user_id text not null references accounts (user_id),
  metric_code text not null references metrics (code),
  period_start timestamptz not null,
  used bigint not null check (used >= 0),
  updated_at timestamptz not null,
  primary key (user_id, metric_code, period_start)
);

-- The first result of each keyed increment, so a retry replays it instead of counting again.
create table idempotency_keys (
  user_id text not null references accounts (user_id),
  idempotency_key text not null check (char_length(idempotency_key) between 1 and 255),
  metric_code text not null references metrics (code),
  amount bigint not null,
  -- Null only inside the transaction that claims the key; set before it commits.
  used_after bigint,
  quota_limit bigint,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  primary key (user_id, idempotency_key)
);
create index idempotency_keys_expiry on idempotency_keys (expires_at);

-- Down Migration

drop table idempotency_keys;
drop table usage_counters;
drop table subscriptions;
drop table accounts;
drop table plan_features;
drop table plan_quotas;
drop table plans;
drop table metrics;
