-- Layer 8, grants: roles that use the API without a business role of their own: inventory_user (logins limited to
-- the locations their user_roles rows name) and, only where they exist, PostgREST / Supabase's roles
-- (nothing Supabase-specific is created here). anon gets nothing. authenticated may call every API
-- function except maintenance and read the views; what each user may actually do comes from
-- inventory.user_roles, checked inside the functions and by the row level security policies.
-- service_role acts as an unscoped admin. Supabase creates anon, authenticated and service_role
-- NOINHERIT, so a membership gives them no privileges: each gets its grants directly here
-- (service_role those of inventory_admin and inventory_scheduler: the API and maintenance).
-- Re-run after every migration.
do $api_access$
declare
  v_role text;
begin
  foreach v_role in array array['inventory_user', 'anon', 'authenticated', 'service_role'] loop
    if exists (select from pg_catalog.pg_roles r where r.rolname = v_role) then
      execute pg_catalog.format('revoke all on all functions in schema inventory, inventory_api from %I', v_role);
      execute pg_catalog.format('revoke all on all tables in schema inventory, inventory_api from %I', v_role);
      execute pg_catalog.format('revoke all on schema inventory, inventory_api from %I', v_role);
    end if;
  end loop;
  perform inventory.grant_api_access('inventory_user');
  if exists (select from pg_catalog.pg_roles r where r.rolname = 'authenticated') then
    perform inventory.grant_api_access('authenticated');
  end if;
  if exists (select from pg_catalog.pg_roles r where r.rolname = 'service_role') then
    perform inventory.grant_api_access('service_role', maintenance => true);
  end if;
end
$api_access$;
