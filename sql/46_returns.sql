-- Layer 4, functions by concern: customer returns, never more than was shipped for the order and
-- not yet returned.

create function inventory.process_return(order_ref text, sku text, quantity numeric, reason text,
                                         restock boolean, location text, idempotency_key text)
returns inventory_api.stock_return
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item_id bigint;
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
  v_item_id := (inventory.item_for_sku(process_return.sku)).item_id;
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
        'restock', process_return.restock, 'location', process_return.location));
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

  if process_return.restock then
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

comment on function inventory.process_return(text, text, numeric, text, boolean, text, text) is 'Implements inventory_api.process_return.';
