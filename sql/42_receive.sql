-- Layer 4, functions by concern: receiving stock.

-- Adds to on_hand of one level, creating the level (empty) on first use; the ledger trigger records
-- the movement described by `movement`. on_hand is numeric(19, 4): the bound is part of the
-- conditional UPDATE, so concurrent receipts cannot together overflow it between a check and the write.
create function inventory.add_on_hand(item_id bigint, location_id bigint, quantity numeric, movement inventory.movement)
returns inventory.stock_levels
language plpgsql volatile
set search_path = ''
as $$
declare
  v_level inventory.stock_levels;
begin
  for attempt in 1 .. 2 loop
    update inventory.stock_levels s
       set on_hand = s.on_hand + add_on_hand.quantity, pending_movement = add_on_hand.movement
     where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id
       and s.on_hand + add_on_hand.quantity < 1000000000000000
    returning * into v_level;
    if found then
      return v_level;
    end if;
    exit when attempt = 2 or exists (select from inventory.stock_levels s
                                      where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id);
    insert into inventory.stock_levels (item_id, location_id)
    values (add_on_hand.item_id, add_on_hand.location_id)
    on conflict do nothing;
  end loop;
  perform inventory.raise_error('INVALID_QUANTITY',
    'on hand would exceed the largest quantity a stock level holds (1e15)',
    pg_catalog.jsonb_build_object('argument', 'quantity', 'value', add_on_hand.quantity::text,
                                  'problem', 'on_hand would overflow'));
  return null;
end
$$;

comment on function inventory.add_on_hand(bigint, bigint, numeric, inventory.movement) is 'Adds units on hand at one level (created empty on first use), recording the described movement; INVALID_QUANTITY when on_hand would pass 1e15.';

create function inventory.receive_stock(sku text, quantity numeric, location text, reference text,
                                        unit_cost numeric, idempotency_key text)
returns inventory_api.stock_level
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
  v_result inventory_api.stock_level;
  v_replay jsonb;
begin
  v_item := inventory.item_for_sku(receive_stock.sku);
  perform inventory.check_quantity(receive_stock.quantity);
  v_location_id := inventory.location_for_code(receive_stock.location);
  perform inventory.authorize('operator', v_location_id);
  perform inventory.check_text(receive_stock.reference, 'reference', 200, required => false);
  perform inventory.check_unit_cost(receive_stock.unit_cost);
  if receive_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(receive_stock.idempotency_key, 'receive_stock',
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'quantity', receive_stock.quantity,
        'location', receive_stock.location, 'reference', receive_stock.reference,
        'unit_cost', receive_stock.unit_cost));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_level, v_replay);
    end if;
  end if;

  if v_item.status = 'discontinued' then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE',
      pg_catalog.format('item %s is discontinued and cannot be received', receive_stock.sku),
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'status', v_item.status));
  end if;

  v_level := inventory.add_on_hand(v_item.item_id, v_location_id, receive_stock.quantity,
    inventory.describe_movement('RECEIVE', 'receipt', receive_stock.reference, receive_stock.idempotency_key,
      metadata => pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('unit_cost', receive_stock.unit_cost))));

  if receive_stock.unit_cost is not null then
    -- Moving-average cost over all units on hand, this receipt included.
    update inventory.items i
       set unit_cost = case
             when i.unit_cost is null or t.total <= receive_stock.quantity then receive_stock.unit_cost
             else pg_catalog.round((i.unit_cost * (t.total - receive_stock.quantity)
                                    + receive_stock.unit_cost * receive_stock.quantity) / t.total, 4)
           end,
           updated_at = pg_catalog.now()
      from (select pg_catalog.sum(s.on_hand) as total from inventory.stock_levels s
             where s.item_id = v_item.item_id) t
     where i.item_id = v_item.item_id;
  end if;

  v_result := row(receive_stock.sku, receive_stock.location, v_level.on_hand, v_level.reserved,
                  v_level.available, v_level.version, v_level.updated_at)::inventory_api.stock_level;
  if receive_stock.idempotency_key is not null then
    perform inventory.complete_idempotency_key(receive_stock.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.receive_stock(text, numeric, text, text, numeric, text) is 'Implements inventory_api.receive_stock.';
