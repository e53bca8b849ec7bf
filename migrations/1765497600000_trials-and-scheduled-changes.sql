-- Up Migration

-- Trials (docs/api.md): one per plan per account, ever. While one runs the account is on its
-- plan; at `ends_at` it is back on what it had (nothing is written then). `ended_at` is set when
-- a plan change ends it early, `converted` when that change was to the trial's plan.
create table trials (
  user_id text not null references accounts (user_id),
  plan_code text not null,
  plan_version integer not null,
  started_at timestamptz not null,
  ends_at timestamptz not null check (ends_at > started_at),
  ended_at timestamptz,
  converted boolean not null default false,
  created_by text not null,
  primary key (user_id, plan_code),
  foreign key (plan_code, plan_version) references plan_versions (plan_code, version)
);

-- One pending plan change per account. It is in force from `effective_at` for every answer;
-- the next write to the account or the sweeper writes it down (and deletes the row).
create table scheduled_plan_changes (
  user_id text primary key references accounts (user_id),
  plan_code text not null references plans (code),
  effective_at timestamptz not null,
  created_by text not null,
  created_at timestamptz not null
);
create index scheduled_plan_changes_due on scheduled_plan_changes (effective_at);

-- Monthly and yearly counters may start again on each subscriber's billing day instead.
alter table metrics add column reset_anchor text not null default 'calendar'
  check (reset_anchor in ('calendar', 'subscription'));

-- Down Migration

alter table metrics drop column reset_anchor;
drop table scheduled_plan_changes;
drop table trials;
