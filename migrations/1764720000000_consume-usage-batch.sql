-- Up Migration

-- Group commit of increments in one round trip: the increments that arrive together, decided in
-- arrival order against their rows, locked in key order (like every other statement that locks
-- several rows, so that batches never deadlock one another), and written, in the caller's
-- statement. Each is granted when it lowers the amount or fits its ceiling; an amount never goes
-- below 0 (the same rule as the single-row upsert). Returns one row per increment: its position
-- in the arrays (1-based), whether it was granted, and the row's amount after its turn.
create function consume_usage_batch(
  user_ids text[],
  metric_codes text[],
  period_starts timestamptz[],
  amounts bigint[],
  ceilings bigint[],
  at timestamptz
) returns table (ordinal integer, granted boolean, used bigint)
language plpgsql
as $$
declare
  row_users text[];
  row_metrics text[];
  row_periods timestamptz[];
  levels bigint[];
  row_of integer[];
  r integer;
begin
  insert into accounts (user_id, created_at)
  select distinct u, at from unnest(user_ids) as u
  order by 1
  on conflict (user_id) do nothing;

  insert into usage_counters (user_id, metric_code, period_start, used, updated_at)
  select distinct w.u, w.m, w.p, 0::bigint, at
  from unnest(user_ids, metric_codes, period_starts) as w (u, m, p)
  order by 1, 2, 3
  on conflict (user_id, metric_code, period_start) do nothing;

  -- The distinct rows, locked in key order, with their amounts.
  select array_agg(c.user_id order by c.user_id, c.metric_code, c.period_start),
         array_agg(c.metric_code order by c.user_id, c.metric_code, c.period_start),
         array_agg(c.period_start order by c.user_id, c.metric_code, c.period_start),
         array_agg(c.used order by c.user_id, c.metric_code, c.period_start)
  into row_users, row_metrics, row_periods, levels
  from (
    select c.user_id, c.metric_code, c.period_start, c.used
    from usage_counters c
    join (select distinct * from unnest(user_ids, metric_codes, period_starts) as w (u, m, p)) as w
      on c.user_id = w.u and c.metric_code = w.m and c.period_start = w.p
    order by c.user_id, c.metric_code, c.period_start
    for update of c
  ) as c;

  -- Which of those rows each increment counts on.
  select array_agg(k.r order by w.i)
  into row_of
  from unnest(user_ids, metric_codes, period_starts) with ordinality as w (u, m, p, i)
  join unnest(row_users, row_metrics, row_periods) with ordinality as k (u, m, p, r)
    on k.u = w.u and k.m = w.m and k.p = w.p;

  for i in 1 .. cardinality(user_ids) loop
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

drop function consume_usage_batch(text[], text[], timestamptz[], bigint[], bigint[], timestamptz);
