-- Result types of the API functions. Public functions return public types, never private row types.

create type inventory_api.item as (
  sku text, name text, unit_of_measure text, unit_cost numeric, status text, track_lots boolean,
  created_at timestamptz, updated_at timestamptz);
comment on type inventory_api.item is 'An item of the catalogue.';

create type inventory_api.location as (code text, name text, created_at timestamptz);
comment on type inventory_api.location is 'A stock location.';

create type inventory_api.stock_level as (
  sku text, location text, on_hand numeric, reserved numeric, available numeric, version bigint,
  updated_at timestamptz);
comment on type inventory_api.stock_level is 'Quantities of one item at one location after a movement.';

create type inventory_api.reservation as (
  reservation_id bigint, order_ref text, sku text, location text, quantity numeric,
  quantity_fulfilled numeric, quantity_open numeric, status text, expires_at timestamptz,
  created_by text, created_at timestamptz);
comment on type inventory_api.reservation is 'A hold of stock for an order.';

create type inventory_api.reservation_change as (
  reservation_id bigint, order_ref text, sku text, location text, movement_type text, quantity numeric,
  quantity_fulfilled numeric, quantity_open numeric, status text);
comment on type inventory_api.reservation_change is 'What one call did to one hold: movement_type (SHIP, RELEASE, EXPIRE) and quantity moved, with the hold''s state after.';

create type inventory_api.stock_return as (
  return_id bigint, order_ref text, sku text, location text, quantity numeric, reason text,
  restocked boolean, movement_id bigint, created_at timestamptz);
comment on type inventory_api.stock_return is 'A recorded customer return.';

create type inventory_api.stock_check as (can_fulfill boolean, available numeric, error_code text);
comment on type inventory_api.stock_check is 'Answer of validate_stock: whether the quantity can be reserved now, and if not, why.';

create type inventory_api.invariant_violation as (
  invariant text, sku text, location text, expected numeric, actual numeric, detail text);
comment on type inventory_api.invariant_violation is 'One broken invariant reported by verify_inventory.';

-- Builds the public view of holds from their rows (used after set-based changes).
create function inventory.reservation_changes(reservation_ids bigint[], movement_types text[], quantities numeric[])
returns setof inventory_api.reservation_change
language sql stable
set search_path = ''
as $$
  select r.reservation_id, r.order_ref, i.sku, l.code, c.movement_type, c.quantity, r.quantity_fulfilled,
         case when r.status = 'ACTIVE' then r.quantity - r.quantity_fulfilled else 0 end, r.status
    from rows from (pg_catalog.unnest(reservation_changes.reservation_ids),
                    pg_catalog.unnest(reservation_changes.movement_types),
                    pg_catalog.unnest(reservation_changes.quantities)) as c (reservation_id, movement_type, quantity)
    join inventory.reservations r on r.reservation_id = c.reservation_id
    join inventory.items i on i.item_id = r.item_id
    join inventory.locations l on l.location_id = r.location_id
   order by r.reservation_id
$$;
comment on function inventory.reservation_changes(bigint[], text[], numeric[]) is 'reservation_change rows for holds changed by the current call.';
