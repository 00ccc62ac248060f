-- Layer 4, functions by concern: the result types of the API. Public functions return these public
-- types (or the row type of an API view), never a private table's row type.

create type inventory_api.item as (
  sku text, name text, unit_of_measure text, unit_cost numeric, status text, track_lots boolean,
  created_at timestamptz, updated_at timestamptz, version integer, deleted_at timestamptz, deleted_by text,
  requires_qc boolean);
comment on type inventory_api.item is 'An item of the catalogue.';

create type inventory_api.location as (code text, name text, created_at timestamptz);
comment on type inventory_api.location is 'A stock location.';

create type inventory_api.user_role as (
  user_id text, role text, location text, granted_by text, granted_at timestamptz);
comment on type inventory_api.user_role is 'A business role held by a user, optionally for one location.';

create type inventory_api.stock_level as (
  sku text, location text, on_hand numeric, reserved numeric, available numeric, version bigint,
  updated_at timestamptz);
comment on type inventory_api.stock_level is 'Quantities of one item at one location after a movement.';

create type inventory_api.hot_mode as (
  sku text, location text, buckets integer, on_hand numeric, reserved numeric, available numeric, bucket_free numeric[]);

comment on type inventory_api.hot_mode is 'A level''s hot mode after set_hot_mode: buckets (1 = off), its quantities (as inventory_api.stock_levels shows them, before overdue holds are swept) and the free units of each active bucket.';

create type inventory_api.reservation as (
  reservation_id bigint, order_ref text, sku text, location text, quantity numeric,
  quantity_fulfilled numeric, quantity_open numeric, status text, expires_at timestamptz,
  created_by text, created_at timestamptz, reference_type text, notes text);
comment on type inventory_api.reservation is 'A hold of stock for an order.';

create type inventory_api.reserve_many_result as (
  ordinal integer, order_ref text, sku text, location text, reservation_id bigint, quantity numeric,
  expires_at timestamptz, ok boolean, sqlstate text, error_code text, message text, detail jsonb,
  reservation jsonb);
comment on type inventory_api.reserve_many_result is 'The outcome of one request of reserve_many: its hold (ok, reservation = what reserve_stock returns, as JSON) or the error reserve_stock would have raised (sqlstate, error_code = the HINT, message, detail).';

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

create type inventory_api.chain_break as (seq bigint, audit_id bigint, problem text);
comment on type inventory_api.chain_break is 'The first broken link of the audit chain.';

create type inventory_api.adjustment as (
  adjustment_id bigint, sku text, location text, quantity_delta numeric, adjustment_type text, reason_code text,
  description text, status text, requires_approval boolean, on_hand_at_request numeric, count_id bigint,
  requested_by text, requested_at timestamptz, decided_by text, decided_at timestamptz, decision_note text,
  on_hand_at_apply numeric, movement_id bigint, lot_number text);
comment on type inventory_api.adjustment is 'A stock adjustment request and its outcome.';

create type inventory_api.stock_count as (
  count_id bigint, sku text, location text, counted_quantity numeric, on_hand_at_count numeric,
  reserved_at_count numeric, difference numeric, adjustment_id bigint, adjustment_status text,
  counted_by text, counted_at timestamptz, lot_number text);
comment on type inventory_api.stock_count is 'A recorded cycle count and the adjustment it produced (none when it matched).';

create type inventory_api.stock_transfer as (
  sku text, quantity numeric, from_location text, to_location text, reference text,
  out_movement_id bigint, in_movement_id bigint, from_on_hand numeric, from_available numeric,
  to_on_hand numeric, to_available numeric);
comment on type inventory_api.stock_transfer is 'A transfer between two locations: the linked TRANSFER_OUT and TRANSFER_IN movements and both levels after it.';

create type inventory_api.stock_policy as (
  sku text, location text, reorder_point numeric, safety_stock numeric, reorder_quantity numeric,
  max_stock_level numeric, lead_time_days integer, updated_by text, updated_at timestamptz, version integer);
comment on type inventory_api.stock_policy is 'Replenishment policy of an item at a location.';

create type inventory_api.reorder_alert as (
  alert_id bigint, sku text, location text, severity text, status text, available numeric,
  available_at_open numeric, reorder_point numeric, safety_stock numeric, opened_at timestamptz,
  escalated_at timestamptz, acknowledged_by text, acknowledged_at timestamptz, closed_by text,
  closed_at timestamptz, note text);
comment on type inventory_api.reorder_alert is 'A low-stock alert, with the level''s current available quantity.';

create type inventory_api.reorder_check as (levels_checked integer, opened integer, escalated integer, resolved integer);
comment on type inventory_api.reorder_check is 'What check_reorder_points did: levels with a policy checked, alerts opened, raised to CRITICAL and resolved.';

create type inventory_api.lot_status_change as (
  sku text, lot_number text, qc_status text, quarantined boolean, sellable boolean, holds_reallocated integer,
  holds_released integer, units_released numeric);
comment on type inventory_api.lot_status_change is 'What set_lot_status did: the lot''s status after it, and the holds it moved to other lots or released because the lot may no longer be sold.';

create type inventory_api.lot_expiry as (
  lots_expired integer, units_written_off numeric, holds_reallocated integer, holds_released integer,
  units_released numeric);
comment on type inventory_api.lot_expiry is 'What expire_inventory_lots did: lots whose expired units it wrote off, how many units, and the holds it moved to other lots or released.';

create type inventory_api.lot_trace as (
  order_ref text, reservation_id bigint, location text, allocated numeric, fulfilled numeric, returned numeric,
  released numeric, hold_status text, reserved_at timestamptz, closed_at timestamptz);
comment on type inventory_api.lot_trace is 'One hold that took units of a lot (recall trace): allocated, shipped, returned and given back.';

create type inventory_api.stock_snapshot as (
  sku text, location text, at timestamptz, on_hand numeric, reserved numeric, available numeric,
  movement_id bigint, movement_at timestamptz);
comment on type inventory_api.stock_snapshot is 'A stock level as the ledger recorded it at a moment (stock_as_of): on hand, reserved and available (on_hand - reserved) after the last movement of the level at or before it (movement_id, movement_at; null when there was none, and the quantities are 0).';

create type inventory_api.views_refresh as (
  refreshed boolean, views text[], rows bigint, started_at timestamptz, duration_ms numeric, message text);
comment on type inventory_api.views_refresh is 'What refresh_inventory_views did: whether it refreshed (false when another run was in progress: it returned at once), the materialized views refreshed, the rows they now hold, when it started and how long it took.';

create type inventory_api.maintenance_leader as (
  runner_id text, claimed_at timestamptz, renewed_at timestamptz, lease_until timestamptz, is_current boolean);
comment on type inventory_api.maintenance_leader is 'The maintenance runner that leads: since when, its last renewal, until when its lease runs, and whether it is still current.';

create type inventory_api.event as (
  id bigint, type text, sku text, location text, payload jsonb, created_at timestamptz);
comment on type inventory_api.event is 'One event (read_events): its id, type (stock.received, reservation.created, ...), the item and location concerned (location null for a lot), the details and when it happened.';

create type inventory_api.event_consumer as (
  consumer text, owner text, acknowledged_id bigint, updated_at timestamptz);
comment on type inventory_api.event_consumer is 'A consumer of events (ack_events): who owns it, the last event it acknowledged, and when its position last moved.';
