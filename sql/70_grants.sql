-- Privileges: an explicit allowlist per role. Nothing is granted to PUBLIC (and default privileges
-- revoke EXECUTE from PUBLIC for functions created later). API roles get no table privileges beyond
-- SELECT for viewers; every change goes through the SECURITY DEFINER implementations.

revoke all on all functions in schema inventory, inventory_api from public;
revoke all on all tables in schema inventory, inventory_api from public;
revoke all on all sequences in schema inventory, inventory_api from public;

grant usage on schema inventory, inventory_api to inventory_viewer, inventory_scheduler;

-- Readers (security_invoker views read the tables as the caller).
grant select on inventory.items, inventory.locations, inventory.stock_levels, inventory.reservations,
                inventory.ledger, inventory.returns to inventory_viewer;
grant select on inventory_api.items, inventory_api.locations, inventory_api.stock_levels,
                inventory_api.reservations, inventory_api.stock_movements, inventory_api.returns
  to inventory_viewer;
grant execute on function
  inventory_api.validate_stock(text, numeric, text), inventory.validate_stock(text, numeric, text),
  inventory_api.verify_inventory(), inventory.verify_inventory()
  to inventory_viewer;

-- Order lifecycle and receiving.
grant execute on function
  inventory_api.receive_stock(text, numeric, text, text, numeric, text),
  inventory.receive_stock(text, numeric, text, text, numeric, text),
  inventory_api.reserve_stock(text, numeric, text, text, interval, text),
  inventory.reserve_stock(text, numeric, text, text, interval, text),
  inventory_api.reserve_order(text, jsonb, interval, text), inventory.reserve_order(text, jsonb, interval, text),
  inventory_api.fulfill_order(text, text, numeric, text), inventory.fulfill_order(text, text, numeric, text),
  inventory_api.cancel_reservation(text, text, text), inventory.cancel_reservation(text, text, text),
  inventory_api.process_return(text, text, numeric, text, boolean, text, text),
  inventory.process_return(text, text, numeric, text, boolean, text, text)
  to inventory_operator;

-- Catalogue and maintenance.
grant execute on function
  inventory_api.create_item(text, text, text, numeric, boolean), inventory.create_item(text, text, text, numeric, boolean),
  inventory_api.set_item_status(text, text), inventory.set_item_status(text, text),
  inventory_api.create_location(text, text), inventory.create_location(text, text)
  to inventory_admin;
grant execute on function
  inventory_api.expire_reservations(integer), inventory.expire_reservations(integer)
  to inventory_admin, inventory_scheduler;
