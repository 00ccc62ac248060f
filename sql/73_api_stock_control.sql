-- Layer 7, the public API: stock control.

create function inventory_api.create_adjustment(sku text, quantity_delta numeric, adjustment_type text,
                                                reason_code text, location text default 'main',
                                                description text default null, idempotency_key text default null,
                                                lot_number text default null)
returns inventory_api.adjustment
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_adjustment(create_adjustment.sku, create_adjustment.quantity_delta,
                                            create_adjustment.adjustment_type, create_adjustment.reason_code,
                                            create_adjustment.location, create_adjustment.description,
                                            create_adjustment.idempotency_key, create_adjustment.lot_number);
end;

comment on function inventory_api.create_adjustment(text, numeric, text, text, text, text, text, text) is
'Request a change of on_hand outside the order lifecycle (operators, for their locations).
adjustment_type: physical_count, damage, correction, write_off or found; reason_code from inventory_api.reason_codes. Applied at once (status APPLIED, an ADJUST movement) when the reason needs no approval at this size, else PENDING until an admin decides (approve_adjustment). Raises INSUFFICIENT_STOCK when applying it would leave less on hand than is reserved. Lot-tracked items name the lot (lot_number, required).';

create function inventory_api.approve_adjustment(adjustment_id bigint, decision text, note text default null)
returns inventory_api.adjustment
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.approve_adjustment(approve_adjustment.adjustment_id, approve_adjustment.decision,
                                             approve_adjustment.note);
end;

comment on function inventory_api.approve_adjustment(bigint, text, text) is
'Decide a PENDING adjustment: decision approved (applies its delta through the ledger as ADJUST) or rejected. Admins only, never the requester (SELF_APPROVAL_FORBIDDEN, PT409); a decided adjustment raises INVALID_STATE (PT409); INSUFFICIENT_STOCK when on_hand would fall below reserved.';

create function inventory_api.set_reason_code(code text, requires_approval boolean, approval_threshold numeric,
                                              direction text default null, description text default null)
returns setof inventory_api.reason_codes
language sql volatile
set search_path = ''
begin atomic
  select inventory.set_reason_code(set_reason_code.code, set_reason_code.requires_approval,
                                   set_reason_code.approval_threshold, set_reason_code.direction,
                                   set_reason_code.description);
  select * from inventory_api.reason_codes r where r.reason_code = set_reason_code.code;
end;

comment on function inventory_api.set_reason_code(text, boolean, numeric, text, text) is
'Create or change an adjustment reason (unscoped admins; audited).
direction (add, remove or both) and description are required for a new code and kept when omitted. Removals above approval_threshold always need approval; additions only when requires_approval.';

create function inventory_api.record_count(sku text, counted_quantity numeric, location text default 'main',
                                            lot_number text default null)
returns inventory_api.stock_count
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.record_count(record_count.sku, record_count.counted_quantity, record_count.location,
                                       record_count.lot_number);
end;

comment on function inventory_api.record_count(text, numeric, text, text) is
'Record a physical count: sets last_counted_at/by and, when it differs from on_hand, creates a physical_count adjustment for the difference (applied at once when small, else PENDING).
The difference is taken under the level''s lock and stored as a delta, applied to whatever on_hand is at approval; a newer count supersedes older pending count differences. Lot-tracked items are counted lot by lot (lot_number, required).';

create function inventory_api.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
                                             reference text default null, idempotency_key text default null,
                                             lot_number text default null)
returns inventory_api.stock_transfer
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.transfer_stock(transfer_stock.sku, transfer_stock.quantity, transfer_stock.from_location,
                                         transfer_stock.to_location, transfer_stock.reference,
                                         transfer_stock.idempotency_key, transfer_stock.lot_number);
end;

comment on function inventory_api.transfer_stock(text, numeric, text, text, text, text, text) is
'Move available units between two locations atomically: a TRANSFER_OUT and a TRANSFER_IN movement, the second linked to the first by related_movement_id. Never more than is available (INSUFFICIENT_STOCK); levels are locked in a fixed order, so opposite transfers never deadlock. Lot-tracked items move the free units of lot_number (in any state), or without it the sellable lots first expiring first.';

create function inventory_api.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric,
                                               reorder_quantity numeric default null,
                                               max_stock_level numeric default null,
                                               lead_time_days integer default null,
                                               expected_version integer default null)
returns inventory_api.stock_policy
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_stock_policy(set_stock_policy.sku, set_stock_policy.location,
                                           set_stock_policy.reorder_point, set_stock_policy.safety_stock,
                                           set_stock_policy.reorder_quantity, set_stock_policy.max_stock_level,
                                           set_stock_policy.lead_time_days, set_stock_policy.expected_version);
end;

comment on function inventory_api.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer, integer) is
'Set the replenishment policy of an item at a location (admins). From then on a reorder alert opens whenever available falls to or below reorder_point (CRITICAL at or below safety_stock) and resolves when it recovers.';

create function inventory_api.update_reorder_alert(alert_id bigint, status text, note text default null)
returns inventory_api.reorder_alert
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.update_reorder_alert(update_reorder_alert.alert_id, update_reorder_alert.status,
                                               update_reorder_alert.note);
end;

comment on function inventory_api.update_reorder_alert(bigint, text, text) is
'Acknowledge, resolve or dismiss an open reorder alert (operators of its location). A closed alert raises INVALID_STATE. An alert closed by hand is not reopened until stock has recovered once.';

create function inventory_api.import_items(rows jsonb)
returns jsonb
language sql volatile
set search_path = ''
begin atomic
  select inventory.import_items(import_items.rows);
end;

comment on function inventory_api.import_items(jsonb) is
'Create up to 10000 items in one transaction: rows [{"sku", "name", "unit_of_measure"?, "unit_cost"?, "track_lots"?, "status"?, "row"?}].
Returns {"received", "inserted", "unchanged", "rejected": [{"row", "key", "code", "reason"}]}; items that exist with the same attributes are unchanged, with other attributes rejected. Admins only.';

create function inventory_api.import_stock_policies(rows jsonb)
returns jsonb
language sql volatile
set search_path = ''
begin atomic
  select inventory.import_stock_policies(import_stock_policies.rows);
end;

comment on function inventory_api.import_stock_policies(jsonb) is
'Set up to 10000 stock policies in one transaction: rows [{"sku", "location"?, "reorder_point", "safety_stock", "reorder_quantity"?, "max_stock_level"?, "lead_time_days"?, "row"?}].
Returns {"received", "applied", "alerts_opened", "rejected": [{"row", "key", "code", "reason"}]}. Admins (rows of locations the caller does not administer are rejected).';

create function inventory_api.set_lot_status(sku text, lot_number text, qc_status text default null,
                                             quarantined boolean default null, note text default null)
returns inventory_api.lot_status_change
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_lot_status(set_lot_status.sku, set_lot_status.lot_number, set_lot_status.qc_status,
                                         set_lot_status.quarantined, set_lot_status.note);
end;

comment on function inventory_api.set_lot_status(text, text, text, boolean, text) is
'Set a lot''s quality status (PENDING, PASSED, FAILED) and/or quarantine (unscoped admins; audited).
Takes effect at once: passing QC or lifting quarantine makes the units available, failing or quarantining takes them out of availability and moves the lot''s open holds to other sellable lots (FEFO), releasing those no lot can take (counted in the result).';

create function inventory_api.trace_lot(sku text, lot_number text)
returns setof inventory_api.lot_trace
language sql stable
set search_path = ''
begin atomic
  select * from inventory.trace_lot(trace_lot.sku, trace_lot.lot_number);
end;

comment on function inventory_api.trace_lot(text, text) is
'Recall trace: every hold (order) that was allocated units of the lot, with units allocated, shipped, returned and given back, the location and dates. Rows at locations the caller may not see are left out.';

create function inventory_api.set_hot_mode(sku text, location text default 'main', buckets integer default 8)
returns inventory_api.hot_mode
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_hot_mode(set_hot_mode.sku, set_hot_mode.location, set_hot_mode.buckets);
end;

comment on function inventory_api.set_hot_mode(text, text, integer) is
'Hot mode for a flash sale (admins of the location): spreads the level''s free units over buckets (2-64) so that holds commit side by side instead of queueing on one row; buckets => 1 turns it off. reserve_stock and reserve_order then take a bucket nobody has locked and, when none has the units, pool every free unit under the level''s lock before answering, so a hold is refused only when the level as a whole is short. stock_levels, the ledger (bucket movements carry their bucket; REBALANCE moves change no total), verify_inventory, expiry, returns, adjustments and transfers keep their meaning. Not for lot-tracked items (INVALID_ARGUMENT). Returns the level with the free units of each bucket.';
