-- Up Migration

-- Per-account terms that beat the plan (docs/api.md): a feature switched on or off, or a quota's
-- limit set (null: unlimited), until `expires_at` (null: until cleared). One per feature or metric.
create table entitlement_overrides (
  user_id text not null references accounts (user_id),
  kind text not null check (kind in ('feature', 'quota')),
  target text not null,
  enabled boolean,
  quota_limit bigint check (quota_limit >= 0),
  expires_at timestamptz,
  reason text not null check (char_length(reason) between 1 and 1000),
  created_by text not null,
  created_at timestamptz not null,
  primary key (user_id, kind, target),
  check ((kind = 'feature') = (enabled is not null)),
  check (kind = 'quota' or quota_limit is null)
);

-- Units of a counter granted on top of the period's allowance. Increments draw on them once the
-- allowance is spent, earliest expiry first; `remaining` only falls (revoking sets it to 0).
create table usage_grants (
  id uuid primary key default gen_random_uuid(),
  user_id text not null references accounts (user_id),
  metric_code text not null,
  amount bigint not null check (amount > 0),
  remaining bigint not null check (remaining between 0 and amount),
  expires_at timestamptz,
  idempotency_key text not null check (char_length(idempotency_key) between 1 and 255),
  reason text not null check (char_length(reason) between 1 and 1000),
  created_by text not null,
  created_at timestamptz not null,
  revoked_at timestamptz,
  unique (user_id, idempotency_key)
);
create index usage_grants_unspent on usage_grants (user_id, metric_code) where remaining > 0;

-- Draws p_need units from the user's active grants of a metric, all or nothing: earliest expiry
-- first (no expiry last), then oldest. The caller holds the counter row's lock, so draws on one
-- counter are serialized; rows are locked in id order (batches lock theirs up front in the same
-- order). Returns whether it drew, and what the active grants hold afterwards. A draw tells every
-- replica, on commit, that the account changed (channel of src/db/notifications.ts): grants are
-- part of the standing each caches.
create function draw_usage_grants(
  p_user_id text, p_metric text, p_need bigint, p_at timestamptz,
  out drawn boolean, out remaining bigint
)
language plpgsql
as $$
declare
  g record;
  still bigint := p_need;
  take bigint;
begin
  select coalesce(sum(l.remaining), 0) into remaining from (
    select u.remaining from usage_grants u
    where u.user_id = p_user_id and u.metric_code = p_metric and u.remaining > 0
      and (u.expires_at is null or u.expires_at > p_at)
    order by u.id
    for update
  ) l;
  drawn := remaining >= p_need;
  if not drawn then
    return;
  end if;
  for g in
    select u.id, u.remaining from usage_grants u
    where u.user_id = p_user_id and u.metric_code = p_metric and u.remaining > 0
      and (u.expires_at is null or u.expires_at > p_at)
    order by u.expires_at nulls last, u.created_at, u.id
  loop
    exit when still = 0;
    take := least(g.remaining, still);
    update usage_grants set remaining = usage_grants.remaining - take where id = g.id;
    still := still - take;
  end loop;
  remaining := remaining - p_need;
  perform pg_notify('entitlements_account', p_user_id);
end;
$$;

-- A lone increment that did not fit its ceiling (the single-row upsert refused it), decided again
-- with grants: under the counter row's lock, what the allowance (ceiling - used, at least 0)
-- cannot cover is drawn from grants; then the whole amount is counted. Returns whether it was
-- granted, the row's amount after, and the active grants' remaining.
create function consume_usage_with_grants(
  p_user_id text, p_metric text, p_period timestamptz, p_amount bigint, p_ceiling bigint, p_at timestamptz,
  out granted boolean, out used bigint, out grant_remaining bigint
)
language plpgsql
as $$
declare
  d record;
begin
  insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
  values (p_user_id, p_metric, p_period, 0, p_at)
  on conflict (user_id, metric_code, period_start) do update set used = c.used
  returning c.used into used;
  if used + p_amount <= p_ceiling then
    granted := true;
    grant_remaining := null;
  else
    select * into d from draw_usage_grants(p_user_id, p_metric, p_amount - greatest(p_ceiling - used, 0), p_at);
    granted := d.drawn;
    grant_remaining := d.remaining;
  end if;
  if granted then
    update usage_counters c set used = c.used + p_amount, updated_at = p_at
    where c.user_id = p_user_id and c.metric_code = p_metric and c.period_start = p_period
    returning c.used into used;
  end if;
end;
$$;

-- consume_usage_batch with grants: an increment that does not fit its ceiling draws what the
-- allowance cannot cover from the user's active grants. Grants count for limited metrics only:
-- an unlimited metric's ceiling is 2^53 - 1 (MAX_USAGE of src/domain/quota.ts), and gauges never
-- have grants. At the first such increment, the active grants of every (user, metric) of the
-- batch are locked at once, in id order, after the counter rows, so batches never deadlock one
-- another. `grant_remaining` is the active grants' remaining after an increment that consulted
-- them, null otherwise.
drop function consume_usage_batch(text[], text[], timestamptz[], integer[], bigint[], bigint[], timestamptz);
create function consume_usage_batch(
  row_users text[], row_metrics text[], row_periods timestamptz[],
  row_of integer[], amounts bigint[], ceilings bigint[], at timestamptz
) returns table (ordinal integer, granted boolean, used bigint, grant_remaining bigint)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  levels bigint[];
  r integer;
  grants_locked boolean := false;
  d record;
begin
  with account as (
    insert into accounts (user_id, created_at)
    select distinct u, at from unnest(row_users) as u
    order by 1
    on conflict (user_id) do nothing
  ), locked as (
    insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
    select w.u, w.m, w.p, 0, at from unnest(row_users, row_metrics, row_periods) with ordinality as w (u, m, p, k)
    order by w.k
    on conflict (user_id, metric_code, period_start) do update set used = c.used
    returning c.user_id, c.metric_code, c.period_start, c.used
  )
  select array_agg(l.used order by w.k) into levels
  from unnest(row_users, row_metrics, row_periods) with ordinality as w (u, m, p, k)
  join locked l on l.user_id = w.u and l.metric_code = w.m and l.period_start = w.p;

  for i in 1 .. cardinality(row_of) loop
    r := row_of[i];
    ordinal := i;
    grant_remaining := null;
    granted := amounts[i] <= 0 or levels[r] + amounts[i] <= ceilings[i];
    if not granted and ceilings[i] < 9007199254740991 then
      if not grants_locked then
        perform 1 from usage_grants g
        where g.remaining > 0
          and (g.user_id, g.metric_code) in (select distinct u, m from unnest(row_users, row_metrics) as w (u, m))
        order by g.id
        for update;
        grants_locked := true;
      end if;
      select * into d from draw_usage_grants(row_users[r], row_metrics[r], amounts[i] - greatest(ceilings[i] - levels[r], 0), at);
      granted := d.drawn;
      grant_remaining := d.remaining;
    end if;
    if granted then
      levels[r] := greatest(levels[r] + amounts[i], 0);
    end if;
    used := levels[r];
    return next;
  end loop;

  update usage_counters c set used = w.used, updated_at = at
  from unnest(row_users, row_metrics, row_periods, levels) as w (u, m, p, used)
  where c.user_id = w.u and c.metric_code = w.m and c.period_start = w.p;
end;
$$;

-- consume_usage_once with grants: a refused increment draws what the allowance cannot cover
-- from grants, as consume_usage_batch does; `grant_remaining` as there.
drop function consume_usage_once_batch(
  text[], text[], timestamptz[], text[], text[], timestamptz[], bigint[], bigint[], bigint[], text[], timestamptz[], timestamptz[]
);
drop function consume_usage_once(text, text, timestamptz, bigint, bigint, bigint, text, timestamptz, timestamptz);
create function consume_usage_once(
  p_user_id text, p_metric text, p_period timestamptz, p_amount bigint, p_ceiling bigint,
  p_limit bigint, p_key text, p_at timestamptz, p_expires_at timestamptz
) returns table (
  outcome text, used bigint, grant_remaining bigint,
  first_metric text, first_amount bigint, first_used_after bigint, first_limit bigint, first_created_at timestamptz
)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  claimed boolean;
  amount_now bigint;
  level bigint;
  d record;
begin
  insert into accounts (user_id, created_at) values (p_user_id, p_at)
  on conflict (user_id) do nothing;

  -- The counter row first, then the key, then grants (see the first version of this function).
  insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
  values (p_user_id, p_metric, p_period, 0, p_at)
  on conflict (user_id, metric_code, period_start) do update set used = c.used
  returning c.used into level;

  insert into idempotency_keys as k (user_id, idempotency_key, metric_code, amount, created_at, expires_at)
  values (p_user_id, p_key, p_metric, p_amount, p_at, p_expires_at)
  on conflict (user_id, idempotency_key) do update
    set metric_code = excluded.metric_code,
        amount = excluded.amount,
        used_after = null,
        quota_limit = null,
        created_at = excluded.created_at,
        expires_at = excluded.expires_at
    where k.expires_at <= excluded.created_at
  returning true into claimed;

  if claimed is null then
    return query
      select 'replayed'::text, null::bigint, null::bigint, k.metric_code, k.amount, k.used_after, k.quota_limit, k.created_at
      from idempotency_keys k
      where k.user_id = p_user_id and k.idempotency_key = p_key;
    return;
  end if;

  if p_amount <= 0 or level + p_amount <= p_ceiling then
    amount_now := greatest(level + p_amount, 0);
  elsif p_ceiling < 9007199254740991 then
    select * into d from draw_usage_grants(p_user_id, p_metric, p_amount - greatest(p_ceiling - level, 0), p_at);
    grant_remaining := d.remaining;
    if d.drawn then
      amount_now := level + p_amount;
    end if;
  end if;

  if amount_now is null then
    delete from idempotency_keys k where k.user_id = p_user_id and k.idempotency_key = p_key;
    return query
      select 'refused'::text, level, grant_remaining, null::text, null::bigint, null::bigint, null::bigint, null::timestamptz;
    return;
  end if;

  update usage_counters c set used = amount_now, updated_at = p_at
  where c.user_id = p_user_id and c.metric_code = p_metric and c.period_start = p_period;
  update idempotency_keys k set used_after = amount_now, quota_limit = p_limit
  where k.user_id = p_user_id and k.idempotency_key = p_key;
  return query
    select 'granted'::text, amount_now, grant_remaining, null::text, null::bigint, null::bigint, null::bigint, null::timestamptz;
end;
$$;

-- consume_usage_once_batch for the new consume_usage_once. The active grants of every (user,
-- metric) of the batch are locked after the counter rows and before any key, in id order, so
-- batches never deadlock one another over grants.
create function consume_usage_once_batch(
  row_users text[], row_metrics text[], row_periods timestamptz[],
  users text[], metrics text[], periods timestamptz[], amounts bigint[], ceilings bigint[],
  limits bigint[], keys text[], ats timestamptz[], expirations timestamptz[]
) returns table (
  ordinal integer, outcome text, used bigint, grant_remaining bigint,
  first_metric text, first_amount bigint, first_used_after bigint, first_limit bigint, first_created_at timestamptz
)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
begin
  with account as (
    insert into accounts (user_id, created_at)
    select distinct u, ats[1] from unnest(row_users) as u
    order by 1
    on conflict (user_id) do nothing
  )
  insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
  select w.u, w.m, w.p, 0, ats[1] from unnest(row_users, row_metrics, row_periods) with ordinality as w (u, m, p, k)
  order by w.k
  on conflict (user_id, metric_code, period_start) do update set used = c.used;

  perform 1 from usage_grants g
  where g.remaining > 0
    and (g.user_id, g.metric_code) in (select distinct u, m from unnest(row_users, row_metrics) as w (u, m))
  order by g.id
  for update;

  for i in 1 .. cardinality(keys) loop
    return query
      select i, o.outcome, o.used, o.grant_remaining, o.first_metric, o.first_amount, o.first_used_after, o.first_limit, o.first_created_at
      from consume_usage_once(
        users[i], metrics[i], periods[i], amounts[i], ceilings[i], limits[i], keys[i], ats[i], expirations[i]
      ) o;
  end loop;
end;
$$;

-- Down Migration

-- The functions as 1764720000000_usage-functions.sql made them, without grants.
drop function consume_usage_once_batch(
  text[], text[], timestamptz[], text[], text[], timestamptz[], bigint[], bigint[], bigint[], text[], timestamptz[], timestamptz[]
);
drop function consume_usage_once(text, text, timestamptz, bigint, bigint, bigint, text, timestamptz, timestamptz);
drop function consume_usage_batch(text[], text[], timestamptz[], integer[], bigint[], bigint[], timestamptz);
-- Group commit of increments in one round trip. The caller passes the distinct usage rows of a
-- batch in key order and, for each increment in arrival order, the row it counts on (1-based),
-- its amount and its ceiling. Missing rows are created at 0 and every row is locked in the order
-- given (the same order for every batch, so batches never deadlock one another); then each
-- increment is decided in arrival order against its row's amount after the ones before it:
-- granted when it lowers the amount or fits its ceiling, and an amount never goes below 0 (the
-- rule of the single-row upsert). The new amounts are written in the same statement. Returns one
-- row per increment: its position, whether it was granted, and its row's amount after its turn.
-- Generic plans: the statements' plans do not depend on the arrays, and planning them for every
-- call doubled its cost.
create function consume_usage_batch(
  row_users text[], row_metrics text[], row_periods timestamptz[],
  row_of integer[], amounts bigint[], ceilings bigint[], at timestamptz
) returns table (ordinal integer, granted boolean, used bigint)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  levels bigint[];
  r integer;
begin
  with account as (
    insert into accounts (user_id, created_at)
    select distinct u, at from unnest(row_users) as u
    order by 1
    on conflict (user_id) do nothing
  ), locked as (
    insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
    select w.u, w.m, w.p, 0, at from unnest(row_users, row_metrics, row_periods) with ordinality as w (u, m, p, k)
    order by w.k
    on conflict (user_id, metric_code, period_start) do update set used = c.used
    returning c.user_id, c.metric_code, c.period_start, c.used
  )
  select array_agg(l.used order by w.k) into levels
  from unnest(row_users, row_metrics, row_periods) with ordinality as w (u, m, p, k)
  join locked l on l.user_id = w.u and l.metric_code = w.m and l.period_start = w.p;

  for i in 1 .. cardinality(row_of) loop
    r := row_of[i];
    ordinal := i;
    granted := amounts[i] <= 0 or levels[r] + amounts[i] <= ceilings[i];
    if granted then
      levels[r] := greatest(levels[r] + amounts[i], 0);
    end if;
    used := levels[r];
    return next;
  end loop;

  update usage_counters c set used = w.used, updated_at = at
  from unnest(row_users, row_metrics, row_periods, levels) as w (u, m, p, used)
  where c.user_id = w.u and c.metric_code = w.m and c.period_start = w.p;
end;
$$;

-- An increment under an idempotency key in one round trip. Locks the counter row, then claims
-- the key (a racing retry waits on the row until the first call commits); a key already held and
-- not expired is replayed: its first result is returned and nothing is counted. Otherwise the
-- increment is decided as the single-row upsert decides it; a refused increment gives its key up
-- (a later retry is decided afresh) and returns the row's amount; a granted one records its result
-- under the key. `outcome` is 'granted', 'refused' or 'replayed'; the first_* columns describe
-- the first call of a replayed key.
create function consume_usage_once(
  p_user_id text, p_metric text, p_period timestamptz, p_amount bigint, p_ceiling bigint,
  p_limit bigint, p_key text, p_at timestamptz, p_expires_at timestamptz
) returns table (
  outcome text, used bigint,
  first_metric text, first_amount bigint, first_used_after bigint, first_limit bigint, first_created_at timestamptz
)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  claimed boolean;
  amount_now bigint;
begin
  insert into accounts (user_id, created_at) values (p_user_id, p_at)
  on conflict (user_id) do nothing;

  -- The counter row first, then the key: every increment takes its locks in the order accounts,
  -- counter rows, keys (a batch locks its rows in key order before any key), so a lone call and
  -- a batch holding the same key's retry cannot deadlock.
  insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
  values (p_user_id, p_metric, p_period, 0, p_at)
  on conflict (user_id, metric_code, period_start) do update set used = c.used;

  insert into idempotency_keys as k (user_id, idempotency_key, metric_code, amount, created_at, expires_at)
  values (p_user_id, p_key, p_metric, p_amount, p_at, p_expires_at)
  on conflict (user_id, idempotency_key) do update
    set metric_code = excluded.metric_code,
        amount = excluded.amount,
        used_after = null,
        quota_limit = null,
        created_at = excluded.created_at,
        expires_at = excluded.expires_at
    where k.expires_at <= excluded.created_at
  returning true into claimed;

  if claimed is null then
    return query
      select 'replayed'::text, null::bigint, k.metric_code, k.amount, k.used_after, k.quota_limit, k.created_at
      from idempotency_keys k
      where k.user_id = p_user_id and k.idempotency_key = p_key;
    return;
  end if;

  update usage_counters c set used = greatest(c.used + p_amount, 0), updated_at = p_at
  where c.user_id = p_user_id and c.metric_code = p_metric and c.period_start = p_period
    and (p_amount <= 0 or c.used + p_amount <= p_ceiling)
  returning c.used into amount_now;

  if amount_now is null then
    delete from idempotency_keys k where k.user_id = p_user_id and k.idempotency_key = p_key;
    return query
      select 'refused'::text, coalesce((
        select c.used from usage_counters c
        where c.user_id = p_user_id and c.metric_code = p_metric and c.period_start = p_period
      ), 0::bigint), null::text, null::bigint, null::bigint, null::bigint, null::timestamptz;
    return;
  end if;

  update idempotency_keys k set used_after = amount_now, quota_limit = p_limit
  where k.user_id = p_user_id and k.idempotency_key = p_key;
  return query
    select 'granted'::text, amount_now, null::text, null::bigint, null::bigint, null::bigint, null::timestamptz;
end;
$$;

-- Keyed increments that arrive together, in one statement and one commit. The caller passes the
-- distinct usage rows of the batch in key order, and each increment in arrival order. Accounts
-- and counter rows are created and locked first, in that order (as consume_usage_batch does, so
-- batches never deadlock one another); then each increment is decided in arrival order exactly as
-- consume_usage_once decides it alone: a key used twice in one batch replays its first result, or
-- is decided afresh after a refusal gave it up. Returns consume_usage_once's row for each
-- increment, with its position.
create function consume_usage_once_batch(
  row_users text[], row_metrics text[], row_periods timestamptz[],
  users text[], metrics text[], periods timestamptz[], amounts bigint[], ceilings bigint[],
  limits bigint[], keys text[], ats timestamptz[], expirations timestamptz[]
) returns table (
  ordinal integer, outcome text, used bigint,
  first_metric text, first_amount bigint, first_used_after bigint, first_limit bigint, first_created_at timestamptz
)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
begin
  with account as (
    insert into accounts (user_id, created_at)
    select distinct u, ats[1] from unnest(row_users) as u
    order by 1
    on conflict (user_id) do nothing
  )
  insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
  select w.u, w.m, w.p, 0, ats[1] from unnest(row_users, row_metrics, row_periods) with ordinality as w (u, m, p, k)
  order by w.k
  on conflict (user_id, metric_code, period_start) do update set used = c.used;

  for i in 1 .. cardinality(keys) loop
    return query
      select i, o.outcome, o.used, o.first_metric, o.first_amount, o.first_used_after, o.first_limit, o.first_created_at
      from consume_usage_once(
        users[i], metrics[i], periods[i], amounts[i], ceilings[i], limits[i], keys[i], ats[i], expirations[i]
      ) o;
  end loop;
end;
$$;

drop function consume_usage_with_grants(text, text, timestamptz, bigint, bigint, timestamptz);
drop function draw_usage_grants(text, text, bigint, timestamptz);
drop table usage_grants;
drop table entitlement_overrides;
