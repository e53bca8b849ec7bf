-- Up Migration

-- The account's revision: how many events (docs/events.md) it has had. Every answer states it, and
-- a caller that saw revision n can demand an answer at least that fresh (min_revision).
alter table accounts add column revision bigint not null default 0;

-- The change feed's outbox: one row per committed change to what a user is entitled to, written
-- in the transaction that makes the change. `seq` is the order rows were written in; `position`,
-- the global order of the feed, is given by the sequencer (sequence_entitlement_events) once the
-- row is committed, so that readers of the feed never see position n+1 before n.
create table entitlement_events (
  id uuid primary key default gen_random_uuid(),
  seq bigint generated always as identity unique,
  position bigint unique,
  type text not null,
  user_id text not null,
  revision bigint not null,
  occurred_at timestamptz not null,
  -- What the user is entitled to after the change (EntitlementEvent.entitlements).
  entitlements jsonb,
  -- What the event says besides: the threshold crossed, the plan left, and so on.
  details jsonb not null default '{}'
);
create index entitlement_events_unsequenced on entitlement_events (seq) where position is null;
create index entitlement_events_occurred on entitlement_events (occurred_at);

-- One row: the feed's last position given, and the last position the retention sweep deleted
-- (a watcher resuming from before it has lost events: out_of_range).
create table entitlement_feed (
  singleton boolean primary key default true check (singleton),
  head bigint not null,
  pruned_through bigint not null
);
insert into entitlement_feed (head, pruned_through) values (0, 0);

-- Records an event for the user (whose account row exists) and raises its revision, in the
-- caller's transaction; the replicas' sequencers hear of it when that commits.
create function record_entitlement_event(
  p_user_id text, p_type text, p_at timestamptz, p_entitlements jsonb, p_details jsonb,
  out event_id uuid, out event_revision bigint
)
language plpgsql
as $$
begin
  update accounts a set revision = a.revision + 1 where a.user_id = p_user_id returning a.revision into event_revision;
  if event_revision is null then
    raise exception 'account % does not exist', p_user_id using errcode = 'foreign_key_violation';
  end if;
  insert into entitlement_events (type, user_id, revision, occurred_at, entitlements, details)
  values (p_type, p_user_id, event_revision, p_at, p_entitlements, coalesce(p_details, '{}'))
  returning id into event_id;
  perform pg_notify('entitlements_outbox', '');
end;
$$;

-- Gives committed events their positions, in the order they were written, up to p_limit of them;
-- returns how many it gave. The lock on the feed row serializes sequencers: each sees every
-- position given before it (its second statement reads after the lock is granted), so positions
-- become visible in order. Events of one account are written under its lock, so their order by
-- seq is their order by revision.
create function sequence_entitlement_events(p_limit integer) returns integer
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

-- Down Migration

drop function sequence_entitlement_events(integer);
drop function record_entitlement_event(text, text, timestamptz, jsonb, jsonb);
drop table entitlement_feed;
drop table entitlement_events;
alter table accounts drop column revision;
