-- Layer 4, functions by concern: shipping and cancelling the holds of an order.

-- Rebuilds the stored result of a fulfil or cancel call for an idempotent replay, after checking that
-- the caller may act at every location the original call touched: a replay must not hand another
-- location's result to a user scoped elsewhere.
create function inventory.replay_reservation_changes(response jsonb)
returns setof inventory_api.reservation_change
language plpgsql stable
set search_path = ''
as $$
begin
  perform inventory.authorize_locations('operator', array(
    select l.location_id
      from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation_change,
                                               replay_reservation_changes.response) c
      join inventory.locations l on l.code = c.location));
  return query select * from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation_change,
                                                                 replay_reservation_changes.response);
end
$$;

comment on function inventory.replay_reservation_changes(jsonb) is 'Authorises the caller at the locations of a stored fulfil or cancel result, then rebuilds it for an idempotent replay.';

-- Finishes a fulfil or cancel call: applies the moves, stores the response under the key, returns it.
create function inventory.finish_hold_moves(moves inventory.hold_move[], order_ref text, idempotency_key text)
returns setof inventory_api.reservation_change
language plpgsql volatile
set search_path = ''
as $$
declare
  v_changes inventory_api.reservation_change[];
begin
  perform inventory.apply_hold_moves(finish_hold_moves.moves, finish_hold_moves.order_ref, null,
                                     finish_hold_moves.idempotency_key);
  select pg_catalog.array_agg(c order by c.reservation_id) into v_changes
    from inventory.reservation_changes(
           array(select m.reservation_id from pg_catalog.unnest(finish_hold_moves.moves) m where m.quantity > 0),
           array(select m.movement_type from pg_catalog.unnest(finish_hold_moves.moves) m where m.quantity > 0),
           array(select m.quantity from pg_catalog.unnest(finish_hold_moves.moves) m where m.quantity > 0)) c;
  if finish_hold_moves.idempotency_key is not null then
    perform inventory.complete_idempotency_key(finish_hold_moves.idempotency_key,
                                               coalesce(pg_catalog.to_jsonb(v_changes), '[]'::jsonb));
  end if;
  return query select * from pg_catalog.unnest(v_changes);
end
$$;

comment on function inventory.finish_hold_moves(inventory.hold_move[], text, text) is 'Applies fulfil/cancel moves, stores the idempotent response and returns the changes.';

create function inventory.fulfill_order(order_ref text, sku text, quantity numeric, idempotency_key text)
returns setof inventory_api.reservation_change
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item_id bigint;
  v_moves inventory.hold_move[];
  v_live numeric;
  v_replay jsonb;
begin
  perform inventory.check_text(fulfill_order.order_ref, 'order_ref', 200);
  if fulfill_order.quantity is not null then
    perform inventory.check_quantity(fulfill_order.quantity);
    if fulfill_order.sku is null then
      perform inventory.raise_error('INVALID_ARGUMENT', 'quantity needs a sku: say which item to ship',
        pg_catalog.jsonb_build_object('argument', 'sku', 'problem', 'required with quantity'));
    end if;
  end if;
  if fulfill_order.sku is not null then
    v_item_id := (inventory.item_for_sku(fulfill_order.sku)).item_id;
  end if;
  if fulfill_order.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(fulfill_order.idempotency_key, 'fulfill_order',
      pg_catalog.jsonb_build_object('order_ref', fulfill_order.order_ref, 'sku', fulfill_order.sku,
                                    'quantity', fulfill_order.quantity));
    if v_replay is not null then
      return query select * from inventory.replay_reservation_changes(v_replay);
      return;
    end if;
  end if;

  v_moves := inventory.lock_order_holds(fulfill_order.order_ref, v_item_id, fulfill_order.sku);
  select coalesce(pg_catalog.sum(m.quantity) filter (where m.movement_type is null), 0) into v_live
    from pg_catalog.unnest(v_moves) m;
  -- An overdue hold is never shipped: ship-all fails if any targeted hold lapsed; a partial
  -- shipment is served from live holds only.
  if exists (select from pg_catalog.unnest(v_moves) m where m.movement_type = 'EXPIRE')
     and (fulfill_order.quantity is null or fulfill_order.quantity > v_live) then
    perform inventory.raise_error('RESERVATION_EXPIRED',
      pg_catalog.format('order %s has expired holds; reserve again', fulfill_order.order_ref),
      pg_catalog.jsonb_build_object('order_ref', fulfill_order.order_ref,
        'expired_reservation_ids', (select pg_catalog.jsonb_agg(m.reservation_id) from pg_catalog.unnest(v_moves) m
                                     where m.movement_type = 'EXPIRE')));
  end if;
  if fulfill_order.quantity > v_live then
    perform inventory.raise_error('QUANTITY_MISMATCH',
      pg_catalog.format('order %s holds %s of %s, cannot ship %s', fulfill_order.order_ref, v_live,
                        fulfill_order.sku, fulfill_order.quantity),
      pg_catalog.jsonb_build_object('order_ref', fulfill_order.order_ref, 'sku', fulfill_order.sku,
                                    'requested', fulfill_order.quantity, 'held', v_live));
  end if;

  -- Ship first-in first-out across the live holds.
  select pg_catalog.array_agg(row(m.reservation_id, m.item_id, m.location_id, 'SHIP',
           case when fulfill_order.quantity is null then m.quantity
                else least(m.quantity, greatest(fulfill_order.quantity - m.before, 0)) end
         )::inventory.hold_move order by m.reservation_id)
    into v_moves
    from (select h.*, coalesce(pg_catalog.sum(h.quantity) over (order by h.reservation_id
                                 rows between unbounded preceding and 1 preceding), 0) as before
            from pg_catalog.unnest(v_moves) h where h.movement_type is null) m;
  return query select * from inventory.finish_hold_moves(v_moves, fulfill_order.order_ref,
                                                         fulfill_order.idempotency_key);
end
$$;

comment on function inventory.fulfill_order(text, text, numeric, text) is 'Implements inventory_api.fulfill_order.';

create function inventory.cancel_reservation(order_ref text, sku text, idempotency_key text)
returns setof inventory_api.reservation_change
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item_id bigint;
  v_moves inventory.hold_move[];
  v_replay jsonb;
begin
  perform inventory.check_text(cancel_reservation.order_ref, 'order_ref', 200);
  if cancel_reservation.sku is not null then
    v_item_id := (inventory.item_for_sku(cancel_reservation.sku)).item_id;
  end if;
  if cancel_reservation.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(cancel_reservation.idempotency_key, 'cancel_reservation',
      pg_catalog.jsonb_build_object('order_ref', cancel_reservation.order_ref, 'sku', cancel_reservation.sku));
    if v_replay is not null then
      return query select * from inventory.replay_reservation_changes(v_replay);
      return;
    end if;
  end if;
  v_moves := inventory.lock_order_holds(cancel_reservation.order_ref, v_item_id, cancel_reservation.sku);
  -- Live holds are released; holds that already lapsed are recorded as expired, as the sweeper would.
  select pg_catalog.array_agg(row(m.reservation_id, m.item_id, m.location_id,
                                  coalesce(m.movement_type, 'RELEASE'), m.quantity)::inventory.hold_move)
    into v_moves
    from pg_catalog.unnest(v_moves) m;
  return query select * from inventory.finish_hold_moves(v_moves, cancel_reservation.order_ref,
                                                         cancel_reservation.idempotency_key);
end
$$;

comment on function inventory.cancel_reservation(text, text, text) is 'Implements inventory_api.cancel_reservation.';
