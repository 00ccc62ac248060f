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

-- The lot a receipt goes into: created on first receipt (PENDING when the item requires inspection,
-- else PASSED), or the existing one, locked (a lot's row before any level: the global lock order),
-- whose expiry and supplier lot must agree with the receipt's. Its unit cost becomes the average
-- over the lot's units on hand and these.
create function inventory.receive_into_lot(item_id bigint, sku text, requires_qc boolean, lot_number text,
                                           expires_on date, supplier_lot text, unit_cost numeric, quantity numeric)
returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_lot inventory.lots;
  v_on_hand numeric;
begin
  insert into inventory.lots (item_id, lot_number, supplier_lot, expires_on, unit_cost, qc_status, created_by)
  values (receive_into_lot.item_id, receive_into_lot.lot_number, receive_into_lot.supplier_lot,
          receive_into_lot.expires_on, receive_into_lot.unit_cost,
          case when receive_into_lot.requires_qc then 'PENDING' else 'PASSED' end, inventory.current_actor())
  on conflict on constraint lots_item_id_lot_number_key do nothing
  returning lot_id into v_lot.lot_id;
  if v_lot.lot_id is not null then
    return v_lot.lot_id;
  end if;
  select * into v_lot from inventory.lots l
   where l.item_id = receive_into_lot.item_id and l.lot_number = receive_into_lot.lot_number
     for no key update;
  if (receive_into_lot.expires_on is not null and receive_into_lot.expires_on is distinct from v_lot.expires_on)
     or (receive_into_lot.supplier_lot is not null and receive_into_lot.supplier_lot is distinct from v_lot.supplier_lot) then
    perform inventory.raise_error('ALREADY_EXISTS',
      pg_catalog.format('lot %s of %s exists with %s', receive_into_lot.lot_number, receive_into_lot.sku,
                        case when receive_into_lot.expires_on is distinct from v_lot.expires_on
                                  and receive_into_lot.expires_on is not null
                             then 'expiry ' || coalesce(v_lot.expires_on::text, 'none')
                             else 'supplier lot ' || coalesce(v_lot.supplier_lot, 'none') end),
      pg_catalog.jsonb_build_object('sku', receive_into_lot.sku, 'lot_number', receive_into_lot.lot_number,
                                    'expires_on', v_lot.expires_on, 'supplier_lot', v_lot.supplier_lot));
  end if;
  if receive_into_lot.unit_cost is not null then
    select coalesce(pg_catalog.sum(ll.on_hand), 0) into v_on_hand from inventory.lot_levels ll
     where ll.lot_id = v_lot.lot_id;
    update inventory.lots l
       set unit_cost = case when l.unit_cost is null or v_on_hand = 0 then receive_into_lot.unit_cost
                            else pg_catalog.round((l.unit_cost * v_on_hand + receive_into_lot.unit_cost * receive_into_lot.quantity)
                                                  / (v_on_hand + receive_into_lot.quantity), 4) end
     where l.lot_id = v_lot.lot_id;
  end if;
  return v_lot.lot_id;
end
$$;

comment on function inventory.receive_into_lot(bigint, text, boolean, text, date, text, numeric, numeric) is 'The lot a receipt goes into, created or checked against the receipt (ALREADY_EXISTS when its expiry or supplier lot differ); averages its unit cost.';

create function inventory.receive_stock(sku text, quantity numeric, location text, reference text,
                                        unit_cost numeric, idempotency_key text, lot_number text,
                                        expires_on date, supplier_lot text)
returns inventory_api.stock_level
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
  v_parked numeric := 0;
  v_result inventory_api.stock_level;
  v_replay jsonb;
  v_lot_id bigint;
begin
  v_item := inventory.item_for_sku(receive_stock.sku);
  perform inventory.check_quantity(receive_stock.quantity);
  v_location_id := inventory.location_for_code(receive_stock.location);
  perform inventory.authorize('operator', v_location_id);
  perform inventory.check_text(receive_stock.reference, 'reference', 200, required => false);
  perform inventory.check_unit_cost(receive_stock.unit_cost);
  perform inventory.check_lot_argument(v_item.track_lots, receive_stock.lot_number, required => true);
  if not v_item.track_lots and (receive_stock.expires_on is not null or receive_stock.supplier_lot is not null) then
    perform inventory.raise_error('INVALID_ARGUMENT', 'the item is not tracked by lot: leave expires_on and supplier_lot out',
      pg_catalog.jsonb_build_object('argument', case when receive_stock.expires_on is not null then 'expires_on'
                                                     else 'supplier_lot' end, 'problem', 'item not lot-tracked'));
  end if;
  if v_item.track_lots then
    perform inventory.check_text(receive_stock.lot_number, 'lot_number', 64);
    perform inventory.check_text(receive_stock.supplier_lot, 'supplier_lot', 64, required => false);
  end if;
  if receive_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(receive_stock.idempotency_key, 'receive_stock',
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'quantity', receive_stock.quantity,
        'location', receive_stock.location, 'reference', receive_stock.reference,
        'unit_cost', receive_stock.unit_cost)
      || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lot_number', receive_stock.lot_number,
           'expires_on', receive_stock.expires_on, 'supplier_lot', receive_stock.supplier_lot)));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_level, v_replay);
    end if;
  end if;

  if v_item.status = 'discontinued' then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE',
      pg_catalog.format('item %s is discontinued and cannot be received', receive_stock.sku),
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'status', v_item.status));
  end if;

  if v_item.track_lots then
    v_lot_id := inventory.receive_into_lot(v_item.item_id, receive_stock.sku, v_item.requires_qc,
                                           receive_stock.lot_number, receive_stock.expires_on,
                                           receive_stock.supplier_lot, receive_stock.unit_cost, receive_stock.quantity);
    insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_location_id)
    on conflict do nothing;
    v_level := inventory.move_lot_units(v_item.item_id, v_location_id,
      array[row(v_lot_id, receive_stock.quantity, 0, null)::inventory.lot_delta],
      inventory.describe_movement('RECEIVE', 'receipt', receive_stock.reference, receive_stock.idempotency_key,
        metadata => pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('unit_cost', receive_stock.unit_cost))));
  else
    v_level := inventory.add_on_hand(v_item.item_id, v_location_id, receive_stock.quantity,
      inventory.describe_movement('RECEIVE', 'receipt', receive_stock.reference, receive_stock.idempotency_key,
        metadata => pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('unit_cost', receive_stock.unit_cost))));
  end if;

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

  if v_level.hot_buckets > 1 then  -- free units parked in hot buckets are available, not held
    v_parked := inventory.parked_units(v_item.item_id, v_level.location_id);
  end if;
  v_result := row(receive_stock.sku, receive_stock.location, v_level.on_hand, v_level.reserved - v_parked,
                  v_level.available + v_parked, v_level.version, v_level.updated_at)::inventory_api.stock_level;
  if receive_stock.idempotency_key is not null then
    perform inventory.complete_idempotency_key(receive_stock.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.receive_stock(text, numeric, text, text, numeric, text, text, date, text) is 'Implements inventory_api.receive_stock.';
