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

-- Down Migration

drop function consume_usage_batch(text[], text[], timestamptz[], integer[], bigint[], bigint[], timestamptz);
