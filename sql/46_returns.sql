-- Layer 4, functions by concern: customer returns, never more than was shipped for the order and
-- not yet returned.

-- Which lots returned units go back into: the named lot, or else the lots shipped to the order's
-- holds (first shipped, first returned), whose allocations count the return (the recall trace shows
-- it). The holds are locked by the caller. Returns the on-hand deltas of the restock.
create function inventory.return_to_lots(reservation_ids bigint[], lot_id bigint, quantity numeric, sku text)
returns inventory.lot_delta[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_deltas inventory.lot_delta[];
begin
  with take as (
    select a.reservation_id, a.lot_id,
           least(a.quantity_fulfilled - a.quantity_returned,
                 greatest(return_to_lots.quantity - coalesce(pg_catalog.sum(a.quantity_fulfilled - a.quantity_returned)
                            over (order by a.reservation_id, l.expires_on nulls last, l.received_at, a.lot_id
                                  rows between unbounded preceding and 1 preceding), 0), 0)) as units
      from inventory.lot_allocations a
      join inventory.lots l on l.lot_id = a.lot_id
     where a.reservation_id = any (return_to_lots.reservation_ids) and a.quantity_fulfilled > a.quantity_returned
       and (return_to_lots.lot_id is null or a.lot_id = return_to_lots.lot_id)
  ), counted as (
    update inventory.lot_allocations a
       set quantity_returned = a.quantity_returned + t.units
      from take t
     where a.reservation_id = t.reservation_id and a.lot_id = t.lot_id and t.units > 0
    returning a.lot_id, a.reservation_id, t.units)
  select pg_catalog.array_agg(row(c.lot_id, c.units, 0, c.reservation_id)::inventory.lot_delta)
    into v_deltas
    from counted c;
  if return_to_lots.lot_id is not null then
    -- Everything goes back into the named lot, whether or not it was shipped to this order.
    return array[row(return_to_lots.lot_id, return_to_lots.quantity, 0, null)::inventory.lot_delta];
  end if;
  if coalesce((select pg_catalog.sum(d.on_hand_delta) from pg_catalog.unnest(v_deltas) d), 0) < return_to_lots.quantity then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('no shipped lot of %s is left to return these units into: name the lot (lot_number)',
                        return_to_lots.sku),
      pg_catalog.jsonb_build_object('argument', 'lot_number', 'problem', 'missing'));
  end if;
  return v_deltas;
end
$$;

comment on function inventory.return_to_lots(bigint[], bigint, numeric, text) is 'Counts a return on the order''s lot allocations and says which lots the units go back into (the named lot, or the lots shipped).';

create function inventory.process_return(order_ref text, sku text, quantity numeric, reason text,
                                         restock boolean, location text, idempotency_key text, lot_number text)
returns inventory_api.stock_return
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_item_id bigint;
  v_lot inventory.lots;
  v_deltas inventory.lot_delta[];
  v_location_id bigint;
  v_holds bigint[];
  v_shipped_from bigint[];
  v_shipped numeric;
  v_returned numeric;
  v_movement_id bigint;
  v_return inventory.returns;
  v_result inventory_api.stock_return;
  v_replay jsonb;
begin
  perform inventory.check_text(process_return.order_ref, 'order_ref', 200);
  v_item := inventory.item_for_sku(process_return.sku);
  v_item_id := v_item.item_id;
  perform inventory.check_lot_argument(v_item.track_lots, process_return.lot_number, required => false);
  if process_return.lot_number is not null then
    v_lot := inventory.lot_for_number(v_item_id, process_return.lot_number, process_return.sku);
  end if;
  perform inventory.check_quantity(process_return.quantity);
  perform inventory.check_text(process_return.reason, 'reason', 500);
  if process_return.restock is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'restock must be true or false',
      pg_catalog.jsonb_build_object('argument', 'restock', 'problem', 'missing'));
  end if;
  v_location_id := inventory.location_for_code(process_return.location);
  perform inventory.authorize('operator', v_location_id);
  if process_return.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(process_return.idempotency_key, 'process_return',
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku,
        'quantity', process_return.quantity, 'reason', process_return.reason,
        'restock', process_return.restock, 'location', process_return.location)
      || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lot_number', process_return.lot_number)));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_return, v_replay);
    end if;
  end if;

  -- The return is counted on the order's holds of this item, which it locks and updates: under
  -- READ COMMITTED a concurrent return of the same shipment is re-read after it commits, under
  -- REPEATABLE READ and SERIALIZABLE it is a serialization failure (40001, retry). The caller must
  -- operate where the units were shipped from as well: a return consumes that shipment. Locks in the
  -- global order: the levels the units were shipped from and the one they come back to, then the holds.
  select pg_catalog.array_agg(distinct r.location_id) into v_shipped_from
    from inventory.reservations r where r.order_ref = process_return.order_ref and r.item_id = v_item_id;
  if v_shipped_from is null then
    perform inventory.raise_error('NO_RESERVATION',
      pg_catalog.format('order %s never held %s', process_return.order_ref, process_return.sku),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku));
  end if;
  perform inventory.authorize_locations('operator', v_shipped_from);
  if process_return.restock then
    insert into inventory.stock_levels (item_id, location_id) values (v_item_id, v_location_id)
    on conflict do nothing;
  end if;
  perform from inventory.stock_levels s
   where s.item_id = v_item_id and s.location_id = any (v_shipped_from || v_location_id)
   order by s.item_id, s.location_id
     for update;
  select pg_catalog.array_agg(r.reservation_id order by r.reservation_id),
         coalesce(pg_catalog.sum(r.quantity_fulfilled), 0), coalesce(pg_catalog.sum(r.quantity_returned), 0)
    into v_holds, v_shipped, v_returned
    from (select h.reservation_id, h.quantity_fulfilled, h.quantity_returned
            from inventory.reservations h
           where h.order_ref = process_return.order_ref and h.item_id = v_item_id
           order by h.reservation_id
             for update) r;
  if process_return.quantity > v_shipped - v_returned then
    perform inventory.raise_error('QUANTITY_MISMATCH',
      pg_catalog.format('order %s shipped %s and returned %s of %s; cannot return %s more',
                        process_return.order_ref, v_shipped, v_returned, process_return.sku, process_return.quantity),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku,
        'requested', process_return.quantity, 'shipped', v_shipped, 'returned', v_returned));
  end if;
  -- First shipped, first returned.
  update inventory.reservations r
     set quantity_returned = r.quantity_returned + t.take
    from (select h.reservation_id,
                 least(h.quantity_fulfilled - h.quantity_returned,
                       greatest(process_return.quantity - coalesce(pg_catalog.sum(h.quantity_fulfilled - h.quantity_returned)
                                  over (order by h.reservation_id rows between unbounded preceding and 1 preceding), 0),
                                0)) as take
            from inventory.reservations h
           where h.reservation_id = any (v_holds)) t
   where r.reservation_id = t.reservation_id and t.take > 0;

  if v_item.track_lots then
    v_deltas := inventory.return_to_lots(v_holds, v_lot.lot_id, process_return.quantity, process_return.sku);
  end if;
  if process_return.restock and v_item.track_lots then
    v_movement_id := (inventory.move_lot_units(v_item_id, v_location_id, v_deltas,
      inventory.describe_movement('RETURN', process_return.reason, process_return.order_ref,
                                  process_return.idempotency_key))).last_movement_id;
  elsif process_return.restock then
    v_movement_id := (inventory.add_on_hand(v_item_id, v_location_id, process_return.quantity,
      inventory.describe_movement('RETURN', process_return.reason, process_return.order_ref,
                                  process_return.idempotency_key))).last_movement_id;
  end if;
  insert into inventory.returns (order_ref, item_id, location_id, quantity, reason, restocked, movement_id,
                                 created_by)
  values (process_return.order_ref, v_item_id, v_location_id, process_return.quantity, process_return.reason,
          process_return.restock, v_movement_id, inventory.current_actor())
  returning * into v_return;
  v_result := row(v_return.return_id, v_return.order_ref, process_return.sku, process_return.location,
                  v_return.quantity, v_return.reason, v_return.restocked, v_return.movement_id,
                  v_return.created_at)::inventory_api.stock_return;
  if process_return.idempotency_key is not null then
    perform inventory.complete_idempotency_key(process_return.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.process_return(text, text, numeric, text, boolean, text, text, text) is 'Implements inventory_api.process_return.';
