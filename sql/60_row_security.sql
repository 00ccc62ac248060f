-- Layer 6, row security: row level security on every table. API roles never write tables directly
-- (every change goes through the SECURITY DEFINER functions, which authorise the caller themselves
-- and run as the table owner), so the only policies are for reading: the catalogue for anyone with a business
-- role, stock rows for the locations the caller may see. Tables without a policy have no grants
-- to API roles at all (settings, idempotency_keys, the sealer's state, the maintenance runners' leader).
-- Access grants and the audit log are read through their API views: admins see every row, other
-- users only their own grants.
-- Identity functions are called as (select ...) so they run once per statement, not per row.
-- RLS is not FORCEd: the owner (the definer functions) must see every row to check invariants.

do $rls$
declare
  v_table text;
begin
  foreach v_table in array array['error_codes', 'settings', 'items', 'locations', 'user_roles', 'stock_levels',
                                 'ledger', 'reservations', 'returns', 'idempotency_keys', 'audit_log',
                                 'audit_chain', 'audit_seal_state', 'audit_seal_cuts', 'maintenance_jobs',
                                 'maintenance_leader', 'reason_codes', 'cycle_counts', 'adjustments', 'stock_policies',
                                 'reorder_alerts', 'lots', 'lot_levels', 'lot_allocations', 'lot_movements',
                                 'events', 'event_consumers', 'hot_buckets'] loop
    execute pg_catalog.format('alter table inventory.%I enable row level security', v_table);
  end loop;
end
$rls$;

create policy error_codes_viewer_select on inventory.error_codes for select to inventory_viewer
  using (true);
create policy items_viewer_select on inventory.items for select to inventory_viewer
  using ((select inventory.has_any_role()));
create policy locations_viewer_select on inventory.locations for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy stock_levels_viewer_select on inventory.stock_levels for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy hot_buckets_viewer_select on inventory.hot_buckets for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy reservations_viewer_select on inventory.reservations for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy ledger_viewer_select on inventory.ledger for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy returns_viewer_select on inventory.returns for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy reason_codes_viewer_select on inventory.reason_codes for select to inventory_viewer
  using ((select inventory.has_any_role()));
create policy cycle_counts_viewer_select on inventory.cycle_counts for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy adjustments_viewer_select on inventory.adjustments for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy stock_policies_viewer_select on inventory.stock_policies for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy reorder_alerts_viewer_select on inventory.reorder_alerts for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy lots_viewer_select on inventory.lots for select to inventory_viewer
  using ((select inventory.has_any_role()));
create policy lot_levels_viewer_select on inventory.lot_levels for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy lot_allocations_viewer_select on inventory.lot_allocations for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy lot_movements_viewer_select on inventory.lot_movements for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy user_roles_viewer_select on inventory.user_roles for select to inventory_viewer
  using (user_id = (select inventory.current_actor()) or (select inventory.is_allowed('admin')));
create policy audit_log_viewer_select on inventory.audit_log for select to inventory_viewer
  using ((select inventory.is_allowed('admin')));
create policy maintenance_jobs_viewer_select on inventory.maintenance_jobs for select to inventory_viewer
  using ((select inventory.has_any_role()));
create policy maintenance_jobs_scheduler_select on inventory.maintenance_jobs for select to inventory_scheduler
  using (true);
create policy audit_chain_viewer_select on inventory.audit_chain for select to inventory_viewer
  using ((select inventory.is_allowed('admin')));
create policy events_viewer_select on inventory.events for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[])
         or (location_id is null and (select inventory.has_any_role())));
create policy event_consumers_viewer_select on inventory.event_consumers for select to inventory_viewer
  using (owner = (select inventory.current_actor()) or (select inventory.is_allowed('admin')));

comment on policy error_codes_viewer_select on inventory.error_codes is 'The error catalogue is public to every pyinv role.';
comment on policy items_viewer_select on inventory.items is 'The catalogue is visible to anyone holding a business role.';
comment on policy locations_viewer_select on inventory.locations is 'Only the locations the caller may see.';
comment on policy stock_levels_viewer_select on inventory.stock_levels is 'Only stock at the locations the caller may see.';
comment on policy hot_buckets_viewer_select on inventory.hot_buckets is 'Only buckets of levels at the locations the caller may see.';
comment on policy reservations_viewer_select on inventory.reservations is 'Only holds at the locations the caller may see.';
comment on policy ledger_viewer_select on inventory.ledger is 'Only movements at the locations the caller may see.';
comment on policy returns_viewer_select on inventory.returns is 'Only returns at the locations the caller may see.';
comment on policy reason_codes_viewer_select on inventory.reason_codes is 'Reason codes are visible to anyone holding a business role.';
comment on policy cycle_counts_viewer_select on inventory.cycle_counts is 'Only counts at the locations the caller may see.';
comment on policy adjustments_viewer_select on inventory.adjustments is 'Only adjustments at the locations the caller may see.';
comment on policy stock_policies_viewer_select on inventory.stock_policies is 'Only policies at the locations the caller may see.';
comment on policy reorder_alerts_viewer_select on inventory.reorder_alerts is 'Only alerts at the locations the caller may see.';
comment on policy user_roles_viewer_select on inventory.user_roles is 'Admins (unscoped) see every grant; other users their own.';
comment on policy audit_log_viewer_select on inventory.audit_log is 'Only unscoped admins read the audit log.';
comment on policy maintenance_jobs_viewer_select on inventory.maintenance_jobs is 'Maintenance jobs and their last runs are visible to anyone holding a business role.';
comment on policy maintenance_jobs_scheduler_select on inventory.maintenance_jobs is 'The scheduler (which runs the jobs) sees them all.';
comment on policy audit_chain_viewer_select on inventory.audit_chain is 'Only unscoped admins read the audit chain.';
comment on policy events_viewer_select on inventory.events is 'Only events at the locations the caller may see (lot events, which have no location, to anyone holding a business role).';
comment on policy event_consumers_viewer_select on inventory.event_consumers is 'Consumers of the caller''s own; unscoped admins see them all.';
