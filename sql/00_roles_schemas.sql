-- Roles and schemas.
-- Roles are cluster-wide, so they are created only when missing (CREATE ROLE has no IF NOT EXISTS).
-- Objects are owned by inventory_owner, a NOLOGIN role that is neither superuser nor BYPASSRLS,
-- so SECURITY DEFINER code never runs with superuser power.
do $roles$
declare
  v_role text;
begin
  foreach v_role in array array['inventory_owner', 'inventory_viewer', 'inventory_operator',
                                'inventory_admin', 'inventory_scheduler', 'inventory_user'] loop
    if not exists (select from pg_catalog.pg_roles r where r.rolname = v_role) then
      execute pg_catalog.format('create role %I nologin', v_role);
    end if;
  end loop;
  -- Privileges are inherited upwards: an admin can do what an operator can, an operator what a
  -- viewer can.
  if not pg_catalog.pg_has_role('inventory_operator', 'inventory_viewer', 'MEMBER') then
    grant inventory_viewer to inventory_operator;
  end if;
  if not pg_catalog.pg_has_role('inventory_admin', 'inventory_operator', 'MEMBER') then
    grant inventory_operator to inventory_admin;
  end if;
  -- Supabase's service_role acts as an unscoped admin (only where Supabase created it).
  if exists (select from pg_catalog.pg_roles r where r.rolname = 'service_role')
     and not pg_catalog.pg_has_role('service_role', 'inventory_admin', 'MEMBER') then
    grant inventory_admin, inventory_scheduler to service_role;
  end if;
  -- PostgreSQL grants EXECUTE on new functions to PUBLIC by default: not for functions the
  -- migrating login creates in this database from now on (the owner role gets the same below).
  execute pg_catalog.format('alter default privileges for role %I revoke execute on functions from public',
                            current_user);
  -- The migrating login must be able to SET ROLE inventory_owner to create the objects as it
  -- (USAGE: on PostgreSQL 16+ the creator of a role is a member without INHERIT or SET). It gives
  -- the membership up at the end (99_finish.sql).
  if not pg_catalog.pg_has_role(current_user, 'inventory_owner', 'USAGE') then
    execute pg_catalog.format('grant inventory_owner to %I', current_user);
  end if;
end
$roles$;

comment on role inventory_owner is 'pyinv: owns every pyinv object; cannot log in.';
comment on role inventory_viewer is 'pyinv: reads stock levels, reservations and movements.';
comment on role inventory_operator is 'pyinv: runs the order lifecycle and receives stock.';
comment on role inventory_admin is 'pyinv: manages the catalogue, locations and maintenance.';
comment on role inventory_scheduler is 'pyinv: runs maintenance functions such as expire_reservations.';
comment on role inventory_user is 'pyinv: may call the API and read its views, with only the business roles its user_roles rows give it (a login limited to some locations).';

create schema inventory authorization inventory_owner;
create schema inventory_api authorization inventory_owner;
comment on schema inventory is 'pyinv internals: tables, triggers and SECURITY DEFINER functions. Never exposed to PostgREST.';
comment on schema inventory_api is 'pyinv public API: SECURITY INVOKER functions and security_invoker views. Expose this schema to PostgREST.';
revoke all on schema inventory, inventory_api from public;

-- Everything below is created by the owner role.
set local role inventory_owner;
alter default privileges for role inventory_owner revoke execute on functions from public;
