-- Layer 4, functions by concern: hot mode (buckets in 23_hot_buckets.sql).
--
-- Lock rule. A level and its buckets are one lock unit, and units are locked in (item_id,
-- location_id) order like levels always were: whoever waits for a bucket holds no unit after its
-- level. A hold on a hot level takes one bucket with SKIP LOCKED and never waits for it, so the
-- holders of a bucket can be waiting only for later units, and nobody holding those can be waiting
-- for the bucket: no deadlock. lock_levels is the one way to lock several levels.

-- The fast path of a hold on a hot level: the first bucket, from a per-session starting point so
-- that sessions spread, that nobody has locked and that has the units; when every bucket that has
-- them is busy (more buyers than buckets), the hold queues on one of them, as a plain conditional
-- UPDATE would, instead of pooling the whole level (`wait`). `bucket` names one the caller already
-- holds (after a rebalance). Records the bucket on the hold. Null when none fits. The caller runs
-- each attempt in a subtransaction of its own: SKIP LOCKED can leave a bucket locked whose re-check
-- failed, and waiting for another bucket of the level while holding it deadlocks with a rebalance.
create function inventory.take_from_bucket(item_id bigint, location_id bigint, quantity numeric,
                                           movement inventory.movement, bucket smallint default null,
                                           wait boolean default false)
returns smallint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_bucket smallint := take_from_bucket.bucket;
  v_start smallint := 1 + pg_catalog.pg_backend_pid() % 64;
begin
  if v_bucket is null and not take_from_bucket.wait then
    -- In key order from this session's starting bucket, then from the first: an index scan that
    -- stops at the first free one (sorting every bucket by a computed order cost a full read of them).
    select c.bucket into v_bucket from inventory.hot_buckets c
     where c.item_id = take_from_bucket.item_id and c.location_id = take_from_bucket.location_id
       and c.bucket >= v_start and c.free >= take_from_bucket.quantity
     order by c.bucket limit 1
       for no key update skip locked;
    if v_bucket is null then
      select c.bucket into v_bucket from inventory.hot_buckets c
       where c.item_id = take_from_bucket.item_id and c.location_id = take_from_bucket.location_id
         and c.bucket < v_start and c.free >= take_from_bucket.quantity
       order by c.bucket limit 1
         for no key update skip locked;
    end if;
  elsif v_bucket is null then
    -- Every bucket that has the units is busy: queue on one, as a conditional UPDATE would.
    select c.bucket into v_bucket from inventory.hot_buckets c
     where c.item_id = take_from_bucket.item_id and c.location_id = take_from_bucket.location_id
       and c.free >= take_from_bucket.quantity
     order by c.bucket >= v_start desc, c.bucket limit 1;
  end if;
  if v_bucket is null then
    return null;
  end if;
  update inventory.hot_buckets b
     set held = b.held + take_from_bucket.quantity, pending_movement = take_from_bucket.movement
   where b.item_id = take_from_bucket.item_id and b.location_id = take_from_bucket.location_id
     and b.bucket = v_bucket and b.free >= take_from_bucket.quantity;
  if not found then
    return null;
  end if;
  update inventory.reservations r set bucket = v_bucket
   where r.reservation_id = (take_from_bucket.movement).reservation_id;
  return v_bucket;
end
$$;
comment on function inventory.take_from_bucket(bigint, bigint, numeric, inventory.movement, smallint, boolean) is 'Holds units in a bucket of a hot level that nobody has locked (wait: else queueing on a busy one that has them; or in the given one); returns its number, null when none has them.';

-- Pools every free unit of a level (its own and its buckets') under the level's lock, already
-- held by the caller, and deals them out again: to the level row itself when gathering or when the
-- level is not hot (then returns 0), else evenly over the active buckets, the one with most free
-- units getting `take` more (returns its number), or nothing moves and null is returned when the
-- pool is short of `take`. Every change is a REBALANCE movement; totals do not change.
create function inventory.rebalance_level(item_id bigint, location_id bigint, take numeric, gather boolean)
returns smallint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_buckets smallint[];
  v_free numeric[];
  v_level_free numeric;
  v_active integer;
  v_pool numeric;
  v_share numeric;
  v_chosen smallint;
  v_delta numeric;
  v_movement inventory.movement := inventory.describe_movement('REBALANCE', 'hot mode: free units rebalanced');
begin
  select s.on_hand - s.reserved, case when rebalance_level.gather then 1 else s.hot_buckets end
    into v_level_free, v_active
    from inventory.stock_levels s
   where s.item_id = rebalance_level.item_id and s.location_id = rebalance_level.location_id;
  select pg_catalog.array_agg(b.bucket order by b.bucket), pg_catalog.array_agg(b.free order by b.bucket)
    into v_buckets, v_free
    from (select c.bucket, c.free from inventory.hot_buckets c
           where c.item_id = rebalance_level.item_id and c.location_id = rebalance_level.location_id
           order by c.bucket
             for no key update) b;
  if v_buckets is null then
    return 0;  -- never hot: the caller's conditional UPDATE of the level row decides
  end if;
  v_pool := v_level_free + (select pg_catalog.sum(f) from pg_catalog.unnest(v_free) f);
  if v_active > 1 and v_pool < rebalance_level.take then
    return null;
  end if;
  if v_active > 1 then
    v_share := pg_catalog.floor((v_pool - rebalance_level.take) / v_active);
    select b into v_chosen from rows from (pg_catalog.unnest(v_buckets), pg_catalog.unnest(v_free)) as x (b, f)
     where b <= v_active order by f desc, b limit 1;
  end if;
  -- Each bucket's target: 0 when gathering or inactive; else the share, the chosen one also the
  -- take and what the even split leaves over.
  with target as (
    select x.b, x.f,
           case when v_active = 1 or x.b > v_active then 0
                when x.b = v_chosen then v_pool - v_share * (v_active - 1)
                else v_share end as units
      from rows from (pg_catalog.unnest(v_buckets), pg_catalog.unnest(v_free)) as x (b, f)
  ), moved as (
    update inventory.hot_buckets h
       set parked = h.parked + (t.units - t.f), pending_movement = v_movement
      from target t
     where h.item_id = rebalance_level.item_id and h.location_id = rebalance_level.location_id
       and h.bucket = t.b and t.units <> t.f
    returning t.units - t.f as delta)
  select coalesce(pg_catalog.sum(m.delta), 0) into v_delta from moved m;
  if v_delta <> 0 then
    update inventory.stock_levels s set reserved = s.reserved + v_delta, pending_movement = v_movement
     where s.item_id = rebalance_level.item_id and s.location_id = rebalance_level.location_id;
  end if;
  return case when v_active > 1 then v_chosen else 0 end;
end
$$;
comment on function inventory.rebalance_level(bigint, bigint, numeric, boolean) is 'Under the level''s lock: pools its free units with its buckets'' and deals them out again (to the level row when gathering or not hot: returns 0; else evenly over the buckets, one of them with `take` more: returns it; null when the pool is short).';

-- The one way to lock several stock levels: in (item_id, location_id) order, each hot level's
-- buckets right after it (the lock rule above); gather => also moves the free units parked in
-- them back to the level row, for callers that take units from the row itself. Returns whether
-- any of the levels is lot-tracked.
create function inventory.lock_levels(item_ids bigint[], location_ids bigint[], gather boolean default false)
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  v_lots boolean := false;
  v_level record;
  c_levels refcursor;
begin
  -- The distinct levels asked for. Below, rows are found through the primary key by "= any" on
  -- both columns (index conditions) and then kept only when they are one of the pairs: a join with
  -- the list was planned as a hash join over every stock level.
  select pg_catalog.array_agg(k.item_id order by k.item_id, k.location_id),
         pg_catalog.array_agg(k.location_id order by k.item_id, k.location_id)
    into lock_levels.item_ids, lock_levels.location_ids
    from (select distinct x.item_id, x.location_id
            from rows from (pg_catalog.unnest(lock_levels.item_ids), pg_catalog.unnest(lock_levels.location_ids))
                 as x (item_id, location_id)) k;
  if not exists (select from inventory.stock_levels s
                  where s.item_id = any (lock_levels.item_ids) and s.location_id = any (lock_levels.location_ids)
                    and s.hot_buckets > 1) then
    select coalesce(pg_catalog.bool_or(x.track_lots), false) into v_lots
      from (select s.track_lots from inventory.stock_levels s
             where s.item_id = any (lock_levels.item_ids) and s.location_id = any (lock_levels.location_ids)
               and exists (select from pg_catalog.generate_subscripts(lock_levels.item_ids, 1) n
                            where lock_levels.item_ids[n] = s.item_id and lock_levels.location_ids[n] = s.location_id)
             order by s.item_id, s.location_id
               for update of s) x;
    return v_lots;
  end if;
  -- One level per FETCH (the rows are locked as they leave the sort), so each is locked only after
  -- the previous one's buckets.
  open c_levels for
    select s.item_id, s.location_id, s.hot_buckets, s.track_lots from inventory.stock_levels s
     where s.item_id = any (lock_levels.item_ids) and s.location_id = any (lock_levels.location_ids)
       and exists (select from pg_catalog.generate_subscripts(lock_levels.item_ids, 1) n
                    where lock_levels.item_ids[n] = s.item_id and lock_levels.location_ids[n] = s.location_id)
     order by s.item_id, s.location_id
       for update of s;
  loop
    fetch c_levels into v_level;
    exit when not found;
    v_lots := v_lots or v_level.track_lots;
    if v_level.hot_buckets > 1 then
      if lock_levels.gather then
        perform inventory.rebalance_level(v_level.item_id, v_level.location_id, 0, true);
      else
        perform from inventory.hot_buckets b
         where b.item_id = v_level.item_id and b.location_id = v_level.location_id
         order by b.bucket
           for no key update;
      end if;
    end if;
  end loop;
  close c_levels;
  return v_lots;
end
$$;
comment on function inventory.lock_levels(bigint[], bigint[], boolean) is 'Locks stock levels in key order, each hot level''s buckets right after it (gather: moving their free units back to the level row); returns whether any is lot-tracked.';

-- Holds leave their bucket before they are shipped, released or expired: each moves back to the
-- level row (which already counts its units in reserved), so those movements are the level's own.
-- The callers hold the levels' locks (lock_levels).
create function inventory.unpark_holds(reservation_ids bigint[]) returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  with parked as (
    update inventory.reservations r set bucket = null
      from inventory.reservations o
     where o.reservation_id = r.reservation_id and r.reservation_id = any (unpark_holds.reservation_ids)
       and o.bucket is not null
    returning o.item_id, o.location_id, o.bucket, o.reservation_id, o.quantity - o.quantity_fulfilled as units)
  update inventory.hot_buckets b
     set parked = b.parked - p.units, held = b.held - p.units,
         pending_movement = inventory.describe_movement('REBALANCE', 'hot mode: holds moved to the level',
           reservation_id => case when p.holds = 1 then p.reservation_ids[1] end,
           metadata => pg_catalog.jsonb_build_object('reservation_ids', pg_catalog.to_jsonb(p.reservation_ids)))
    from (select x.item_id, x.location_id, x.bucket, pg_catalog.sum(x.units) as units, pg_catalog.count(*) as holds,
                 pg_catalog.array_agg(x.reservation_id order by x.reservation_id) as reservation_ids
            from parked x group by x.item_id, x.location_id, x.bucket) p
   where b.item_id = p.item_id and b.location_id = p.location_id and b.bucket = p.bucket;
end
$$;
comment on function inventory.unpark_holds(bigint[]) is 'Moves the given holds out of their hot buckets back to their levels (a REBALANCE movement per bucket), before they are shipped, released or expired.';

create function inventory.set_hot_mode(sku text, location text, buckets integer)
returns inventory_api.hot_mode
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
begin
  select * into v_item from inventory.item_for_sku(set_hot_mode.sku);
  v_location_id := inventory.location_for_code(set_hot_mode.location);
  perform inventory.authorize('admin', v_location_id);
  if set_hot_mode.buckets is null or set_hot_mode.buckets not between 1 and 64 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'buckets must be between 1 (hot mode off) and 64',
      pg_catalog.jsonb_build_object('argument', 'buckets', 'problem', 'out of range'));
  end if;
  if v_item.track_lots and set_hot_mode.buckets > 1 then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'lot-tracked items cannot be hot: their holds take units lot by lot under the level''s lock',
      pg_catalog.jsonb_build_object('argument', 'sku', 'problem', 'lot-tracked', 'sku', set_hot_mode.sku));
  end if;
  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_location_id)
  on conflict do nothing;
  -- The unit, as it is now: the level, then its buckets; their free units back on the level row.
  perform inventory.lock_levels(array[v_item.item_id], array[v_location_id]);
  perform inventory.rebalance_level(v_item.item_id, v_location_id, 0, true);
  insert into inventory.hot_buckets (item_id, location_id, bucket)
  select v_item.item_id, v_location_id, n from pg_catalog.generate_series(1, set_hot_mode.buckets) n
   where set_hot_mode.buckets > 1
  on conflict do nothing;
  update inventory.stock_levels s set hot_buckets = set_hot_mode.buckets
   where s.item_id = v_item.item_id and s.location_id = v_location_id and s.hot_buckets <> set_hot_mode.buckets;
  if set_hot_mode.buckets > 1 then
    perform inventory.rebalance_level(v_item.item_id, v_location_id, 0, false);
  end if;
  return (select row(set_hot_mode.sku, set_hot_mode.location, set_hot_mode.buckets, s.on_hand, s.reserved - p.parked,
                     s.available + p.parked,
                     array(select b.free from inventory.hot_buckets b
                            where b.item_id = s.item_id and b.location_id = s.location_id
                              and b.bucket <= set_hot_mode.buckets and set_hot_mode.buckets > 1
                            order by b.bucket))::inventory_api.hot_mode
            from inventory.stock_levels s
           cross join lateral (select inventory.parked_units(s.item_id, s.location_id) as parked) p
           where s.item_id = v_item.item_id and s.location_id = v_location_id);
end
$$;
comment on function inventory.set_hot_mode(text, text, integer) is 'Implements inventory_api.set_hot_mode.';
