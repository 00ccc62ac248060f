-- The public stock control API: views and thin wrappers over the SECURITY DEFINER implementations
-- of 48_stock_control.sql and 49_stock_control_import.sql.

create view inventory_api.reason_codes with (security_invoker = true) as
  select r.reason_code, r.description, r.requires_approval, r.approval_threshold, r.direction, r.updated_by,
         r.updated_at
    from inventory.reason_codes r;
comment on view inventory_api.reason_codes is 'Adjustment reasons: direction (add, remove, both) says which way a reason may move stock; an adjustment needs approval when |quantity_delta| > approval_threshold and it removes stock or requires_approval is set.';

create view inventory_api.adjustments with (security_invoker = true) as
  select a.adjustment_id, i.sku, l.code as location, a.quantity_delta, a.adjustment_type, a.reason_code,
         a.description, a.status, a.requires_approval, a.on_hand_at_request, a.count_id, a.requested_by,
         a.requested_at, a.decided_by, a.decided_at, a.decision_note, a.on_hand_at_apply, a.movement_id
    from inventory.adjustments a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id;
comment on view inventory_api.adjustments is 'History of stock adjustments: PENDING, APPLIED (no approval needed), APPROVED, REJECTED or SUPERSEDED (by a newer count).';

create view inventory_api.cycle_counts with (security_invoker = true) as
  select c.count_id, i.sku, l.code as location, c.counted_quantity, c.on_hand_at_count, c.reserved_at_count,
         c.difference, a.adjustment_id, a.status as adjustment_status, c.counted_by, c.counted_at
    from inventory.cycle_counts c
    join inventory.items i on i.item_id = c.item_id
    join inventory.locations l on l.location_id = c.location_id
    left join inventory.adjustments a on a.count_id = c.count_id;
comment on view inventory_api.cycle_counts is 'Physical counts, the on_hand each was compared with, and the adjustment each produced.';

create view inventory_api.stock_policies with (security_invoker = true) as
  select i.sku, l.code as location, p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level,
         p.lead_time_days, p.updated_by, p.updated_at
    from inventory.stock_policies p
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id;
comment on view inventory_api.stock_policies is 'Replenishment policies per item and location.';

create view inventory_api.reorder_alerts with (security_invoker = true) as
  select a.alert_id, i.sku, l.code as location, a.severity, a.status, s.available, a.available_at_open,
         a.reorder_point, a.safety_stock, a.opened_at, a.escalated_at, a.acknowledged_by, a.acknowledged_at,
         a.closed_by, a.closed_at, a.note
    from inventory.reorder_alerts a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
    left join inventory.stock_levels s on s.item_id = a.item_id and s.location_id = a.location_id;
comment on view inventory_api.reorder_alerts is 'Low-stock alerts (OPEN, ACKNOWLEDGED, RESOLVED, DISMISSED) with the current available quantity.';

create view inventory_api.reorder_recommendations with (security_invoker = true) as
  select i.sku, l.code as location, s.on_hand, s.reserved, s.available, p.reorder_point, p.safety_stock,
         p.reorder_quantity, p.max_stock_level, p.lead_time_days,
         case when s.available <= p.safety_stock then 'CRITICAL'
              when s.available <= p.reorder_point then 'REORDER'
              else 'NORMAL' end as status,
         case when s.available > p.reorder_point then 0::numeric
              when p.reorder_quantity is not null then p.reorder_quantity
              when p.max_stock_level is not null then p.max_stock_level - s.available
         end as suggested_order_quantity,
         a.alert_id, a.status as alert_status, s.last_counted_at, s.last_counted_by
    from inventory.stock_policies p
    join inventory.stock_levels s on s.item_id = p.item_id and s.location_id = p.location_id
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id
    left join inventory.reorder_alerts a
      on a.item_id = p.item_id and a.location_id = p.location_id and a.status in ('OPEN', 'ACKNOWLEDGED')
   where i.deleted_at is null;
comment on view inventory_api.reorder_recommendations is 'Every level with a stock policy: CRITICAL (available <= safety stock), REORDER (<= reorder point) or NORMAL, with a suggested order quantity (the reorder quantity, else up to the maximum level; null when the policy gives neither) and the open alert.';

create function inventory_api.create_adjustment(sku text, quantity_delta numeric, adjustment_type text,
                                                reason_code text, location text default 'main',
                                                description text default null, idempotency_key text default null)
returns inventory_api.adjustment
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_adjustment(create_adjustment.sku, create_adjustment.quantity_delta,
                                            create_adjustment.adjustment_type, create_adjustment.reason_code,
                                            create_adjustment.location, create_adjustment.description,
                                            create_adjustment.idempotency_key);
end;
comment on function inventory_api.create_adjustment(text, numeric, text, text, text, text, text) is
'Request a change of on_hand outside the order lifecycle (operators, for their locations).
adjustment_type: physical_count, damage, correction, write_off or found; reason_code from inventory_api.reason_codes. Applied at once (status APPLIED, an ADJUST movement) when the reason needs no approval at this size, else PENDING until an admin decides (approve_adjustment). Raises INSUFFICIENT_STOCK when applying it would leave less on hand than is reserved.';

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

create function inventory_api.record_count(sku text, counted_quantity numeric, location text default 'main')
returns inventory_api.stock_count
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.record_count(record_count.sku, record_count.counted_quantity, record_count.location);
end;
comment on function inventory_api.record_count(text, numeric, text) is
'Record a physical count: sets last_counted_at/by and, when it differs from on_hand, creates a physical_count adjustment for the difference (applied at once when small, else PENDING).
The difference is taken under the level''s lock and stored as a delta, applied to whatever on_hand is at approval; a newer count supersedes older pending count differences.';

create function inventory_api.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
                                             reference text default null, idempotency_key text default null)
returns inventory_api.stock_transfer
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.transfer_stock(transfer_stock.sku, transfer_stock.quantity, transfer_stock.from_location,
                                         transfer_stock.to_location, transfer_stock.reference,
                                         transfer_stock.idempotency_key);
end;
comment on function inventory_api.transfer_stock(text, numeric, text, text, text, text) is
'Move available units between two locations atomically: a TRANSFER_OUT and a TRANSFER_IN movement, the second linked to the first by related_movement_id. Never more than is available (INSUFFICIENT_STOCK); levels are locked in a fixed order, so opposite transfers never deadlock.';

create function inventory_api.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric,
                                               reorder_quantity numeric default null,
                                               max_stock_level numeric default null,
                                               lead_time_days integer default null)
returns inventory_api.stock_policy
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_stock_policy(set_stock_policy.sku, set_stock_policy.location,
                                           set_stock_policy.reorder_point, set_stock_policy.safety_stock,
                                           set_stock_policy.reorder_quantity, set_stock_policy.max_stock_level,
                                           set_stock_policy.lead_time_days);
end;
comment on function inventory_api.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer) is
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

create function inventory_api.check_reorder_points()
returns inventory_api.reorder_check
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.check_reorder_points();
end;
comment on function inventory_api.check_reorder_points() is
'Re-evaluate every level with a stock policy in one pass: open, raise and resolve alerts; returns the counts. Alerts are also maintained in real time by a trigger, so this is a repair or a scheduled safety net.';

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
