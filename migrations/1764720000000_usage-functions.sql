-- Up Migration

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

-- Down Migration

drop function consume_usage_once_batch(
  text[], text[], timestamptz[], text[], text[], timestamptz[], bigint[], bigint[], bigint[], text[], timestamptz[], timestamptz[]
);
drop function consume_usage_once(text, text, timestamptz, bigint, bigint, bigint, text, timestamptz, timestamptz);
drop function consume_usage_batch(text[], text[], timestamptz[], integer[], bigint[], bigint[], timestamptz);
