-- Layer 4, functions by concern: transfers between locations.

-- The result of a transfer, stored under its idempotency key.
create function inventory.finish_transfer(from_level inventory.stock_levels, to_level inventory.stock_levels, sku text,
                                          quantity numeric, from_location text, to_location text, reference text,
                                          idempotency_key text)
returns inventory_api.stock_transfer
language plpgsql volatile
set search_path = ''
as $$
declare
  v_result inventory_api.stock_transfer;
begin
  v_result := row(finish_transfer.sku, finish_transfer.quantity, finish_transfer.from_location,
                  finish_transfer.to_location, finish_transfer.reference, (finish_transfer.from_level).last_movement_id,
                  (finish_transfer.to_level).last_movement_id, (finish_transfer.from_level).on_hand,
                  (finish_transfer.from_level).available, (finish_transfer.to_level).on_hand,
                  (finish_transfer.to_level).available)::inventory_api.stock_transfer;
  if finish_transfer.idempotency_key is not null then
    perform inventory.complete_idempotency_key(finish_transfer.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.finish_transfer(inventory.stock_levels, inventory.stock_levels, text, numeric, text, text, text, text) is 'Builds a transfer''s result and stores it under its idempotency key.';

create function inventory.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
                                         reference text, idempotency_key text, lot_number text)
returns inventory_api.stock_transfer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_from_id bigint;
  v_to_id bigint;
  v_from inventory.stock_levels;
  v_to inventory.stock_levels;
  v_available numeric;
  v_replay jsonb;
  v_lot inventory.lots;
  v_deltas inventory.lot_delta[];
begin
  v_item := inventory.item_for_sku(transfer_stock.sku);
  perform inventory.check_quantity(transfer_stock.quantity);
  v_from_id := inventory.location_for_code(transfer_stock.from_location);
  v_to_id := inventory.location_for_code(transfer_stock.to_location);
  perform inventory.authorize('operator', v_from_id);
  perform inventory.authorize('operator', v_to_id);
  if v_from_id = v_to_id then
    perform inventory.raise_error('INVALID_ARGUMENT', 'from_location and to_location must differ',
      pg_catalog.jsonb_build_object('argument', 'to_location', 'problem', 'same as from_location'));
  end if;
  perform inventory.check_text(transfer_stock.reference, 'reference', 200, required => false);
  perform inventory.check_lot_argument(v_item.track_lots, transfer_stock.lot_number, required => false);
  if transfer_stock.lot_number is not null then
    v_lot := inventory.lot_for_number(v_item.item_id, transfer_stock.lot_number, transfer_stock.sku);
  end if;
  if transfer_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(transfer_stock.idempotency_key, 'transfer_stock',
      pg_catalog.jsonb_build_object('sku', transfer_stock.sku, 'quantity', transfer_stock.quantity,
        'from_location', transfer_stock.from_location, 'to_location', transfer_stock.to_location,
        'reference', transfer_stock.reference)
      || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lot_number', transfer_stock.lot_number)));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_transfer, v_replay);
    end if;
  end if;

  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_to_id)
  on conflict do nothing;
  -- Both levels in (item_id, location_id) order, before anything else at them: opposite transfers
  -- cannot deadlock. Overdue holds in the way are expired only then; expiry skips holds that are
  -- locked, so it never waits while these levels are held.
  perform inventory.lock_levels(array[v_item.item_id, v_item.item_id], array[v_from_id, v_to_id], gather => true);
  select s.on_hand - s.reserved into v_available
    from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_from_id;
  if v_item.track_lots then
    -- A named lot moves in whatever state it is (quarantined stock goes to the quarantine area);
    -- without a name the sellable lots go, first expiring first.
    v_deltas := inventory.lot_units_to_move(v_item.item_id, v_from_id, v_lot.lot_id, transfer_stock.quantity);
    if v_deltas is null then
      perform inventory.raise_error('INSUFFICIENT_STOCK',
        pg_catalog.format('insufficient %s of %s at %s to transfer %s',
                          coalesce('free stock in lot ' || transfer_stock.lot_number, 'sellable stock'),
                          transfer_stock.sku, transfer_stock.from_location, transfer_stock.quantity),
        inventory.shortfall(v_item.item_id, v_from_id, transfer_stock.sku, transfer_stock.from_location,
                            transfer_stock.quantity)
        || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lot_number', transfer_stock.lot_number)));
    end if;
    v_from := inventory.move_lot_units(v_item.item_id, v_from_id,
      array(select row(d.lot_id, -d.on_hand_delta, 0, null)::inventory.lot_delta from pg_catalog.unnest(v_deltas) d),
      inventory.describe_movement('TRANSFER_OUT', 'transfer', transfer_stock.reference, transfer_stock.idempotency_key,
        metadata => pg_catalog.jsonb_build_object('to_location', transfer_stock.to_location)));
    v_to := inventory.move_lot_units(v_item.item_id, v_to_id, v_deltas,
      inventory.describe_movement('TRANSFER_IN', 'transfer', transfer_stock.reference, transfer_stock.idempotency_key,
        related_movement_id => v_from.last_movement_id,
        metadata => pg_catalog.jsonb_build_object('from_location', transfer_stock.from_location)));
    return inventory.finish_transfer(v_from, v_to, transfer_stock.sku, transfer_stock.quantity,
                                     transfer_stock.from_location, transfer_stock.to_location,
                                     transfer_stock.reference, transfer_stock.idempotency_key);
  end if;
  if coalesce(v_available, 0) < transfer_stock.quantity
     and coalesce(inventory.effective_available(v_item.item_id, v_from_id), 0) >= transfer_stock.quantity then
    perform inventory.expire_overdue_at_level(v_item.item_id, v_from_id);
  end if;
  update inventory.stock_levels s
     set on_hand = s.on_hand - transfer_stock.quantity,
         pending_movement = inventory.describe_movement('TRANSFER_OUT', 'transfer', transfer_stock.reference,
           transfer_stock.idempotency_key,
           metadata => pg_catalog.jsonb_build_object('to_location', transfer_stock.to_location))
   where s.item_id = v_item.item_id and s.location_id = v_from_id
     and s.on_hand - s.reserved >= transfer_stock.quantity
  returning * into v_from;
  if not found then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock of %s at %s to transfer %s', transfer_stock.sku,
                        transfer_stock.from_location, transfer_stock.quantity),
      inventory.shortfall(v_item.item_id, v_from_id, transfer_stock.sku, transfer_stock.from_location,
                          transfer_stock.quantity));
  end if;
  update inventory.stock_levels s
     set on_hand = s.on_hand + transfer_stock.quantity,
         pending_movement = inventory.describe_movement('TRANSFER_IN', 'transfer', transfer_stock.reference,
           transfer_stock.idempotency_key, related_movement_id => v_from.last_movement_id,
           metadata => pg_catalog.jsonb_build_object('from_location', transfer_stock.from_location))
   where s.item_id = v_item.item_id and s.location_id = v_to_id
  returning * into v_to;
  return inventory.finish_transfer(v_from, v_to, transfer_stock.sku, transfer_stock.quantity,
                                   transfer_stock.from_location, transfer_stock.to_location,
                                   transfer_stock.reference, transfer_stock.idempotency_key);
end
$$;

comment on function inventory.transfer_stock(text, numeric, text, text, text, text, text) is 'Implements inventory_api.transfer_stock.';
