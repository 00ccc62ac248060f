-- The public API: security_invoker views and SECURITY INVOKER functions in inventory_api.
-- Each function is a thin SQL wrapper over its SECURITY DEFINER implementation in the private schema,
-- so PostgREST and linters see no definer code in the exposed schema. Parameter names and defaults
-- here are the public contract (PostgREST calls them with named arguments).

create view inventory_api.items with (security_invoker = true) as
  select i.sku, i.name, i.unit_of_measure, i.unit_cost, i.status, i.track_lots, i.created_at, i.updated_at
    from inventory.items i
   where i.deleted_at is null;
comment on view inventory_api.items is 'The catalogue (deleted items excluded).';

create view inventory_api.locations with (security_invoker = true) as
  select l.code, l.name, l.created_at from inventory.locations l;
comment on view inventory_api.locations is 'Stock locations.';

create view inventory_api.stock_levels with (security_invoker = true) as
  select i.sku, l.code as location, s.on_hand, s.reserved,
         s.available + coalesce(o.overdue, 0) as available,
         coalesce(o.overdue, 0) as expired_unreleased,
         i.status, s.version, s.updated_at
    from inventory.stock_levels s
    join inventory.items i on i.item_id = s.item_id
    join inventory.locations l on l.location_id = s.location_id
    left join lateral (
      select pg_catalog.sum(r.quantity - r.quantity_fulfilled) as overdue
        from inventory.reservations r
       where r.item_id = s.item_id and r.location_id = s.location_id
         and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()) o on true
   where i.deleted_at is null;
comment on view inventory_api.stock_levels is 'Stock per item and location. available already counts overdue holds as released (expired_unreleased of them are not swept yet), so available = on_hand - reserved + expired_unreleased.';

create view inventory_api.reservations with (security_invoker = true) as
  select r.reservation_id, r.order_ref, i.sku, l.code as location, r.quantity, r.quantity_fulfilled,
         case when r.status = 'ACTIVE' then r.quantity - r.quantity_fulfilled else 0 end as quantity_open,
         r.status, r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now() as is_overdue,
         r.expires_at, r.created_by, r.created_at, r.closed_at, r.quantity_returned
    from inventory.reservations r
    join inventory.items i on i.item_id = r.item_id
    join inventory.locations l on l.location_id = r.location_id;
comment on view inventory_api.reservations is 'Holds of stock for orders. is_overdue: still ACTIVE but past expires_at, so it no longer counts and cannot be fulfilled. quantity_returned: units of its shipment that came back.';

create view inventory_api.stock_movements with (security_invoker = true) as
  select g.movement_id, g.movement_type::text as movement_type, i.sku, l.code as location, g.on_hand_delta, g.reserved_delta,
         g.on_hand_before, g.on_hand_after, g.reserved_before, g.reserved_after, g.actor, g.reason,
         g.reference, g.idempotency_key, g.related_movement_id, g.reservation_id, g.metadata, g.created_at
    from inventory.ledger g
    join inventory.items i on i.item_id = g.item_id
    join inventory.locations l on l.location_id = g.location_id;
comment on view inventory_api.stock_movements is 'The ledger: every stock movement, append-only.';

create view inventory_api.returns with (security_invoker = true) as
  select t.return_id, t.order_ref, i.sku, l.code as location, t.quantity, t.reason, t.restocked,
         t.movement_id, t.created_by, t.created_at
    from inventory.returns t
    join inventory.items i on i.item_id = t.item_id
    join inventory.locations l on l.location_id = t.location_id;
comment on view inventory_api.returns is 'Customer returns, restocked or not.';

create view inventory_api.error_codes with (security_invoker = true) as
  select e.code, e.sqlstate, e.description from inventory.error_codes e;
comment on view inventory_api.error_codes is 'The error catalogue: HINT token, SQLSTATE and meaning of every error pyinv raises.';

create function inventory_api.create_item(sku text, name text, unit_of_measure text default 'each',
                                          unit_cost numeric default null, track_lots boolean default false)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_item(create_item.sku, create_item.name, create_item.unit_of_measure,
                                      create_item.unit_cost, create_item.track_lots);
end;
comment on function inventory_api.create_item(text, text, text, numeric, boolean) is
'Create an item.
Idempotent by SKU: the same attributes again return the item; other attributes raise ALREADY_EXISTS (PT409).';

create function inventory_api.set_item_status(sku text, status text)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_item_status(set_item_status.sku, set_item_status.status);
end;
comment on function inventory_api.set_item_status(text, text) is
'Set an item''s status: active, on_hold or discontinued.
on_hold and discontinued items cannot be reserved; discontinued items cannot be received.';

create function inventory_api.create_location(code text, name text)
returns inventory_api.location
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_location(create_location.code, create_location.name);
end;
comment on function inventory_api.create_location(text, text) is
'Create a stock location.
Idempotent by code: the same name again returns it; another name raises ALREADY_EXISTS (PT409).';

create function inventory_api.receive_stock(sku text, quantity numeric, location text default 'main',
                                            reference text default null, unit_cost numeric default null,
                                            idempotency_key text default null)
returns inventory_api.stock_level
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.receive_stock(receive_stock.sku, receive_stock.quantity, receive_stock.location,
                                        receive_stock.reference, receive_stock.unit_cost,
                                        receive_stock.idempotency_key);
end;
comment on function inventory_api.receive_stock(text, numeric, text, text, numeric, text) is
'Receive units into stock: on_hand += quantity.
Writes a RECEIVE movement. unit_cost, when given, updates the item''s moving-average cost.';

create function inventory_api.reserve_stock(sku text, quantity numeric, order_ref text,
                                            location text default 'main', expires_in interval default null,
                                            idempotency_key text default null)
returns inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_stock(reserve_stock.sku, reserve_stock.quantity, reserve_stock.order_ref,
                                        reserve_stock.location, reserve_stock.expires_in,
                                        reserve_stock.idempotency_key);
end;
comment on function inventory_api.reserve_stock(text, numeric, text, text, interval, text) is
'Hold stock for an order, atomically: never more than is available.
expires_in defaults to the configured TTL (24 hours). Raises INSUFFICIENT_STOCK (PT409) with the available quantity in DETAIL.';

create function inventory_api.reserve_order(order_ref text, lines jsonb, expires_in interval default null,
                                            idempotency_key text default null)
returns setof inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_order(reserve_order.order_ref, reserve_order.lines,
                                        reserve_order.expires_in, reserve_order.idempotency_key);
end;
comment on function inventory_api.reserve_order(text, jsonb, interval, text) is
'Hold every line of an order, or none.
lines: [{"sku": "A1", "quantity": 2, "location": "main"}]. Duplicate lines are merged; rows are locked in a fixed order so concurrent orders never deadlock; INSUFFICIENT_STOCK lists every short line.';

create function inventory_api.fulfill_order(order_ref text, sku text default null, quantity numeric default null,
                                            idempotency_key text default null)
returns setof inventory_api.reservation_change
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.fulfill_order(fulfill_order.order_ref, fulfill_order.sku, fulfill_order.quantity,
                                        fulfill_order.idempotency_key);
end;
comment on function inventory_api.fulfill_order(text, text, numeric, text) is
'Ship held stock: on_hand and reserved both fall.
Without sku, ships every hold of the order; with sku and quantity, ships that much first-in first-out and keeps the rest held. Overdue holds raise RESERVATION_EXPIRED.';

create function inventory_api.cancel_reservation(order_ref text, sku text default null,
                                                 idempotency_key text default null)
returns setof inventory_api.reservation_change
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.cancel_reservation(cancel_reservation.order_ref, cancel_reservation.sku,
                                             cancel_reservation.idempotency_key);
end;
comment on function inventory_api.cancel_reservation(text, text, text) is
'Release the active holds of an order (or of one SKU in it).
Holds already past expiry are recorded as EXPIRE, the rest as RELEASE.';

create function inventory_api.process_return(order_ref text, sku text, quantity numeric, reason text,
                                             restock boolean default true, location text default 'main',
                                             idempotency_key text default null)
returns inventory_api.stock_return
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.process_return(process_return.order_ref, process_return.sku, process_return.quantity,
                                         process_return.reason, process_return.restock, process_return.location,
                                         process_return.idempotency_key);
end;
comment on function inventory_api.process_return(text, text, numeric, text, boolean, text, text) is
'Record units a customer sent back; with restock, they go back on hand (RETURN movement).
Never more than was shipped for that order and SKU and not yet returned (QUANTITY_MISMATCH).';

create function inventory_api.validate_stock(sku text, quantity numeric, location text default 'main')
returns inventory_api.stock_check
language sql stable
set search_path = ''
begin atomic
  select * from inventory.validate_stock(validate_stock.sku, validate_stock.quantity, validate_stock.location);
end;
comment on function inventory_api.validate_stock(text, numeric, text) is
'Check whether a quantity could be reserved now, without reserving it.
Returns can_fulfill, the available quantity and, when it cannot, the error code reserve_stock would raise.';

create function inventory_api.expire_reservations(batch_size integer default 1000)
returns integer
language sql volatile
set search_path = ''
begin atomic
  select inventory.expire_reservations(expire_reservations.batch_size);
end;
comment on function inventory_api.expire_reservations(integer) is
'Release up to batch_size overdue holds, writing EXPIRE movements; returns how many.
Uses SKIP LOCKED, so several sessions may run it at once. Call it until it returns less than batch_size.';

create function inventory_api.verify_inventory(anchor jsonb default null)
returns setof inventory_api.invariant_violation
language sql stable
set search_path = ''
begin atomic
  select * from inventory.verify_inventory(verify_inventory.anchor);
end;
comment on function inventory_api.verify_inventory(jsonb) is
'List every broken invariant; no rows means the books balance.
Checks: stock levels equal their ledger sums, the ledger is continuous and its hash chains intact, reserved equals active holds, nothing negative or oversold, returns equal what the holds record as returned. With an anchor (from audit_anchor), also that no ledger movement it covers was rewritten or deleted.';

create function inventory_api.grant_user_role(user_id text, role text, location text default null)
returns inventory_api.user_role
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.grant_user_role(grant_user_role.user_id, grant_user_role.role, grant_user_role.location);
end;
comment on function inventory_api.grant_user_role(text, text, text) is
'Give a user (JWT sub, or a login name) a business role: viewer, operator, admin or scheduler.
location limits the role to one location; null means every location. Admins only.';

create function inventory_api.revoke_user_role(user_id text, role text, location text default null)
returns integer
language sql volatile
set search_path = ''
begin atomic
  select inventory.revoke_user_role(revoke_user_role.user_id, revoke_user_role.role, revoke_user_role.location);
end;
comment on function inventory_api.revoke_user_role(text, text, text) is
'Take a business role away from a user; returns how many grants were removed. Admins only.';

create function inventory_api.seal_audit_log(batch_size integer default 10000)
returns integer
language sql volatile
set search_path = ''
begin atomic
  select inventory.seal_audit_log(seal_audit_log.batch_size);
end;
comment on function inventory_api.seal_audit_log(integer) is
'Append up to batch_size committed audit rows to the hash chain; returns how many (0: nothing to seal), or null when another sealer is running.
Self-locking through a lock only pyinv can take. Call it until it returns less than batch_size. Rows of transactions still running are sealed by a later call.';

create function inventory_api.verify_audit_chain(anchor jsonb default null)
returns setof inventory_api.chain_break
language sql stable
set search_path = ''
begin atomic
  select * from inventory.verify_audit_chain(verify_audit_chain.anchor);
end;
comment on function inventory_api.verify_audit_chain(jsonb) is
'Report the first broken link of the audit hash chain, rows sealing skipped, and committed rows left unsealed longer than settings.audit_seal_max_lag; no rows means the chain is intact.
With an anchor (from audit_anchor), also report a chain truncated or rewritten since it was taken.';

create function inventory_api.audit_anchor(wait_seconds numeric default 10)
returns jsonb
language sql volatile
set search_path = ''
begin atomic
  select inventory.take_anchor(audit_anchor.wait_seconds);
end;
comment on function inventory_api.audit_anchor(numeric) is
'Export the heads of the audit chain and of every stock level''s ledger chain, to keep where the database cannot write (maintenance: admins and the scheduler).
Pass the result to verify_audit_chain(anchor) and verify_inventory(anchor) later. Must run at READ COMMITTED; waits up to wait_seconds for transactions that could still write below its ledger cut (BUSY when they do not end).';
