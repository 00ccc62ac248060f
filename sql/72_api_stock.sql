-- Layer 7, the public API: receiving, the order lifecycle and the checks.

create function inventory_api.receive_stock(sku text, quantity numeric, location text default 'main',
                                            reference text default null, unit_cost numeric default null,
                                            idempotency_key text default null, lot_number text default null,
                                            expires_on date default null, supplier_lot text default null)
returns inventory_api.stock_level
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.receive_stock(receive_stock.sku, receive_stock.quantity, receive_stock.location,
                                        receive_stock.reference, receive_stock.unit_cost,
                                        receive_stock.idempotency_key, receive_stock.lot_number,
                                        receive_stock.expires_on, receive_stock.supplier_lot);
end;

comment on function inventory_api.receive_stock(text, numeric, text, text, numeric, text, text, date, text) is
'Receive units into stock: on_hand += quantity.
Writes a RECEIVE movement. unit_cost, when given, updates the item''s moving-average cost. Lot-tracked items need lot_number (INVALID_ARGUMENT without; refused for other items): a new lot is created (qc_status PENDING when the item requires QC, else PASSED), an existing one grows; an expires_on or supplier_lot other than the lot''s raises ALREADY_EXISTS.';

create function inventory_api.reserve_stock(sku text, quantity numeric, order_ref text,
                                            location text default 'main', expires_in interval default null,
                                            idempotency_key text default null, reference_type text default 'order',
                                            notes text default null, min_shelf_life interval default null)
returns inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_stock(reserve_stock.sku, reserve_stock.quantity, reserve_stock.order_ref,
                                        reserve_stock.location, reserve_stock.expires_in,
                                        reserve_stock.idempotency_key, reserve_stock.reference_type,
                                        reserve_stock.notes, reserve_stock.min_shelf_life);
end;

comment on function inventory_api.reserve_stock(text, numeric, text, text, interval, text, text, text, interval) is
'Hold stock for an order, atomically: never more than is available.
expires_in defaults to the configured TTL (24 hours). reference_type says what order_ref is (order, work_order, transfer, production, sample, other); notes is free text. Raises INSUFFICIENT_STOCK (PT409) with the available quantity in DETAIL. Lot-tracked items are allocated first-expiring-first-out from sellable lots (see inventory_api.lot_allocations), skipping lots that expire before now + min_shelf_life; DETAIL.blocked then says how many units lot state keeps back (expired, qc_pending, qc_failed, quarantined, short_shelf_life).';

create function inventory_api.reserve_order(order_ref text, lines jsonb, expires_in interval default null,
                                            idempotency_key text default null, reference_type text default 'order',
                                            notes text default null, min_shelf_life interval default null)
returns setof inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_order(reserve_order.order_ref, reserve_order.lines,
                                        reserve_order.expires_in, reserve_order.idempotency_key,
                                        reserve_order.reference_type, reserve_order.notes,
                                        reserve_order.min_shelf_life);
end;

comment on function inventory_api.reserve_order(text, jsonb, interval, text, text, text, interval) is
'Hold every line of an order, or none.
lines: [{"sku": "A1", "quantity": 2, "location": "main"}]. Duplicate lines are merged; rows are locked in a fixed order so concurrent orders never deadlock; INSUFFICIENT_STOCK lists every short line. Lines of lot-tracked items are allocated FEFO, skipping lots that expire before now + min_shelf_life.';

create function inventory_api.reserve_many(requests jsonb)
returns setof inventory_api.reserve_many_result
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_many(reserve_many.requests);
end;

comment on function inventory_api.reserve_many(jsonb) is
'Hold stock for many independent orders in one call: each request succeeds or fails on its own, exactly as reserve_stock called once per request in array order would.
requests: [{"order_ref": "SO-1", "sku": "A1", "quantity": 2, "location": "main", "expires_in": "2 hours", "idempotency_key": "k1"}] (1 to 10000; location, expires_in and idempotency_key optional). One row per request in array order: ok with reservation_id, expires_at and reservation (reserve_stock''s result as JSON), or sqlstate, error_code, message and detail of the error reserve_stock would raise. Idempotency keys are reserve_stock''s (a retry through either function replays). Lot-tracked items are refused (INVALID_ARGUMENT): reserve them with reserve_stock.';

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
                                             idempotency_key text default null, lot_number text default null)
returns inventory_api.stock_return
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.process_return(process_return.order_ref, process_return.sku, process_return.quantity,
                                         process_return.reason, process_return.restock, process_return.location,
                                         process_return.idempotency_key, process_return.lot_number);
end;

comment on function inventory_api.process_return(text, text, numeric, text, boolean, text, text, text) is
'Record units a customer sent back; with restock, they go back on hand (RETURN movement).
Never more than was shipped for that order and SKU and not yet returned (QUANTITY_MISMATCH). Lot-tracked items go back into lot_number when given (LOT_NOT_FOUND when unknown), else into the lots shipped to the order.';

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

create function inventory_api.stock_as_of(sku text, location text default 'main',
                                          at timestamptz default pg_catalog.now())
returns inventory_api.stock_snapshot
language sql stable
set search_path = ''
begin atomic
  select * from inventory.stock_as_of(stock_as_of.sku, stock_as_of.location, stock_as_of.at);
end;

comment on function inventory_api.stock_as_of(text, text, timestamptz) is
'The stock of an item at a location at a past moment, from the ledger: on hand, reserved and available (on_hand - reserved) after the last movement of the level at or before at (by transaction time), with that movement''s id and time; 0 before the first movement.
Needs the viewer role at the location. Holds that were overdue then still count as reserved (the ledger records them until they were swept).';
