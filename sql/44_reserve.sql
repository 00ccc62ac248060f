-- Layer 4, functions by concern: reserving stock, single lines and all-or-nothing orders.
--
-- Everything that does not need the stock level's row lock (validation, lookups, the idempotency key,
-- the hold row itself) happens before the one conditional UPDATE that takes it, so a hot SKU's row
-- is locked only for that UPDATE, its ledger row and the commit.

-- Takes `quantity` more units of one level into holds, if they fit. First the conditional UPDATE
-- of the level row (not for a hot level: its row is then left unlocked), else a hot bucket nobody
-- holds (SKIP LOCKED); else, under the level's lock, overdue holds are expired and every free unit,
-- the row's and the buckets', is pooled (rebalance_level) before the answer: so a hold is refused
-- only when the level as a whole is short at that moment. Returns whether the units were held.
create function inventory.hold_units(item_id bigint, location_id bigint, quantity numeric,
                                     movement inventory.movement)
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  v_bucket smallint;
  v_wait boolean;
begin
  update inventory.stock_levels s
     set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
   where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
     and s.on_hand - s.reserved >= hold_units.quantity and s.hot_buckets = 1;
  if found then
    return true;
  end if;
  if exists (select from inventory.stock_levels s
              where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id and s.hot_buckets > 1) then
    -- Each attempt in a subtransaction: SKIP LOCKED may leave a bucket locked that it then found
    -- empty (its re-check failed), and waiting for another bucket or the level while holding it
    -- would deadlock with a rebalance of the level. Rolling the attempt back releases it.
    foreach v_wait in array array[false, true] loop
      begin
        if inventory.take_from_bucket(hold_units.item_id, hold_units.location_id, hold_units.quantity,
                                      hold_units.movement, wait => v_wait) is not null then
          return true;
        end if;
        raise sqlstate 'P0002';
      exception when no_data_found then
        null;
      end;
    end loop;
    -- Sold out is answered from this plain read, without locking the level (as reserve_stock does
    -- for a level that is not hot): the level's own free units, its buckets' and overdue holds'.
    if coalesce(inventory.effective_available(hold_units.item_id, hold_units.location_id), 0) < hold_units.quantity then
      return false;
    end if;
  end if;
  perform inventory.expire_overdue_at_level(hold_units.item_id, hold_units.location_id);
  v_bucket := inventory.rebalance_level(hold_units.item_id, hold_units.location_id, hold_units.quantity, false);
  if v_bucket is null then
    return false;
  elsif v_bucket > 0 then
    return inventory.take_from_bucket(hold_units.item_id, hold_units.location_id, hold_units.quantity,
                                      hold_units.movement, v_bucket) is not null;
  end if;
  update inventory.stock_levels s
     set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
   where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
     and s.on_hand - s.reserved >= hold_units.quantity;
  return found;
end
$$;
comment on function inventory.hold_units(bigint, bigint, numeric, inventory.movement) is 'Conditionally holds units at one level: its row, else a free hot bucket, else under its lock after expiring overdue holds and pooling every free unit; true when they fit.';

-- Checks what a hold says it is for: a known reference type and, when given, notes of 1-1000
-- visible characters. Called only when either differs from the default (an order, no notes).
create function inventory.check_hold_description(reference_type text, notes text) returns void
language plpgsql stable
set search_path = ''
as $$
begin
  if check_hold_description.reference_type is null
     or not check_hold_description.reference_type = any (pg_catalog.enum_range(null::inventory.reference_type)::text[]) then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('reference_type must be one of %s',
                        pg_catalog.array_to_string(pg_catalog.enum_range(null::inventory.reference_type)::text[], ', ')),
      pg_catalog.jsonb_build_object('argument', 'reference_type', 'problem', 'unknown'));
  end if;
  if check_hold_description.notes is not null then
    perform inventory.check_text(check_hold_description.notes, 'notes', 1000);
  end if;
end
$$;
comment on function inventory.check_hold_description(text, text) is 'Validates reference_type and notes of a hold.';

-- The idempotency request of a hold: the arguments that identify it. reference_type and notes join
-- it only when they differ from the default, so keys stored before they existed still match.
create function inventory.hold_request(arguments jsonb, reference_type text, notes text) returns jsonb
language sql immutable
set search_path = ''
begin atomic
  select case when hold_request.reference_type = 'order' and hold_request.notes is null then hold_request.arguments
              else hold_request.arguments || pg_catalog.jsonb_build_object('reference_type', hold_request.reference_type,
                                                                           'notes', hold_request.notes) end;
end;
comment on function inventory.hold_request(jsonb, text, text) is 'Idempotency request of reserve_stock / reserve_order, with reference_type and notes when not the default.';

-- min_shelf_life joins a hold's idempotency request only when given, so keys stored before it
-- existed still match their retries.
create function inventory.shelf_life_request(min_shelf_life interval) returns jsonb
language sql immutable
set search_path = ''
begin atomic
  select case when shelf_life_request.min_shelf_life is null then '{}'::jsonb
              else pg_catalog.jsonb_build_object('min_shelf_life', inventory.interval_key(shelf_life_request.min_shelf_life))
         end;
end;
comment on function inventory.shelf_life_request(interval) is 'The min_shelf_life part of a hold''s idempotency request ({} when not given).';

-- The rest of reserve_stock for a lot-tracked item (validated, authorised, key claimed, status
-- checked): the hold row, then its units FEFO from the sellable lots under the level's lock.
create function inventory.reserve_from_lots(item_id bigint, location_id bigint, sellable_until date,
                                            hold inventory_api.reservation, idempotency_key text)
returns inventory_api.reservation
language plpgsql volatile
set search_path = ''
as $$
begin
  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, expires_at,
                                      created_by, created_at, reference_type, notes)
  values ((reserve_from_lots.hold).reservation_id, (reserve_from_lots.hold).order_ref, reserve_from_lots.item_id,
          reserve_from_lots.location_id, (reserve_from_lots.hold).quantity, (reserve_from_lots.hold).expires_at,
          (reserve_from_lots.hold).created_by, (reserve_from_lots.hold).created_at,
          (reserve_from_lots.hold).reference_type::inventory.reference_type, (reserve_from_lots.hold).notes);
  if not inventory.hold_lot_units(reserve_from_lots.item_id, reserve_from_lots.location_id,
           (reserve_from_lots.hold).quantity, reserve_from_lots.sellable_until, (reserve_from_lots.hold).reservation_id,
           inventory.describe_movement('RESERVE', 'order hold', (reserve_from_lots.hold).order_ref,
                                       reserve_from_lots.idempotency_key,
                                       reservation_id => (reserve_from_lots.hold).reservation_id)) then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient sellable stock for %s at %s', (reserve_from_lots.hold).sku,
                        (reserve_from_lots.hold).location),
      inventory.shortfall(reserve_from_lots.item_id, reserve_from_lots.location_id, (reserve_from_lots.hold).sku,
                          (reserve_from_lots.hold).location, (reserve_from_lots.hold).quantity,
                          reserve_from_lots.sellable_until));
  end if;
  return reserve_from_lots.hold;
end
$$;
comment on function inventory.reserve_from_lots(bigint, bigint, date, inventory_api.reservation, text) is 'reserve_stock for a lot-tracked item: the hold and its FEFO allocation, or INSUFFICIENT_STOCK saying what the lots'' state blocks.';

create function inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text,
                                        expires_in interval, idempotency_key text, reference_type text,
                                        notes text, min_shelf_life interval)
returns inventory_api.reservation
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_found record;
  v_reservation_id bigint;
  v_result inventory_api.reservation;
  v_replay jsonb;
  v_sellable_until date;
begin
  -- The hottest path in pyinv: one query resolves the item, the location, the level's current
  -- availability and the default hold lifetime; the helpers run only to raise their errors.
  select i.item_id, i.status, i.track_lots, l.location_id, s.available, s.hot_buckets, t.default_reservation_ttl
    into v_found
    from inventory.settings t
    left join inventory.items i on i.sku = reserve_stock.sku and i.deleted_at is null
    left join inventory.locations l on l.code = reserve_stock.location
    left join inventory.stock_levels s on s.item_id = i.item_id and s.location_id = l.location_id;
  if v_found.item_id is null then
    perform inventory.item_for_sku(reserve_stock.sku);
  end if;
  -- The inlinable predicates run first; the raising helpers only when they fail.
  if not inventory.quantity_is_valid(reserve_stock.quantity) then
    perform inventory.check_quantity(reserve_stock.quantity);
  end if;
  if not inventory.text_is_valid(reserve_stock.order_ref, 200) then
    perform inventory.check_text(reserve_stock.order_ref, 'order_ref', 200);
  end if;
  if v_found.location_id is null then
    perform inventory.location_for_code(reserve_stock.location);
  end if;
  if not inventory.is_allowed('operator', v_found.location_id) then
    perform inventory.authorize('operator', v_found.location_id);
  end if;
  if reserve_stock.reference_type is distinct from 'order' or reserve_stock.notes is not null then
    perform inventory.check_hold_description(reserve_stock.reference_type, reserve_stock.notes);
  end if;
  if v_found.track_lots or reserve_stock.min_shelf_life is not null then
    v_sellable_until := inventory.sellable_until(reserve_stock.min_shelf_life);
  end if;
  -- A retry with the key replays the original result even if stock or status changed since.
  v_reservation_id := pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass);
  v_result := row(v_reservation_id, reserve_stock.order_ref, reserve_stock.sku, reserve_stock.location,
                  reserve_stock.quantity, 0, reserve_stock.quantity, 'ACTIVE',
                  case when reserve_stock.expires_in is null then pg_catalog.now() + v_found.default_reservation_ttl
                       else inventory.hold_expiry(reserve_stock.expires_in) end,
                  inventory.current_actor(), pg_catalog.now(), reserve_stock.reference_type,
                  reserve_stock.notes)::inventory_api.reservation;
  if reserve_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_stock.idempotency_key, 'reserve_stock',
      inventory.hold_request(
        pg_catalog.jsonb_build_object('sku', reserve_stock.sku, 'quantity', reserve_stock.quantity,
          'order_ref', reserve_stock.order_ref, 'location', reserve_stock.location,
          'expires_in', inventory.interval_key(reserve_stock.expires_in))
          || inventory.shelf_life_request(reserve_stock.min_shelf_life),
        reserve_stock.reference_type, reserve_stock.notes),
      pg_catalog.to_jsonb(v_result));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.reservation, v_replay);
    end if;
  end if;

  if v_found.status <> 'active' then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE',
      pg_catalog.format('item %s is %s and cannot be reserved', reserve_stock.sku, v_found.status),
      pg_catalog.jsonb_build_object('sku', reserve_stock.sku, 'status', v_found.status));
  end if;
  -- Sold out is answered from this plain read, without writing or locking anything (unless overdue
  -- holds, which no longer count, are what stands in the way).
  if v_found.track_lots then
    return inventory.reserve_from_lots(v_found.item_id, v_found.location_id, v_sellable_until, v_result,
                                       reserve_stock.idempotency_key);
  end if;
  -- (A hot level's row counts its buckets' free units as reserved: hold_units answers for it.)
  if coalesce(v_found.available, 0) < reserve_stock.quantity and coalesce(v_found.hot_buckets, 1) = 1
     and coalesce(inventory.effective_available(v_found.item_id, v_found.location_id), 0) < reserve_stock.quantity then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s at %s', reserve_stock.sku, reserve_stock.location),
      inventory.shortfall(v_found.item_id, v_found.location_id, reserve_stock.sku, reserve_stock.location,
                          reserve_stock.quantity));
  end if;

  -- Every column given: a column left to its default costs a re-parsed default expression per statement.
  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, quantity_fulfilled,
                                      status, expires_at, created_by, created_at, closed_at, quantity_returned,
                                      reference_type, notes)
  values (v_reservation_id, reserve_stock.order_ref, v_found.item_id, v_found.location_id, reserve_stock.quantity,
          0, 'ACTIVE', v_result.expires_at, v_result.created_by, v_result.created_at, null, 0,
          reserve_stock.reference_type::inventory.reference_type, reserve_stock.notes);

  -- hold_units' conditional UPDATE is the one statement that locks the level; only the ledger row
  -- and the commit follow it.
  if not inventory.hold_units(v_found.item_id, v_found.location_id, reserve_stock.quantity,
           inventory.describe_movement('RESERVE', 'order hold', reserve_stock.order_ref,
                                       reserve_stock.idempotency_key, reservation_id => v_reservation_id)) then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s at %s', reserve_stock.sku, reserve_stock.location),
      inventory.shortfall(v_found.item_id, v_found.location_id, reserve_stock.sku, reserve_stock.location,
                          reserve_stock.quantity));
  end if;
  return v_result;
end
$$;

comment on function inventory.reserve_stock(text, numeric, text, text, interval, text, text, text, interval) is 'Implements inventory_api.reserve_stock.';

create type inventory.order_line as (
  item_id bigint, location_id bigint, sku text, location text, quantity numeric, reservation_id bigint);

comment on type inventory.order_line is 'One merged line of reserve_order.';

-- Parses and checks the lines of reserve_order; returns them merged per (item, location), in lock
-- order, with a reservation id each. Raises on the first malformed line, and lists every unknown SKU.
create function inventory.parse_order_lines(lines jsonb) returns inventory.order_line[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_bad record;
  v_lines inventory.order_line[];
  v_missing jsonb;
begin
  if parse_order_lines.lines is null or pg_catalog.jsonb_typeof(parse_order_lines.lines) <> 'array'
     or pg_catalog.jsonb_array_length(parse_order_lines.lines) not between 1 and 1000 then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'lines must be a JSON array of 1 to 1000 objects {"sku", "quantity", "location"?}',
      pg_catalog.jsonb_build_object('argument', 'lines', 'problem', 'not an array of 1 to 1000 lines'));
  end if;
  select e.n, e.line into v_bad
    from pg_catalog.jsonb_array_elements(parse_order_lines.lines) with ordinality as e (line, n)
   where case when pg_catalog.jsonb_typeof(e.line) <> 'object' then true
              else pg_catalog.jsonb_typeof(e.line -> 'sku') is distinct from 'string'
                or pg_catalog.jsonb_typeof(e.line -> 'location') not in ('string', 'null')
                or inventory.text_problem(e.line ->> 'sku', 64) is not null
                or inventory.text_problem(coalesce(e.line ->> 'location', 'main'), 64) is not null
                or exists (select from pg_catalog.jsonb_object_keys(e.line) k
                            where k not in ('sku', 'quantity', 'location'))
         end
   order by e.n limit 1;
  if found then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('lines[%s] must be an object with a string "sku", a "quantity" and an optional string "location" (visible characters, NFC)',
                        v_bad.n - 1),
      pg_catalog.jsonb_build_object('argument', pg_catalog.format('lines[%s]', v_bad.n - 1), 'problem', 'malformed'));
  end if;
  select e.n, e.line into v_bad
    from pg_catalog.jsonb_array_elements(parse_order_lines.lines) with ordinality as e (line, n)
   where case when pg_catalog.jsonb_typeof(e.line -> 'quantity') is distinct from 'number' then true
              else not inventory.quantity_is_valid((e.line ->> 'quantity')::numeric)
         end
   order by e.n limit 1;
  if found then
    perform inventory.raise_error('INVALID_QUANTITY',
      pg_catalog.format('lines[%s].quantity must be a number greater than 0 and at most 1e12 with at most 4 decimals',
                        v_bad.n - 1),
      pg_catalog.jsonb_build_object('argument', pg_catalog.format('lines[%s].quantity', v_bad.n - 1),
                                    'value', v_bad.line -> 'quantity'));
  end if;

  with merged as (
    select e.line ->> 'sku' as sku, coalesce(e.line ->> 'location', 'main') as location,
           pg_catalog.sum((e.line ->> 'quantity')::numeric) as quantity
      from pg_catalog.jsonb_array_elements(parse_order_lines.lines) as e (line)
     group by 1, 2)
  select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('sku', m.sku, 'location', m.location)
                              order by m.sku, m.location)
           filter (where i.item_id is null or l.location_id is null),
         pg_catalog.array_agg(row(i.item_id, l.location_id, m.sku, m.location, m.quantity,
                                  pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass)
                                 )::inventory.order_line
                              order by i.item_id, l.location_id)
           filter (where i.item_id is not null and l.location_id is not null)
    into v_missing, v_lines
    from merged m
    left join inventory.items i on i.sku = m.sku and i.deleted_at is null
    left join inventory.locations l on l.code = m.location;
  if v_missing is not null then
    if exists (select from pg_catalog.jsonb_array_elements(v_missing) x
                where not exists (select from inventory.items i where i.sku = x ->> 'sku' and i.deleted_at is null)) then
      perform inventory.raise_error('PRODUCT_NOT_FOUND', 'order lines name unknown SKUs',
        pg_catalog.jsonb_build_object('unknown', v_missing));
    end if;
    perform inventory.raise_error('LOCATION_NOT_FOUND', 'order lines name unknown locations',
      pg_catalog.jsonb_build_object('unknown', v_missing));
  end if;
  if exists (select from pg_catalog.unnest(v_lines) l where not inventory.quantity_is_valid(l.quantity)) then
    perform inventory.raise_error('INVALID_QUANTITY', 'merged lines for one SKU and location exceed 1e12',
      pg_catalog.jsonb_build_object('argument', 'lines', 'problem', 'merged quantity too large'));
  end if;
  return v_lines;
end
$$;

comment on function inventory.parse_order_lines(jsonb) is 'Validates reserve_order lines, merges duplicates per (SKU, location) and returns them in lock order.';

create function inventory.reserve_order(order_ref text, lines jsonb, expires_in interval, idempotency_key text,
                                        reference_type text, notes text, min_shelf_life interval)
returns setof inventory_api.reservation
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_lines inventory.order_line[];
  v_line inventory.order_line;
  v_unavailable jsonb;
  v_short jsonb := '[]'::jsonb;
  v_expires_at timestamptz;
  v_actor text := inventory.current_actor();
  v_result inventory_api.reservation[];
  v_replay jsonb;
  v_lot_items bigint[];
  v_sellable_until date := inventory.sellable_until(reserve_order.min_shelf_life);
  v_held boolean;
begin
  perform inventory.check_text(reserve_order.order_ref, 'order_ref', 200);
  perform inventory.check_hold_description(reserve_order.reference_type, reserve_order.notes);
  v_lines := inventory.parse_order_lines(reserve_order.lines);
  perform inventory.authorize_locations('operator', array(select l.location_id from pg_catalog.unnest(v_lines) l));
  v_expires_at := inventory.hold_expiry(reserve_order.expires_in);
  select pg_catalog.array_agg(row(l.reservation_id, reserve_order.order_ref, l.sku, l.location, l.quantity, 0,
                                  l.quantity, 'ACTIVE', v_expires_at, v_actor, pg_catalog.now(),
                                  reserve_order.reference_type, reserve_order.notes
                                 )::inventory_api.reservation order by l.reservation_id)
    into v_result
    from pg_catalog.unnest(v_lines) l;
  if reserve_order.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_order.idempotency_key, 'reserve_order',
      inventory.hold_request(
        pg_catalog.jsonb_build_object('order_ref', reserve_order.order_ref, 'lines', reserve_order.lines,
                                      'expires_in', inventory.interval_key(reserve_order.expires_in))
          || inventory.shelf_life_request(reserve_order.min_shelf_life),
        reserve_order.reference_type, reserve_order.notes),
      pg_catalog.to_jsonb(v_result));
    if v_replay is not null then
      return query select * from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation, v_replay);
      return;
    end if;
  end if;

  select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('sku', i.sku, 'status', i.status) order by i.sku)
           filter (where i.status <> 'active'),
         pg_catalog.array_agg(i.item_id) filter (where i.track_lots)
    into v_unavailable, v_lot_items
    from inventory.items i
   where i.item_id in (select l.item_id from pg_catalog.unnest(v_lines) l);
  if v_unavailable is not null then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE', 'order lines name items that cannot be reserved',
      pg_catalog.jsonb_build_object('unavailable', v_unavailable));
  end if;

  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, expires_at,
                                      created_by, created_at, reference_type, notes)
  select l.reservation_id, reserve_order.order_ref, l.item_id, l.location_id, l.quantity, v_expires_at,
         v_actor, pg_catalog.now(), reserve_order.reference_type::inventory.reference_type, reserve_order.notes
    from pg_catalog.unnest(v_lines) l;

  -- v_lines is in (item_id, location_id) order, so concurrent orders lock levels in one global
  -- order and cannot deadlock. Every line is tried so that the error lists every short line.
  foreach v_line in array v_lines loop
    if v_line.item_id = any (v_lot_items) then
      v_held := inventory.hold_lot_units(v_line.item_id, v_line.location_id, v_line.quantity, v_sellable_until,
                  v_line.reservation_id,
                  inventory.describe_movement('RESERVE', 'order hold', reserve_order.order_ref,
                                              reserve_order.idempotency_key, reservation_id => v_line.reservation_id));
    else
      v_held := inventory.hold_units(v_line.item_id, v_line.location_id, v_line.quantity,
                  inventory.describe_movement('RESERVE', 'order hold', reserve_order.order_ref,
                                              reserve_order.idempotency_key, reservation_id => v_line.reservation_id));
    end if;
    if not v_held then
      v_short := v_short || inventory.shortfall(v_line.item_id, v_line.location_id, v_line.sku,
                                                v_line.location, v_line.quantity, v_sellable_until);
    end if;
  end loop;
  if pg_catalog.jsonb_array_length(v_short) > 0 then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s of %s lines of order %s',
                        pg_catalog.jsonb_array_length(v_short), pg_catalog.cardinality(v_lines),
                        reserve_order.order_ref),
      pg_catalog.jsonb_build_object('order_ref', reserve_order.order_ref, 'short_lines', v_short));
  end if;
  return query select * from pg_catalog.unnest(v_result);
end
$$;

comment on function inventory.reserve_order(text, jsonb, interval, text, text, text, interval) is 'Implements inventory_api.reserve_order.';
