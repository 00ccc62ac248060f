-- Layer 4, functions by concern: the requests of reserve_many (57_reserve_many.sql, where its
-- contract and design are explained): their working type, reserve_stock's checks of one request, and
-- the outcome of one request, a hold or an error.

create type inventory.reserve_many_line as (
  ordinal integer, order_ref text, sku text, location text, quantity numeric, expires_in interval,
  idempotency_key text, item_id bigint, location_id bigint, status text, track_lots boolean,
  expires_at timestamptz, key_request jsonb, level_no integer);

comment on type inventory.reserve_many_line is 'One validated request of reserve_many (working state).';

-- reserve_stock's checks for one request, in reserve_stock's order, raising its errors; returns what
-- the rest of the call needs.
create function inventory.reserve_many_check(sku text, quantity numeric, order_ref text, location text,
                                             expires_in interval, idempotency_key text,
                                             out item_id bigint, out status text, out track_lots boolean,
                                             out location_id bigint, out expires_at timestamptz)
language plpgsql volatile
set search_path = ''
as $$
declare
  v_found record;
begin
  select i.item_id, i.status, i.track_lots, l.location_id, t.default_reservation_ttl
    into v_found
    from inventory.settings t
    left join inventory.items i on i.sku = reserve_many_check.sku and i.deleted_at is null
    left join inventory.locations l on l.code = reserve_many_check.location;
  if v_found.item_id is null then
    perform inventory.item_for_sku(reserve_many_check.sku);
  end if;
  if not inventory.quantity_is_valid(reserve_many_check.quantity) then
    perform inventory.check_quantity(reserve_many_check.quantity);
  end if;
  if not inventory.text_is_valid(reserve_many_check.order_ref, 200) then
    perform inventory.check_text(reserve_many_check.order_ref, 'order_ref', 200);
  end if;
  if v_found.location_id is null then
    perform inventory.location_for_code(reserve_many_check.location);
  end if;
  if not inventory.is_allowed('operator', v_found.location_id) then
    perform inventory.authorize('operator', v_found.location_id);
  end if;
  if v_found.track_lots then
    perform inventory.sellable_until(null);
  end if;
  reserve_many_check.expires_at := case when reserve_many_check.expires_in is null
                                        then pg_catalog.now() + v_found.default_reservation_ttl
                                        else inventory.hold_expiry(reserve_many_check.expires_in) end;
  if reserve_many_check.idempotency_key is not null then
    perform inventory.check_text(reserve_many_check.idempotency_key, 'idempotency_key', 200);
  end if;
  reserve_many_check.item_id := v_found.item_id;
  reserve_many_check.status := v_found.status;
  reserve_many_check.track_lots := v_found.track_lots;
  reserve_many_check.location_id := v_found.location_id;
end
$$;

comment on function inventory.reserve_many_check(text, numeric, text, text, interval, text) is 'reserve_stock''s validation and authorisation of one reserve_many request, raising reserve_stock''s errors in its order.';

-- An error outcome, as raise_error would raise it (SQLSTATE from the catalogue, the code as HINT).
create function inventory.reserve_many_error(line inventory.reserve_many_line, code text, message text, detail jsonb)
returns inventory_api.reserve_many_result
language sql stable
set search_path = ''
as $$
  select row((reserve_many_error.line).ordinal, (reserve_many_error.line).order_ref, (reserve_many_error.line).sku,
             (reserve_many_error.line).location, null, (reserve_many_error.line).quantity, null, false,
             e.sqlstate, reserve_many_error.code, reserve_many_error.message,
             coalesce(reserve_many_error.detail, '{}'::jsonb), null)::inventory_api.reserve_many_result
    from inventory.error_codes e where e.code = reserve_many_error.code
$$;

comment on function inventory.reserve_many_error(inventory.reserve_many_line, text, text, jsonb) is 'The reserve_many outcome of a request that fails with a catalogued error.';

-- A successful outcome from a reservation (new or replayed).
create function inventory.reserve_many_ok(ordinal integer, reservation jsonb)
returns inventory_api.reserve_many_result
language sql immutable
set search_path = ''
as $$
  select row(reserve_many_ok.ordinal, r.order_ref, r.sku, r.location, r.reservation_id, r.quantity, r.expires_at,
             true, null, null, null, null, reserve_many_ok.reservation)::inventory_api.reserve_many_result
    from pg_catalog.jsonb_populate_record(null::inventory_api.reservation, reserve_many_ok.reservation) r
$$;

comment on function inventory.reserve_many_ok(integer, jsonb) is 'The reserve_many outcome of a request that holds stock (or replays a hold).';
