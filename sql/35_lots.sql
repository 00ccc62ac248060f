-- Layer 3, shared functions: lots. What makes a lot sellable, how many units of a level each lot
-- state blocks, and the one way units of a lot-tracked item move (move_lot_units), used by receipts,
-- holds, shipments, returns, transfers, adjustments and counts.

create type inventory.lot_delta as (lot_id bigint, on_hand_delta numeric, reserved_delta numeric, reservation_id bigint);

comment on type inventory.lot_delta is 'One change of one lot''s level at a location, for one hold or none.';

-- The day of expiry is a calendar day in UTC, the same for every session whatever its TimeZone.
-- PL/pgSQL, like the other predicates on hot paths: compiled once per session (a SQL function with a
-- pinned search_path is never inlined and is planned again on every call).
create function inventory.lot_today() returns date
language plpgsql stable parallel safe
set search_path = ''
as $$
begin
  return (pg_catalog.now() at time zone 'UTC')::date;
end
$$;

comment on function inventory.lot_today() is 'Today in UTC: a lot is expired once its expires_on is before this day.';

-- Why a lot's units may not be sold, or null when they may: the one home of "sellable". A lot with
-- expires_on before sellable_until is too short-lived for the request (min_shelf_life).
create function inventory.lot_block_reason(qc_status text, quarantined boolean, expires_on date, today date,
                                           sellable_until date)
returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return case when lot_block_reason.quarantined then 'quarantined'
              when lot_block_reason.qc_status = 'FAILED' then 'qc_failed'
              when lot_block_reason.expires_on < lot_block_reason.today then 'expired'
              when lot_block_reason.qc_status = 'PENDING' then 'qc_pending'
              when lot_block_reason.expires_on < lot_block_reason.sellable_until then 'short_shelf_life'
         end;
end
$$;

comment on function inventory.lot_block_reason(text, boolean, date, date, date) is 'Why a lot is not sellable: quarantined, qc_failed, expired, qc_pending or short_shelf_life (expires before sellable_until); null when it is sellable.';

-- The last day a lot must still be sellable on for a hold with this min_shelf_life.
create function inventory.sellable_until(min_shelf_life interval) returns date
language plpgsql stable
set search_path = ''
as $$
begin
  if sellable_until.min_shelf_life is null then
    return inventory.lot_today();
  end if;
  if sellable_until.min_shelf_life < interval '0' or sellable_until.min_shelf_life > interval '36500 days' then
    perform inventory.raise_error('INVALID_ARGUMENT', 'min_shelf_life must be between 0 and 36500 days',
      pg_catalog.jsonb_build_object('argument', 'min_shelf_life', 'problem', 'out of range',
                                    'value', sellable_until.min_shelf_life::text));
  end if;
  return ((pg_catalog.now() + sellable_until.min_shelf_life) at time zone 'UTC')::date;
end
$$;

comment on function inventory.sellable_until(interval) is 'Day a lot must not expire before to serve a hold with min_shelf_life (today when null); INVALID_ARGUMENT when negative or above 36500 days.';

-- Units of a level's lots by why they are blocked (reason null: available), counting units of
-- overdue holds as released (expiry is lazy, as in overdue_quantity). The one home of a lot-tracked
-- level's availability: effective_available, shortfall and the API views read it.
create function inventory.lot_availability(item_id bigint, location_id bigint, sellable_until date)
returns table (reason text, units numeric)
language sql stable
set search_path = ''
begin atomic
  select inventory.lot_block_reason(l.qc_status, l.quarantined, l.expires_on, inventory.lot_today(),
                                    coalesce(lot_availability.sellable_until, inventory.lot_today())) as reason,
         pg_catalog.sum(ll.on_hand - ll.reserved
                        + coalesce((select pg_catalog.sum(a.quantity - a.quantity_fulfilled - a.quantity_released)
                                      from inventory.lot_allocations a
                                      join inventory.reservations r on r.reservation_id = a.reservation_id
                                     where a.lot_id = ll.lot_id and a.location_id = ll.location_id
                                       and a.quantity_fulfilled + a.quantity_released < a.quantity
                                       and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()), 0)) as units
    from inventory.lot_levels ll
    join inventory.lots l on l.lot_id = ll.lot_id
   where ll.item_id = lot_availability.item_id and ll.location_id = lot_availability.location_id
   group by 1;
end;

comment on function inventory.lot_availability(bigint, bigint, date) is 'Free units of a lot-tracked level by block reason (null = available), overdue holds counted as released.';

create function inventory.blocked_quantity(item_id bigint, location_id bigint) returns numeric
language sql stable
set search_path = ''
begin atomic
  select coalesce(pg_catalog.sum(a.units), 0)
    from inventory.lot_availability(blocked_quantity.item_id, blocked_quantity.location_id, null) a
   where a.reason is not null;
end;

comment on function inventory.blocked_quantity(bigint, bigint) is 'Units on hand at a lot-tracked level that no hold takes and no new hold may take: their lot is expired, awaiting or failed QC, or quarantined.';

create function inventory.lot_levels_add_up(item_id bigint, location_id bigint, on_hand numeric, reserved numeric)
returns boolean
language sql stable
set search_path = ''
begin atomic
  select coalesce(pg_catalog.sum(ll.on_hand), 0) = lot_levels_add_up.on_hand
         and coalesce(pg_catalog.sum(ll.reserved), 0) = lot_levels_add_up.reserved
    from inventory.lot_levels ll
   where ll.item_id = lot_levels_add_up.item_id and ll.location_id = lot_levels_add_up.location_id;
end;

comment on function inventory.lot_levels_add_up(bigint, bigint, numeric, numeric) is 'Whether a level''s lots sum to these quantities.';

-- The lot of an item with this number; LOT_NOT_FOUND otherwise.
create function inventory.lot_for_number(item_id bigint, lot_number text, sku text) returns inventory.lots
language plpgsql stable
set search_path = ''
as $$
declare
  v_lot inventory.lots;
begin
  perform inventory.check_text(lot_for_number.lot_number, 'lot_number', 64);
  select * into v_lot from inventory.lots l
   where l.item_id = lot_for_number.item_id and l.lot_number = lot_for_number.lot_number;
  if not found then
    perform inventory.raise_error('LOT_NOT_FOUND',
      pg_catalog.format('item %s has no lot %s', lot_for_number.sku, lot_for_number.lot_number),
      pg_catalog.jsonb_build_object('sku', lot_for_number.sku, 'lot_number', lot_for_number.lot_number));
  end if;
  return v_lot;
end
$$;

comment on function inventory.lot_for_number(bigint, text, text) is 'The lot with this number of the item; raises LOT_NOT_FOUND.';

-- Refuses lot arguments for an item that is not lot-tracked, and requires the lot number of one
-- that is (when required).
create function inventory.check_lot_argument(track_lots boolean, lot_number text, required boolean)
returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if not check_lot_argument.track_lots and check_lot_argument.lot_number is not null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'the item is not tracked by lot: leave lot_number out',
      pg_catalog.jsonb_build_object('argument', 'lot_number', 'problem', 'item not lot-tracked'));
  end if;
  if check_lot_argument.track_lots and check_lot_argument.required and check_lot_argument.lot_number is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'the item is tracked by lot: name the lot (lot_number)',
      pg_catalog.jsonb_build_object('argument', 'lot_number', 'problem', 'missing'));
  end if;
end
$$;

comment on function inventory.check_lot_argument(boolean, text, boolean) is 'INVALID_ARGUMENT when lot_number is given for an item without lots, or missing (and required) for one with.';

-- First expiring, first out: the free units of the sellable lots of one level, taken in order of
-- expiry (lots that never expire last), then of receipt, until `quantity` is covered. Returns the
-- reservation deltas (reserved_delta per lot), or null when the sellable lots do not cover it. The
-- caller holds the level's lock, under which no lot level of it can change.
create function inventory.fefo_allocation(item_id bigint, location_id bigint, quantity numeric,
                                          sellable_until date, reservation_id bigint)
returns inventory.lot_delta[]
language sql stable
set search_path = ''
begin atomic
  select case when pg_catalog.sum(t.take) = fefo_allocation.quantity
              then pg_catalog.array_agg(row(t.lot_id, 0, t.take, fefo_allocation.reservation_id)::inventory.lot_delta
                                        order by t.n) end
    from (select c.lot_id, c.n,
                 least(c.free, fefo_allocation.quantity - (c.running - c.free)) as take
            from (select ll.lot_id, ll.on_hand - ll.reserved as free,
                         pg_catalog.row_number() over w as n,
                         pg_catalog.sum(ll.on_hand - ll.reserved) over w as running
                    from (select inventory.lot_today() as today) t
                   cross join inventory.lot_levels ll
                    join inventory.lots l on l.lot_id = ll.lot_id
                   where ll.item_id = fefo_allocation.item_id and ll.location_id = fefo_allocation.location_id
                     and ll.on_hand > ll.reserved
                     and inventory.lot_block_reason(l.qc_status, l.quarantined, l.expires_on, t.today,
                                                    fefo_allocation.sellable_until) is null
                  window w as (order by l.expires_on nulls last, l.received_at, l.lot_id
                               rows between unbounded preceding and current row)) c
           where c.running - c.free < fefo_allocation.quantity) t;
end;

comment on function inventory.fefo_allocation(bigint, bigint, numeric, date, bigint) is 'FEFO: reservation deltas taking quantity from the sellable lots of a level, first expiring first (then first received); null when they do not cover it.';

-- Moves units of a lot-tracked level: the lots' levels first, then the stock level by their sum
-- (whose trigger checks that the two agree and writes the ledger movement described), then one
-- lot movement per delta pointing at that ledger movement. Deltas that cancel out at the level (a
-- hold moved between lots) change the lots only. Locks the level first (the global lock order).
create function inventory.move_lot_units(item_id bigint, location_id bigint, deltas inventory.lot_delta[],
                                         movement inventory.movement)
returns inventory.stock_levels
language plpgsql volatile
set search_path = ''
as $$
declare
  v_level inventory.stock_levels;
  v_on_hand numeric;
  v_reserved numeric;
begin
  select coalesce(pg_catalog.sum(d.on_hand_delta), 0), coalesce(pg_catalog.sum(d.reserved_delta), 0)
    into v_on_hand, v_reserved
    from pg_catalog.unnest(move_lot_units.deltas) d;
  select * into v_level from inventory.stock_levels s
   where s.item_id = move_lot_units.item_id and s.location_id = move_lot_units.location_id
     for update;
  if v_level.on_hand + v_on_hand >= 1000000000000000 then
    perform inventory.raise_error('INVALID_QUANTITY',
      'on hand would exceed the largest quantity a stock level holds (1e15)',
      pg_catalog.jsonb_build_object('argument', 'quantity', 'value', v_on_hand::text, 'problem', 'on_hand would overflow'));
  end if;
  -- Units arrive in a lot where it may have none yet (a receipt, a return, a transfer in); a hold only
  -- ever takes units a lot level holds already.
  if exists (select from pg_catalog.unnest(move_lot_units.deltas) d where d.on_hand_delta > 0) then
    insert into inventory.lot_levels (lot_id, location_id, item_id)
    select distinct d.lot_id, move_lot_units.location_id, move_lot_units.item_id
      from pg_catalog.unnest(move_lot_units.deltas) d
     where d.on_hand_delta > 0
    on conflict do nothing;
  end if;
  update inventory.lot_levels ll
     set on_hand = ll.on_hand + d.on_hand_delta, reserved = ll.reserved + d.reserved_delta, version = ll.version + 1
    from (select x.lot_id, pg_catalog.sum(x.on_hand_delta) as on_hand_delta,
                 pg_catalog.sum(x.reserved_delta) as reserved_delta
            from pg_catalog.unnest(move_lot_units.deltas) x group by x.lot_id) d
   where ll.lot_id = d.lot_id and ll.location_id = move_lot_units.location_id;
  if v_on_hand <> 0 or v_reserved <> 0 then
    update inventory.stock_levels s
       set on_hand = s.on_hand + v_on_hand, reserved = s.reserved + v_reserved,
           pending_movement = move_lot_units.movement
     where s.item_id = move_lot_units.item_id and s.location_id = move_lot_units.location_id
    returning * into v_level;
  end if;
  insert into inventory.lot_movements (movement_id, lot_id, item_id, location_id, on_hand_delta, reserved_delta,
                                       reservation_id, reason, actor)
  select case when v_on_hand <> 0 or v_reserved <> 0 then v_level.last_movement_id end, d.lot_id,
         move_lot_units.item_id, move_lot_units.location_id, d.on_hand_delta, d.reserved_delta, d.reservation_id,
         coalesce((move_lot_units.movement).reason, (move_lot_units.movement).movement_type::text),
         inventory.current_actor()
    from pg_catalog.unnest(move_lot_units.deltas) d
   where d.on_hand_delta <> 0 or d.reserved_delta <> 0;
  return v_level;
end
$$;

comment on function inventory.move_lot_units(bigint, bigint, inventory.lot_delta[], inventory.movement) is 'Moves units of a lot-tracked level: its lots, then the level (one ledger movement), then the lot movements naming both.';

-- Takes `quantity` more units of a lot-tracked level into a new hold, first expiring first out,
-- recording the hold's allocations. Overdue holds at the level are expired when the sellable lots do
-- not cover it, and the allocation tried once more. Returns whether the units were held.
create function inventory.hold_lot_units(item_id bigint, location_id bigint, quantity numeric,
                                         sellable_until date, reservation_id bigint, movement inventory.movement)
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  v_deltas inventory.lot_delta[];
begin
  perform from inventory.stock_levels s
   where s.item_id = hold_lot_units.item_id and s.location_id = hold_lot_units.location_id
     for update;
  if not found then
    return false;
  end if;
  for attempt in 1 .. 2 loop
    v_deltas := inventory.fefo_allocation(hold_lot_units.item_id, hold_lot_units.location_id, hold_lot_units.quantity,
                                          hold_lot_units.sellable_until, hold_lot_units.reservation_id);
    if v_deltas is not null then
      insert into inventory.lot_allocations (reservation_id, lot_id, item_id, location_id, quantity)
      select hold_lot_units.reservation_id, d.lot_id, hold_lot_units.item_id, hold_lot_units.location_id,
             d.reserved_delta
        from pg_catalog.unnest(v_deltas) d;
      perform inventory.move_lot_units(hold_lot_units.item_id, hold_lot_units.location_id, v_deltas,
                                       hold_lot_units.movement);
      return true;
    end if;
    exit when attempt = 2 or inventory.expire_overdue_at_level(hold_lot_units.item_id, hold_lot_units.location_id) = 0;
  end loop;
  return false;
end
$$;

comment on function inventory.hold_lot_units(bigint, bigint, numeric, date, bigint, inventory.movement) is 'Holds units of a lot-tracked level for a new hold, FEFO across its sellable lots, recording the allocations; false when they do not fit.';

-- Units of a lot-tracked level that a transfer or removal may take, as on-hand deltas (positive:
-- the units taken): the free units of the named lot, or FEFO across the sellable lots. Overdue holds
-- in the way are expired first. Null when they do not cover the quantity. The level is locked.
create function inventory.lot_units_to_move(item_id bigint, location_id bigint, lot_id bigint, quantity numeric)
returns inventory.lot_delta[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_free numeric;
  v_deltas inventory.lot_delta[];
begin
  for attempt in 1 .. 2 loop
    if lot_units_to_move.lot_id is not null then
      select ll.on_hand - ll.reserved into v_free from inventory.lot_levels ll
       where ll.lot_id = lot_units_to_move.lot_id and ll.location_id = lot_units_to_move.location_id;
      if v_free >= lot_units_to_move.quantity then
        return array[row(lot_units_to_move.lot_id, lot_units_to_move.quantity, 0, null)::inventory.lot_delta];
      end if;
    else
      v_deltas := inventory.fefo_allocation(lot_units_to_move.item_id, lot_units_to_move.location_id,
                                            lot_units_to_move.quantity, inventory.lot_today(), null);
      if v_deltas is not null then
        return array(select row(d.lot_id, d.reserved_delta, 0, null)::inventory.lot_delta from pg_catalog.unnest(v_deltas) d);
      end if;
    end if;
    exit when attempt = 2
           or inventory.expire_overdue_at_level(lot_units_to_move.item_id, lot_units_to_move.location_id) = 0;
  end loop;
  return null;
end
$$;

comment on function inventory.lot_units_to_move(bigint, bigint, bigint, numeric) is 'Free units of the named lot, or FEFO across sellable lots, that a transfer or removal may take; null when they do not cover the quantity.';
