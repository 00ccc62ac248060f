-- PostgREST / Supabase roles, only where they exist (nothing Supabase-specific is created here).
-- anon gets nothing. authenticated may call every API function except maintenance and read the
-- views; what each user may actually do comes from inventory.user_roles, checked inside the
-- functions and by the row level security policies. service_role acts as an unscoped admin (its
-- membership of inventory_admin is granted in 00_roles_schemas.sql, by the migrating login).
do $supabase$
declare
  v_role text;
  v_function regprocedure;
  v_policy record;
begin
  foreach v_role in array array['anon', 'authenticated', 'service_role'] loop
    if exists (select from pg_catalog.pg_roles r where r.rolname = v_role) then
      execute pg_catalog.format('revoke all on all functions in schema inventory, inventory_api from %I', v_role);
      execute pg_catalog.format('revoke all on all tables in schema inventory, inventory_api from %I', v_role);
      execute pg_catalog.format('revoke all on schema inventory, inventory_api from %I', v_role);
    end if;
  end loop;

  if exists (select from pg_catalog.pg_roles r where r.rolname = 'authenticated') then
    grant usage on schema inventory, inventory_api to authenticated;
    grant select on inventory.error_codes, inventory.items, inventory.locations, inventory.stock_levels,
                    inventory.reservations, inventory.ledger, inventory.returns, inventory.reason_codes,
                    inventory.adjustments, inventory.cycle_counts, inventory.stock_policies,
                    inventory.reorder_alerts to authenticated;
    grant select on inventory_api.error_codes, inventory_api.items, inventory_api.locations,
                    inventory_api.stock_levels, inventory_api.reservations, inventory_api.stock_movements,
                    inventory_api.returns, inventory_api.reason_codes, inventory_api.adjustments,
                    inventory_api.cycle_counts, inventory_api.stock_policies, inventory_api.reorder_alerts,
                    inventory_api.reorder_recommendations to authenticated;
    -- The same functions as the business roles, minus maintenance.
    for v_function in
      select p.oid::regprocedure from pg_catalog.pg_proc p
       where p.pronamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
         and pg_catalog.has_function_privilege('inventory_admin', p.oid, 'EXECUTE')
         and p.proname not in ('expire_reservations', 'seal_audit_log')
    loop
      execute pg_catalog.format('grant execute on function %s to authenticated', v_function);
    end loop;
    for v_policy in
      select p.policyname, p.tablename from pg_catalog.pg_policies p
       where p.schemaname = 'inventory' and p.roles = array['inventory_viewer']::name[]
    loop
      execute pg_catalog.format('alter policy %I on inventory.%I to inventory_viewer, authenticated',
                                v_policy.policyname, v_policy.tablename);
    end loop;
  end if;
end
$supabase$;
