-- Up Migration

-- What an audited action touched, apart from the reason its actor gave (which `reason` keeps):
-- the metrics a usage reset set back to zero, say. AuditEvent.details in the API.
alter table audit_events add column details jsonb not null default '{}';

-- Down Migration

alter table audit_events drop column details;
