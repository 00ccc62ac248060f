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
  select i.sku, l.code as location, s.on_hand, s.reserved,
         s.available + o.overdue - b.blocked as available, o.overdue as expired_unreleased,
         i.status, s.version, s.updated_at, b.blocked
    from inventory.stock_levels s
    join inventory.items i on i.item_id = s.item_id
    join inventory.locations l on l.location_id = s.location_id
    cross join lateral (select inventory.overdue_quantity(s.item_id, s.location_id) as overdue) o
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
