-- Layer 3, shared functions: who is acting, and what may they do where.
--
-- Identity: under PostgREST (the login is a trusted gateway role, `authenticator` by default) the
-- acting user is the JWT subject from request.jwt.claims; any other login acts as itself, and
-- claims it sets are ignored. Business roles: viewer < operator < admin, plus scheduler for
-- maintenance. A user's grants are the union of two explicit sources, so that adding a grant can
-- only add access and removing one can only remove it:
--   * membership of a group role inventory_viewer / _operator / _admin / _scheduler: that role at
--     every location (direct logins; service_role under PostgREST acts as an unscoped admin);
--   * rows in user_roles (keyed by the JWT sub, or by the login name): that role at one location,
--     or at every location when location_id is null.
-- A login meant to act only where user_roles says is made a member of inventory_user, which carries
-- the privileges to call the API and read its views but no business role of its own.

-- The acting user: the JWT subject when the login is a trusted gateway (PostgREST), else the login.
-- Claims set by any other login are ignored, so they cannot be spoofed.
create function inventory.current_actor() returns text
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_claims text := nullif(pg_catalog.current_setting('request.jwt.claims', true), '');
  v_gateways text[];
begin
  if v_claims is null then
    return session_user::text;
  end if;
  select s.gateway_roles into v_gateways from inventory.settings s;
  if session_user::text = any (v_gateways) then
    return coalesce(v_claims::jsonb ->> 'sub', session_user::text);
  end if;
  return session_user::text;
end
$$;

comment on function inventory.current_actor() is 'Acting user: JWT sub under a trusted gateway login, otherwise session_user.';

create function inventory.is_gateway_session() returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_gateways text[];
begin
  if nullif(pg_catalog.current_setting('request.jwt.claims', true), '') is null then
    return false;
  end if;
  select s.gateway_roles into v_gateways from inventory.settings s;
  return session_user::text = any (v_gateways);
end
$$;

comment on function inventory.is_gateway_session() is 'Whether the login is a trusted gateway (PostgREST authenticator) and sent JWT claims, which then identify the user.';

-- The database role the caller acts as: the role set with SET ROLE (PostgREST's per-request role),
-- else the login. Inside SECURITY DEFINER code current_user is the owner, so it is not used.
create function inventory.acting_db_role() returns text
language sql stable
set search_path = ''
begin atomic
  select case when pg_catalog.current_setting('role') = 'none' then session_user::text
              else pg_catalog.current_setting('role') end;
end;

comment on function inventory.acting_db_role() is 'Role set by SET ROLE (PostgREST request role), else the login.';

-- Every (role, location_id) the caller holds; location_id null means every location.
create function inventory.current_grants()
returns table (role text, location_id bigint)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_db_role text := inventory.acting_db_role();
begin
  if inventory.is_gateway_session() then
    if v_db_role = 'service_role' then
      return query select 'admin'::text, null::bigint;
    elsif v_db_role <> 'anon' then
      return query select u.role, u.location_id from inventory.user_roles u where u.user_id = inventory.current_actor();
    end if;
    return;
  end if;
  return query
    select g.role, null::bigint
      from pg_catalog.unnest(array['viewer', 'operator', 'admin', 'scheduler']) as g (role)
     where pg_catalog.pg_has_role(v_db_role, 'inventory_' || g.role, 'USAGE')
    union all
    select u.role, u.location_id from inventory.user_roles u where u.user_id = session_user::text;
end
$$;

comment on function inventory.current_grants() is 'Business roles of the caller with their location scope (null = all locations): group memberships (unscoped) plus user_roles rows.';

create function inventory.role_rank(role text) returns integer
language sql immutable parallel safe
set search_path = ''
begin atomic
  select case role_rank.role when 'viewer' then 1 when 'operator' then 2 when 'admin' then 3 else 0 end;
end;

comment on function inventory.role_rank(text) is 'viewer 1 < operator 2 < admin 3; scheduler 0 (it ranks beside, not above).';

-- Whether the caller holds `required` (or a higher role) for the location (null = for every location,
-- which only an unscoped grant satisfies). scheduler work is also allowed to unscoped admins.
-- This is on every call's path, so the common case (a direct login that is a member of the group
-- role) is answered by pg_has_role() alone: admin is a member of operator, operator of viewer.
create function inventory.is_allowed(required text, location_id bigint default null) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_db_role text;
begin
  if not inventory.is_gateway_session() then
    v_db_role := inventory.acting_db_role();
    if pg_catalog.pg_has_role(v_db_role, 'inventory_' || is_allowed.required, 'USAGE')
       or (is_allowed.required = 'scheduler' and pg_catalog.pg_has_role(v_db_role, 'inventory_admin', 'USAGE')) then
      return true;
    end if;
  end if;
  return exists (
    select from inventory.current_grants() g
     where (g.location_id is null or g.location_id = is_allowed.location_id)
       and case when is_allowed.required = 'scheduler'
                then g.role = 'scheduler' or (g.role = 'admin' and g.location_id is null)
                else inventory.role_rank(g.role) >= inventory.role_rank(is_allowed.required) end);
end
$$;

comment on function inventory.is_allowed(text, bigint) is 'Whether the caller holds the role (or a higher one) for the location; null location needs an unscoped grant.';

create function inventory.authorize(required text, location_id bigint default null) returns void
language plpgsql stable
set search_path = ''
as $$
begin
  if not inventory.is_allowed(authorize.required, authorize.location_id) then
    perform inventory.raise_error('PERMISSION_DENIED',
      pg_catalog.format('%s may not do this: it needs the %s role%s', inventory.current_actor(),
                        authorize.required,
                        case when authorize.location_id is null then ' for every location'
                             else ' for location ' || (select l.code from inventory.locations l
                                                        where l.location_id = authorize.location_id) end),
      pg_catalog.jsonb_build_object('user', inventory.current_actor(), 'required_role', authorize.required,
        'location', (select l.code from inventory.locations l where l.location_id = authorize.location_id)));
  end if;
end
$$;

comment on function inventory.authorize(text, bigint) is 'Raises PERMISSION_DENIED (42501) unless the caller holds the role for the location.';

create function inventory.authorize_locations(required text, location_ids bigint[]) returns void
language sql stable
set search_path = ''
as $$
  select inventory.authorize(authorize_locations.required, l.location_id)
    from (select distinct x as location_id from pg_catalog.unnest(authorize_locations.location_ids) x) l
$$;

comment on function inventory.authorize_locations(text, bigint[]) is 'authorize() for each of several locations.';

-- Locations whose rows the caller may read (for RLS policies, called once per statement as
-- (select inventory.visible_location_ids())).
create function inventory.visible_location_ids() returns bigint[]
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return (
    select coalesce(pg_catalog.array_agg(l.location_id), '{}')
      from inventory.locations l
     where exists (select from inventory.current_grants() g
                    where (g.location_id is null or g.location_id = l.location_id)
                      and inventory.role_rank(g.role) >= 1));
end
$$;

comment on function inventory.visible_location_ids() is 'Ids of the locations the caller may read; used by row level security policies.';

create function inventory.has_any_role() returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return (
    select exists (select from inventory.current_grants() g where inventory.role_rank(g.role) >= 1));
end
$$;

comment on function inventory.has_any_role() is 'Whether the caller holds any business role; used by row level security policies.';

-- Gives a database role the privileges to use the API without giving it a business role: USAGE on
-- both schemas, SELECT on what viewers may read (the tables under row level security and the API
-- views), EXECUTE on every function an admin may execute (maintenance too, when asked), and a place
-- in every read policy. What the role's users may then do comes from inventory.current_grants().
-- Run by the schema scripts as the owner, for inventory_user and, where they exist, PostgREST's roles
-- (directly, since Supabase creates them NOINHERIT); re-run after every migration.
create function inventory.grant_api_access(grantee text, maintenance boolean default false) returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_relation regclass;
  v_function regprocedure;
  v_policy record;
begin
  execute pg_catalog.format('grant usage on schema inventory, inventory_api to %I', grant_api_access.grantee);
  for v_relation in
    select c.oid::regclass from pg_catalog.pg_class c
     where c.relnamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
       and c.relkind in ('r', 'v', 'm', 'p') and pg_catalog.has_table_privilege('inventory_viewer', c.oid, 'SELECT')
  loop
    execute pg_catalog.format('grant select on %s to %I', v_relation, grant_api_access.grantee);
  end loop;
  for v_function in
    select p.oid::regprocedure from pg_catalog.pg_proc p
     where p.pronamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
       and (pg_catalog.has_function_privilege('inventory_admin', p.oid, 'EXECUTE')
            or pg_catalog.has_function_privilege('inventory_viewer', p.oid, 'EXECUTE'))
       and (grant_api_access.maintenance
            or not pg_catalog.has_function_privilege('inventory_scheduler', p.oid, 'EXECUTE'))
  loop
    execute pg_catalog.format('grant execute on function %s to %I', v_function, grant_api_access.grantee);
  end loop;
  for v_policy in
    select p.policyname, p.tablename, p.roles from pg_catalog.pg_policies p
     where p.schemaname = 'inventory' and 'inventory_viewer' = any (p.roles)
       and not grant_api_access.grantee = any (p.roles::text[])
  loop
    execute pg_catalog.format('alter policy %I on inventory.%I to %s', v_policy.policyname, v_policy.tablename,
      (select pg_catalog.string_agg(pg_catalog.quote_ident(r), ', ')
         from pg_catalog.unnest(v_policy.roles::text[] || grant_api_access.grantee) r));
  end loop;
end
$$;

comment on function inventory.grant_api_access(text, boolean) is 'Grants a role the privileges to use the API (schemas, readable tables and views, API functions, read policies) without a business role; used by the schema scripts.';

-- Whether the caller holds `required` (or higher) for at least one location: decides between
-- PERMISSION_DENIED and a not-found error for ids the caller cannot see.
create function inventory.holds_role_somewhere(required text) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return exists (select from inventory.current_grants() g
                  where inventory.role_rank(g.role) >= inventory.role_rank(holds_role_somewhere.required));
end
$$;

comment on function inventory.holds_role_somewhere(text) is 'Whether the caller holds the role (or a higher one) for some location.';
