-- Up Migration

-- A hidden plan can be assigned (UpgradePlan) but is never listed publicly (docs/catalog.md).
alter table plans add column visibility text not null default 'public'
  check (visibility in ('public', 'hidden'));

-- Down Migration

alter table plans drop column visibility;
