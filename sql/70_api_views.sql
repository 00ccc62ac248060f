-- Layer 7, the public API: security_invoker views in inventory_api. They read the tables as the
-- caller, so row level security (60_row_security.sql) decides what each user sees.

create view inventory_api.items with (security_invoker = true) as
  select i.sku, i.name, i.unit_of_measure, i.unit_cost, i.status, i.track_lots, i.created_at, i.updated_at,
         i.version, i.deleted_at, i.deleted_by, i.requires_qc
    from inventory.items i;

comment on view inventory_api.items is 'The catalogue, deleted items included (deleted_at is set; filter deleted_at=is.null for the live ones).';

create view inventory_api.locations with (security_invoker = true) as
  select l.code, l.name, l.created_at from inventory.locations l;

comment on view inventory_api.locations is 'Stock locations.';

create view inventory_api.stock_levels with (security_invoker = true) as
  select i.sku, l.code as location, s.on_hand, (s.reserved - o.parked)::numeric(19, 4) as reserved,
         s.available + o.overdue + o.parked - b.blocked as available, o.overdue as expired_unreleased,
         i.status, s.version, s.updated_at, b.blocked, s.hot_buckets
    from inventory.stock_levels s
    join inventory.items i on i.item_id = s.item_id
    join inventory.locations l on l.location_id = s.location_id
    cross join lateral (select inventory.overdue_quantity(s.item_id, s.location_id) as overdue,
                               case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id)
                                    else 0 end as parked) o
    cross join lateral (select case when s.track_lots then inventory.blocked_quantity(s.item_id, s.location_id)
                                    else 0::numeric end as blocked) b
   where i.deleted_at is null;

comment on view inventory_api.stock_levels is 'Stock per item and location. available already counts overdue holds as released (expired_unreleased of them are not swept yet) and leaves out units in lots that may not be sold (blocked: expired, awaiting or failed QC, quarantined), so available = on_hand - reserved + expired_unreleased - blocked.';

create view inventory_api.reservations with (security_invoker = true) as
  select r.reservation_id, r.order_ref, i.sku, l.code as location, r.quantity, r.quantity_fulfilled,
         case when r.status = 'ACTIVE' then r.quantity - r.quantity_fulfilled else 0 end as quantity_open,
         r.status, r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now() as is_overdue,
         r.expires_at, r.created_by, r.created_at, r.closed_at, r.quantity_returned,
         r.reference_type::text as reference_type, r.notes
    from inventory.reservations r
    join inventory.items i on i.item_id = r.item_id
    join inventory.locations l on l.location_id = r.location_id;

comment on view inventory_api.reservations is 'Holds of stock for orders. is_overdue: still ACTIVE but past expires_at, so it no longer counts and cannot be fulfilled. quantity_returned: units of its shipment that came back.';

create view inventory_api.stock_movements with (security_invoker = true) as
  select g.movement_id, g.movement_type::text as movement_type, i.sku, l.code as location, g.on_hand_delta, g.reserved_delta,
         g.on_hand_before, g.on_hand_after, g.reserved_before, g.reserved_after, g.actor, g.reason,
         g.reference, g.idempotency_key, g.related_movement_id, g.reservation_id, g.metadata, g.created_at,
         (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('lot_number', t.lot_number,
                   'on_hand_delta', m.on_hand_delta, 'reserved_delta', m.reserved_delta) order by m.lot_movement_id)
            from inventory.lot_movements m join inventory.lots t on t.lot_id = m.lot_id
           where m.movement_id = g.movement_id) as lots
    from inventory.ledger g
    join inventory.items i on i.item_id = g.item_id
    join inventory.locations l on l.location_id = g.location_id;

comment on view inventory_api.stock_movements is 'The ledger: every stock movement, append-only. lots: for lot-tracked items, the lots the movement moved (lot_number, on_hand_delta, reserved_delta).';

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

-- Stock control.
create view inventory_api.reason_codes with (security_invoker = true) as
  select r.reason_code, r.description, r.requires_approval, r.approval_threshold, r.direction, r.updated_by,
         r.updated_at
    from inventory.reason_codes r;

comment on view inventory_api.reason_codes is 'Adjustment reasons: direction (add, remove, both) says which way a reason may move stock; an adjustment needs approval when |quantity_delta| > approval_threshold and it removes stock or requires_approval is set.';

create view inventory_api.adjustments with (security_invoker = true) as
  select a.adjustment_id, i.sku, l.code as location, a.quantity_delta, a.adjustment_type, a.reason_code,
         a.description, a.status, a.requires_approval, a.on_hand_at_request, a.count_id, a.requested_by,
         a.requested_at, a.decided_by, a.decided_at, a.decision_note, a.on_hand_at_apply, a.movement_id,
         t.lot_number
    from inventory.adjustments a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
    left join inventory.lots t on t.lot_id = a.lot_id;

comment on view inventory_api.adjustments is 'History of stock adjustments: PENDING, APPLIED (no approval needed), APPROVED, REJECTED or SUPERSEDED (by a newer count).';

create view inventory_api.cycle_counts with (security_invoker = true) as
  select c.count_id, i.sku, l.code as location, c.counted_quantity, c.on_hand_at_count, c.reserved_at_count,
         c.difference, a.adjustment_id, a.status as adjustment_status, c.counted_by, c.counted_at, t.lot_number
    from inventory.cycle_counts c
    join inventory.items i on i.item_id = c.item_id
    join inventory.locations l on l.location_id = c.location_id
    left join inventory.adjustments a on a.count_id = c.count_id
    left join inventory.lots t on t.lot_id = c.lot_id;

comment on view inventory_api.cycle_counts is 'Physical counts, the on_hand each was compared with, and the adjustment each produced.';

create view inventory_api.stock_policies with (security_invoker = true) as
  select i.sku, l.code as location, p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level,
         p.lead_time_days, p.updated_by, p.updated_at, p.version
    from inventory.stock_policies p
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id;

comment on view inventory_api.stock_policies is 'Replenishment policies per item and location.';

create view inventory_api.reorder_alerts with (security_invoker = true) as
  select a.alert_id, i.sku, l.code as location, a.severity, a.status,
         (s.available + case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id) else 0 end
         )::numeric(19, 4) as available, a.available_at_open,
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
    join (select x.item_id, x.location_id, x.on_hand, (x.reserved - k.parked)::numeric(19, 4) as reserved,
                 (x.available + k.parked)::numeric(19, 4) as available, x.last_counted_at, x.last_counted_by
            from inventory.stock_levels x
            cross join lateral (select case when x.hot_buckets > 1 then inventory.parked_units(x.item_id, x.location_id)
                                            else 0 end as parked) k) s
      on s.item_id = p.item_id and s.location_id = p.location_id
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id
    left join inventory.reorder_alerts a
      on a.item_id = p.item_id and a.location_id = p.location_id and a.status in ('OPEN', 'ACKNOWLEDGED')
   where i.deleted_at is null;

comment on view inventory_api.reorder_recommendations is 'Every level with a stock policy: CRITICAL (available <= safety stock), REORDER (<= reorder point) or NORMAL, with a suggested order quantity (the reorder quantity, else up to the maximum level; null when the policy gives neither) and the open alert.';

create view inventory_api.user_roles with (security_invoker = true) as
  select u.user_role_id, u.user_id, u.role, l.code as location, u.granted_by, u.granted_at
    from inventory.user_roles u
    left join inventory.locations l on l.location_id = u.location_id;

comment on view inventory_api.user_roles is 'Business roles granted to users (grant_user_role): admins see every grant, other users their own.';

create view inventory_api.audit_log with (security_invoker = true) as
  select a.audit_id, a.table_name, a.operation::text as operation, a.actor, a.db_role, a.login, a.request_path,
         a.request_id, a.old_row, a.new_row, a.created_at, c.seq is not null as sealed, c.seq as chain_seq
    from inventory.audit_log a
    left join inventory.audit_chain c on c.audit_id = a.audit_id;

comment on view inventory_api.audit_log is 'Row changes outside the ledger (catalogue, access, policies, changes made outside the API), for admins; sealed rows are in the hash chain (verify_audit_chain).';

create view inventory_api.lots with (security_invoker = true) as
  select i.sku, t.lot_number, t.supplier_lot, l.code as location, ll.on_hand, ll.reserved,
         case when b.reason is null then ll.on_hand - ll.reserved else 0::numeric end as available,
         t.received_at, t.expires_on, t.unit_cost, t.qc_status, t.quarantined, b.reason is null as sellable,
         b.reason as blocked_reason
    from inventory.lot_levels ll
    join inventory.lots t on t.lot_id = ll.lot_id
    join inventory.items i on i.item_id = t.item_id
    join inventory.locations l on l.location_id = ll.location_id
    cross join lateral (select inventory.lot_block_reason(t.qc_status, t.quarantined, t.expires_on, inventory.lot_today(),
                                                          inventory.lot_today()) as reason) b
   where i.deleted_at is null;

comment on view inventory_api.lots is 'Lots of lot-tracked items per location: units on hand and allocated to holds, and whether they may be sold (blocked_reason: expired, qc_pending, qc_failed or quarantined; available is 0 then).';

create view inventory_api.expiring_lots with (security_invoker = true) as
  select i.sku, t.lot_number, l.code as location, ll.on_hand, ll.reserved, t.expires_on,
         t.expires_on - inventory.lot_today() as days_left,
         case when t.expires_on < inventory.lot_today() then 'EXPIRED'
              when t.expires_on <= inventory.lot_today() + 7 then 'EXPIRING_SOON'
              else 'EXPIRING' end as expiry_status
    from inventory.lot_levels ll
    join inventory.lots t on t.lot_id = ll.lot_id
    join inventory.items i on i.item_id = t.item_id
    join inventory.locations l on l.location_id = ll.location_id
   where i.deleted_at is null and ll.on_hand > 0 and t.expires_on <= inventory.lot_today() + 30;

comment on view inventory_api.expiring_lots is 'Lots with units on hand that expired (EXPIRED: past expires_on, not written off yet) or expire within 7 days (EXPIRING_SOON) or 30 days (EXPIRING); days_left counts from today (UTC).';

create view inventory_api.lot_allocations with (security_invoker = true) as
  select a.reservation_id, r.order_ref, i.sku, l.code as location, t.lot_number, a.quantity,
         a.quantity_fulfilled as fulfilled, a.quantity_released as released, a.quantity_returned as returned,
         r.status as hold_status, a.created_at
    from inventory.lot_allocations a
    join inventory.reservations r on r.reservation_id = a.reservation_id
    join inventory.lots t on t.lot_id = a.lot_id
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id;

comment on view inventory_api.lot_allocations is 'Which lots each hold of a lot-tracked item takes its units from (first expiring first out): allocated, shipped (fulfilled), given back (released: cancelled, expired or moved to another lot) and returned.';

-- Reports (issue 13). Every one reads the tables as the caller, so each shows only the caller's
-- locations; low_stock_items reads a private materialized view through inventory.low_stock_rows(),
-- which applies the same rule.
create view inventory_api.inventory_valuation with (security_invoker = true) as
  select i.sku, l.code as location, null::text as lot_number, s.on_hand, i.unit_cost,
         s.on_hand * i.unit_cost as value, case when i.unit_cost is not null then 'item' end as cost_source
    from inventory.stock_levels s
    join inventory.items i on i.item_id = s.item_id
    join inventory.locations l on l.location_id = s.location_id
   where not s.track_lots and s.on_hand <> 0 and i.deleted_at is null
  union all
  select i.sku, l.code, t.lot_number, ll.on_hand, coalesce(t.unit_cost, i.unit_cost),
         ll.on_hand * coalesce(t.unit_cost, i.unit_cost),
         case when t.unit_cost is not null then 'lot' when i.unit_cost is not null then 'item' end
    from inventory.lot_levels ll
    join inventory.lots t on t.lot_id = ll.lot_id
    join inventory.items i on i.item_id = ll.item_id
    join inventory.locations l on l.location_id = ll.location_id
   where ll.on_hand <> 0 and i.deleted_at is null;

comment on view inventory_api.inventory_valuation is 'Value of the stock on hand at unit cost: one row per item and location, or per lot and location for lot-tracked items (at the lot''s own unit cost, else the item''s). value is null where no cost is known.';
comment on column inventory_api.inventory_valuation.sku is 'SKU of the item.';
comment on column inventory_api.inventory_valuation.location is 'Code of the location.';
comment on column inventory_api.inventory_valuation.lot_number is 'The lot, for a lot-tracked item; null otherwise.';
comment on column inventory_api.inventory_valuation.on_hand is 'Units physically present (of the lot, for a lot-tracked item); held units included.';
comment on column inventory_api.inventory_valuation.unit_cost is 'Unit cost used: the lot''s unit_cost when it has one, else the item''s moving-average unit_cost; null when neither is known.';
comment on column inventory_api.inventory_valuation.value is 'on_hand * unit_cost (exact); null when no cost is known.';
comment on column inventory_api.inventory_valuation.cost_source is 'Where unit_cost comes from: lot, item, or null (unknown).';

create view inventory_api.movement_summary with (security_invoker = true) as
  select i.sku, l.code as location, g.received, g.shipped, g.returned, g.adjusted, g.transferred_in,
         g.transferred_out, g.net_change, g.movements, g.first_movement_at, g.last_movement_at
    from (select g.item_id, g.location_id,
                 coalesce(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'RECEIVE'), 0) as received,
                 coalesce(-(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'SHIP')), 0) as shipped,
                 coalesce(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'RETURN'), 0) as returned,
                 coalesce(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'ADJUST'), 0) as adjusted,
                 coalesce(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'TRANSFER_IN'), 0)
                   as transferred_in,
                 coalesce(-(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'TRANSFER_OUT')), 0)
                   as transferred_out,
                 pg_catalog.sum(g.on_hand_delta) as net_change, pg_catalog.count(*) as movements,
                 pg_catalog.min(g.created_at) as first_movement_at, pg_catalog.max(g.created_at) as last_movement_at
            from inventory.ledger g
           where g.created_at >= pg_catalog.now() - interval '90 days'
             and g.movement_type::text <> 'REBALANCE'  -- hot mode's internal moves change no total (text: see 0006)
           group by g.item_id, g.location_id) g
    join inventory.items i on i.item_id = g.item_id
    join inventory.locations l on l.location_id = g.location_id;

comment on view inventory_api.movement_summary is 'Movements of the last 90 days per item and location: units received, shipped, returned, adjusted (net, signed), transferred in and out, and the net change of on_hand (received - shipped + returned + adjusted + transferred_in - transferred_out). Levels without a movement in the window are left out.';
comment on column inventory_api.movement_summary.sku is 'SKU of the item.';
comment on column inventory_api.movement_summary.location is 'Code of the location.';
comment on column inventory_api.movement_summary.received is 'Units received (RECEIVE movements).';
comment on column inventory_api.movement_summary.shipped is 'Units shipped (SHIP movements), as a positive number.';
comment on column inventory_api.movement_summary.returned is 'Units restocked by customer returns (RETURN movements).';
comment on column inventory_api.movement_summary.adjusted is 'Net units added (positive) or removed (negative) by adjustments, counts, lot write-offs and direct changes (ADJUST movements).';
comment on column inventory_api.movement_summary.transferred_in is 'Units that arrived from other locations (TRANSFER_IN movements).';
comment on column inventory_api.movement_summary.transferred_out is 'Units sent to other locations (TRANSFER_OUT movements), as a positive number.';
comment on column inventory_api.movement_summary.net_change is 'Change of on_hand over the window: the sum of every movement''s on_hand_delta.';
comment on column inventory_api.movement_summary.movements is 'Ledger movements in the window, of every type (holds made, released and expired included).';
comment on column inventory_api.movement_summary.first_movement_at is 'Time of the first movement in the window.';
comment on column inventory_api.movement_summary.last_movement_at is 'Time of the last movement in the window.';

create view inventory_api.active_reservations_summary with (security_invoker = true) as
  select i.sku, l.code as location, r.holds, r.units, r.overdue_holds, r.overdue_units, r.oldest_hold_at,
         r.next_expiry_at
    from (select r.item_id, r.location_id,
                 pg_catalog.count(*) filter (where not o.overdue) as holds,
                 coalesce(pg_catalog.sum(r.quantity - r.quantity_fulfilled) filter (where not o.overdue), 0) as units,
                 pg_catalog.count(*) filter (where o.overdue) as overdue_holds,
                 coalesce(pg_catalog.sum(r.quantity - r.quantity_fulfilled) filter (where o.overdue), 0)
                   as overdue_units,
                 pg_catalog.min(r.created_at) filter (where not o.overdue) as oldest_hold_at,
                 pg_catalog.min(r.expires_at) filter (where not o.overdue) as next_expiry_at
            from inventory.reservations r
            cross join lateral (select coalesce(r.expires_at <= pg_catalog.now(), false) as overdue) o
           where r.status = 'ACTIVE'
           group by r.item_id, r.location_id) r
    join inventory.items i on i.item_id = r.item_id
    join inventory.locations l on l.location_id = r.location_id;

comment on view inventory_api.active_reservations_summary is 'ACTIVE holds per item and location: how many and how many units they hold, the oldest and the next to expire; overdue holds (past expires_at, no longer counting, not yet swept) are counted apart.';
comment on column inventory_api.active_reservations_summary.sku is 'SKU of the item held.';
comment on column inventory_api.active_reservations_summary.location is 'Code of the location.';
comment on column inventory_api.active_reservations_summary.holds is 'ACTIVE holds that are not overdue.';
comment on column inventory_api.active_reservations_summary.units is 'Units they hold (quantity - quantity_fulfilled).';
comment on column inventory_api.active_reservations_summary.overdue_holds is 'ACTIVE holds past expires_at: they no longer count and wait for expire_reservations.';
comment on column inventory_api.active_reservations_summary.overdue_units is 'Units of the overdue holds.';
comment on column inventory_api.active_reservations_summary.oldest_hold_at is 'When the oldest hold that is not overdue was made.';
comment on column inventory_api.active_reservations_summary.next_expiry_at is 'When the next hold lapses; null when none of them expires.';

create view inventory_api.low_stock_items with (security_invoker = true) as
  select m.sku, m.location, m.on_hand, m.reserved, m.available, m.reorder_point, m.safety_stock, m.stock_status,
         m.shortfall, m.reorder_quantity, m.max_stock_level, m.suggested_order_quantity, m.refreshed_at
    from inventory.low_stock_rows() m;

comment on view inventory_api.low_stock_items is 'Levels with a stock policy at or below their reorder point, as of the last refresh_inventory_views (refreshed_at): stock_status OUT_OF_STOCK (available <= 0), CRITICAL (available <= safety_stock) or LOW (available <= reorder_point).';
comment on column inventory_api.low_stock_items.sku is 'SKU of the item.';
comment on column inventory_api.low_stock_items.location is 'Code of the location.';
comment on column inventory_api.low_stock_items.on_hand is 'Units physically present at the refresh.';
comment on column inventory_api.low_stock_items.reserved is 'Units held at the refresh.';
comment on column inventory_api.low_stock_items.available is 'Units a new hold could take at the refresh (as inventory_api.stock_levels shows them).';
comment on column inventory_api.low_stock_items.reorder_point is 'The policy''s reorder point.';
comment on column inventory_api.low_stock_items.safety_stock is 'The policy''s safety stock.';
comment on column inventory_api.low_stock_items.stock_status is 'OUT_OF_STOCK (available <= 0), CRITICAL (available <= safety_stock) or LOW (available <= reorder_point); the first that holds.';
comment on column inventory_api.low_stock_items.shortfall is 'reorder_point - available: units below the reorder point (0 when exactly at it).';
comment on column inventory_api.low_stock_items.reorder_quantity is 'The policy''s fixed order quantity, if any.';
comment on column inventory_api.low_stock_items.max_stock_level is 'The policy''s maximum level, if any.';
comment on column inventory_api.low_stock_items.suggested_order_quantity is 'Units to order: the reorder quantity, else up to the maximum level; null when the policy gives neither.';
comment on column inventory_api.low_stock_items.refreshed_at is 'When the row was computed (the last refresh_inventory_views).';

create view inventory_api.alert_statistics with (security_invoker = true) as
  select a.status, a.severity, pg_catalog.count(*) as alerts,
         pg_catalog.count(distinct (a.item_id, a.location_id)) as levels,
         pg_catalog.min(a.opened_at) as oldest_opened_at, pg_catalog.max(a.opened_at) as latest_opened_at
    from inventory.reorder_alerts a
   group by a.status, a.severity;

comment on view inventory_api.alert_statistics is 'Reorder alerts counted by status (OPEN, ACKNOWLEDGED, RESOLVED, DISMISSED) and severity (REORDER, CRITICAL); combinations without an alert are left out.';
comment on column inventory_api.alert_statistics.status is 'OPEN, ACKNOWLEDGED, RESOLVED or DISMISSED.';
comment on column inventory_api.alert_statistics.severity is 'REORDER or CRITICAL.';
comment on column inventory_api.alert_statistics.alerts is 'Alerts with this status and severity.';
comment on column inventory_api.alert_statistics.levels is 'Distinct levels (item and location) they concern.';
comment on column inventory_api.alert_statistics.oldest_opened_at is 'When the oldest of them opened.';
comment on column inventory_api.alert_statistics.latest_opened_at is 'When the latest of them opened.';

create view inventory_api.maintenance_status with (security_invoker = true) as
  select j.job, j.description, j.last_started_at, j.last_finished_at, j.last_duration_ms, j.last_rows, j.last_result,
         pg_catalog.now() - j.last_finished_at as lag
    from inventory.maintenance_jobs j;

comment on view inventory_api.maintenance_status is 'Each maintenance job''s last run: when it started and finished, how long it took, rows touched, its result, and the time since (lag; null when it never ran).';
comment on column inventory_api.maintenance_status.lag is 'Time since the last run finished (now() - last_finished_at); null when the job never ran.';

create view inventory_api.dashboard with (security_invoker = true) as
  select (select pg_catalog.count(*) from inventory.items i where i.deleted_at is null) as items,
         (select pg_catalog.count(*) from inventory.locations l) as locations,
         s.units_on_hand, s.units_reserved,
         (select pg_catalog.sum(v.value) from inventory_api.inventory_valuation v) as inventory_value,
         a.open_alerts, a.open_reorder_alerts, a.open_critical_alerts,
         (select pg_catalog.count(*) from inventory.adjustments d where d.status = 'PENDING') as pending_approvals,
         e.expiring_lots, e.expired_lots,
         (select pg_catalog.count(*) from inventory.reservations r
           where r.status = 'ACTIVE' and r.expires_at > pg_catalog.now()
             and r.expires_at <= pg_catalog.now() + interval '1 hour') as holds_expiring_within_hour,
         (select pg_catalog.count(*) from inventory_api.low_stock_items k) as low_stock_items,
         (select pg_catalog.max(j.last_finished_at) from inventory.maintenance_jobs j) as last_maintenance_at,
         pg_catalog.now() as as_of
    from (select coalesce(pg_catalog.sum(s.on_hand), 0) as units_on_hand,
                 coalesce(pg_catalog.sum(s.reserved - case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id) else 0 end), 0) as units_reserved
            from inventory.stock_levels s) s,
         (select pg_catalog.count(*) as open_alerts,
                 pg_catalog.count(*) filter (where a.severity = 'REORDER') as open_reorder_alerts,
                 pg_catalog.count(*) filter (where a.severity = 'CRITICAL') as open_critical_alerts
            from inventory.reorder_alerts a where a.status in ('OPEN', 'ACKNOWLEDGED')) a,
         (select pg_catalog.count(*) filter (where x.expiry_status <> 'EXPIRED') as expiring_lots,
                 pg_catalog.count(*) filter (where x.expiry_status = 'EXPIRED') as expired_lots
            from inventory_api.expiring_lots x) e;

comment on view inventory_api.dashboard is 'One row of figures over the caller''s locations: items, locations, units on hand and reserved, stock value, open reorder alerts by severity, adjustments waiting for approval, expiring and expired lots, holds lapsing within the hour, low-stock levels (as of the last refresh) and the last maintenance run.';
comment on column inventory_api.dashboard.items is 'Live items in the catalogue.';
comment on column inventory_api.dashboard.locations is 'Locations the caller may see.';
comment on column inventory_api.dashboard.units_on_hand is 'Units physically present, over every item and location.';
comment on column inventory_api.dashboard.units_reserved is 'Units held by ACTIVE holds (overdue ones not yet swept included).';
comment on column inventory_api.dashboard.inventory_value is 'Value of the stock on hand at unit cost (the sum of inventory_valuation; units without a known cost left out).';
comment on column inventory_api.dashboard.open_alerts is 'Reorder alerts OPEN or ACKNOWLEDGED.';
comment on column inventory_api.dashboard.open_reorder_alerts is 'Open alerts of severity REORDER.';
comment on column inventory_api.dashboard.open_critical_alerts is 'Open alerts of severity CRITICAL.';
comment on column inventory_api.dashboard.pending_approvals is 'Adjustments PENDING an admin''s approval.';
comment on column inventory_api.dashboard.expiring_lots is 'Lots (per location) with stock that expire within 30 days (expiring_lots: EXPIRING_SOON or EXPIRING).';
comment on column inventory_api.dashboard.expired_lots is 'Lots (per location) with stock past their expiry date, not written off yet (expiring_lots: EXPIRED).';
comment on column inventory_api.dashboard.holds_expiring_within_hour is 'ACTIVE holds that lapse within the next hour.';
comment on column inventory_api.dashboard.low_stock_items is 'Levels at or below their reorder point as of the last refresh (low_stock_items).';
comment on column inventory_api.dashboard.last_maintenance_at is 'When the last maintenance job run finished (maintenance_status).';
comment on column inventory_api.dashboard.as_of is 'When the figures were computed.';

-- Columns computed or renamed by the views, described here; every other column of a view carries
-- the comment of the table column it shows (copied below), so each column is described once.
comment on column inventory_api.stock_levels.sku is 'SKU of the item.';
comment on column inventory_api.stock_levels.location is 'Code of the location.';
comment on column inventory_api.stock_levels.available is 'Units a new hold may take now: on_hand - reserved + expired_unreleased (overdue holds already count as released).';
comment on column inventory_api.stock_levels.expired_unreleased is 'Units of overdue holds not yet released by expire_reservations (they no longer count).';
comment on column inventory_api.reservations.sku is 'SKU of the item held.';
comment on column inventory_api.reservations.location is 'Code of the location it is held at.';
comment on column inventory_api.reservations.quantity_open is 'Units still held: quantity - quantity_fulfilled while ACTIVE, else 0.';
comment on column inventory_api.reservations.is_overdue is 'ACTIVE but past expires_at: no longer counts and cannot be fulfilled.';
comment on column inventory_api.user_roles.location is 'Code of the location the role is limited to; null = every location.';
comment on column inventory_api.audit_log.sealed is 'Whether the row is in the audit hash chain yet (seal_audit_log).';
comment on column inventory_api.audit_log.chain_seq is 'Its position in the audit hash chain, once sealed.';
comment on column inventory_api.reorder_recommendations.status is 'CRITICAL (available <= safety stock), REORDER (available <= reorder point) or NORMAL.';
comment on column inventory_api.reorder_recommendations.suggested_order_quantity is 'Units to order: the reorder quantity, else up to the maximum level; 0 when NORMAL; null when the policy gives neither.';
comment on column inventory_api.reorder_recommendations.alert_status is 'Status of the level''s open (OPEN or ACKNOWLEDGED) reorder alert, if any.';
comment on column inventory_api.cycle_counts.adjustment_status is 'Status of the adjustment the count produced (see inventory_api.adjustments).';
comment on column inventory_api.stock_levels.hot_buckets is 'Hot mode (set_hot_mode): how many buckets share the level''s free units so that holds commit side by side; 1 = off. On a hot level version and updated_at change with the level''s own movements, not with each hold.';
comment on column inventory_api.stock_levels.blocked is 'Units on hand in lots that may not be sold (expired, awaiting or failed QC, quarantined) and no hold takes: not available.';
comment on column inventory_api.stock_movements.lots is 'For lot-tracked items, the lots the movement moved: [{lot_number, on_hand_delta, reserved_delta}]; null otherwise.';
comment on column inventory_api.lots.available is 'Units of the lot a new hold may take here: on_hand - reserved when the lot is sellable, else 0.';
comment on column inventory_api.lots.sellable is 'Whether the lot may be sold now: QC PASSED, not quarantined, not expired.';
comment on column inventory_api.lots.blocked_reason is 'Why the lot may not be sold: quarantined, qc_failed, expired or qc_pending; null when sellable.';
comment on column inventory_api.expiring_lots.days_left is 'Days from today (UTC) to expires_on: 0 on the last sellable day, negative once expired.';
comment on column inventory_api.expiring_lots.expiry_status is 'EXPIRED (past expires_on), EXPIRING_SOON (within 7 days) or EXPIRING (within 30 days).';
comment on column inventory_api.lot_allocations.fulfilled is 'Units of the allocation shipped.';
comment on column inventory_api.lot_allocations.released is 'Units of the allocation given back to the lot: the hold was cancelled or expired, or moved to another lot.';
comment on column inventory_api.lot_allocations.returned is 'Units of the shipped ones that came back (process_return).';
comment on column inventory_api.lot_allocations.hold_status is 'Status of the hold (ACTIVE, FULFILLED, CANCELLED, EXPIRED).';

do $view_column_comments$
declare
  v_column record;
begin
  for v_column in
    select v.oid::regclass as view_name, a.attname,
           (select d.description
              from pg_catalog.pg_depend dep
              join pg_catalog.pg_rewrite rw on rw.oid = dep.objid and rw.ev_class = v.oid
              join pg_catalog.pg_attribute ta on ta.attrelid = dep.refobjid and ta.attnum = dep.refobjsubid
              join pg_catalog.pg_class t on t.oid = dep.refobjid and t.relkind in ('r', 'p')
              join pg_catalog.pg_description d on d.objoid = t.oid and d.classoid = 'pg_catalog.pg_class'::regclass
                                              and d.objsubid = ta.attnum
             where dep.classid = 'pg_catalog.pg_rewrite'::regclass and ta.attname = a.attname
             -- the table the view is named after first (items for inventory_api.items), then any
             order by (t.relname = v.relname) desc, t.relname
             limit 1) as description
      from pg_catalog.pg_class v
      join pg_catalog.pg_attribute a on a.attrelid = v.oid and a.attnum > 0 and not a.attisdropped
     where v.relnamespace = 'inventory_api'::regnamespace and v.relkind = 'v'
       and not exists (select from pg_catalog.pg_description d
                        where d.objoid = v.oid and d.classoid = 'pg_catalog.pg_class'::regclass
                          and d.objsubid = a.attnum)
  loop
    if v_column.description is not null or v_column.attname = 'location' then
      execute pg_catalog.format('comment on column %s.%I is %L', v_column.view_name, v_column.attname,
                                coalesce(v_column.description, 'Code of the location.'));
    end if;
  end loop;
end
$view_column_comments$;

create view inventory_api.events with (security_invoker = true) as
  select e.event_id as id, e.type, i.sku, l.code as location, coalesce(e.payload, inventory.movement_payload(g)) as payload,
         e.created_at
    from inventory.events e
    left join inventory.ledger g on g.movement_id = e.movement_id
    left join inventory.items i on i.item_id = e.item_id
    left join inventory.locations l on l.location_id = e.location_id;

comment on view inventory_api.events is 'Events at the caller''s locations (and of lots), kept for settings.event_retention: every stock movement, reservation state change, adjustment decision, lot status change and reorder alert change, written in the transaction of the change. To consume them without missing one committed late, use read_events and ack_events.';
comment on column inventory_api.events.id is 'Id of the event (unique; acknowledge it with ack_events).';
comment on column inventory_api.events.type is 'What happened: stock.received, reservation.created, reservation.released, reservation.expired, stock.shipped, stock.returned, stock.adjusted, stock.transferred_out, stock.transferred_in, adjustment.pending/applied/approved/rejected/superseded, lot.qc_passed/qc_failed/qc_pending/quarantined/quarantine_lifted/expiry_changed/written_off, alert.opened/acknowledged/resolved/dismissed/reopened/escalated/recovered.';
comment on column inventory_api.events.sku is 'The item concerned.';
comment on column inventory_api.events.location is 'The location concerned (null for a lot event).';
comment on column inventory_api.events.payload is 'Details: ids (movement_id, reservation_id or reservation_ids, adjustment_id, lot_id, alert_id), quantities before and after, reason, reference (the order), actor.';
comment on column inventory_api.events.created_at is 'Transaction time of the change.';

create view inventory_api.event_consumers with (security_invoker = true) as
  select c.consumer, c.owner, c.acknowledged_id, c.updated_at
    from inventory.event_consumers c;

comment on view inventory_api.event_consumers is 'Consumers of events and the last event each acknowledged (your own; unscoped admins see all).';
comment on column inventory_api.event_consumers.consumer is 'Name of the consumer.';
comment on column inventory_api.event_consumers.owner is 'Acting user who created it; only they and unscoped admins read and acknowledge for it.';
comment on column inventory_api.event_consumers.acknowledged_id is 'Id of the last event acknowledged (0: none yet).';
comment on column inventory_api.event_consumers.updated_at is 'When its position last moved.';
