-- Layer 4, functions by concern: resolving holds: shipping, releasing and expiring them, shared by fulfil, cancel and the sweeper.
--
-- Lock order, everywhere: stock levels first, in (item_id, location_id) order; then the rows that
-- belong to them (holds, adjustments); then reorder alerts. A stock level's lock guards everything
-- at that level, so a hold is only ever locked by a call that already holds its level: no call waits
-- for a hold while another holds that hold and waits for the level. Lazy expiry, which needs a
-- level's overdue holds while other levels are held, locks the level (in key order) and then takes
-- its holds with SKIP LOCKED, which never waits. New holds need no lock. Following this order, no
-- two pyinv calls can deadlock (tests/test_lock_order.py steps every pair through interleavings).

-- Builds the public view of holds from their rows (used after set-based changes).
create function inventory.reservation_changes(reservation_ids bigint[], movement_types text[], quantities numeric[])
returns setof inventory_api.reservation_change
language sql stable
set search_path = ''
as $$
  select r.reservation_id, r.order_ref, i.sku, l.code, c.movement_type, c.quantity, r.quantity_fulfilled,
         case when r.status = 'ACTIVE' then r.quantity - r.quantity_fulfilled else 0 end, r.status
    from rows from (pg_catalog.unnest(reservation_changes.reservation_ids),
                    pg_catalog.unnest(reservation_changes.movement_types),
                    pg_catalog.unnest(reservation_changes.quantities)) as c (reservation_id, movement_type, quantity)
    join inventory.reservations r on r.reservation_id = c.reservation_id
    join inventory.items i on i.item_id = r.item_id
    join inventory.locations l on l.location_id = r.location_id
   order by r.reservation_id
$$;

comment on function inventory.reservation_changes(bigint[], text[], numeric[]) is 'reservation_change rows for holds changed by the current call.';

create type inventory.hold_move as (
  reservation_id bigint, item_id bigint, location_id bigint, movement_type text, quantity numeric);

comment on type inventory.hold_move is 'One change to one hold: SHIP, RELEASE or EXPIRE of quantity units.';

-- When a hold made now with `expires_in` lapses (the configured default when null). The limits apply
-- to the resulting time, not to the interval: '1 mon -29 days -23 hours' compares as positive but
-- lands in the past in February, and '12 mons 6 days' compares as 366 days but is 371.
create function inventory.hold_expiry(expires_in interval) returns timestamptz
language plpgsql stable
set search_path = ''
as $$
declare
  v_expires_at timestamptz;
begin
  if hold_expiry.expires_in is null then
    return pg_catalog.now() + (select s.default_reservation_ttl from inventory.settings s);
  end if;
  -- A nominal bound first, so that the addition below cannot overflow.
  if hold_expiry.expires_in between interval '-400 days' and interval '400 days' then
    v_expires_at := pg_catalog.now() + hold_expiry.expires_in;
  end if;
  if v_expires_at is null or v_expires_at <= pg_catalog.now()
     or v_expires_at > pg_catalog.now() + interval '366 days' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'expires_in must make the hold lapse after now and at most 366 days from now',
      pg_catalog.jsonb_build_object('argument', 'expires_in', 'problem', 'out of range',
                                    'value', hold_expiry.expires_in::text));
  end if;
  return v_expires_at;
end
$$;

comment on function inventory.hold_expiry(interval) is 'Expiry time of a hold made now: after now and at most 366 days later (INVALID_ARGUMENT otherwise); the configured default TTL when expires_in is null.';

-- How a SHIP, RELEASE or EXPIRE of holds is described in the ledger: one movement per level and
-- type, naming its hold when there is one and listing them all in metadata.
create function inventory.hold_move_description(movement_type text, reason text, reference text,
                                                idempotency_key text, reservation_ids bigint[])
returns inventory.movement
language sql immutable parallel safe
set search_path = ''
begin atomic
  select inventory.describe_movement(hold_move_description.movement_type::inventory.movement_type,
           coalesce(hold_move_description.reason, case hold_move_description.movement_type
                      when 'SHIP' then 'order shipped'
                      when 'RELEASE' then 'reservation cancelled'
                      else 'reservation expired' end),
           hold_move_description.reference, hold_move_description.idempotency_key,
           reservation_id => case when pg_catalog.cardinality(hold_move_description.reservation_ids) = 1
                                  then hold_move_description.reservation_ids[1] end,
           metadata => pg_catalog.jsonb_build_object('reservation_ids',
                                                     pg_catalog.to_jsonb(hold_move_description.reservation_ids)));
end;

comment on function inventory.hold_move_description(text, text, text, text, bigint[]) is 'Ledger description of shipping, releasing or expiring holds at one level.';

-- Applies hold moves set-wise: updates the holds, then every affected stock level once per
-- movement type, locking the levels in the global order first. The ledger gets one row per level
-- and type, listing the reservations it covers. Levels of lot-tracked items move with their lots
-- (apply_lot_hold_moves).
create function inventory.apply_hold_moves(moves inventory.hold_move[], reference text, reason text,
                                           idempotency_key text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_type text;
  v_lots boolean;
begin
  v_lots := inventory.lock_levels(array(select m.item_id from pg_catalog.unnest(apply_hold_moves.moves) m),
                                  array(select m.location_id from pg_catalog.unnest(apply_hold_moves.moves) m));
  perform inventory.unpark_holds(array(select m.reservation_id from pg_catalog.unnest(apply_hold_moves.moves) m
                                        where m.quantity > 0));

  update inventory.reservations r
     set quantity_fulfilled = r.quantity_fulfilled + case when m.movement_type = 'SHIP' then m.quantity else 0 end,
         status = case
           when m.movement_type = 'RELEASE' then 'CANCELLED'
           when m.movement_type = 'EXPIRE' then 'EXPIRED'
           when r.quantity_fulfilled + m.quantity = r.quantity then 'FULFILLED'
           else 'ACTIVE' end,
         closed_at = case
           when m.movement_type = 'SHIP' and r.quantity_fulfilled + m.quantity < r.quantity then null
           else pg_catalog.now() end
    from pg_catalog.unnest(apply_hold_moves.moves) m
   where r.reservation_id = m.reservation_id and m.quantity > 0;

  if v_lots then
    perform inventory.apply_lot_hold_moves(apply_hold_moves.moves, apply_hold_moves.reference,
                                           apply_hold_moves.reason, apply_hold_moves.idempotency_key);
  end if;
  -- One statement per movement type: a level may get both a SHIP and a RELEASE in one call, and
  -- a row can be updated only once per statement. Each becomes its own ledger movement.
  foreach v_type in array array['SHIP', 'RELEASE', 'EXPIRE'] loop
    update inventory.stock_levels s
       set on_hand = s.on_hand - case when v_type = 'SHIP' then g.quantity else 0 end,
           reserved = s.reserved - g.quantity,
           pending_movement = inventory.hold_move_description(v_type, apply_hold_moves.reason,
             apply_hold_moves.reference, apply_hold_moves.idempotency_key, g.reservation_ids)
      from (select m.item_id, m.location_id, pg_catalog.sum(m.quantity) as quantity,
                   pg_catalog.array_agg(m.reservation_id order by m.reservation_id) as reservation_ids
              from pg_catalog.unnest(apply_hold_moves.moves) m
             where m.quantity > 0 and m.movement_type = v_type
             group by m.item_id, m.location_id) g
     where s.item_id = g.item_id and s.location_id = g.location_id and not s.track_lots;
  end loop;
end
$$;

comment on function inventory.apply_hold_moves(inventory.hold_move[], text, text, text) is 'Ships, releases or expires holds set-wise and records one ledger movement per level and type.';

-- The part of apply_hold_moves at lot-tracked levels (already locked, holds already updated): each
-- hold's open allocations are consumed first expiring first (the order they were allocated in), the
-- allocations record what was shipped or given back, and each level moves once per type with its lots.
create function inventory.apply_lot_hold_moves(moves inventory.hold_move[], reference text, reason text,
                                               idempotency_key text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_group record;
  v_deltas inventory.lot_delta[];
begin
  for v_group in
    select m.item_id, m.location_id, m.movement_type,
           pg_catalog.array_agg(m.reservation_id order by m.reservation_id) as reservation_ids
      from pg_catalog.unnest(apply_lot_hold_moves.moves) m
      join inventory.stock_levels s on s.item_id = m.item_id and s.location_id = m.location_id
     where m.quantity > 0 and s.track_lots
     group by m.item_id, m.location_id, m.movement_type
     order by m.item_id, m.location_id, m.movement_type
  loop
    with take as (
      select a.reservation_id, a.lot_id,
             least(a.quantity - a.quantity_fulfilled - a.quantity_released,
                   greatest(m.quantity - coalesce(pg_catalog.sum(a.quantity - a.quantity_fulfilled - a.quantity_released)
                              over (partition by a.reservation_id order by l.expires_on nulls last, l.received_at, a.lot_id
                                    rows between unbounded preceding and 1 preceding), 0), 0)) as units
        from pg_catalog.unnest(apply_lot_hold_moves.moves) m
        join inventory.lot_allocations a
          on a.reservation_id = m.reservation_id and a.quantity_fulfilled + a.quantity_released < a.quantity
        join inventory.lots l on l.lot_id = a.lot_id
       where m.item_id = v_group.item_id and m.location_id = v_group.location_id
         and m.movement_type = v_group.movement_type and m.quantity > 0
    ), taken as (
      update inventory.lot_allocations a
         set quantity_fulfilled = a.quantity_fulfilled + case when v_group.movement_type = 'SHIP' then t.units else 0 end,
             quantity_released = a.quantity_released + case when v_group.movement_type = 'SHIP' then 0 else t.units end
        from take t
       where a.reservation_id = t.reservation_id and a.lot_id = t.lot_id and t.units > 0
      returning a.lot_id, a.reservation_id, t.units)
    select pg_catalog.array_agg(row(t.lot_id, case when v_group.movement_type = 'SHIP' then -t.units else 0 end,
                                    -t.units, t.reservation_id)::inventory.lot_delta)
      into v_deltas
      from taken t;
    perform inventory.move_lot_units(v_group.item_id, v_group.location_id, v_deltas,
      inventory.hold_move_description(v_group.movement_type, apply_lot_hold_moves.reason,
                                      apply_lot_hold_moves.reference, apply_lot_hold_moves.idempotency_key,
                                      v_group.reservation_ids));
  end loop;
end
$$;

comment on function inventory.apply_lot_hold_moves(inventory.hold_move[], text, text, text) is 'Ships, releases or expires holds at lot-tracked levels: consumes their allocations first expiring first and moves each level once per type with its lots.';

-- Locks the active holds of an order (optionally of one item), after their stock levels (the global
-- lock order), checks that the caller may act at their locations, and describes them as moves of
-- their whole open quantity: EXPIRE for overdue holds, movement_type null for live ones. Raises
-- NO_RESERVATION when there are none.
create function inventory.lock_order_holds(order_ref text, item_id bigint, sku text)
returns inventory.hold_move[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_moves inventory.hold_move[];
begin
  -- Which levels (a hold never changes level), and may the caller act there; then lock them.
  perform inventory.authorize_locations('operator', array(
    select distinct r.location_id from inventory.reservations r
     where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
       and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id)));
  perform inventory.lock_levels(pg_catalog.array_agg(r.item_id), pg_catalog.array_agg(r.location_id))
     from inventory.reservations r
    where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
      and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id);
  select pg_catalog.array_agg(row(h.reservation_id, h.item_id, h.location_id,
                                  case when h.expires_at <= pg_catalog.now() then 'EXPIRE' end,
                                  h.quantity - h.quantity_fulfilled)::inventory.hold_move
                              order by h.reservation_id)
    into v_moves
    from (select r.reservation_id, r.item_id, r.location_id, r.expires_at, r.quantity, r.quantity_fulfilled
            from inventory.reservations r
           where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
             and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id)
           order by r.reservation_id
             for update) h;
  -- Holds made after the check above, at other locations, are authorised too.
  perform inventory.authorize_locations('operator', array(select m.location_id from pg_catalog.unnest(v_moves) m));
  if v_moves is null then
    perform inventory.raise_error('NO_RESERVATION',
      pg_catalog.format('order %s has no active reservation%s', lock_order_holds.order_ref,
                        coalesce(' for ' || lock_order_holds.sku, '')),
      pg_catalog.jsonb_build_object('order_ref', lock_order_holds.order_ref, 'sku', lock_order_holds.sku));
  end if;
  return v_moves;
end
$$;

comment on function inventory.lock_order_holds(text, bigint, text) is 'Locks the stock levels of an order''s active holds, then the holds; authorises their locations and returns them as moves (EXPIRE for overdue ones); raises NO_RESERVATION when none.';

-- Expires the given overdue holds (already locked by the caller). Returns how many.
create function inventory.expire_holds(reservation_ids bigint[]) returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  v_moves inventory.hold_move[];
begin
  select pg_catalog.array_agg(row(r.reservation_id, r.item_id, r.location_id, 'EXPIRE',
                                  r.quantity - r.quantity_fulfilled)::inventory.hold_move)
    into v_moves
    from inventory.reservations r
   where r.reservation_id = any (expire_holds.reservation_ids) and r.status = 'ACTIVE';
  if v_moves is null then
    return 0;
  end if;
  perform inventory.apply_hold_moves(v_moves, null, null, null);
  return pg_catalog.cardinality(v_moves);
end
$$;

comment on function inventory.expire_holds(bigint[]) is 'Expires locked overdue holds, returning their units to available stock.';

-- Lazy expiry for one level: called when a hold does not fit, so overdue holds never cause
-- INSUFFICIENT_STOCK even before the sweeper has run. The level is locked first (in key order, like
-- every level): a second caller expiring the same level waits here and then finds the first one's
-- result, instead of skipping the holds the first has locked and wrongly reporting the units
-- unavailable. Holds are then taken with SKIP LOCKED: never wait for a hold while holding a level.
create function inventory.expire_overdue_at_level(item_id bigint, location_id bigint) returns integer
language plpgsql volatile
set search_path = ''
as $$
begin
  perform from inventory.stock_levels s
   where s.item_id = expire_overdue_at_level.item_id and s.location_id = expire_overdue_at_level.location_id
     for update;
  return (select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id))
    from (select r.reservation_id from inventory.reservations r
           where r.item_id = expire_overdue_at_level.item_id
             and r.location_id = expire_overdue_at_level.location_id
             and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
             for update skip locked) d);
end
$$;

comment on function inventory.expire_overdue_at_level(bigint, bigint) is 'Locks one stock level, then expires its overdue holds that no other call has locked; returns how many.';

create function inventory.expire_reservations(batch_size integer) returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_expired integer;
  v_items bigint[];
  v_locations bigint[];
begin
  perform inventory.authorize('scheduler');
  if expire_reservations.batch_size is null or expire_reservations.batch_size not between 1 and 100000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'batch_size must be between 1 and 100000',
      pg_catalog.jsonb_build_object('argument', 'batch_size', 'problem', 'out of range'));
  end if;
  -- A batch takes overdue holds level by level: the levels of the oldest overdue holds first, each
  -- with all its overdue holds in expiry order. So a batch locks, updates and writes a ledger row
  -- for a few stock levels, not one per hold, and few reservations wait on it. Levels are claimed
  -- with SKIP LOCKED, so concurrent sweepers share the work level by level instead of queueing on
  -- the same rows. This pass never waits for a lock; when it expires nothing, a rolled-back
  -- subtransaction releases what it claimed before the fallback below waits for levels in key order.
  begin
    select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id)) into v_expired
      from (select h.reservation_id
              from (select o.item_id, o.location_id, pg_catalog.min(o.expires_at) as first_due
                      from (select r.item_id, r.location_id, r.expires_at from inventory.reservations r
                             where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
                             order by r.expires_at
                             limit expire_reservations.batch_size) o
                     group by o.item_id, o.location_id
                     order by first_due, o.item_id, o.location_id) l
             cross join lateral (
                   select s.item_id, s.location_id from inventory.stock_levels s
                    where s.item_id = l.item_id and s.location_id = l.location_id
                      and s.hot_buckets = 1  -- a hot level's buckets must be locked in key order: below
                      for update of s skip locked) lv
             cross join lateral (
                   select r.reservation_id from inventory.reservations r
                    where r.item_id = lv.item_id and r.location_id = lv.location_id and r.status = 'ACTIVE'
                      and r.expires_at <= pg_catalog.now()
                    order by r.expires_at
                    limit expire_reservations.batch_size
                      for update of r skip locked) h
             limit expire_reservations.batch_size) d;
    if v_expired = 0 then
      raise sqlstate 'P0002';
    end if;
  exception when no_data_found then
    v_expired := 0;
  end;
  if v_expired = 0 then
    -- Nothing is overdue, or every level with overdue holds was locked just now (by reservations or
    -- other sweepers): wait for the levels of the oldest overdue holds (in key order, like every
    -- level), then take their holds, so that 0 keeps meaning that nothing is overdue (apart from
    -- holds other sweepers are expiring).
    select pg_catalog.array_agg(o.item_id), pg_catalog.array_agg(o.location_id) into v_items, v_locations
      from (select distinct r.item_id, r.location_id
              from (select h.item_id, h.location_id from inventory.reservations h
                     where h.status = 'ACTIVE' and h.expires_at <= pg_catalog.now()
                     order by h.expires_at
                     limit expire_reservations.batch_size) r) o;
    perform inventory.lock_levels(v_items, v_locations);
    select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id)) into v_expired
      from (select r.reservation_id from inventory.reservations r
             where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
               and (r.item_id, r.location_id) in (
                     select l.item_id, l.location_id
                       from rows from (pg_catalog.unnest(v_items), pg_catalog.unnest(v_locations)) as l (item_id, location_id))
             order by r.expires_at
             limit expire_reservations.batch_size
               for update skip locked) d;
  end if;
  return v_expired;
end
$$;

comment on function inventory.expire_reservations(integer) is 'Implements inventory_api.expire_reservations.';
