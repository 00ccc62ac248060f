-- Layer 8, grants: an explicit allowlist per role, re-asserted after every migration (post-apply).
-- Nothing is granted to PUBLIC, and default privileges revoke EXECUTE from PUBLIC for functions
-- created later. API roles get no table privileges beyond SELECT for viewers (filtered by row level
-- security); every change goes through the SECURITY DEFINER implementations, which authorise the
-- caller's business role and location themselves.

revoke all on all functions in schema inventory, inventory_api from public;
revoke all on all tables in schema inventory, inventory_api from public;
revoke all on all sequences in schema inventory, inventory_api from public;
revoke all on type inventory.hold_move, inventory.order_line, inventory.movement_type, inventory.movement,
  inventory.audit_operation, inventory.reference_type, inventory.lot_delta from public;

grant usage on schema inventory, inventory_api to inventory_viewer, inventory_scheduler;

-- Identity helpers called by the row level security policies (as the caller).
grant execute on function inventory.current_actor(), inventory.visible_location_ids(), inventory.has_any_role(),
  inventory.is_allowed(text, bigint)
  to inventory_viewer;

-- Which pyinv is installed: anyone who may use the API may ask.
grant execute on function inventory_api.schema_version(), inventory.schema_version() to inventory_viewer;

-- Readers (security_invoker views read the tables as the caller, under RLS).
grant select on inventory.error_codes, inventory.items, inventory.locations, inventory.stock_levels,
                inventory.reservations, inventory.ledger, inventory.returns, inventory.user_roles,
                inventory.audit_log, inventory.audit_chain, inventory.hot_buckets to inventory_viewer;
-- What "available" means, read by inventory_api.stock_levels and the lot views as the caller.
grant execute on function inventory.overdue_quantity(bigint, bigint), inventory.blocked_quantity(bigint, bigint),
  inventory.parked_units(bigint, bigint),
  inventory.lot_availability(bigint, bigint, date), inventory.lot_today(),
  inventory.lot_block_reason(text, boolean, date, date, date)
  to inventory_viewer;
grant select on inventory_api.error_codes, inventory_api.items, inventory_api.locations, inventory_api.stock_levels,
                inventory_api.reservations, inventory_api.stock_movements, inventory_api.returns,
                inventory_api.user_roles, inventory_api.audit_log
  to inventory_viewer;
grant execute on function
  inventory_api.validate_stock(text, numeric, text), inventory.validate_stock(text, numeric, text),
  inventory_api.verify_inventory(jsonb), inventory.verify_inventory(jsonb)
  to inventory_viewer;

-- Order lifecycle and receiving.
grant execute on function
  inventory_api.receive_stock(text, numeric, text, text, numeric, text, text, date, text),
  inventory.receive_stock(text, numeric, text, text, numeric, text, text, date, text),
  inventory_api.reserve_stock(text, numeric, text, text, interval, text, text, text, interval),
  inventory.reserve_stock(text, numeric, text, text, interval, text, text, text, interval),
  inventory_api.reserve_order(text, jsonb, interval, text, text, text, interval),
  inventory.reserve_order(text, jsonb, interval, text, text, text, interval),
  inventory_api.reserve_many(jsonb), inventory.reserve_many(jsonb),
  inventory_api.fulfill_order(text, text, numeric, text), inventory.fulfill_order(text, text, numeric, text),
  inventory_api.cancel_reservation(text, text, text), inventory.cancel_reservation(text, text, text),
  inventory_api.process_return(text, text, numeric, text, boolean, text, text, text),
  inventory.process_return(text, text, numeric, text, boolean, text, text, text)
  to inventory_operator;

-- Catalogue, access and audit.
grant execute on function
  inventory_api.create_item(text, text, text, numeric, boolean, boolean), inventory.create_item(text, text, text, numeric, boolean, boolean),
  inventory_api.set_item_status(text, text), inventory.set_item_status(text, text),
  inventory_api.update_item(text, text, text, numeric, integer), inventory.update_item(text, text, text, numeric, integer),
  inventory_api.delete_item(text, integer), inventory.delete_item(text, integer),
  inventory_api.restore_item(text), inventory.restore_item(text),
  inventory_api.create_location(text, text), inventory.create_location(text, text),
  inventory_api.grant_user_role(text, text, text), inventory.grant_user_role(text, text, text),
  inventory_api.revoke_user_role(text, text, text), inventory.revoke_user_role(text, text, text),
  inventory_api.verify_audit_chain(jsonb), inventory.verify_audit_chain(jsonb)
  to inventory_admin;

-- Maintenance: long-running, so never exposed to PostgREST's anon/authenticated.
grant execute on function
  inventory_api.expire_reservations(integer), inventory.expire_reservations(integer),
  inventory_api.seal_audit_log(integer), inventory.seal_audit_log(integer),
  inventory_api.audit_anchor(numeric), inventory.take_anchor(numeric)
  to inventory_admin, inventory_scheduler;

-- The maintenance runners' lead and their record of runs (pyinv maintain).
grant execute on function
  inventory_api.claim_maintenance_lease(text, integer), inventory.claim_maintenance_lease(text, integer),
  inventory_api.release_maintenance_lease(text), inventory.release_maintenance_lease(text),
  inventory_api.maintenance_leader(), inventory.maintenance_leader(),
  inventory_api.record_maintenance_run(text, bigint, interval, text),
  inventory.record_maintenance_run(text, bigint, interval, text)
  to inventory_admin, inventory_scheduler;

-- Stock control.
revoke all on inventory.reason_codes, inventory.adjustments, inventory.cycle_counts, inventory.stock_policies,
              inventory.reorder_alerts from public;
revoke all on inventory_api.reason_codes, inventory_api.adjustments, inventory_api.cycle_counts,
              inventory_api.stock_policies, inventory_api.reorder_alerts, inventory_api.reorder_recommendations
  from public;
revoke all on type inventory.policy_import_row from public;

-- Readers.
grant select on inventory.reason_codes, inventory.adjustments, inventory.cycle_counts, inventory.stock_policies,
                inventory.reorder_alerts to inventory_viewer;
grant select on inventory_api.reason_codes, inventory_api.adjustments, inventory_api.cycle_counts,
                inventory_api.stock_policies, inventory_api.reorder_alerts, inventory_api.reorder_recommendations
  to inventory_viewer;

-- Operators: adjustments (requests), counts, transfers, alert handling.
grant execute on function
  inventory_api.create_adjustment(text, numeric, text, text, text, text, text, text),
  inventory.create_adjustment(text, numeric, text, text, text, text, text, text),
  inventory_api.record_count(text, numeric, text, text), inventory.record_count(text, numeric, text, text),
  inventory_api.transfer_stock(text, numeric, text, text, text, text, text),
  inventory.transfer_stock(text, numeric, text, text, text, text, text),
  inventory_api.update_reorder_alert(bigint, text, text), inventory.update_reorder_alert(bigint, text, text)
  to inventory_operator;

-- Admins: approvals, policies, reason codes, bulk imports.
grant execute on function
  inventory_api.set_reason_code(text, boolean, numeric, text, text),
  inventory.set_reason_code(text, boolean, numeric, text, text),
  inventory_api.approve_adjustment(bigint, text, text), inventory.approve_adjustment(bigint, text, text),
  inventory_api.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer, integer),
  inventory.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer, integer),
  inventory_api.import_items(jsonb), inventory.import_items(jsonb),
  inventory_api.import_stock_policies(jsonb), inventory.import_stock_policies(jsonb)
  to inventory_admin;

-- The one-pass re-evaluation: unscoped admins and the scheduler (checked inside as 'scheduler').
-- Hot mode: admins of the location (checked inside).
grant execute on function inventory_api.set_hot_mode(text, text, integer), inventory.set_hot_mode(text, text, integer)
  to inventory_admin;
grant execute on function inventory_api.check_reorder_points(), inventory.check_reorder_points()
  to inventory_admin, inventory_scheduler;
-- Lots: readers see lots and their levels, allocations and movements at their locations; admins
-- set a lot's status; the scheduler (and unscoped admins) write expired lots off.
revoke all on inventory.lots, inventory.lot_levels, inventory.lot_allocations, inventory.lot_movements from public;
revoke all on inventory_api.lots, inventory_api.expiring_lots, inventory_api.lot_allocations from public;
grant select on inventory.lots, inventory.lot_levels, inventory.lot_allocations, inventory.lot_movements
  to inventory_viewer;
grant select on inventory_api.lots, inventory_api.expiring_lots, inventory_api.lot_allocations to inventory_viewer;
grant execute on function inventory_api.trace_lot(text, text), inventory.trace_lot(text, text) to inventory_viewer;
grant execute on function
  inventory_api.set_lot_status(text, text, text, boolean, text), inventory.set_lot_status(text, text, text, boolean, text)
  to inventory_admin;
grant execute on function inventory_api.expire_inventory_lots(), inventory.expire_inventory_lots()
  to inventory_admin, inventory_scheduler;
-- Reports (issue 13): readers see the reports of their locations; the materialized view behind
-- low_stock_items is never granted (it cannot have row level security): they read it through
-- inventory.low_stock_rows(), which keeps their locations. The maintenance jobs are readable (a row
-- lock needs UPDATE, which no role has) by readers and the scheduler, through maintenance_status.
revoke all on inventory.mv_low_stock_items, inventory.maintenance_jobs from public;
revoke all on inventory_api.inventory_valuation, inventory_api.movement_summary,
              inventory_api.active_reservations_summary, inventory_api.low_stock_items, inventory_api.alert_statistics,
              inventory_api.dashboard, inventory_api.maintenance_status from public;
grant select on inventory.maintenance_jobs to inventory_viewer, inventory_scheduler;
grant select on inventory_api.inventory_valuation, inventory_api.movement_summary,
                inventory_api.active_reservations_summary, inventory_api.low_stock_items,
                inventory_api.alert_statistics, inventory_api.dashboard, inventory_api.maintenance_status
  to inventory_viewer;
grant select on inventory_api.maintenance_status to inventory_scheduler;
grant execute on function inventory.low_stock_rows() to inventory_viewer;
grant execute on function inventory_api.stock_as_of(text, text, timestamptz),
  inventory.stock_as_of(text, text, timestamptz) to inventory_viewer;
grant execute on function inventory_api.refresh_inventory_views(), inventory.refresh_inventory_views()
  to inventory_admin, inventory_scheduler;
-- Events (issue 13): readers read and acknowledge events of their locations (their own consumers);
-- the scheduler and unscoped admins purge them. Writing them is internal (emit_event, from triggers).
revoke all on inventory.events, inventory.event_consumers from public;
revoke all on inventory_api.events, inventory_api.event_consumers from public;
grant select on inventory.events, inventory.event_consumers to inventory_viewer;
grant select on inventory_api.events, inventory_api.event_consumers to inventory_viewer;
grant execute on function inventory.movement_payload(inventory.ledger) to inventory_viewer;  -- read by the view
grant execute on function
  inventory_api.read_events(text, integer, bigint), inventory.read_events(text, integer, bigint),
  inventory_api.ack_events(text, bigint), inventory.ack_events(text, bigint)
  to inventory_viewer;
grant execute on function inventory_api.purge_events(interval), inventory.purge_events(interval)
  to inventory_admin, inventory_scheduler;
-- Metrics and the report's daily movements (issue 13): readers, over their locations. The audit
-- backlog is counted by a definer function (the audit log is for unscoped admins only); the
-- maintenance schedule's default intervals are a constant.
revoke all on inventory_api.inventory_metrics, inventory_api.daily_movements from public;
grant select on inventory_api.inventory_metrics, inventory_api.daily_movements to inventory_viewer;
grant execute on function inventory.unsealed_audit_rows(), inventory.maintenance_default_interval(text)
  to inventory_viewer;
