-- Privileges of the stock control objects (48_, 49_, 62_): the same allowlist style as 70_grants.sql,
-- re-asserted after every migration (post-apply). Nothing to PUBLIC; viewers read (under RLS),
-- operators adjust, count, transfer and handle alerts at their locations, admins approve and set
-- policies. Every implementation authorises the caller's business role and location itself.

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
  inventory_api.create_adjustment(text, numeric, text, text, text, text, text),
  inventory.create_adjustment(text, numeric, text, text, text, text, text),
  inventory_api.record_count(text, numeric, text), inventory.record_count(text, numeric, text),
  inventory_api.transfer_stock(text, numeric, text, text, text, text),
  inventory.transfer_stock(text, numeric, text, text, text, text),
  inventory_api.update_reorder_alert(bigint, text, text), inventory.update_reorder_alert(bigint, text, text)
  to inventory_operator;

-- Admins: approvals, policies, reason codes, bulk imports.
grant execute on function
  inventory_api.set_reason_code(text, boolean, numeric, text, text),
  inventory.set_reason_code(text, boolean, numeric, text, text),
  inventory_api.approve_adjustment(bigint, text, text), inventory.approve_adjustment(bigint, text, text),
  inventory_api.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer),
  inventory.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer),
  inventory_api.import_items(jsonb), inventory.import_items(jsonb),
  inventory_api.import_stock_policies(jsonb), inventory.import_stock_policies(jsonb)
  to inventory_admin;

-- The one-pass re-evaluation: unscoped admins and the scheduler (checked inside as 'scheduler').
grant execute on function inventory_api.check_reorder_points(), inventory.check_reorder_points()
  to inventory_admin, inventory_scheduler;
