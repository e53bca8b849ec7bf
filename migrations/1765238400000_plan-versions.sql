-- Up Migration

-- Plan versions (docs/catalog.md): a change to any of a plan's terms publishes a new version,
-- versions never change, and a subscription is pinned to the version it started on. A plan's
-- latest version is its highest; plans keeps one row per code.
create table plan_versions (
  plan_code text not null references plans (code),
  version integer not null check (version >= 1),
  display_name text not null check (display_name <> ''),
  price_cents bigint not null check (price_cents >= 0),
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  rate_limit_multiplier numeric(8, 3) not null check (rate_limit_multiplier > 0),
  visibility text not null check (visibility in ('public', 'hidden')),
  published_at timestamptz not null,
  primary key (plan_code, version)
);
insert into plan_versions
  select code, 1, display_name, price_cents, currency, rate_limit_multiplier, visibility, now() from plans;
alter table plans
  drop column display_name, drop column price_cents, drop column currency,
  drop column rate_limit_multiplier, drop column visibility;

-- Each version's limits and feature flags.
alter table plan_quotas add column plan_version integer not null default 1;
alter table plan_quotas alter column plan_version drop default;
alter table plan_quotas drop constraint plan_quotas_pkey;
alter table plan_quotas add primary key (plan_code, plan_version, metric_code);
alter table plan_quotas add foreign key (plan_code, plan_version) references plan_versions (plan_code, version);
alter table plan_features add column plan_version integer not null default 1;
alter table plan_features alter column plan_version drop default;
alter table plan_features drop constraint plan_features_pkey;
alter table plan_features add primary key (plan_code, plan_version, feature);
alter table plan_features add foreign key (plan_code, plan_version) references plan_versions (plan_code, version);

-- Every subscription so far started on what is now version 1.
alter table subscriptions add column plan_version integer not null default 1;
alter table subscriptions alter column plan_version drop default;
alter table subscriptions add foreign key (plan_code, plan_version) references plan_versions (plan_code, version);

-- Down Migration

-- Back to one set of terms per plan: each plan's latest version's.
alter table plans
  add column display_name text, add column price_cents bigint, add column currency text,
  add column rate_limit_multiplier numeric(8, 3), add column visibility text;
update plans p
  set display_name = v.display_name, price_cents = v.price_cents, currency = v.currency,
      rate_limit_multiplier = v.rate_limit_multiplier, visibility = v.visibility
  from plan_versions v
  where v.plan_code = p.code and v.version = (select max(version) from plan_versions where plan_code = p.code);
alter table plans
  alter column display_name set not null, alter column price_cents set not null,
  alter column currency set not null, alter column rate_limit_multiplier set not null,
  alter column visibility set not null;
delete from plan_quotas q where q.plan_version <> (select max(version) from plan_versions where plan_code = q.plan_code);
delete from plan_features f where f.plan_version <> (select max(version) from plan_versions where plan_code = f.plan_code);
alter table subscriptions drop column plan_version;
alter table plan_quotas drop column plan_version;
alter table plan_quotas add primary key (plan_code, metric_code);
alter table plan_features drop column plan_version;
alter table plan_features add primary key (plan_code, feature);
drop table plan_versions;
