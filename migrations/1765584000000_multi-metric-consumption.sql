-- Up Migration

-- Idempotency keys of ConsumeUsage, RefundUsage and SetUsage (IncrementUsage keeps its own). A key
-- remembers what its call asked (`kind`, metrics and amounts, in the call's order) and, once
-- decided, what it answered: each metric's amount after the call and the limit it was decided on.
create table consumption_keys (
  user_id text not null references accounts (user_id),
  idempotency_key text not null check (char_length(idempotency_key) between 1 and 255),
  kind text not null check (kind in ('consume', 'refund', 'set')),
  metrics text[] not null,
  amounts bigint[] not null,
  -- Null only inside the transaction that claims the key; set before it commits.
  used_after bigint[],
  quota_limits bigint[],
  created_at timestamptz not null,
  expires_at timestamptz not null,
  primary key (user_id, idempotency_key)
);
create index consumption_keys_expiry on consumption_keys (expires_at);

-- ConsumeUsage calls that arrive together, in one statement and one commit. The caller passes
-- the distinct usage rows of the batch in key order; every call's items, grouped by call in
-- arrival order (the call, the row it counts on, its amount, ceiling and limit); and each call's
-- user and key (null: none). Accounts, counter rows and the grants of every (user, metric) are
-- locked first, in that order, as the other batch functions lock theirs. Then each call is decided
-- in arrival order against the amounts after the calls before it: a key already held replays its
-- first result; otherwise every item must fit, its ceiling or else the grants covering what the
-- allowance cannot (ceilings of 2^53 - 1, unlimited, take no grants), or the call counts nothing
-- and gives its key up. A call that fits draws on grants and is counted. Returns one row per item
-- (per remembered item for a replay) with its call, position, the call's outcome, whether the item
-- fit, its row's amount after the call (the first call's, for a replay), what the grants hold
-- (when the item weighed them) and, for replays, what the first call asked and answered.
create function consume_items_batch(
  row_users text[], row_metrics text[], row_periods timestamptz[],
  item_calls integer[], item_rows integer[], item_amounts bigint[], item_ceilings bigint[], item_limits bigint[],
  call_users text[], call_keys text[], at timestamptz, key_expires_at timestamptz
) returns table (
  call integer, item integer, outcome text, fits boolean, used bigint, grant_remaining bigint,
  first_metric text, first_amount bigint, first_limit bigint, first_created_at timestamptz
)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  levels bigint[];
  first_item integer := 1;
  last_item integer;
  r integer;
  claimed boolean;
  all_fit boolean;
  item_fits boolean[];
  needs bigint[];
  held bigint[];
  available bigint;
  d record;
  k record;
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

  perform 1 from usage_grants g
  where g.remaining > 0
    and (g.user_id, g.metric_code) in (select distinct u, m from unnest(row_users, row_metrics) as w (u, m))
  order by g.id
  for update;

  for n in 1 .. cardinality(call_users) loop
    last_item := first_item;
    while last_item < cardinality(item_calls) and item_calls[last_item + 1] = n loop
      last_item := last_item + 1;
    end loop;

    claimed := true;
    if call_keys[n] is not null then
      claimed := null;
      insert into consumption_keys as x (user_id, idempotency_key, kind, metrics, amounts, created_at, expires_at)
      values (
        call_users[n], call_keys[n], 'consume',
        array(select row_metrics[item_rows[i]] from generate_series(first_item, last_item) as i order by i),
        item_amounts[first_item:last_item], at, key_expires_at
      )
      on conflict (user_id, idempotency_key) do update
        set kind = excluded.kind, metrics = excluded.metrics, amounts = excluded.amounts, used_after = null,
            quota_limits = null, created_at = excluded.created_at, expires_at = excluded.expires_at
        where x.expires_at <= excluded.created_at
      returning true into claimed;
    end if;

    if claimed is null then
      select * into k from consumption_keys x where x.user_id = call_users[n] and x.idempotency_key = call_keys[n];
      for j in 1 .. cardinality(k.metrics) loop
        return query select n, j, 'replayed:' || k.kind, null::boolean, (k.used_after)[j], null::bigint,
          (k.metrics)[j], (k.amounts)[j], (k.quota_limits)[j], k.created_at;
      end loop;
    else
      all_fit := true;
      item_fits := '{}';
      needs := '{}';
      held := '{}';
      for i in first_item .. last_item loop
        r := item_rows[i];
        needs[i] := 0;
        held[i] := null;
        if item_amounts[i] <= 0 or levels[r] + item_amounts[i] <= item_ceilings[i] then
          item_fits[i] := true;
        elsif item_ceilings[i] < 9007199254740991 then
          needs[i] := item_amounts[i] - greatest(item_ceilings[i] - levels[r], 0);
          select coalesce(sum(g.remaining), 0) into available from usage_grants g
          where g.user_id = row_users[r] and g.metric_code = row_metrics[r] and g.remaining > 0
            and (g.expires_at is null or g.expires_at > at);
          held[i] := available;
          item_fits[i] := available >= needs[i];
        else
          item_fits[i] := false;
        end if;
        all_fit := all_fit and item_fits[i];
      end loop;

      if all_fit then
        for i in first_item .. last_item loop
          r := item_rows[i];
          if needs[i] > 0 then
            select * into d from draw_usage_grants(row_users[r], row_metrics[r], needs[i], at);
            held[i] := d.remaining;
          end if;
          levels[r] := greatest(levels[r] + item_amounts[i], 0);
        end loop;
        if call_keys[n] is not null then
          update consumption_keys x
          set used_after = array(select levels[item_rows[i]] from generate_series(first_item, last_item) as i order by i),
              quota_limits = item_limits[first_item:last_item]
          where x.user_id = call_users[n] and x.idempotency_key = call_keys[n];
        end if;
      elsif call_keys[n] is not null then
        delete from consumption_keys x where x.user_id = call_users[n] and x.idempotency_key = call_keys[n];
      end if;

      for i in first_item .. last_item loop
        return query select n, i - first_item + 1, case when all_fit then 'granted' else 'refused' end, item_fits[i],
          levels[item_rows[i]], held[i], null::text, null::bigint, null::bigint, null::timestamptz;
      end loop;
    end if;
    first_item := last_item + 1;
  end loop;

  update usage_counters x set used = w.used, updated_at = at
  from unnest(row_users, row_metrics, row_periods, levels) as w (u, m, p, used)
  where x.user_id = w.u and x.metric_code = w.m and x.period_start = w.p;
end;
$$;

-- Down Migration

drop function consume_items_batch(
  text[], text[], timestamptz[], integer[], integer[], bigint[], bigint[], bigint[], text[], text[], timestamptz, timestamptz
);
drop table consumption_keys;
