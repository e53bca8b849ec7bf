-- Up Migration

-- Usage held for work whose cost is known only at its end (docs/api.md, reservations). A held
-- reservation counts as used for every decision until it is committed, released, or reaches
-- `expires_at`, when every decision stops counting it with no job run. Items are in the call's
-- order, each held on the counter row of its metric and period; `used_after` holds each row's
-- count after a commit, for answering it again.
create table reservations (
  id uuid primary key default gen_random_uuid(),
  user_id text not null references accounts (user_id),
  idempotency_key text check (char_length(idempotency_key) between 1 and 255),
  metrics text[] not null,
  amounts bigint[] not null,
  period_starts timestamptz[] not null,
  quota_limits bigint[] not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  state text not null default 'held' check (state in ('held', 'committed', 'released')),
  settled_at timestamptz,
  actual bigint[],
  used_after bigint[]
);
-- A user's held reservations by expiry: what a row's holds hold is summed again from them, and
-- the earliest expiry found, without reading settled ones. Retention goes by `expires_at`: a
-- reservation is settled, if at all, before it.
create unique index reservations_key on reservations (user_id, idempotency_key) where idempotency_key is not null;
create index reservations_held on reservations (user_id, expires_at) where state = 'held';
create index reservations_expiry on reservations (expires_at);

-- What the held reservations of a counter row hold, kept on the row so that decisions read it
-- with the row: `reserved` is exact until `reserved_until`, the earliest expiry among the holds it
-- counts (null: none). From then on it is summed again from the reservations (row_reserved) and
-- written back with the next change of the row.
alter table usage_counters add column reserved bigint not null default 0 check (reserved >= 0);
alter table usage_counters add column reserved_until timestamptz;

alter table consumption_keys drop constraint consumption_keys_kind_check;
alter table consumption_keys add constraint consumption_keys_kind_check check (kind in ('consume', 'refund', 'set', 'reserve'));

-- What a counter row's held reservations hold at p_at, summed from the reservations, and the
-- earliest expiry among them: the row's `reserved` and `reserved_until` once one of its holds
-- has expired.
create function row_reserved(
  p_user_id text, p_metric text, p_period timestamptz, p_at timestamptz,
  out reserved bigint, out reserved_until timestamptz
)
language sql stable
as $$
  select coalesce(sum(i.amount), 0)::bigint, min(r.expires_at)
  from reservations r
  cross join lateral unnest(r.metrics, r.amounts, r.period_starts) as i (metric, amount, period_start)
  where r.user_id = p_user_id and r.state = 'held' and r.expires_at > p_at
    and i.metric = p_metric and i.period_start = p_period
$$;

-- The rows' `reserved` and `reserved_until` at p_at, in the order given: as the rows hold them
-- until their `reserved_until`, summed again (row_reserved) after. Decisions call it with the
-- rows locked, in a statement after the one that locked them: that statement's snapshot predates
-- its lock waits, while in READ COMMITTED each statement of a plpgsql function reads a fresh one
-- and so sees the reservations of every transaction that held a row's lock before.
create function rows_reserved(
  p_users text[], p_metrics text[], p_periods timestamptz[], p_reserved bigint[], p_until timestamptz[], p_at timestamptz,
  out reserved bigint[], out reserved_until timestamptz[]
)
language sql stable
as $$
  select array_agg(coalesce(f.reserved, 0) order by w.k), array_agg(f.reserved_until order by w.k)
  from unnest(p_users, p_metrics, p_periods, p_reserved, p_until) with ordinality as w (u, m, p, held, until, k)
  cross join lateral (
    select w.held as reserved, w.until as reserved_until where w.until is null or w.until > p_at
    union all
    select x.reserved, x.reserved_until from row_reserved(w.u, w.m, w.p, p_at) x where w.until <= p_at
  ) f
$$;

-- draw_usage_grants with holds: p_claimed units of the active grants are promised to held
-- reservations (what they hold beyond the allowance), so a draw succeeds only if p_need fits
-- in what is left after them. `remaining` counts the claimed units too.
create function draw_usage_grants(
  p_user_id text, p_metric text, p_need bigint, p_claimed bigint, p_at timestamptz,
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
  drawn := remaining - p_claimed >= p_need;
  if not drawn or p_need <= 0 then
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

-- The one rule every decision applies, with the row locked: p_amount fits when the row's count,
-- what its reservations hold, and p_amount stay within p_ceiling; else, under a limit (ceilings of
-- 2^53 - 1 are unlimited), when the grants cover the rest. Holds take the allowance first, then
-- grants, so a decision gets what is left of both: `need` is what grants must give it. With
-- p_draw it draws `need` (all or nothing); without, it only weighs the grants. `grant_remaining`
-- is what the active grants hold afterwards when they were weighed, null otherwise.
create function fit_usage(
  p_user_id text, p_metric text, p_level bigint, p_held bigint, p_amount bigint, p_ceiling bigint,
  p_draw boolean, p_at timestamptz,
  out fits boolean, out need bigint, out grant_remaining bigint
)
language plpgsql
as $$
declare
  allowance bigint := greatest(p_ceiling - p_level, 0);
  claimed bigint := greatest(p_held - greatest(p_ceiling - p_level, 0), 0);
  d record;
begin
  need := 0;
  if p_amount <= 0 or p_level + p_held + p_amount <= p_ceiling then
    fits := true;
  elsif p_ceiling >= 9007199254740991 then
    fits := false;
  else
    need := p_amount - greatest(allowance - p_held, 0);
    if p_draw then
      select * into d from draw_usage_grants(p_user_id, p_metric, need, claimed, p_at);
      fits := d.drawn;
      grant_remaining := d.remaining;
    else
      select coalesce(sum(g.remaining), 0) into grant_remaining from usage_grants g
      where g.user_id = p_user_id and g.metric_code = p_metric and g.remaining > 0
        and (g.expires_at is null or g.expires_at > p_at);
      fits := grant_remaining - claimed >= need;
    end if;
  end if;
end;
$$;

-- The functions of 1765411200000 and 1765584000000, now deciding with fit_usage (holds counted)
-- and answering what the row's reservations hold (`reserved`); otherwise as they were.
drop function consume_usage_with_grants(text, text, timestamptz, bigint, bigint, timestamptz);
create function consume_usage_with_grants(
  p_user_id text, p_metric text, p_period timestamptz, p_amount bigint, p_ceiling bigint, p_at timestamptz,
  out granted boolean, out used bigint, out grant_remaining bigint, out reserved bigint
)
language plpgsql
as $$
declare
  until timestamptz;
  f record;
begin
  insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
  values (p_user_id, p_metric, p_period, 0, p_at)
  on conflict (user_id, metric_code, period_start) do update set used = c.used
  returning c.used, c.reserved, c.reserved_until into used, reserved, until;
  if until <= p_at then
    select x.reserved, x.reserved_until into reserved, until from row_reserved(p_user_id, p_metric, p_period, p_at) x;
  end if;
  select * into f from fit_usage(p_user_id, p_metric, used, reserved, p_amount, p_ceiling, true, p_at);
  granted := f.fits;
  grant_remaining := f.grant_remaining;
  update usage_counters c
  set used = case when granted then greatest(c.used + p_amount, 0) else c.used end, reserved = consume_usage_with_grants.reserved,
      reserved_until = until, updated_at = p_at
  where c.user_id = p_user_id and c.metric_code = p_metric and c.period_start = p_period
  returning c.used into used;
end;
$$;

drop function consume_usage_batch(text[], text[], timestamptz[], integer[], bigint[], bigint[], timestamptz);
create function consume_usage_batch(
  row_users text[], row_metrics text[], row_periods timestamptz[],
  row_of integer[], amounts bigint[], ceilings bigint[], at timestamptz
) returns table (ordinal integer, granted boolean, used bigint, grant_remaining bigint, reserved bigint)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  levels bigint[];
  untils timestamptz[];
  lapsed boolean;
  held bigint[];
  r integer;
  grants_locked boolean := false;
  f record;
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
    returning c.user_id, c.metric_code, c.period_start, c.used, c.reserved, c.reserved_until
  )
  select array_agg(l.used order by w.k), array_agg(l.reserved order by w.k), array_agg(l.reserved_until order by w.k),
    coalesce(bool_or(l.reserved_until <= at), false)
  into levels, held, untils, lapsed
  from unnest(row_users, row_metrics, row_periods) with ordinality as w (u, m, p, k)
  join locked l on l.user_id = w.u and l.metric_code = w.m and l.period_start = w.p;
  if lapsed then
    select x.reserved, x.reserved_until into held, untils from rows_reserved(row_users, row_metrics, row_periods, held, untils, at) x;
  end if;

  for i in 1 .. cardinality(row_of) loop
    r := row_of[i];
    ordinal := i;
    grant_remaining := null;
    granted := amounts[i] <= 0 or levels[r] + held[r] + amounts[i] <= ceilings[i];
    if not granted and ceilings[i] < 9007199254740991 then
      if not grants_locked then
        perform 1 from usage_grants g
        where g.remaining > 0
          and (g.user_id, g.metric_code) in (select distinct u, m from unnest(row_users, row_metrics) as w (u, m))
        order by g.id
        for update;
        grants_locked := true;
      end if;
      select * into f from fit_usage(row_users[r], row_metrics[r], levels[r], held[r], amounts[i], ceilings[i], true, at);
      granted := f.fits;
      grant_remaining := f.grant_remaining;
    end if;
    if granted then
      levels[r] := greatest(levels[r] + amounts[i], 0);
    end if;
    used := levels[r];
    reserved := held[r];
    return next;
  end loop;

  update usage_counters c set used = w.used, reserved = w.held, reserved_until = w.until, updated_at = at
  from unnest(row_users, row_metrics, row_periods, levels, held, untils) as w (u, m, p, used, held, until)
  where c.user_id = w.u and c.metric_code = w.m and c.period_start = w.p;
end;
$$;

drop function consume_usage_once_batch(
  text[], text[], timestamptz[], text[], text[], timestamptz[], bigint[], bigint[], bigint[], text[], timestamptz[], timestamptz[]
);
drop function consume_usage_once(text, text, timestamptz, bigint, bigint, bigint, text, timestamptz, timestamptz);
create function consume_usage_once(
  p_user_id text, p_metric text, p_period timestamptz, p_amount bigint, p_ceiling bigint,
  p_limit bigint, p_key text, p_at timestamptz, p_expires_at timestamptz
) returns table (
  outcome text, used bigint, grant_remaining bigint, reserved bigint,
  first_metric text, first_amount bigint, first_used_after bigint, first_limit bigint, first_created_at timestamptz
)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  claimed boolean;
  level bigint;
  until timestamptz;
  held bigint;
  f record;
begin
  insert into accounts (user_id, created_at) values (p_user_id, p_at)
  on conflict (user_id) do nothing;

  -- The counter row first, then the key, then grants (see the first version of this function).
  insert into usage_counters as c (user_id, metric_code, period_start, used, updated_at)
  values (p_user_id, p_metric, p_period, 0, p_at)
  on conflict (user_id, metric_code, period_start) do update set used = c.used
  returning c.used, c.reserved, c.reserved_until into level, held, until;

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
      select 'replayed'::text, null::bigint, null::bigint, null::bigint, k.metric_code, k.amount, k.used_after, k.quota_limit, k.created_at
      from idempotency_keys k
      where k.user_id = p_user_id and k.idempotency_key = p_key;
    return;
  end if;

  if until <= p_at then
    select x.reserved, x.reserved_until into held, until from row_reserved(p_user_id, p_metric, p_period, p_at) x;
  end if;
  select * into f from fit_usage(p_user_id, p_metric, level, held, p_amount, p_ceiling, true, p_at);
  if not f.fits then
    delete from idempotency_keys k where k.user_id = p_user_id and k.idempotency_key = p_key;
    return query
      select 'refused'::text, level, f.grant_remaining, held, null::text, null::bigint, null::bigint, null::bigint, null::timestamptz;
    return;
  end if;

  level := greatest(level + p_amount, 0);
  update usage_counters c set used = level, reserved = held, reserved_until = until, updated_at = p_at
  where c.user_id = p_user_id and c.metric_code = p_metric and c.period_start = p_period;
  update idempotency_keys k set used_after = level, quota_limit = p_limit
  where k.user_id = p_user_id and k.idempotency_key = p_key;
  return query
    select 'granted'::text, level, f.grant_remaining, held, null::text, null::bigint, null::bigint, null::bigint, null::timestamptz;
end;
$$;

create function consume_usage_once_batch(
  row_users text[], row_metrics text[], row_periods timestamptz[],
  users text[], metrics text[], periods timestamptz[], amounts bigint[], ceilings bigint[],
  limits bigint[], keys text[], ats timestamptz[], expirations timestamptz[]
) returns table (
  ordinal integer, outcome text, used bigint, grant_remaining bigint, reserved bigint,
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
      select i, o.outcome, o.used, o.grant_remaining, o.reserved, o.first_metric, o.first_amount, o.first_used_after, o.first_limit, o.first_created_at
      from consume_usage_once(
        users[i], metrics[i], periods[i], amounts[i], ceilings[i], limits[i], keys[i], ats[i], expirations[i]
      ) o;
  end loop;
end;
$$;

-- consume_items_batch (1765584000000) deciding with fit_usage, and taking ReserveUsage calls too:
-- a call with a `call_hold_until` holds its items until then instead of counting them. Its items
-- are decided as a consumption's (all or none), draw nothing, and on success make a reservation
-- and its holds (`reservation_id`); its key has kind 'reserve', and a replay answers the
-- reservation made under it. Each row's `reserved` grows by its hold, `reserved_until` moves to
-- its expiry when that is earlier.
drop function consume_items_batch(
  text[], text[], timestamptz[], integer[], integer[], bigint[], bigint[], bigint[], text[], text[], timestamptz, timestamptz
);
create function consume_items_batch(
  row_users text[], row_metrics text[], row_periods timestamptz[],
  item_calls integer[], item_rows integer[], item_amounts bigint[], item_ceilings bigint[], item_limits bigint[],
  call_users text[], call_keys text[], call_hold_until timestamptz[], at timestamptz, key_expires_at timestamptz
) returns table (
  call integer, item integer, outcome text, fits boolean, used bigint, grant_remaining bigint, reserved bigint,
  reservation_id uuid, first_metric text, first_amount bigint, first_limit bigint, first_created_at timestamptz
)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  levels bigint[];
  held bigint[];
  untils timestamptz[];
  lapsed boolean;
  first_item integer := 1;
  last_item integer;
  r integer;
  claimed boolean;
  all_fit boolean;
  item_fits boolean[];
  needs bigint[];
  claims bigint[];
  grants bigint[];
  reserving boolean;
  made uuid;
  f record;
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
    returning c.user_id, c.metric_code, c.period_start, c.used, c.reserved, c.reserved_until
  )
  select array_agg(l.used order by w.k), array_agg(l.reserved order by w.k), array_agg(l.reserved_until order by w.k),
    coalesce(bool_or(l.reserved_until <= at), false)
  into levels, held, untils, lapsed
  from unnest(row_users, row_metrics, row_periods) with ordinality as w (u, m, p, k)
  join locked l on l.user_id = w.u and l.metric_code = w.m and l.period_start = w.p;
  if lapsed then
    select x.reserved, x.reserved_until into held, untils from rows_reserved(row_users, row_metrics, row_periods, held, untils, at) x;
  end if;

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
    reserving := call_hold_until[n] is not null;

    claimed := true;
    if call_keys[n] is not null then
      claimed := null;
      insert into consumption_keys as x (user_id, idempotency_key, kind, metrics, amounts, created_at, expires_at)
      values (
        call_users[n], call_keys[n], case when reserving then 'reserve' else 'consume' end,
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
      select v.id into made from reservations v where v.user_id = call_users[n] and v.idempotency_key = call_keys[n];
      for j in 1 .. cardinality(k.metrics) loop
        return query select n, j, 'replayed:' || k.kind, null::boolean, (k.used_after)[j], null::bigint, null::bigint,
          made, (k.metrics)[j], (k.amounts)[j], (k.quota_limits)[j], k.created_at;
      end loop;
    else
      all_fit := true;
      item_fits := '{}';
      needs := '{}';
      claims := '{}';
      grants := '{}';
      for i in first_item .. last_item loop
        r := item_rows[i];
        needs[i] := 0;
        grants[i] := null;
        if levels[r] + held[r] + item_amounts[i] <= item_ceilings[i] then
          item_fits[i] := true;
        else
          select * into f from fit_usage(row_users[r], row_metrics[r], levels[r], held[r], item_amounts[i], item_ceilings[i], false, at);
          item_fits[i] := f.fits;
          needs[i] := f.need;
          claims[i] := greatest(held[r] - greatest(item_ceilings[i] - levels[r], 0), 0);
          grants[i] := f.grant_remaining;
        end if;
        all_fit := all_fit and item_fits[i];
      end loop;

      made := null;
      if all_fit and reserving then
        insert into reservations (user_id, idempotency_key, metrics, amounts, period_starts, quota_limits, created_at, expires_at)
        values (
          call_users[n], call_keys[n],
          array(select row_metrics[item_rows[i]] from generate_series(first_item, last_item) as i order by i),
          item_amounts[first_item:last_item],
          array(select row_periods[item_rows[i]] from generate_series(first_item, last_item) as i order by i),
          item_limits[first_item:last_item], at, call_hold_until[n]
        )
        returning id into made;
        for i in first_item .. last_item loop
          r := item_rows[i];
          held[r] := held[r] + item_amounts[i];
          untils[r] := least(untils[r], call_hold_until[n]);
        end loop;
      elsif all_fit then
        for i in first_item .. last_item loop
          r := item_rows[i];
          if needs[i] > 0 then
            select * into d from draw_usage_grants(row_users[r], row_metrics[r], needs[i], claims[i], at);
            grants[i] := d.remaining;
          end if;
          levels[r] := greatest(levels[r] + item_amounts[i], 0);
        end loop;
      end if;

      if all_fit and call_keys[n] is not null then
        update consumption_keys x
        set used_after = array(select levels[item_rows[i]] from generate_series(first_item, last_item) as i order by i),
            quota_limits = item_limits[first_item:last_item]
        where x.user_id = call_users[n] and x.idempotency_key = call_keys[n];
      elsif call_keys[n] is not null then
        delete from consumption_keys x where x.user_id = call_users[n] and x.idempotency_key = call_keys[n];
      end if;

      return query select n, i - first_item + 1, case when all_fit then 'granted' else 'refused' end, item_fits[i],
        levels[item_rows[i]], grants[i], held[item_rows[i]], made, null::text, null::bigint, null::bigint, null::timestamptz
        from generate_series(first_item, last_item) as i;
    end if;
    first_item := last_item + 1;
  end loop;

  update usage_counters x set used = w.used, reserved = w.held, reserved_until = w.until, updated_at = at
  from unnest(row_users, row_metrics, row_periods, levels, held, untils) as w (u, m, p, used, held, until)
  where x.user_id = w.u and x.metric_code = w.m and x.period_start = w.p;
end;
$$;

-- Commits (p_commit) or releases a held reservation of p_user_id. The caller holds the locks of
-- the counter rows it holds on (settle_reservations_batch takes them first, in the order every
-- batch locks in); the reservation is locked after them. A commit counts
-- p_amounts of p_metrics (each at most what was reserved for it; metrics left out count 0) on the
-- rows the reservation held, and is never refused: what the holds took from the allowance and
-- grants is what it uses, drawing from grants (as far as they go, under p_ceilings) what the
-- allowance left after other holds cannot cover. Both remove the holds. One row per reserved item: `outcome` is
-- 'committed' or 'released'; 'settled' for a reservation settled before (its state in `state`,
-- what a commit counted in `actual` and `used`); 'expired' past `expires_at`; 'not_found';
-- 'too_much' or 'not_reserved' for an item of p_metrics (in `metric`) that cannot be committed.
create function settle_reservation(
  p_user_id text, p_reservation_id uuid, p_commit boolean, p_metrics text[], p_amounts bigint[], p_ceilings bigint[], p_at timestamptz
) returns table (
  outcome text, state text, metric text, period_start timestamptz, amount bigint, actual bigint, used bigint,
  reserved bigint, grant_remaining bigint, created_at timestamptz, expires_at timestamptz, settled_at timestamptz
)
language plpgsql
as $$
#variable_conflict use_column
declare
  v reservations;
  j integer;
  i integer;
  taken bigint;
  level bigint;
  others bigint;
  until timestamptz;
  free bigint;
  available bigint;
  draw bigint;
  counted bigint[] := '{}';
  afters bigint[] := '{}';
  heldnow bigint[] := '{}';
  grantsnow bigint[] := '{}';
  d record;
begin
  select * into v from reservations x where x.id = p_reservation_id and x.user_id = p_user_id for update;
  if not found then
    return query select 'not_found'::text, null::text, null::text, null::timestamptz, null::bigint, null::bigint, null::bigint,
      null::bigint, null::bigint, null::timestamptz, null::timestamptz, null::timestamptz;
    return;
  end if;
  for i in 1 .. coalesce(cardinality(p_metrics), 0) loop
    j := array_position(v.metrics, p_metrics[i]);
    if j is null or p_amounts[i] > v.amounts[j] then
      return query select case when j is null then 'not_reserved' else 'too_much' end, v.state, p_metrics[i], null::timestamptz,
        case when j is null then null else v.amounts[j] end, p_amounts[i], null::bigint, null::bigint, null::bigint, v.created_at, v.expires_at, v.settled_at;
      return;
    end if;
  end loop;

  if v.state <> 'held' or v.expires_at <= p_at then
    return query select case when v.state <> 'held' then 'settled' else 'expired' end, v.state, v.metrics[n], v.period_starts[n],
      v.amounts[n], (v.actual)[n], (v.used_after)[n], null::bigint, null::bigint, v.created_at, v.expires_at, v.settled_at
      from generate_series(1, cardinality(v.metrics)) as n;
    return;
  end if;

  for j in 1 .. cardinality(v.metrics) loop
    i := array_position(p_metrics, v.metrics[j]);
    taken := case when p_commit and i is not null then p_amounts[i] else 0 end;
    select c.used, c.reserved, c.reserved_until into level, others, until
    from usage_counters c
    where c.user_id = p_user_id and c.metric_code = v.metrics[j] and c.period_start = v.period_starts[j];
    if until <= p_at then
      select x.reserved, x.reserved_until into others, until from row_reserved(p_user_id, v.metrics[j], v.period_starts[j], p_at) x;
    end if;
    -- The row counts this reservation's hold (it has not expired); the rest is the others'. When
    -- it was the earliest to expire, the user's next held expiry (of any row: never later than
    -- this row's) is when the row's sum must be taken again.
    others := greatest(others - v.amounts[j], 0);
    if others = 0 then
      until := null;
    elsif until >= v.expires_at then
      select coalesce(min(x.expires_at), p_at) into until from reservations x
      where x.user_id = p_user_id and x.state = 'held' and x.expires_at > p_at and x.id <> p_reservation_id;
    end if;
    grantsnow[j] := null;
    if taken > 0 and p_ceilings[i] < 9007199254740991 and level + others + taken > p_ceilings[i] then
      free := greatest(p_ceilings[i] - level, 0);
      select coalesce(sum(g.remaining), 0) into available from usage_grants g
      where g.user_id = p_user_id and g.metric_code = v.metrics[j] and g.remaining > 0 and (g.expires_at is null or g.expires_at > p_at);
      grantsnow[j] := available;
      -- What the allowance left after other holds cannot cover. Grants held for this reservation
      -- cover it unless they were revoked or expired since; then it takes what there is.
      draw := least(taken - greatest(free - others, 0), available);
      if draw > 0 then
        select * into d from draw_usage_grants(p_user_id, v.metrics[j], draw, 0, p_at);
        grantsnow[j] := d.remaining;
      end if;
    end if;
    update usage_counters c
    set used = c.used + taken, reserved = others, reserved_until = until, updated_at = p_at
    where c.user_id = p_user_id and c.metric_code = v.metrics[j] and c.period_start = v.period_starts[j]
    returning c.used into level;
    counted[j] := taken;
    afters[j] := level;
    heldnow[j] := others;
  end loop;

  update reservations x
  set state = case when p_commit then 'committed' else 'released' end, settled_at = p_at,
      actual = case when p_commit then counted end, used_after = case when p_commit then afters end
  where x.id = p_reservation_id;
  return query select case when p_commit then 'committed' else 'released' end,
    case when p_commit then 'committed' else 'released' end, v.metrics[n], v.period_starts[n], v.amounts[n],
    counted[n], afters[n], heldnow[n], grantsnow[n], v.created_at, v.expires_at, p_at
    from generate_series(1, cardinality(v.metrics)) as n;
end;
$$;

-- Commits and releases that arrive together, in one statement and one commit (the group commit
-- of IncrementUsage). The counter rows that the batch's reservations hold on are locked first,
-- in the order every batch locks its rows in (src/db/usage-counters.ts lockOrder: user, metric
-- and period, strings in "C" order), then the grants of every (user, metric), so batches never
-- deadlock one another; then each call is settled in arrival order by settle_reservation (the
-- `call` column numbers them from 1). A commit's items are
-- item_*[call_first_items[n]:call_last_items[n]] (an empty range for a release).
create function settle_reservations_batch(
  call_users text[], call_ids uuid[], call_commits boolean[], call_first_items integer[], call_last_items integer[],
  item_metrics text[], item_amounts bigint[], item_ceilings bigint[], at timestamptz
) returns table (
  call integer, outcome text, state text, metric text, period_start timestamptz, amount bigint, actual bigint, used bigint,
  reserved bigint, grant_remaining bigint, created_at timestamptz, expires_at timestamptz, settled_at timestamptz
)
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  held_users text[];
  held_metrics text[];
  held_periods timestamptz[];
begin
  select array_agg(x.u order by x.u collate "C", x.m collate "C", x.p), array_agg(x.m order by x.u collate "C", x.m collate "C", x.p),
    array_agg(x.p order by x.u collate "C", x.m collate "C", x.p)
  into held_users, held_metrics, held_periods
  from (
    select distinct r.user_id as u, i.m, i.p
    from reservations r
    join unnest(call_users, call_ids) as w (u, id) on r.id = w.id and r.user_id = w.u
    cross join lateral unnest(r.metrics, r.period_starts) as i (m, p)
    where r.id = any(call_ids)
  ) x;

  -- The rows exist: each reservation made its own.
  perform 1 from usage_counters c
  join unnest(held_users, held_metrics, held_periods) with ordinality as w (u, m, p, k)
    on c.user_id = w.u and c.metric_code = w.m and c.period_start = w.p
  order by w.k
  for update of c;

  perform 1 from usage_grants g
  where g.remaining > 0
    and (g.user_id, g.metric_code) in (select distinct u, m from unnest(held_users, held_metrics) as w (u, m))
  order by g.id
  for update;

  for n in 1 .. cardinality(call_users) loop
    return query
      select n, s.* from settle_reservation(
        call_users[n], call_ids[n], call_commits[n],
        coalesce(item_metrics[call_first_items[n]:call_last_items[n]], '{}'),
        coalesce(item_amounts[call_first_items[n]:call_last_items[n]], '{}'),
        coalesce(item_ceilings[call_first_items[n]:call_last_items[n]], '{}'),
        at
      ) s;
  end loop;
end;
$$;

drop function draw_usage_grants(text, text, bigint, timestamptz);

-- Down Migration

drop function settle_reservations_batch(text[], uuid[], boolean[], integer[], integer[], text[], bigint[], bigint[], timestamptz);
drop function settle_reservation(text, uuid, boolean, text[], bigint[], bigint[], timestamptz);
drop function consume_items_batch(
  text[], text[], timestamptz[], integer[], integer[], bigint[], bigint[], bigint[], text[], text[], timestamptz[], timestamptz, timestamptz
);
drop function consume_usage_with_grants(text, text, timestamptz, bigint, bigint, timestamptz);

-- The functions as 1765411200000_overrides-and-grants.sql and 1765584000000_multi-metric-consumption.sql made them.
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

drop function fit_usage(text, text, bigint, bigint, bigint, bigint, boolean, timestamptz);
drop function draw_usage_grants(text, text, bigint, bigint, timestamptz);
drop function rows_reserved(text[], text[], timestamptz[], bigint[], timestamptz[], timestamptz);
drop function row_reserved(text, text, timestamptz, timestamptz);
delete from consumption_keys where kind = 'reserve';
alter table consumption_keys drop constraint consumption_keys_kind_check;
alter table consumption_keys add constraint consumption_keys_kind_check check (kind in ('consume', 'refund', 'set'));
alter table usage_counters drop column reserved_until;
alter table usage_counters drop column reserved;
drop table reservations;
