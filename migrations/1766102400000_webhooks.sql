-- Up Migration

-- Where change feed events are POSTed (docs/events.md: webhooks). `event_types` empty: every type.
-- `source` env: declared by WEBHOOK_URLS at start (kept in step with it), else made by an admin.
create table webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  url text not null check (char_length(url) between 1 and 2048),
  event_types text[] not null default '{}',
  secret text not null,
  source text not null default 'api' check (source in ('api', 'env')),
  created_at timestamptz not null
);
create unique index webhook_endpoints_env_url on webhook_endpoints (url) where source = 'env';

-- One row per event an endpoint is to receive, made when the event gets its position. Events of
-- one account go out in order: a delivery waits while an earlier one of its account and endpoint
-- is pending. A replica leases a delivery while it POSTs it (a lease that lapses is retried).
create table webhook_deliveries (
  endpoint_id uuid not null references webhook_endpoints (id) on delete cascade,
  position bigint not null,
  event_id uuid not null,
  event_type text not null,
  user_id text not null,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null,
  leased_until timestamptz,
  first_attempt_at timestamptz,
  last_attempt_at timestamptz,
  last_status integer,
  last_error text,
  delivered_at timestamptz,
  abandoned_at timestamptz,
  primary key (endpoint_id, position)
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where delivered_at is null and abandoned_at is null;
create index webhook_deliveries_pending on webhook_deliveries (endpoint_id, user_id, position) where delivered_at is null and abandoned_at is null;

-- The sequencer of 1765843200000, now also making the deliveries of the events it sequences.
create or replace function sequence_entitlement_events(p_limit integer) returns integer
language plpgsql
as $$
declare
  current_head bigint;
  given integer;
begin
  select f.head into current_head from entitlement_feed f for update;
  with pending as (
    select e.seq, current_head + row_number() over (order by e.seq) as next_position
    from entitlement_events e where e.position is null
    order by e.seq limit p_limit
  )
  update entitlement_events e set position = pending.next_position from pending where e.seq = pending.seq;
  get diagnostics given = row_count;
  if given > 0 then
    update entitlement_feed set head = current_head + given;
    insert into webhook_deliveries (endpoint_id, position, event_id, event_type, user_id, next_attempt_at)
    select w.id, e.position, e.id, e.type, e.user_id, e.occurred_at
    from entitlement_events e
    join webhook_endpoints w on cardinality(w.event_types) = 0 or e.type = any (w.event_types)
    where e.position > current_head and e.position <= current_head + given;
    perform pg_notify('entitlements_feed', (current_head + given)::text);
  end if;
  return given;
end;
$$;

-- Down Migration

create or replace function sequence_entitlement_events(p_limit integer) returns integer
language plpgsql
as $$
declare
  current_head bigint;
  given integer;
begin
  select f.head into current_head from entitlement_feed f for update;
  with pending as (
    select e.seq, current_head + row_number() over (order by e.seq) as next_position
    from entitlement_events e where e.position is null
    order by e.seq limit p_limit
  )
  update entitlement_events e set position = pending.next_position from pending where e.seq = pending.seq;
  get diagnostics given = row_count;
  if given > 0 then
    update entitlement_feed set head = current_head + given;
    perform pg_notify('entitlements_feed', (current_head + given)::text);
  end if;
  return given;
end;
$$;
drop table webhook_deliveries;
drop table webhook_endpoints;
