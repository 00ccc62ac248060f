-- Layer 4, functions by concern: lots: their quality and quarantine status, writing off expired
-- lots, and the recall trace. (Receipts, holds, shipments, returns, transfers, adjustments and counts
-- of lot-tracked items live with their capability and move units through move_lot_units.)

-- Moves the open holds on a lot that may no longer be sold to other sellable lots of their level
-- (first expiring first), each hold wholly or not at all; a hold that no other lot can take is
-- released, and an overdue one expired. The lot's row is locked by the caller (a lot's row before any
-- level); this locks its levels in key order, then the holds. Returns the counts.
create function inventory.reallocate_lot_holds(lot_id bigint, reason text,
                                               out holds_reallocated integer, out holds_released integer,
                                               out units_released numeric)
language plpgsql volatile
set search_path = ''
as $$
declare
  v_hold record;
  v_deltas inventory.lot_delta[];
  v_release inventory.hold_move[] := '{}'::inventory.hold_move[];
begin
  holds_reallocated := 0;
  perform from inventory.stock_levels s
   where (s.item_id, s.location_id) in (select ll.item_id, ll.location_id from inventory.lot_levels ll
                                         where ll.lot_id = reallocate_lot_holds.lot_id and ll.reserved > 0)
   order by s.item_id, s.location_id
     for update;
  for v_hold in
    select r.reservation_id, r.item_id, r.location_id, r.expires_at <= pg_catalog.now() as overdue,
           a.quantity - a.quantity_fulfilled - a.quantity_released as units
      from inventory.lot_allocations a
      join inventory.reservations r on r.reservation_id = a.reservation_id
     where a.lot_id = reallocate_lot_holds.lot_id and a.quantity_fulfilled + a.quantity_released < a.quantity
       and r.status = 'ACTIVE'
     order by r.reservation_id
       for update of r
  loop
    v_deltas := null;
    if not v_hold.overdue then
      v_deltas := inventory.fefo_allocation(v_hold.item_id, v_hold.location_id, v_hold.units, inventory.lot_today(),
                                            v_hold.reservation_id);
    end if;
    if v_deltas is null then
      v_release := v_release || row(v_hold.reservation_id, v_hold.item_id, v_hold.location_id,
                                    case when v_hold.overdue then 'EXPIRE' else 'RELEASE' end,
                                    (select r.quantity - r.quantity_fulfilled from inventory.reservations r
                                      where r.reservation_id = v_hold.reservation_id))::inventory.hold_move;
      continue;
    end if;
    update inventory.lot_allocations a
       set quantity_released = a.quantity_released + v_hold.units
     where a.reservation_id = v_hold.reservation_id and a.lot_id = reallocate_lot_holds.lot_id;
    insert into inventory.lot_allocations as a (reservation_id, lot_id, item_id, location_id, quantity)
    select v_hold.reservation_id, d.lot_id, v_hold.item_id, v_hold.location_id, d.reserved_delta
      from pg_catalog.unnest(v_deltas) d
    on conflict on constraint lot_allocations_pkey do update set quantity = a.quantity + excluded.quantity;
    perform inventory.move_lot_units(v_hold.item_id, v_hold.location_id,
      v_deltas || row(reallocate_lot_holds.lot_id, 0, -v_hold.units, v_hold.reservation_id)::inventory.lot_delta,
      inventory.describe_movement('RESERVE', 'reallocated: ' || reallocate_lot_holds.reason));
    holds_reallocated := holds_reallocated + 1;
  end loop;
  holds_released := pg_catalog.cardinality(v_release);
  units_released := coalesce((select pg_catalog.sum(m.quantity) from pg_catalog.unnest(v_release) m), 0);
  if holds_released > 0 then
    perform inventory.apply_hold_moves(v_release, null, reallocate_lot_holds.reason, null);
  end if;
end
$$;

comment on function inventory.reallocate_lot_holds(bigint, text) is 'Moves the open holds on a lot that may not be sold to other sellable lots (FEFO), releasing those no lot can take; returns the counts.';

create function inventory.set_lot_status(sku text, lot_number text, qc_status text, quarantined boolean, note text)
returns inventory_api.lot_status_change
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_lot inventory.lots;
  v_moved record;
  v_sellable boolean;
begin
  perform inventory.authorize('admin');
  v_item := inventory.item_for_sku(set_lot_status.sku);
  perform inventory.check_lot_argument(v_item.track_lots, set_lot_status.lot_number, required => true);
  if set_lot_status.qc_status is not null and set_lot_status.qc_status not in ('PENDING', 'PASSED', 'FAILED') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'qc_status must be PENDING, PASSED or FAILED',
      pg_catalog.jsonb_build_object('argument', 'qc_status', 'problem', 'not a status'));
  end if;
  if set_lot_status.qc_status is null and set_lot_status.quarantined is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'give qc_status or quarantined (or both): nothing to change',
      pg_catalog.jsonb_build_object('argument', 'qc_status', 'problem', 'missing'));
  end if;
  perform inventory.check_text(set_lot_status.note, 'note', 500, required => false);
  perform inventory.lot_for_number(v_item.item_id, set_lot_status.lot_number, set_lot_status.sku);
  select * into v_lot from inventory.lots l
   where l.item_id = v_item.item_id and l.lot_number = set_lot_status.lot_number
     for no key update;
  update inventory.lots l
     set qc_status = coalesce(set_lot_status.qc_status, l.qc_status),
         quarantined = coalesce(set_lot_status.quarantined, l.quarantined),
         status_note = set_lot_status.note, status_changed_by = inventory.current_actor(),
         status_changed_at = pg_catalog.now()
   where l.lot_id = v_lot.lot_id
  returning * into v_lot;
  -- A hold allocated from a snapshot that still showed the old status must conflict with this
  -- change at REPEATABLE READ and SERIALIZABLE: it updates these rows too (levels first, in key order).
  perform from inventory.stock_levels s
   where s.item_id = v_item.item_id
     and s.location_id in (select ll.location_id from inventory.lot_levels ll where ll.lot_id = v_lot.lot_id)
   order by s.item_id, s.location_id
     for update;
  update inventory.lot_levels ll set version = ll.version + 1 where ll.lot_id = v_lot.lot_id;
  v_sellable := inventory.lot_block_reason(v_lot.qc_status, v_lot.quarantined, v_lot.expires_on, inventory.lot_today(),
                                           inventory.lot_today()) is null;
  if v_sellable then
    select 0 as holds_reallocated, 0 as holds_released, 0::numeric as units_released into v_moved;
  else
    select * into v_moved from inventory.reallocate_lot_holds(v_lot.lot_id,
      'lot ' || v_lot.lot_number || ' ' || inventory.lot_block_reason(v_lot.qc_status, v_lot.quarantined,
                                                                       v_lot.expires_on, inventory.lot_today(),
                                                                       inventory.lot_today()));
  end if;
  return row(set_lot_status.sku, v_lot.lot_number, v_lot.qc_status, v_lot.quarantined, v_sellable,
             v_moved.holds_reallocated, v_moved.holds_released, v_moved.units_released)::inventory_api.lot_status_change;
end
$$;

comment on function inventory.set_lot_status(text, text, text, boolean, text) is 'Implements inventory_api.set_lot_status.';

-- Writes off the units of every lot past its expiry, once: its holds go to other lots (or are
-- released), then its units on hand leave stock with an ADJUST movement of reason expired. Lots'
-- rows are locked first, in id order (a lot's row before any level), then each lot's levels.
create function inventory.expire_inventory_lots() returns inventory_api.lot_expiry
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_lot inventory.lots;
  v_lots bigint[];
  v_level record;
  v_moved record;
  v_result inventory_api.lot_expiry := row(0, 0, 0, 0, 0)::inventory_api.lot_expiry;
begin
  perform inventory.authorize('scheduler');
  if not inventory.lock_job('expire_inventory_lots', false) then
    perform inventory.raise_error('BUSY', 'another expire_inventory_lots run is in progress; it does this work',
      pg_catalog.jsonb_build_object('job', 'expire_inventory_lots'));
  end if;
  select pg_catalog.array_agg(l.lot_id order by l.lot_id) into v_lots
    from (select l.lot_id from inventory.lots l
           where l.expires_on < inventory.lot_today()
             and exists (select from inventory.lot_levels ll where ll.lot_id = l.lot_id and ll.on_hand > 0)
           order by l.lot_id
             for no key update) l;
  for v_lot in select * from inventory.lots l where l.lot_id = any (v_lots) order by l.lot_id loop
    select * into v_moved from inventory.reallocate_lot_holds(v_lot.lot_id, 'lot ' || v_lot.lot_number || ' expired');
    v_result.holds_reallocated := v_result.holds_reallocated + v_moved.holds_reallocated;
    v_result.holds_released := v_result.holds_released + v_moved.holds_released;
    v_result.units_released := v_result.units_released + v_moved.units_released;
    for v_level in
      select ll.item_id, ll.location_id, ll.on_hand from inventory.lot_levels ll
       where ll.lot_id = v_lot.lot_id and ll.on_hand > 0
       order by ll.location_id
    loop
      perform inventory.move_lot_units(v_level.item_id, v_level.location_id,
        array[row(v_lot.lot_id, -v_level.on_hand, 0, null)::inventory.lot_delta],
        inventory.describe_movement('ADJUST', 'expired', 'lot:' || v_lot.lot_number,
          metadata => pg_catalog.jsonb_build_object('lot_number', v_lot.lot_number, 'expires_on', v_lot.expires_on)));
      v_result.units_written_off := v_result.units_written_off + v_level.on_hand;
    end loop;
    update inventory.lots l set written_off_on = inventory.lot_today() where l.lot_id = v_lot.lot_id;
    v_result.lots_expired := v_result.lots_expired + 1;
  end loop;
  perform inventory.finish_job('expire_inventory_lots', v_result.lots_expired);
  return v_result;
end
$$;

comment on function inventory.expire_inventory_lots() is 'Implements inventory_api.expire_inventory_lots.';

create function inventory.trace_lot(sku text, lot_number text) returns setof inventory_api.lot_trace
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_item record;
  v_lot inventory.lots;
begin
  if not inventory.holds_role_somewhere('viewer') then
    perform inventory.authorize('viewer');
  end if;
  v_item := inventory.item_for_sku(trace_lot.sku);
  perform inventory.check_lot_argument(v_item.track_lots, trace_lot.lot_number, required => true);
  v_lot := inventory.lot_for_number(v_item.item_id, trace_lot.lot_number, trace_lot.sku);
  return query
    select r.order_ref, a.reservation_id, l.code, a.quantity, a.quantity_fulfilled, a.quantity_returned,
           a.quantity_released, r.status, a.created_at, r.closed_at
      from inventory.lot_allocations a
      join inventory.reservations r on r.reservation_id = a.reservation_id
      join inventory.locations l on l.location_id = a.location_id
     where a.lot_id = v_lot.lot_id and inventory.is_allowed('viewer', a.location_id)
     order by a.created_at, a.reservation_id;
end
$$;

comment on function inventory.trace_lot(text, text) is 'Implements inventory_api.trace_lot.';
