-- pyinv 0.1.0: the core stock engine (generated from sql/ by 'pyinv sql bundle').
-- depends:

-- 00_roles_schemas.sql
-- Roles and schemas.
-- Roles are cluster-wide, so they are created only when missing (CREATE ROLE has no IF NOT EXISTS).
-- Objects are owned by inventory_owner, a NOLOGIN role that is neither superuser nor BYPASSRLS,
-- so SECURITY DEFINER code never runs with superuser power.
do $roles$
declare
  v_role text;
begin
  foreach v_role in array array['inventory_owner', 'inventory_viewer', 'inventory_operator',
                                'inventory_admin', 'inventory_scheduler'] loop
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
  -- The migrating login must be able to SET ROLE inventory_owner to create the objects as it.
  if not pg_catalog.pg_has_role(current_user, 'inventory_owner', 'MEMBER') then
    execute pg_catalog.format('grant inventory_owner to %I', current_user);
  end if;
end
$roles$;

comment on role inventory_owner is 'pyinv: owns every pyinv object; cannot log in.';
comment on role inventory_viewer is 'pyinv: reads stock levels, reservations and movements.';
comment on role inventory_operator is 'pyinv: runs the order lifecycle and receives stock.';
comment on role inventory_admin is 'pyinv: manages the catalogue, locations and maintenance.';
comment on role inventory_scheduler is 'pyinv: runs maintenance functions such as expire_reservations.';

create schema inventory authorization inventory_owner;
create schema inventory_api authorization inventory_owner;
comment on schema inventory is 'pyinv internals: tables, triggers and SECURITY DEFINER functions. Never exposed to PostgREST.';
comment on schema inventory_api is 'pyinv public API: SECURITY INVOKER functions and security_invoker views. Expose this schema to PostgREST.';
revoke all on schema inventory, inventory_api from public;

-- Everything below is created by the owner role.
set local role inventory_owner;
alter default privileges for role inventory_owner revoke execute on functions from public;

-- 10_errors.sql
-- The error catalogue: every error pyinv raises on purpose carries one of these tokens in its HINT and
-- the matching SQLSTATE. PostgREST maps PTxyz to HTTP xyz and 22023 to 400. pyinv/errors.py mirrors
-- this table and a test checks that the two agree.
create table inventory.error_codes (
  code text primary key,
  sqlstate text not null,
  description text not null,
  constraint error_codes_code_format_check check (code ~ '^[A-Z][A-Z_]+$'),
  constraint error_codes_sqlstate_format_check check (sqlstate ~ '^[0-9A-Z]{5}$')
);
comment on table inventory.error_codes is 'Error catalogue: hint token, SQLSTATE and meaning of every error pyinv raises.';
comment on column inventory.error_codes.code is 'Machine-readable token carried in the HINT of the error.';
comment on column inventory.error_codes.sqlstate is 'SQLSTATE of the error; PTxyz becomes HTTP xyz under PostgREST.';
comment on column inventory.error_codes.description is 'What the error means and what the caller should do.';

insert into inventory.error_codes (code, sqlstate, description) values
  ('PRODUCT_NOT_FOUND', 'PT404', 'No item with this SKU exists (or it was deleted). Create it first.'),
  ('LOCATION_NOT_FOUND', 'PT404', 'No location with this code exists. Create it first.'),
  ('NO_RESERVATION', 'PT404', 'The order has no active reservation (for this SKU).'),
  ('INSUFFICIENT_STOCK', 'PT409', 'Not enough available stock; DETAIL lists every short line.'),
  ('PRODUCT_UNAVAILABLE', 'PT409', 'The item is on hold or discontinued and cannot be reserved or received.'),
  ('QUANTITY_MISMATCH', 'PT409', 'The quantity exceeds what is held (fulfil) or what was shipped and not yet returned (return).'),
  ('RESERVATION_EXPIRED', 'PT409', 'The hold expired; it can no longer be fulfilled. Reserve again.'),
  ('IDEMPOTENCY_CONFLICT', 'PT409', 'The idempotency key was already used with different arguments. Use a new key.'),
  ('ALREADY_EXISTS', 'PT409', 'An object with this natural key exists with different attributes.'),
  ('INVALID_QUANTITY', '22023', 'Quantities must be finite, greater than zero, at most 1e12, with at most 4 decimals.'),
  ('INVALID_ARGUMENT', '22023', 'An argument is missing, malformed or out of range; DETAIL names it.'),
  ('APPEND_ONLY', '42501', 'The ledger and audit log are append-only: rows cannot be updated, deleted or truncated.'),
  ('PERMISSION_DENIED', '42501', 'The acting user lacks the business role (or location scope) this needs.');

-- Raises the catalogued error `code`. DETAIL is a JSON object of specifics for programs.
create function inventory.raise_error(code text, message text, detail jsonb default null)
returns void
language plpgsql stable
set search_path = ''
as $$
declare
  v_sqlstate text;
begin
  select e.sqlstate into v_sqlstate from inventory.error_codes e where e.code = raise_error.code;
  if v_sqlstate is null then
    raise exception 'unknown pyinv error code %', raise_error.code using errcode = 'XX000';
  end if;
  raise exception using
    errcode = v_sqlstate,
    message = raise_error.message,
    detail = coalesce(raise_error.detail, '{}'::jsonb)::text,
    hint = raise_error.code;
end
$$;
comment on function inventory.raise_error(text, text, jsonb) is 'Raises a catalogued pyinv error: SQLSTATE from inventory.error_codes, HINT = code, DETAIL = JSON specifics.';

-- Largest quantity accepted in one call (numeric(19,4) holds 1e15; add_on_hand refuses totals past it).
create function inventory.max_quantity() returns numeric
language sql immutable parallel safe
begin atomic
  select 1000000000000::numeric;
end;
comment on function inventory.max_quantity() is 'Largest quantity accepted by one call (1e12).';

-- Inlined into callers (SQL-standard body, no SET clause): on every call's path.
create function inventory.quantity_is_valid(quantity numeric) returns boolean
language sql immutable parallel safe
begin atomic
  -- NaN and Infinity sort above every number, so the upper bound excludes them; null stays null.
  select coalesce(quantity_is_valid.quantity > 0
                  and quantity_is_valid.quantity <= inventory.max_quantity()
                  and quantity_is_valid.quantity = pg_catalog.round(quantity_is_valid.quantity, 4), false);
end;
comment on function inventory.quantity_is_valid(numeric) is 'Whether a quantity is finite, > 0, <= 1e12 and has at most 4 decimals.';

-- Validates a quantity argument; returns it unchanged so it can be used inline.
create function inventory.check_quantity(quantity numeric, argument text default 'quantity')
returns numeric
language plpgsql stable
set search_path = ''
as $$
begin
  if not inventory.quantity_is_valid(check_quantity.quantity) then
    perform inventory.raise_error('INVALID_QUANTITY',
      pg_catalog.format('%s must be greater than 0 and at most 1e12 with at most 4 decimals, got %s',
                        check_quantity.argument, coalesce(check_quantity.quantity::text, 'null')),
      pg_catalog.jsonb_build_object('argument', check_quantity.argument,
                                    'value', check_quantity.quantity::text));
  end if;
  return check_quantity.quantity;
end
$$;
comment on function inventory.check_quantity(numeric, text) is 'Raises INVALID_QUANTITY unless the quantity is finite, > 0, <= 1e12 and has at most 4 decimals.';

-- Validates a free-text argument (references, order numbers, reasons): present, trimmed, bounded,
-- printable. Returns it unchanged.
create function inventory.check_text(value text, argument text, max_length integer default 200,
                                     required boolean default true)
returns text
language plpgsql stable
set search_path = ''
as $$
begin
  if check_text.value is null then
    if check_text.required then
      perform inventory.raise_error('INVALID_ARGUMENT',
        pg_catalog.format('%s is required', check_text.argument),
        pg_catalog.jsonb_build_object('argument', check_text.argument, 'problem', 'missing'));
    end if;
    return null;
  end if;
  -- Surrounding blanks include Unicode spaces and invisible format characters, so that no two
  -- references differ only by something a person cannot see.
  if pg_catalog.length(check_text.value) not between 1 and check_text.max_length
     or check_text.value ~ '^[\s\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]'
     or check_text.value ~ '[\s\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]$'
     or check_text.value ~ '[[:cntrl:]\u200b-\u200f\u2028\u2029\ufeff]' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('%s must be 1 to %s printable characters without surrounding spaces',
                        check_text.argument, check_text.max_length),
      pg_catalog.jsonb_build_object('argument', check_text.argument, 'problem', 'malformed'));
  end if;
  return check_text.value;
end
$$;
comment on function inventory.check_text(text, text, integer, boolean) is 'Raises INVALID_ARGUMENT unless the text is present (when required), 1..max_length printable characters, trimmed.';

create function inventory.check_unit_cost(unit_cost numeric) returns numeric
language plpgsql stable
set search_path = ''
as $$
begin
  if check_unit_cost.unit_cost is not null
     and (check_unit_cost.unit_cost = 'NaN'::numeric or check_unit_cost.unit_cost < 0
          or check_unit_cost.unit_cost > inventory.max_quantity()
          or check_unit_cost.unit_cost <> pg_catalog.round(check_unit_cost.unit_cost, 4)) then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'unit_cost must be between 0 and 1e12 with at most 4 decimals',
      pg_catalog.jsonb_build_object('argument', 'unit_cost', 'problem', 'out of range'));
  end if;
  return check_unit_cost.unit_cost;
end
$$;
comment on function inventory.check_unit_cost(numeric) is 'Raises INVALID_ARGUMENT unless the cost is null or between 0 and 1e12 with at most 4 decimals.';

-- 20_catalog.sql
-- Settings, identity, items and locations.

create table inventory.settings (
  singleton boolean primary key default true,
  default_reservation_ttl interval default interval '24 hours',
  gateway_roles text[] not null default array['authenticator'],
  constraint settings_singleton_check check (singleton),
  constraint settings_default_reservation_ttl_check
    check (default_reservation_ttl is null
           or (default_reservation_ttl > interval '0' and default_reservation_ttl <= interval '366 days'))
);
comment on table inventory.settings is 'Engine settings (one row).';
comment on column inventory.settings.singleton is 'Always true: the table holds exactly one row.';
comment on column inventory.settings.default_reservation_ttl is 'Lifetime of a hold when reserve_* is called without expires_in; null means holds do not expire by default.';
comment on column inventory.settings.gateway_roles is 'Login roles (PostgREST''s authenticator) whose request.jwt.claims are trusted for the acting user.';
insert into inventory.settings default values;

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

create table inventory.items (
  item_id bigint generated always as identity primary key,
  sku text not null constraint items_sku_key unique,
  name text not null,
  unit_of_measure text not null default 'each',
  unit_cost numeric(19, 4),
  status text not null default 'active',
  track_lots boolean not null default false,
  created_by text not null,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  deleted_at timestamptz,
  constraint items_sku_format_check check (sku ~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$'),
  constraint items_name_check
    check (pg_catalog.length(name) between 1 and 200 and name = pg_catalog.btrim(name) and name !~ '[[:cntrl:]]'),
  constraint items_unit_of_measure_check check (unit_of_measure ~ '^[a-z][a-z0-9_]{0,19}$'),
  constraint items_unit_cost_check check (unit_cost >= 0 and unit_cost <> 'NaN'::numeric),
  constraint items_status_check check (status in ('active', 'on_hold', 'discontinued'))
);
comment on table inventory.items is 'Catalogue of stock-keeping units.';
comment on column inventory.items.item_id is 'Surrogate key.';
comment on column inventory.items.sku is 'Stock-keeping unit: 1-64 characters, letters, digits and . _ : / # + -, unique.';
comment on column inventory.items.name is 'Human-readable name.';
comment on column inventory.items.unit_of_measure is 'Unit the quantities are counted in (each, kg, m, ...).';
comment on column inventory.items.unit_cost is 'Moving-average unit cost, updated by receive_stock when a cost is given.';
comment on column inventory.items.status is 'active (sellable), on_hold (no new holds) or discontinued (no new holds, no receipts).';
comment on column inventory.items.track_lots is 'Whether stock of this item is tracked by lot.';
comment on column inventory.items.created_by is 'Acting user who created the item.';
comment on column inventory.items.created_at is 'When the item was created.';
comment on column inventory.items.updated_at is 'When the item last changed.';
comment on column inventory.items.deleted_at is 'Soft delete: a deleted item is treated as unknown by every function.';

create table inventory.locations (
  location_id bigint generated always as identity primary key,
  code text not null constraint locations_code_key unique,
  name text not null,
  created_by text not null,
  created_at timestamptz not null default pg_catalog.now(),
  constraint locations_code_format_check check (code ~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$'),
  constraint locations_name_check
    check (pg_catalog.length(name) between 1 and 200 and name = pg_catalog.btrim(name) and name !~ '[[:cntrl:]]')
);
comment on table inventory.locations is 'Places stock is kept (warehouses, stores, bins).';
comment on column inventory.locations.location_id is 'Surrogate key.';
comment on column inventory.locations.code is 'Short unique code used by the API (e.g. main).';
comment on column inventory.locations.name is 'Human-readable name.';
comment on column inventory.locations.created_by is 'Acting user who created the location.';
comment on column inventory.locations.created_at is 'When the location was created.';

insert into inventory.locations (code, name, created_by) values ('main', 'Main warehouse', 'pyinv');

-- Lookups that raise the catalogued not-found errors.
create function inventory.item_for_sku(sku text, out item_id bigint, out status text)
language plpgsql stable
set search_path = ''
as $$
begin
  perform inventory.check_text(item_for_sku.sku, 'sku', 64);
  select i.item_id, i.status into item_for_sku.item_id, item_for_sku.status
    from inventory.items i
   where i.sku = item_for_sku.sku and i.deleted_at is null;
  if not found then
    perform inventory.raise_error('PRODUCT_NOT_FOUND',
      pg_catalog.format('no item with SKU %L', item_for_sku.sku),
      pg_catalog.jsonb_build_object('sku', item_for_sku.sku));
  end if;
end
$$;
comment on function inventory.item_for_sku(text) is 'item_id and status of a live item; raises PRODUCT_NOT_FOUND.';

create function inventory.location_for_code(code text) returns bigint
language plpgsql stable
set search_path = ''
as $$
declare
  v_location_id bigint;
begin
  perform inventory.check_text(location_for_code.code, 'location', 64);
  select l.location_id into v_location_id from inventory.locations l where l.code = location_for_code.code;
  if not found then
    perform inventory.raise_error('LOCATION_NOT_FOUND',
      pg_catalog.format('no location with code %L', location_for_code.code),
      pg_catalog.jsonb_build_object('location', location_for_code.code));
  end if;
  return v_location_id;
end
$$;
comment on function inventory.location_for_code(text) is 'location_id of a location code; raises LOCATION_NOT_FOUND.';

-- 25_access.sql
-- Who is acting, and what may they do where.
--
-- Identity: under PostgREST (the login is a trusted gateway role, `authenticator` by default) the
-- acting user is the JWT subject from request.jwt.claims; any other login acts as itself, and
-- claims it sets are ignored. Business roles: viewer < operator < admin, plus scheduler for
-- maintenance. A gateway user's roles come from user_roles; a direct login's roles come from its
-- membership in the inventory_* group roles, narrowed to the locations listed for it in user_roles
-- when it has rows there. service_role (Supabase) acts as an unscoped admin.

create table inventory.user_roles (
  user_role_id bigint generated always as identity primary key,
  user_id text not null,
  role text not null,
  location_id bigint references inventory.locations (location_id),
  granted_by text not null,
  granted_at timestamptz not null default pg_catalog.now(),
  constraint user_roles_role_check check (role in ('viewer', 'operator', 'admin', 'scheduler')),
  constraint user_roles_user_id_check check (pg_catalog.length(user_id) between 1 and 200)
);
create unique index user_roles_user_role_location_key
  on inventory.user_roles (user_id, role, coalesce(location_id, 0));
create index user_roles_location_id_idx on inventory.user_roles (location_id);
comment on table inventory.user_roles is 'Business roles of users (JWT subjects or login names), optionally limited to one location.';
comment on column inventory.user_roles.user_role_id is 'Surrogate key.';
comment on column inventory.user_roles.user_id is 'JWT sub under PostgREST/Supabase, or a login role name for direct SQL clients.';
comment on column inventory.user_roles.role is 'viewer, operator, admin or scheduler.';
comment on column inventory.user_roles.location_id is 'The one location the role applies to; null = every location.';
comment on column inventory.user_roles.granted_by is 'Acting user who granted the role.';
comment on column inventory.user_roles.granted_at is 'When the role was granted.';

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
  v_user text := inventory.current_actor();
begin
  if inventory.is_gateway_session() then
    if v_db_role = 'service_role' then
      return query select 'admin'::text, null::bigint;
    elsif v_db_role <> 'anon' and pg_catalog.current_setting('request.jwt.claims', true) <> '' then
      return query select u.role, u.location_id from inventory.user_roles u where u.user_id = v_user;
    end if;
    return;
  end if;
  if exists (select from inventory.user_roles u where u.user_id = v_user) then
    return query
      select u.role, u.location_id from inventory.user_roles u
       where u.user_id = v_user
         and pg_catalog.pg_has_role(v_db_role, 'inventory_' || u.role, 'USAGE');
    return;
  end if;
  return query
    select g.role, null::bigint
      from pg_catalog.unnest(array['viewer', 'operator', 'admin', 'scheduler']) as g (role)
     where pg_catalog.pg_has_role(v_db_role, 'inventory_' || g.role, 'USAGE');
end
$$;
comment on function inventory.current_grants() is 'Business roles of the caller with their location scope (null = all locations).';

create function inventory.role_rank(role text) returns integer
language sql immutable parallel safe
begin atomic
  select case role_rank.role when 'viewer' then 1 when 'operator' then 2 when 'admin' then 3 else 0 end;
end;
comment on function inventory.role_rank(text) is 'viewer 1 < operator 2 < admin 3; scheduler 0 (it ranks beside, not above).';

-- Whether the caller holds `required` (or a higher role) for the location (null = for every location,
-- which only an unscoped grant satisfies). scheduler work is also allowed to unscoped admins.
-- This is on every call's path, so the common case (a direct login without user_roles rows) is one
-- index probe and one pg_has_role(): admin is a member of operator, operator of viewer.
create function inventory.is_allowed(required text, location_id bigint default null) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_db_role text := inventory.acting_db_role();
begin
  if not inventory.is_gateway_session()
     and not exists (select from inventory.user_roles u where u.user_id = session_user::text) then
    return pg_catalog.pg_has_role(v_db_role, 'inventory_' || is_allowed.required, 'USAGE')
        or (is_allowed.required = 'scheduler' and pg_catalog.pg_has_role(v_db_role, 'inventory_admin', 'USAGE'));
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

create type inventory_api.user_role as (
  user_id text, role text, location text, granted_by text, granted_at timestamptz);
comment on type inventory_api.user_role is 'A business role held by a user, optionally for one location.';

create function inventory.grant_user_role(user_id text, role text, location text)
returns inventory_api.user_role
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_location_id bigint;
begin
  perform inventory.authorize('admin');
  perform inventory.check_text(grant_user_role.user_id, 'user_id', 200);
  if grant_user_role.role is null or grant_user_role.role not in ('viewer', 'operator', 'admin', 'scheduler') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'role must be viewer, operator, admin or scheduler',
      pg_catalog.jsonb_build_object('argument', 'role', 'problem', 'not a role'));
  end if;
  if grant_user_role.location is not null then
    v_location_id := inventory.location_for_code(grant_user_role.location);
  end if;
  insert into inventory.user_roles (user_id, role, location_id, granted_by)
  values (grant_user_role.user_id, grant_user_role.role, v_location_id, inventory.current_actor())
  on conflict do nothing;
  return (select row(u.user_id, u.role, grant_user_role.location, u.granted_by, u.granted_at)::inventory_api.user_role
            from inventory.user_roles u
           where u.user_id = grant_user_role.user_id and u.role = grant_user_role.role
             and u.location_id is not distinct from v_location_id);
end
$$;
comment on function inventory.grant_user_role(text, text, text) is 'Implements inventory_api.grant_user_role.';

create function inventory.revoke_user_role(user_id text, role text, location text)
returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_location_id bigint;
  v_count integer;
begin
  perform inventory.authorize('admin');
  if revoke_user_role.location is not null then
    v_location_id := inventory.location_for_code(revoke_user_role.location);
  end if;
  delete from inventory.user_roles u
   where u.user_id = revoke_user_role.user_id and u.role = revoke_user_role.role
     and u.location_id is not distinct from v_location_id;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;
comment on function inventory.revoke_user_role(text, text, text) is 'Implements inventory_api.revoke_user_role.';

-- 30_stock_and_ledger.sql
-- Stock levels and the append-only ledger that proves them.
--
-- Every change of on_hand or reserved, whoever makes it (an API function, a DBA in psql), passes
-- through the BEFORE trigger on stock_levels, which appends the movement to the ledger in the same
-- transaction. API functions describe the movement in the transient column pending_movement; the
-- trigger consumes it and clears it, so it is never stored. A change without a description is
-- recorded as an ADJUST by the acting user.

create table inventory.stock_levels (
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  on_hand numeric(19, 4) not null default 0,
  reserved numeric(19, 4) not null default 0,
  available numeric(19, 4) generated always as (on_hand - reserved) stored,
  version bigint not null default 1,
  updated_at timestamptz not null default pg_catalog.now(),
  pending_movement jsonb,
  ledger_hash bytea,
  primary key (item_id, location_id),
  constraint stock_levels_on_hand_check check (on_hand >= 0 and on_hand <> 'NaN'::numeric),
  constraint stock_levels_reserved_check check (reserved >= 0 and reserved <> 'NaN'::numeric),
  constraint stock_levels_reserved_within_on_hand_check check (reserved <= on_hand),
  constraint stock_levels_pending_movement_check check (pending_movement is null)
) with (fillfactor = 70);
create index stock_levels_location_id_idx on inventory.stock_levels (location_id);
comment on table inventory.stock_levels is 'Quantity of each item at each location. Changed only through the ledger trigger.';
comment on column inventory.stock_levels.item_id is 'The item.';
comment on column inventory.stock_levels.location_id is 'The location.';
comment on column inventory.stock_levels.on_hand is 'Units physically present.';
comment on column inventory.stock_levels.reserved is 'Units held by active reservations (including overdue holds not yet swept).';
comment on column inventory.stock_levels.available is 'on_hand - reserved (generated).';
comment on column inventory.stock_levels.version is 'Incremented on every movement; usable for compare-and-set.';
comment on column inventory.stock_levels.updated_at is 'Time of the last movement.';
comment on column inventory.stock_levels.ledger_hash is 'Hash of the level''s latest ledger movement: the head of its hash chain.';
comment on column inventory.stock_levels.pending_movement is 'Transient description of the movement being written (type, reason, reference...); consumed and cleared by the ledger trigger, never stored.';

-- Enums, not CHECK constraints: PostgreSQL re-reads and re-plans every CHECK expression of a table
-- for each INSERT or UPDATE statement, and the ledger is written on every movement.
create type inventory.movement_type as enum
  ('RECEIVE', 'RESERVE', 'RELEASE', 'EXPIRE', 'SHIP', 'RETURN', 'ADJUST', 'TRANSFER_OUT', 'TRANSFER_IN');
comment on type inventory.movement_type is 'Kinds of stock movement recorded in the ledger.';

create table inventory.ledger (
  movement_id bigint generated always as identity primary key,
  movement_type inventory.movement_type not null,
  item_id bigint not null,
  location_id bigint not null,
  on_hand_delta numeric(19, 4) not null,
  reserved_delta numeric(19, 4) not null,
  on_hand_before numeric(19, 4) not null,
  on_hand_after numeric(19, 4) not null,
  reserved_before numeric(19, 4) not null,
  reserved_after numeric(19, 4) not null,
  actor text not null,
  reason text,
  reference text,
  idempotency_key text,
  related_movement_id bigint,
  reservation_id bigint,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default pg_catalog.now(),
  transaction_id xid8 not null default pg_catalog.pg_current_xact_id(),
  prev_hash bytea,
  hash bytea not null,
  constraint ledger_arithmetic_check check (on_hand_after = on_hand_before + on_hand_delta
                                            and reserved_after = reserved_before + reserved_delta
                                            and (on_hand_delta <> 0 or reserved_delta <> 0))
);
create index ledger_level_idx on inventory.ledger (item_id, location_id, movement_id);
comment on table inventory.ledger is 'Append-only record of every stock movement; stock_levels equal the sum of its deltas.';
comment on column inventory.ledger.movement_id is 'Monotonic id; orders movements of one stock level.';
comment on column inventory.ledger.movement_type is 'RECEIVE, RESERVE, RELEASE, EXPIRE, SHIP, RETURN, ADJUST, TRANSFER_OUT or TRANSFER_IN.';
comment on column inventory.ledger.item_id is 'The item moved.';
comment on column inventory.ledger.location_id is 'Where it moved.';
comment on column inventory.ledger.on_hand_delta is 'Change of on_hand.';
comment on column inventory.ledger.reserved_delta is 'Change of reserved.';
comment on column inventory.ledger.on_hand_before is 'on_hand before the movement.';
comment on column inventory.ledger.on_hand_after is 'on_hand after the movement.';
comment on column inventory.ledger.reserved_before is 'reserved before the movement.';
comment on column inventory.ledger.reserved_after is 'reserved after the movement.';
comment on column inventory.ledger.actor is 'Acting user (JWT sub under PostgREST, else the login).';
comment on column inventory.ledger.reason is 'Why the stock moved.';
comment on column inventory.ledger.reference is 'Business reference: order number, receipt, ...';
comment on column inventory.ledger.idempotency_key is 'Idempotency key of the call that caused the movement.';
comment on column inventory.ledger.related_movement_id is 'Linked movement (e.g. the other half of a transfer).';
comment on column inventory.ledger.reservation_id is 'The reservation moved, when exactly one.';
comment on column inventory.ledger.metadata is 'Free-form details (reservation ids of aggregated movements, unit cost, ...).';
comment on column inventory.ledger.created_at is 'Transaction time of the movement.';
comment on column inventory.ledger.transaction_id is 'Id of the writing transaction.';
comment on column inventory.ledger.prev_hash is 'Hash of the previous movement of the same stock level (null for its first).';
comment on column inventory.ledger.hash is 'sha256(prev_hash || canonical bytes of this movement): a tamper-evident chain per stock level.';

-- Canonical bytes of a movement: independent of TimeZone and DateStyle.
create function inventory.ledger_entry_bytes(entry inventory.ledger) returns bytea
language plpgsql immutable
set search_path = ''
as $$
  -- Fields in a fixed order, separated by a unit separator; texts of numbers, ids and jsonb are
  -- canonical, and the time is an epoch number, so the bytes do not depend on session settings.
begin
  return (
    select pg_catalog.convert_to(pg_catalog.concat_ws(pg_catalog.chr(31),
             (ledger_entry_bytes.entry).movement_id, (ledger_entry_bytes.entry).movement_type,
             (ledger_entry_bytes.entry).item_id, (ledger_entry_bytes.entry).location_id,
             (ledger_entry_bytes.entry).on_hand_before, (ledger_entry_bytes.entry).on_hand_delta,
             (ledger_entry_bytes.entry).on_hand_after, (ledger_entry_bytes.entry).reserved_before,
             (ledger_entry_bytes.entry).reserved_delta, (ledger_entry_bytes.entry).reserved_after,
             pg_catalog.quote_nullable((ledger_entry_bytes.entry).actor),
             pg_catalog.quote_nullable((ledger_entry_bytes.entry).reason),
             pg_catalog.quote_nullable((ledger_entry_bytes.entry).reference),
             pg_catalog.quote_nullable((ledger_entry_bytes.entry).idempotency_key),
             coalesce((ledger_entry_bytes.entry).related_movement_id::text, 'null'),
             coalesce((ledger_entry_bytes.entry).reservation_id::text, 'null'),
             (ledger_entry_bytes.entry).metadata,
             extract(epoch from (ledger_entry_bytes.entry).created_at),
             (ledger_entry_bytes.entry).transaction_id), 'UTF8'));
end
$$;
comment on function inventory.ledger_entry_bytes(inventory.ledger) is 'Canonical, session-independent bytes of a movement, hashed by the per-level chain.';

create function inventory.record_stock_movement() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_movement jsonb := coalesce(new.pending_movement, '{}'::jsonb);
  v_entry inventory.ledger;
begin
  new.pending_movement := null;
  if tg_op = 'INSERT' then
    -- Levels are born empty and filled by an UPDATE, so that an INSERT ... ON CONFLICT DO UPDATE
    -- (whose BEFORE INSERT trigger fires even when the row then conflicts) cannot record a
    -- movement twice.
    if new.on_hand <> 0 or new.reserved <> 0 then
      perform inventory.raise_error('INVALID_ARGUMENT',
        'stock levels are created empty; add stock with receive_stock or an UPDATE, which the ledger records',
        pg_catalog.jsonb_build_object('argument', 'on_hand', 'problem', 'must start at 0'));
    end if;
    new.version := 1;
    return new;
  end if;
  new.version := old.version + 1;
  new.ledger_hash := old.ledger_hash;
  if new.on_hand = old.on_hand and new.reserved = old.reserved then
    return new;
  end if;
  new.updated_at := pg_catalog.now();
  v_entry := row(
    pg_catalog.nextval('inventory.ledger_movement_id_seq'::regclass),
    coalesce(v_movement ->> 'type', 'ADJUST')::inventory.movement_type,
    new.item_id, new.location_id,
    new.on_hand - old.on_hand, new.reserved - old.reserved,
    old.on_hand, new.on_hand, old.reserved, new.reserved,
    inventory.current_actor(),
    case when v_movement = '{}'::jsonb then 'direct change of inventory.stock_levels' else v_movement ->> 'reason' end,
    v_movement ->> 'reference',
    v_movement ->> 'idempotency_key',
    (v_movement ->> 'related_movement_id')::bigint,
    (v_movement ->> 'reservation_id')::bigint,
    coalesce(v_movement -> 'metadata', '{}'::jsonb),
    pg_catalog.now(), pg_catalog.pg_current_xact_id(),
    old.ledger_hash, null)::inventory.ledger;
  v_entry.hash := pg_catalog.sha256(coalesce(old.ledger_hash, ''::bytea) || inventory.ledger_entry_bytes(v_entry));
  insert into inventory.ledger overriding system value select v_entry.*;
  new.ledger_hash := v_entry.hash;
  return new;
end
$$;
comment on function inventory.record_stock_movement() is 'Trigger: appends every change of a stock level to the ledger, described by pending_movement.';

create trigger stock_levels_record_movement
  before insert or update on inventory.stock_levels
  for each row execute function inventory.record_stock_movement();
alter table inventory.stock_levels enable always trigger stock_levels_record_movement;

-- A stock level holding stock cannot disappear: its units would vanish from the books.
create function inventory.forbid_stock_level_delete() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'TRUNCATE' or old.on_hand <> 0 or old.reserved <> 0 then
    perform inventory.raise_error('APPEND_ONLY',
      'stock levels holding stock cannot be deleted; move the stock out through the API first',
      null);
  end if;
  return old;
end
$$;
comment on function inventory.forbid_stock_level_delete() is 'Trigger: refuses to delete stock levels that hold stock, and any TRUNCATE.';
create trigger stock_levels_forbid_delete
  before delete on inventory.stock_levels
  for each row execute function inventory.forbid_stock_level_delete();
create trigger stock_levels_forbid_truncate
  before truncate on inventory.stock_levels
  for each statement execute function inventory.forbid_stock_level_delete();
alter table inventory.stock_levels enable always trigger stock_levels_forbid_delete;
alter table inventory.stock_levels enable always trigger stock_levels_forbid_truncate;

create function inventory.forbid_ledger_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform inventory.raise_error('APPEND_ONLY',
    pg_catalog.format('%s is append-only: %s is not allowed; record a reversing movement instead',
                      tg_table_name, pg_catalog.lower(tg_op)),
    pg_catalog.jsonb_build_object('table', tg_table_name, 'operation', tg_op));
  return null;
end
$$;
comment on function inventory.forbid_ledger_change() is 'Trigger: refuses UPDATE, DELETE and TRUNCATE on append-only tables.';
create trigger ledger_forbid_change
  before update or delete on inventory.ledger
  for each row execute function inventory.forbid_ledger_change();
create trigger ledger_forbid_truncate
  before truncate on inventory.ledger
  for each statement execute function inventory.forbid_ledger_change();
alter table inventory.ledger enable always trigger ledger_forbid_change;
alter table inventory.ledger enable always trigger ledger_forbid_truncate;

-- 31_reservations_returns_keys.sql
-- Reservations (holds), customer returns and idempotency keys.
--
-- Holds and returns refer to items and locations without foreign keys on purpose: an FK check
-- share-locks the parent row, and every hold of the busiest location would then pile multixact
-- locks on one locations row. The API functions resolve and check both ids before writing.

create table inventory.reservations (
  reservation_id bigint generated by default as identity primary key,
  order_ref text not null,
  item_id bigint not null,
  location_id bigint not null,
  quantity numeric(19, 4) not null,
  quantity_fulfilled numeric(19, 4) not null default 0,
  status text not null default 'ACTIVE',
  expires_at timestamptz,
  created_by text not null,
  created_at timestamptz not null default pg_catalog.now(),
  closed_at timestamptz,
  constraint reservations_quantity_check check (quantity > 0 and quantity <> 'NaN'::numeric),
  constraint reservations_quantity_fulfilled_check check (quantity_fulfilled >= 0 and quantity_fulfilled <= quantity),
  constraint reservations_status_check check (status in ('ACTIVE', 'FULFILLED', 'CANCELLED', 'EXPIRED')),
  constraint reservations_closed_at_check check ((status = 'ACTIVE') = (closed_at is null)),
  constraint reservations_fulfilled_check check (status <> 'FULFILLED' or quantity_fulfilled = quantity)
);
create index reservations_order_ref_idx on inventory.reservations (order_ref, item_id);
create index reservations_active_expiry_idx on inventory.reservations (expires_at) where status = 'ACTIVE';
create index reservations_active_level_idx on inventory.reservations (item_id, location_id, expires_at)
  where status = 'ACTIVE';
comment on table inventory.reservations is 'Holds of stock for orders: ACTIVE until fulfilled, cancelled or expired, each at most once.';
comment on column inventory.reservations.reservation_id is 'Surrogate key.';
comment on column inventory.reservations.order_ref is 'The order the stock is held for.';
comment on column inventory.reservations.item_id is 'The item held.';
comment on column inventory.reservations.location_id is 'Where it is held.';
comment on column inventory.reservations.quantity is 'Units held when the hold was made.';
comment on column inventory.reservations.quantity_fulfilled is 'Units shipped from this hold so far.';
comment on column inventory.reservations.status is 'ACTIVE, FULFILLED, CANCELLED or EXPIRED.';
comment on column inventory.reservations.expires_at is 'When the hold lapses; null = never. An overdue hold stops counting at once, before the sweeper runs.';
comment on column inventory.reservations.created_by is 'Acting user who made the hold.';
comment on column inventory.reservations.created_at is 'When the hold was made.';
comment on column inventory.reservations.closed_at is 'When the hold left ACTIVE.';

create table inventory.returns (
  return_id bigint generated always as identity primary key,
  order_ref text not null,
  item_id bigint not null,
  location_id bigint not null,
  quantity numeric(19, 4) not null,
  reason text not null,
  restocked boolean not null,
  movement_id bigint,
  created_by text not null,
  created_at timestamptz not null default pg_catalog.now(),
  constraint returns_quantity_check check (quantity > 0 and quantity <> 'NaN'::numeric),
  constraint returns_restocked_movement_check check (restocked = (movement_id is not null))
);
create index returns_order_ref_idx on inventory.returns (order_ref, item_id);
comment on table inventory.returns is 'Units customers sent back, restocked or not.';
comment on column inventory.returns.return_id is 'Surrogate key.';
comment on column inventory.returns.order_ref is 'The order the units were shipped for.';
comment on column inventory.returns.item_id is 'The item returned.';
comment on column inventory.returns.location_id is 'Where the units came back to.';
comment on column inventory.returns.quantity is 'Units returned.';
comment on column inventory.returns.reason is 'Why they came back.';
comment on column inventory.returns.restocked is 'Whether the units went back on hand.';
comment on column inventory.returns.movement_id is 'The RETURN ledger movement, when restocked.';
comment on column inventory.returns.created_by is 'Acting user who recorded the return.';
comment on column inventory.returns.created_at is 'When the return was recorded.';

create table inventory.idempotency_keys (
  idempotency_key text primary key,
  operation text not null,
  request jsonb not null,
  response jsonb,
  actor text not null,
  created_at timestamptz not null default pg_catalog.now(),
  constraint idempotency_keys_key_check check (pg_catalog.length(idempotency_key) between 1 and 200)
);
comment on table inventory.idempotency_keys is 'Idempotency keys, stored in the same transaction as their effect, with the original response for replays.';
comment on column inventory.idempotency_keys.idempotency_key is 'Client-chosen key, unique across operations.';
comment on column inventory.idempotency_keys.operation is 'API function that used the key.';
comment on column inventory.idempotency_keys.request is 'Normalised arguments; a retry must match them.';
comment on column inventory.idempotency_keys.response is 'Original result, returned again on replay.';
comment on column inventory.idempotency_keys.actor is 'Acting user of the original call.';
comment on column inventory.idempotency_keys.created_at is 'When the key was first used.';

-- Claims an idempotency key for this transaction. Returns null when the key is new (the caller
-- performs the effect), or the stored response when the same request was already made (the caller
-- returns it and moves nothing). A concurrent call with the same key waits on the unique index
-- until the first commits, then replays. A rejected call rolls back with its key: the key is not
-- burned, so the client may retry it once the cause is fixed.
create function inventory.claim_idempotency_key(idempotency_key text, operation text, request jsonb,
                                                response jsonb default null)
returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_stored inventory.idempotency_keys;
begin
  perform inventory.check_text(claim_idempotency_key.idempotency_key, 'idempotency_key', 200);
  insert into inventory.idempotency_keys as k (idempotency_key, operation, request, response, actor)
  values (claim_idempotency_key.idempotency_key, claim_idempotency_key.operation,
          claim_idempotency_key.request, claim_idempotency_key.response, inventory.current_actor())
  on conflict do nothing;
  if found then
    return null;
  end if;
  select * into v_stored from inventory.idempotency_keys k
   where k.idempotency_key = claim_idempotency_key.idempotency_key;
  if v_stored.operation <> claim_idempotency_key.operation or v_stored.request <> claim_idempotency_key.request then
    perform inventory.raise_error('IDEMPOTENCY_CONFLICT',
      pg_catalog.format('idempotency key %L was already used for a different %s call',
                        claim_idempotency_key.idempotency_key, v_stored.operation),
      pg_catalog.jsonb_build_object('idempotency_key', claim_idempotency_key.idempotency_key,
                                    'operation', v_stored.operation));
  end if;
  return v_stored.response;
end
$$;
comment on function inventory.claim_idempotency_key(text, text, jsonb, jsonb) is 'Claims a key: null when new, the stored response on a matching replay; raises IDEMPOTENCY_CONFLICT when the arguments differ.';

create function inventory.complete_idempotency_key(idempotency_key text, response jsonb)
returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  update inventory.idempotency_keys k set response = complete_idempotency_key.response
   where k.idempotency_key = complete_idempotency_key.idempotency_key;
end
$$;
comment on function inventory.complete_idempotency_key(text, jsonb) is 'Stores the response of a call that claimed the key, for later replays.';

-- 36_audit.sql
-- The audit log: every INSERT, UPDATE and DELETE on every table, by whom, as which role, in which
-- transaction, with the row before and after. Append-only (also in replica mode), and hash-chained.
--
-- The chain is sealed after commit by seal_audit_log(), not inline: a chain head locked by every
-- writing transaction would serialise the whole system on one row. The sealer takes only rows of
-- transactions older than every transaction that may still write here (see audit_horizon()), so no
-- row can later appear before the sealed end of the chain, and it orders them by
-- (transaction_id, audit_id). The stock
-- ledger is chained inline instead, per stock level, whose row the movement already locks.

create type inventory.audit_operation as enum ('INSERT', 'UPDATE', 'DELETE');
comment on type inventory.audit_operation is 'Row operations recorded in the audit log.';

create table inventory.audit_log (
  audit_id bigint generated always as identity primary key,
  table_name text not null,
  operation inventory.audit_operation not null,
  old_row jsonb,
  new_row jsonb,
  actor text not null,
  db_role text not null,
  login text not null,
  request_path text,
  request_id text,
  transaction_id xid8 not null default pg_catalog.pg_current_xact_id(),
  created_at timestamptz not null default pg_catalog.now()
);
create index audit_log_seal_order_idx on inventory.audit_log (transaction_id, audit_id);
comment on table inventory.audit_log is 'Append-only record of every row change in every pyinv table.';
comment on column inventory.audit_log.audit_id is 'Insertion order (not commit order).';
comment on column inventory.audit_log.table_name is 'Table changed.';
comment on column inventory.audit_log.operation is 'INSERT, UPDATE or DELETE.';
comment on column inventory.audit_log.old_row is 'Before the change: the whole row for DELETE, the changed columns'' old values for UPDATE.';
comment on column inventory.audit_log.new_row is 'Row after the change (INSERT, UPDATE).';
comment on column inventory.audit_log.actor is 'Acting user: JWT sub under the gateway, else the login.';
comment on column inventory.audit_log.db_role is 'Database role in effect (SET ROLE / PostgREST request role).';
comment on column inventory.audit_log.login is 'session_user: the login that connected.';
comment on column inventory.audit_log.request_path is 'PostgREST request.path, when called through PostgREST.';
comment on column inventory.audit_log.request_id is 'x-request-id header, when called through PostgREST.';
comment on column inventory.audit_log.transaction_id is 'Writing transaction.';
comment on column inventory.audit_log.created_at is 'Transaction time of the change.';

create table inventory.audit_chain (
  seq bigint primary key,
  audit_id bigint not null constraint audit_chain_audit_id_key unique,
  transaction_id xid8 not null,
  prev_hash bytea,
  hash bytea not null,
  sealed_at timestamptz not null default pg_catalog.now(),
  constraint audit_chain_seq_check check (seq >= 1),
  constraint audit_chain_prev_hash_check check ((seq = 1) = (prev_hash is null))
);
comment on table inventory.audit_chain is 'Hash chain over the audit log in seal order: hash = sha256(prev_hash || canonical audit row).';
comment on column inventory.audit_chain.seq is 'Position in the chain, contiguous from 1.';
comment on column inventory.audit_chain.audit_id is 'The audit row sealed.';
comment on column inventory.audit_chain.transaction_id is 'Its transaction (the sealer''s watermark).';
comment on column inventory.audit_chain.prev_hash is 'Hash of the previous link (null for the first).';
comment on column inventory.audit_chain.hash is 'sha256(prev_hash || canonical bytes of the audit row).';
comment on column inventory.audit_chain.sealed_at is 'When the link was sealed.';

-- Canonical bytes of an audit row: independent of TimeZone and DateStyle (times as epoch numbers,
-- jsonb rendered by its own canonical output).
create function inventory.audit_row_bytes(entry inventory.audit_log) returns bytea
language plpgsql immutable
set search_path = ''
as $$
begin
  return (
    select pg_catalog.convert_to(pg_catalog.jsonb_build_object(
             'audit_id', (audit_row_bytes.entry).audit_id,
             'table', (audit_row_bytes.entry).table_name,
             'op', (audit_row_bytes.entry).operation,
             'old', (audit_row_bytes.entry).old_row,
             'new', (audit_row_bytes.entry).new_row,
             'actor', (audit_row_bytes.entry).actor,
             'db_role', (audit_row_bytes.entry).db_role,
             'login', (audit_row_bytes.entry).login,
             'request_path', (audit_row_bytes.entry).request_path,
             'request_id', (audit_row_bytes.entry).request_id,
             'txid', (audit_row_bytes.entry).transaction_id::text,
             'at', extract(epoch from (audit_row_bytes.entry).created_at))::text, 'UTF8'));
end
$$;
comment on function inventory.audit_row_bytes(inventory.audit_log) is 'Canonical, session-independent bytes of an audit row, hashed by the chain.';

create function inventory.record_audit() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_old jsonb;
  v_new jsonb;
begin
  if tg_op <> 'DELETE' then
    v_new := pg_catalog.to_jsonb(new);
  end if;
  if tg_op = 'UPDATE' then
    -- Only the columns that changed, with their old values: the full old row is the previous
    -- audit row of the same key, and half the bytes keep the write (and its WAL) small.
    select pg_catalog.jsonb_object_agg(o.key, o.value) into v_old
      from pg_catalog.jsonb_each(pg_catalog.to_jsonb(old)) o
     where v_new -> o.key is distinct from o.value;
  elsif tg_op = 'DELETE' then
    v_old := pg_catalog.to_jsonb(old);
  end if;
  insert into inventory.audit_log (table_name, operation, old_row, new_row, actor, db_role, login,
                                   request_path, request_id)
  values (tg_table_name, tg_op::inventory.audit_operation, v_old, v_new,
          inventory.current_actor(), inventory.acting_db_role(), session_user,
          nullif(pg_catalog.current_setting('request.path', true), ''),
          case when inventory.is_gateway_session()
               then nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb ->> 'x-request-id' end);
  return null;
end
$$;
comment on function inventory.record_audit() is 'Trigger: appends the row change to the audit log.';

-- Puts a table under audit: every row change appended to the audit log, also in replica mode.
create function inventory.audit_table(table_name text) returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  execute pg_catalog.format(
    'create trigger %I after insert or update or delete on inventory.%I
       for each row execute function inventory.record_audit()', audit_table.table_name || '_audit',
    audit_table.table_name);
  execute pg_catalog.format('alter table inventory.%I enable always trigger %I', audit_table.table_name,
                            audit_table.table_name || '_audit');
end
$$;
comment on function inventory.audit_table(text) is 'Installs the audit trigger (ENABLE ALWAYS) on a table of the inventory schema (used by the schema scripts).';

do $audited$
begin
  perform inventory.audit_table(t)
     from pg_catalog.unnest(array['settings', 'items', 'locations', 'user_roles', 'stock_levels', 'reservations',
                                  'returns', 'idempotency_keys']) as t;
end
$audited$;

create trigger audit_log_forbid_change
  before update or delete on inventory.audit_log
  for each row execute function inventory.forbid_ledger_change();
create trigger audit_log_forbid_truncate
  before truncate on inventory.audit_log
  for each statement execute function inventory.forbid_ledger_change();
create trigger audit_chain_forbid_change
  before update or delete on inventory.audit_chain
  for each row execute function inventory.forbid_ledger_change();
create trigger audit_chain_forbid_truncate
  before truncate on inventory.audit_chain
  for each statement execute function inventory.forbid_ledger_change();
alter table inventory.audit_log enable always trigger audit_log_forbid_change;
alter table inventory.audit_log enable always trigger audit_log_forbid_truncate;
alter table inventory.audit_chain enable always trigger audit_chain_forbid_change;
alter table inventory.audit_chain enable always trigger audit_chain_forbid_truncate;

-- The oldest transaction id that may still add audit rows: the smallest id running at snapshot time,
-- leaving out transactions seen running in other databases (they cannot write this audit log; a
-- long one there would otherwise hold sealing back), or the snapshot's xmax when none. Transactions
-- that end between the snapshot and the lock read stay counted, which only makes the horizon earlier.
create function inventory.audit_horizon() returns xid8
language plpgsql volatile
set search_path = ''
as $$
declare
  v_snapshot pg_catalog.pg_snapshot := pg_catalog.pg_current_snapshot();
  v_horizon xid8;
begin
  select min(x) into v_horizon
    from pg_catalog.pg_snapshot_xip(v_snapshot) as x
   where pg_catalog.xid(x) not in (
           select l.transactionid
             from pg_catalog.pg_locks l
             join pg_catalog.pg_stat_activity a on a.pid = l.pid
            where l.locktype = 'transactionid' and l.granted and l.transactionid is not null
              and a.datid is distinct from (select d.oid from pg_catalog.pg_database d
                                             where d.datname = pg_catalog.current_database()));
  return coalesce(v_horizon, pg_catalog.pg_snapshot_xmax(v_snapshot));
end
$$;
comment on function inventory.audit_horizon() is 'Transaction id below which no audit row can still appear in this database.';

-- Seals up to batch_size audit rows onto the chain; returns how many. Self-locking: a second
-- concurrent call returns 0 at once.
create function inventory.seal_audit_log(batch_size integer) returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_last inventory.audit_chain;
  v_horizon xid8 := inventory.audit_horizon();
  v_entry inventory.audit_log;
  v_seq bigint;
  v_prev bytea;
  v_hash bytea;
  v_count integer := 0;
begin
  perform inventory.authorize('scheduler');
  if seal_audit_log.batch_size is null or seal_audit_log.batch_size not between 1 and 1000000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'batch_size must be between 1 and 1000000',
      pg_catalog.jsonb_build_object('argument', 'batch_size', 'problem', 'out of range'));
  end if;
  if not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('inventory.seal_audit_log')) then
    return 0;
  end if;
  select * into v_last from inventory.audit_chain c order by c.seq desc limit 1;
  v_seq := coalesce(v_last.seq, 0);
  v_prev := v_last.hash;
  for v_entry in
    select a.* from inventory.audit_log a
     where a.transaction_id < v_horizon
       and (v_last.seq is null or (a.transaction_id, a.audit_id) > (v_last.transaction_id, v_last.audit_id))
     order by a.transaction_id, a.audit_id
     limit seal_audit_log.batch_size
  loop
    v_seq := v_seq + 1;
    v_hash := pg_catalog.sha256(coalesce(v_prev, ''::bytea) || inventory.audit_row_bytes(v_entry));
    insert into inventory.audit_chain (seq, audit_id, transaction_id, prev_hash, hash)
    values (v_seq, v_entry.audit_id, v_entry.transaction_id, v_prev, v_hash);
    v_prev := v_hash;
    v_count := v_count + 1;
  end loop;
  return v_count;
end
$$;
comment on function inventory.seal_audit_log(integer) is 'Implements inventory_api.seal_audit_log.';

create type inventory_api.chain_break as (seq bigint, audit_id bigint, problem text);
comment on type inventory_api.chain_break is 'The first broken link of the audit chain.';

create function inventory.audit_chain_breaks() returns setof inventory_api.chain_break
language sql stable
set search_path = ''
as $$
  select * from (
    select c.seq, c.audit_id,
           case
             when c.seq <> pg_catalog.row_number() over w then 'sequence gap before this link'
             when a.audit_id is null then 'audit row deleted'
             when c.prev_hash is distinct from pg_catalog.lag(c.hash) over w then 'prev_hash does not match the previous link'
             when c.hash <> pg_catalog.sha256(coalesce(c.prev_hash, ''::bytea) || inventory.audit_row_bytes(a))
               then 'audit row changed after sealing'
           end as problem
      from inventory.audit_chain c
      left join inventory.audit_log a on a.audit_id = c.audit_id
    window w as (order by c.seq)
  ) links
   where links.problem is not null
   order by links.seq
   limit 1
$$;
comment on function inventory.audit_chain_breaks() is 'The first broken link of the audit chain, if any (internal).';

create function inventory.verify_audit_chain() returns setof inventory_api.chain_break
language plpgsql stable security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('admin');
  return query select * from inventory.audit_chain_breaks();
end
$$;
comment on function inventory.verify_audit_chain() is 'Implements inventory_api.verify_audit_chain.';

-- 40_api_types.sql
-- Result types of the API functions. Public functions return public types, never private row types.

create type inventory_api.item as (
  sku text, name text, unit_of_measure text, unit_cost numeric, status text, track_lots boolean,
  created_at timestamptz, updated_at timestamptz);
comment on type inventory_api.item is 'An item of the catalogue.';

create type inventory_api.location as (code text, name text, created_at timestamptz);
comment on type inventory_api.location is 'A stock location.';

create type inventory_api.stock_level as (
  sku text, location text, on_hand numeric, reserved numeric, available numeric, version bigint,
  updated_at timestamptz);
comment on type inventory_api.stock_level is 'Quantities of one item at one location after a movement.';

create type inventory_api.reservation as (
  reservation_id bigint, order_ref text, sku text, location text, quantity numeric,
  quantity_fulfilled numeric, quantity_open numeric, status text, expires_at timestamptz,
  created_by text, created_at timestamptz);
comment on type inventory_api.reservation is 'A hold of stock for an order.';

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

-- Builds the public view of holds from their rows (used after set-based changes).
create function inventory.reservation_changes(reservation_ids bigint[], movement_types text[], quantities numeric[])
returns setof inventory_api.reservation_change
language sql stable
set search_path = ''
as $$
  select r.reservation_id, r.order_ref, i.sku, l.code, c.movement_type, c.quantity, r.quantity_fulfilled,
         case when r.status = 'ACTIVE' then r.quantity - r.quantity_fulfilled else 0 end, r.status
    from rows from (pg_catalog.unnest(reservation_changes.reservation_ids),
                    pg_catalog.unnest(reservation_changes.movement_types),
                    pg_catalog.unnest(reservation_changes.quantities)) as c (reservation_id, movement_type, quantity)
    join inventory.reservations r on r.reservation_id = c.reservation_id
    join inventory.items i on i.item_id = r.item_id
    join inventory.locations l on l.location_id = r.location_id
   order by r.reservation_id
$$;
comment on function inventory.reservation_changes(bigint[], text[], numeric[]) is 'reservation_change rows for holds changed by the current call.';

-- 41_catalog_functions.sql
-- Catalogue: items and locations. These are idempotent by their natural key: creating an object that
-- exists with the same attributes returns it; with other attributes it is ALREADY_EXISTS.

create function inventory.item_result(item_id bigint) returns inventory_api.item
language sql stable
set search_path = ''
as $$
  select row(i.sku, i.name, i.unit_of_measure, i.unit_cost, i.status, i.track_lots, i.created_at,
             i.updated_at)::inventory_api.item
    from inventory.items i where i.item_id = item_result.item_id
$$;
comment on function inventory.item_result(bigint) is 'Public view of one item.';

create function inventory.create_item(sku text, name text, unit_of_measure text, unit_cost numeric,
                                      track_lots boolean)
returns inventory_api.item
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_existing inventory.items;
  v_item_id bigint;
begin
  perform inventory.authorize('admin');
  perform inventory.check_text(create_item.sku, 'sku', 64);
  if create_item.sku !~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'sku must start with a letter or digit and use only letters, digits and . _ : / # + -',
      pg_catalog.jsonb_build_object('argument', 'sku', 'problem', 'malformed'));
  end if;
  perform inventory.check_text(create_item.name, 'name', 200);
  if create_item.unit_of_measure is null or create_item.unit_of_measure !~ '^[a-z][a-z0-9_]{0,19}$' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'unit_of_measure must be 1-20 lower-case letters, digits or _, starting with a letter',
      pg_catalog.jsonb_build_object('argument', 'unit_of_measure', 'problem', 'malformed'));
  end if;
  perform inventory.check_unit_cost(create_item.unit_cost);
  if create_item.track_lots is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'track_lots is required',
      pg_catalog.jsonb_build_object('argument', 'track_lots', 'problem', 'missing'));
  end if;

  insert into inventory.items (sku, name, unit_of_measure, unit_cost, track_lots, created_by)
  values (create_item.sku, create_item.name, create_item.unit_of_measure, create_item.unit_cost,
          create_item.track_lots, inventory.current_actor())
  on conflict on constraint items_sku_key do nothing
  returning item_id into v_item_id;
  if v_item_id is null then
    select * into v_existing from inventory.items i where i.sku = create_item.sku;
    if v_existing.deleted_at is not null
       or v_existing.name <> create_item.name
       or v_existing.unit_of_measure <> create_item.unit_of_measure
       or v_existing.unit_cost is distinct from create_item.unit_cost
       or v_existing.track_lots <> create_item.track_lots then
      perform inventory.raise_error('ALREADY_EXISTS',
        pg_catalog.format('an item with SKU %L already exists with other attributes', create_item.sku),
        pg_catalog.jsonb_build_object('sku', create_item.sku));
    end if;
    v_item_id := v_existing.item_id;
  end if;
  return inventory.item_result(v_item_id);
end
$$;
comment on function inventory.create_item(text, text, text, numeric, boolean) is 'Implements inventory_api.create_item.';

create function inventory.set_item_status(sku text, status text)
returns inventory_api.item
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
begin
  perform inventory.authorize('admin');
  if set_item_status.status is null or set_item_status.status not in ('active', 'on_hold', 'discontinued') then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'status must be active, on_hold or discontinued',
      pg_catalog.jsonb_build_object('argument', 'status', 'problem', 'not one of active, on_hold, discontinued'));
  end if;
  v_item := inventory.item_for_sku(set_item_status.sku);
  update inventory.items i set status = set_item_status.status, updated_at = pg_catalog.now()
   where i.item_id = v_item.item_id and i.status <> set_item_status.status;
  return inventory.item_result(v_item.item_id);
end
$$;
comment on function inventory.set_item_status(text, text) is 'Implements inventory_api.set_item_status.';

create function inventory.create_location(code text, name text)
returns inventory_api.location
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_location inventory.locations;
begin
  perform inventory.authorize('admin');
  perform inventory.check_text(create_location.code, 'code', 64);
  if create_location.code !~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'code must start with a letter or digit and use only letters, digits and . _ : / # + -',
      pg_catalog.jsonb_build_object('argument', 'code', 'problem', 'malformed'));
  end if;
  perform inventory.check_text(create_location.name, 'name', 200);
  insert into inventory.locations (code, name, created_by)
  values (create_location.code, create_location.name, inventory.current_actor())
  on conflict on constraint locations_code_key do nothing
  returning * into v_location;
  if v_location.location_id is null then
    select * into v_location from inventory.locations l where l.code = create_location.code;
    if v_location.name <> create_location.name then
      perform inventory.raise_error('ALREADY_EXISTS',
        pg_catalog.format('a location with code %L already exists with another name', create_location.code),
        pg_catalog.jsonb_build_object('location', create_location.code));
    end if;
  end if;
  return row(v_location.code, v_location.name, v_location.created_at)::inventory_api.location;
end
$$;
comment on function inventory.create_location(text, text) is 'Implements inventory_api.create_location.';

-- 42_receive.sql
-- Receiving stock.

-- Adds to on_hand of one level, creating the level (empty) on first use; the ledger trigger records
-- the movement described by `movement`.
create function inventory.add_on_hand(item_id bigint, location_id bigint, quantity numeric, movement jsonb)
returns inventory.stock_levels
language plpgsql volatile
set search_path = ''
as $$
declare
  v_level inventory.stock_levels;
begin
  -- on_hand is numeric(19, 4): refuse, with a catalogued error, a receipt that would not fit.
  if exists (select from inventory.stock_levels s
              where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id
                and s.on_hand + add_on_hand.quantity >= 1000000000000000) then
    perform inventory.raise_error('INVALID_QUANTITY',
      'on hand would exceed the largest quantity a stock level holds (1e15)',
      pg_catalog.jsonb_build_object('argument', 'quantity', 'value', add_on_hand.quantity::text,
                                    'problem', 'on_hand would overflow'));
  end if;
  update inventory.stock_levels s
     set on_hand = s.on_hand + add_on_hand.quantity, pending_movement = add_on_hand.movement
   where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id
  returning * into v_level;
  if not found then
    insert into inventory.stock_levels (item_id, location_id)
    values (add_on_hand.item_id, add_on_hand.location_id)
    on conflict do nothing;
    update inventory.stock_levels s
       set on_hand = s.on_hand + add_on_hand.quantity, pending_movement = add_on_hand.movement
     where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id
    returning * into v_level;
  end if;
  return v_level;
end
$$;
comment on function inventory.add_on_hand(bigint, bigint, numeric, jsonb) is 'Adds units on hand at one level (created empty on first use), recording the described movement.';

create function inventory.receive_stock(sku text, quantity numeric, location text, reference text,
                                        unit_cost numeric, idempotency_key text)
returns inventory_api.stock_level
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
  v_result inventory_api.stock_level;
  v_replay jsonb;
begin
  v_item := inventory.item_for_sku(receive_stock.sku);
  perform inventory.check_quantity(receive_stock.quantity);
  v_location_id := inventory.location_for_code(receive_stock.location);
  perform inventory.authorize('operator', v_location_id);
  perform inventory.check_text(receive_stock.reference, 'reference', 200, required => false);
  perform inventory.check_unit_cost(receive_stock.unit_cost);
  if receive_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(receive_stock.idempotency_key, 'receive_stock',
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'quantity', receive_stock.quantity,
        'location', receive_stock.location, 'reference', receive_stock.reference,
        'unit_cost', receive_stock.unit_cost));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_level, v_replay);
    end if;
  end if;

  if v_item.status = 'discontinued' then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE',
      pg_catalog.format('item %s is discontinued and cannot be received', receive_stock.sku),
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'status', v_item.status));
  end if;

  v_level := inventory.add_on_hand(v_item.item_id, v_location_id, receive_stock.quantity,
    pg_catalog.jsonb_build_object('type', 'RECEIVE', 'reason', 'receipt',
      'reference', receive_stock.reference, 'idempotency_key', receive_stock.idempotency_key,
      'metadata', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('unit_cost', receive_stock.unit_cost))));

  if receive_stock.unit_cost is not null then
    -- Moving-average cost over all units on hand, this receipt included.
    update inventory.items i
       set unit_cost = case
             when i.unit_cost is null or t.total <= receive_stock.quantity then receive_stock.unit_cost
             else pg_catalog.round((i.unit_cost * (t.total - receive_stock.quantity)
                                    + receive_stock.unit_cost * receive_stock.quantity) / t.total, 4)
           end,
           updated_at = pg_catalog.now()
      from (select pg_catalog.sum(s.on_hand) as total from inventory.stock_levels s
             where s.item_id = v_item.item_id) t
     where i.item_id = v_item.item_id;
  end if;

  v_result := row(receive_stock.sku, receive_stock.location, v_level.on_hand, v_level.reserved,
                  v_level.available, v_level.version, v_level.updated_at)::inventory_api.stock_level;
  if receive_stock.idempotency_key is not null then
    perform inventory.complete_idempotency_key(receive_stock.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;
comment on function inventory.receive_stock(text, numeric, text, text, numeric, text) is 'Implements inventory_api.receive_stock.';

-- 43_holds.sql
-- Resolving holds: shipping, releasing and expiring them, shared by fulfil, cancel and the sweeper.
--
-- Lock order, everywhere: holds first (one statement), then stock levels by (item_id, location_id).
-- Reservations of new holds need no lock. Following this order, no two pyinv calls can deadlock.

create type inventory.hold_move as (
  reservation_id bigint, item_id bigint, location_id bigint, movement_type text, quantity numeric);
comment on type inventory.hold_move is 'One change to one hold: SHIP, RELEASE or EXPIRE of quantity units.';

-- When a hold made now with `expires_in` lapses (the configured default when null).
create function inventory.hold_expiry(expires_in interval) returns timestamptz
language plpgsql stable
set search_path = ''
as $$
begin
  if hold_expiry.expires_in is null then
    return pg_catalog.now() + (select s.default_reservation_ttl from inventory.settings s);
  end if;
  if hold_expiry.expires_in <= interval '0' or hold_expiry.expires_in > interval '366 days' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'expires_in must be greater than 0 and at most 366 days',
      pg_catalog.jsonb_build_object('argument', 'expires_in', 'problem', 'out of range',
                                    'value', hold_expiry.expires_in::text));
  end if;
  return pg_catalog.now() + hold_expiry.expires_in;
end
$$;
comment on function inventory.hold_expiry(interval) is 'Expiry time of a hold made now; the configured default TTL when expires_in is null.';

-- Applies hold moves set-wise: updates the holds, then every affected stock level once per
-- movement type, locking the levels in the global order first. The ledger gets one row per level
-- and type, listing the reservations it covers.
create function inventory.apply_hold_moves(moves inventory.hold_move[], reference text, reason text,
                                           idempotency_key text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_type text;
begin
  perform from inventory.stock_levels s
    join (select distinct m.item_id, m.location_id from pg_catalog.unnest(apply_hold_moves.moves) m) l
      on s.item_id = l.item_id and s.location_id = l.location_id
   order by s.item_id, s.location_id
     for update of s;

  update inventory.reservations r
     set quantity_fulfilled = r.quantity_fulfilled + case when m.movement_type = 'SHIP' then m.quantity else 0 end,
         status = case
           when m.movement_type = 'RELEASE' then 'CANCELLED'
           when m.movement_type = 'EXPIRE' then 'EXPIRED'
           when r.quantity_fulfilled + m.quantity = r.quantity then 'FULFILLED'
           else 'ACTIVE' end,
         closed_at = case
           when m.movement_type = 'SHIP' and r.quantity_fulfilled + m.quantity < r.quantity then null
           else pg_catalog.now() end
    from pg_catalog.unnest(apply_hold_moves.moves) m
   where r.reservation_id = m.reservation_id and m.quantity > 0;

  -- One statement per movement type: a level may get both a SHIP and a RELEASE in one call, and
  -- a row can be updated only once per statement. Each becomes its own ledger movement.
  foreach v_type in array array['SHIP', 'RELEASE', 'EXPIRE'] loop
    update inventory.stock_levels s
       set on_hand = s.on_hand - case when v_type = 'SHIP' then g.quantity else 0 end,
           reserved = s.reserved - g.quantity,
           pending_movement = pg_catalog.jsonb_build_object(
             'type', v_type,
             'reason', coalesce(apply_hold_moves.reason, case v_type
                                  when 'SHIP' then 'order shipped'
                                  when 'RELEASE' then 'reservation cancelled'
                                  else 'reservation expired' end),
             'reference', apply_hold_moves.reference,
             'idempotency_key', apply_hold_moves.idempotency_key,
             'reservation_id', case when pg_catalog.cardinality(g.reservation_ids) = 1 then g.reservation_ids[1] end,
             'metadata', pg_catalog.jsonb_build_object('reservation_ids', pg_catalog.to_jsonb(g.reservation_ids)))
      from (select m.item_id, m.location_id, pg_catalog.sum(m.quantity) as quantity,
                   pg_catalog.array_agg(m.reservation_id order by m.reservation_id) as reservation_ids
              from pg_catalog.unnest(apply_hold_moves.moves) m
             where m.quantity > 0 and m.movement_type = v_type
             group by m.item_id, m.location_id) g
     where s.item_id = g.item_id and s.location_id = g.location_id;
  end loop;
end
$$;
comment on function inventory.apply_hold_moves(inventory.hold_move[], text, text, text) is 'Ships, releases or expires holds set-wise and records one ledger movement per level and type.';

-- Locks the active holds of an order (optionally of one item) in id order, checks that the caller
-- may act at their locations, and describes them as moves of their whole open quantity: EXPIRE for
-- overdue holds, movement_type null for live ones. Raises NO_RESERVATION when there are none.
create function inventory.lock_order_holds(order_ref text, item_id bigint, sku text)
returns inventory.hold_move[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_moves inventory.hold_move[];
begin
  select pg_catalog.array_agg(row(h.reservation_id, h.item_id, h.location_id,
                                  case when h.expires_at <= pg_catalog.now() then 'EXPIRE' end,
                                  h.quantity - h.quantity_fulfilled)::inventory.hold_move
                              order by h.reservation_id)
    into v_moves
    from (select r.reservation_id, r.item_id, r.location_id, r.expires_at, r.quantity, r.quantity_fulfilled
            from inventory.reservations r
           where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
             and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id)
           order by r.reservation_id
             for update) h;
  perform inventory.authorize_locations('operator', array(select m.location_id from pg_catalog.unnest(v_moves) m));
  if v_moves is null then
    perform inventory.raise_error('NO_RESERVATION',
      pg_catalog.format('order %s has no active reservation%s', lock_order_holds.order_ref,
                        coalesce(' for ' || lock_order_holds.sku, '')),
      pg_catalog.jsonb_build_object('order_ref', lock_order_holds.order_ref, 'sku', lock_order_holds.sku));
  end if;
  return v_moves;
end
$$;
comment on function inventory.lock_order_holds(text, bigint, text) is 'Locks an order''s active holds, authorises their locations and returns them as moves (EXPIRE for overdue ones); raises NO_RESERVATION when none.';

-- Expires the given overdue holds (already locked by the caller). Returns how many.
create function inventory.expire_holds(reservation_ids bigint[]) returns integer
language plpgsql volatile
set search_path = ''
as $$
declare
  v_moves inventory.hold_move[];
begin
  select pg_catalog.array_agg(row(r.reservation_id, r.item_id, r.location_id, 'EXPIRE',
                                  r.quantity - r.quantity_fulfilled)::inventory.hold_move)
    into v_moves
    from inventory.reservations r
   where r.reservation_id = any (expire_holds.reservation_ids) and r.status = 'ACTIVE';
  if v_moves is null then
    return 0;
  end if;
  perform inventory.apply_hold_moves(v_moves, null, null, null);
  return pg_catalog.cardinality(v_moves);
end
$$;
comment on function inventory.expire_holds(bigint[]) is 'Expires locked overdue holds, returning their units to available stock.';

-- Lazy expiry for one level: called when a hold does not fit, so overdue holds never cause
-- INSUFFICIENT_STOCK even before the sweeper has run.
create function inventory.expire_overdue_at_level(item_id bigint, location_id bigint) returns integer
language plpgsql volatile
set search_path = ''
as $$
begin
  return (select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id))
    from (select r.reservation_id from inventory.reservations r
           where r.item_id = expire_overdue_at_level.item_id
             and r.location_id = expire_overdue_at_level.location_id
             and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
             for update skip locked) d);
end
$$;
comment on function inventory.expire_overdue_at_level(bigint, bigint) is 'Expires the overdue holds of one stock level; returns how many.';

create function inventory.expire_reservations(batch_size integer) returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('scheduler');
  if expire_reservations.batch_size is null or expire_reservations.batch_size not between 1 and 100000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'batch_size must be between 1 and 100000',
      pg_catalog.jsonb_build_object('argument', 'batch_size', 'problem', 'out of range'));
  end if;
  return (
    select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id))
      from (select r.reservation_id from inventory.reservations r
             where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
             order by r.expires_at
             limit expire_reservations.batch_size
               for update skip locked) d);
end
$$;
comment on function inventory.expire_reservations(integer) is 'Implements inventory_api.expire_reservations.';

-- 44_reserve.sql
-- Reserving stock: single lines and all-or-nothing orders.
--
-- Everything that does not need the stock level's row lock (validation, lookups, the idempotency key,
-- the hold row itself) happens before the one conditional UPDATE that takes it, so a hot SKU's row
-- is locked only for that UPDATE, its ledger row and the commit.

-- Available units at a level, counting overdue holds as released (they are, lazily).
create function inventory.effective_available(item_id bigint, location_id bigint) returns numeric
language plpgsql stable
set search_path = ''
as $$
begin
  return (
    select s.available + coalesce((
             select pg_catalog.sum(r.quantity - r.quantity_fulfilled) from inventory.reservations r
              where r.item_id = s.item_id and r.location_id = s.location_id
                and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()), 0)
      from inventory.stock_levels s
     where s.item_id = effective_available.item_id and s.location_id = effective_available.location_id);
end
$$;
comment on function inventory.effective_available(bigint, bigint) is 'on_hand - reserved + units of overdue holds not yet swept; null when the level does not exist.';

-- Describes why a line does not fit, for the DETAIL of INSUFFICIENT_STOCK.
create function inventory.shortfall(item_id bigint, location_id bigint, sku text, location text,
                                    requested numeric)
returns jsonb
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
           'sku', shortfall.sku, 'location', shortfall.location, 'requested', shortfall.requested,
           'available', coalesce(s.available, 0), 'on_hand', coalesce(s.on_hand, 0),
           'reserved', coalesce(s.reserved, 0))
    from (select) dummy
    left join inventory.stock_levels s
      on s.item_id = shortfall.item_id and s.location_id = shortfall.location_id
$$;
comment on function inventory.shortfall(bigint, bigint, text, text, numeric) is 'JSON specifics of a line that does not fit: requested, available, on hand, reserved.';

-- Takes `quantity` more units of one level into holds, if they fit. Overdue holds at the level are
-- expired first when they are what stands in the way. Returns whether the units were held.
create function inventory.hold_units(item_id bigint, location_id bigint, quantity numeric, movement jsonb)
returns boolean
language plpgsql volatile
set search_path = ''
as $$
begin
  update inventory.stock_levels s
     set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
   where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
     and s.on_hand - s.reserved >= hold_units.quantity;
  if found then
    return true;
  end if;
  if inventory.expire_overdue_at_level(hold_units.item_id, hold_units.location_id) = 0 then
    return false;
  end if;
  update inventory.stock_levels s
     set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
   where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
     and s.on_hand - s.reserved >= hold_units.quantity;
  return found;
end
$$;
comment on function inventory.hold_units(bigint, bigint, numeric, jsonb) is 'Conditionally adds units to reserved at one level (expiring overdue holds there if needed); true when they fit.';

create function inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text,
                                        expires_in interval, idempotency_key text)
returns inventory_api.reservation
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_found record;
  v_reservation_id bigint;
  v_result inventory_api.reservation;
  v_replay jsonb;
begin
  -- The hottest path in pyinv: one query resolves the item, the location, the level's current
  -- availability and the default hold lifetime; the helpers run only to raise their errors.
  select i.item_id, i.status, l.location_id, s.available, t.default_reservation_ttl
    into v_found
    from inventory.settings t
    left join inventory.items i on i.sku = reserve_stock.sku and i.deleted_at is null
    left join inventory.locations l on l.code = reserve_stock.location
    left join inventory.stock_levels s on s.item_id = i.item_id and s.location_id = l.location_id;
  if v_found.item_id is null then
    perform inventory.item_for_sku(reserve_stock.sku);
  end if;
  perform inventory.check_quantity(reserve_stock.quantity);
  perform inventory.check_text(reserve_stock.order_ref, 'order_ref', 200);
  if v_found.location_id is null then
    perform inventory.location_for_code(reserve_stock.location);
  end if;
  perform inventory.authorize('operator', v_found.location_id);
  -- A retry with the key replays the original result even if stock or status changed since.
  v_reservation_id := pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass);
  v_result := row(v_reservation_id, reserve_stock.order_ref, reserve_stock.sku, reserve_stock.location,
                  reserve_stock.quantity, 0, reserve_stock.quantity, 'ACTIVE',
                  case when reserve_stock.expires_in is null then pg_catalog.now() + v_found.default_reservation_ttl
                       else inventory.hold_expiry(reserve_stock.expires_in) end,
                  inventory.current_actor(), pg_catalog.now())::inventory_api.reservation;
  if reserve_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_stock.idempotency_key, 'reserve_stock',
      pg_catalog.jsonb_build_object('sku', reserve_stock.sku, 'quantity', reserve_stock.quantity,
        'order_ref', reserve_stock.order_ref, 'location', reserve_stock.location,
        'expires_in', reserve_stock.expires_in::text),
      pg_catalog.to_jsonb(v_result));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.reservation, v_replay);
    end if;
  end if;

  if v_found.status <> 'active' then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE',
      pg_catalog.format('item %s is %s and cannot be reserved', reserve_stock.sku, v_found.status),
      pg_catalog.jsonb_build_object('sku', reserve_stock.sku, 'status', v_found.status));
  end if;
  -- Sold out is answered from this plain read, without writing or locking anything (unless overdue
  -- holds, which no longer count, are what stands in the way).
  if coalesce(v_found.available, 0) < reserve_stock.quantity
     and coalesce(inventory.effective_available(v_found.item_id, v_found.location_id), 0) < reserve_stock.quantity then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s at %s', reserve_stock.sku, reserve_stock.location),
      inventory.shortfall(v_found.item_id, v_found.location_id, reserve_stock.sku, reserve_stock.location,
                          reserve_stock.quantity));
  end if;

  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, expires_at,
                                      created_by, created_at)
  values (v_reservation_id, reserve_stock.order_ref, v_found.item_id, v_found.location_id, reserve_stock.quantity,
          v_result.expires_at, v_result.created_by, v_result.created_at);

  -- The one statement that locks the level; only the ledger row and the commit follow it.
  update inventory.stock_levels s
     set reserved = s.reserved + reserve_stock.quantity,
         pending_movement = pg_catalog.jsonb_build_object('type', 'RESERVE', 'reason', 'order hold',
           'reference', reserve_stock.order_ref, 'reservation_id', v_reservation_id,
           'idempotency_key', reserve_stock.idempotency_key)
   where s.item_id = v_found.item_id and s.location_id = v_found.location_id
     and s.on_hand - s.reserved >= reserve_stock.quantity;
  if not found and not inventory.hold_units(v_found.item_id, v_found.location_id, reserve_stock.quantity,
           pg_catalog.jsonb_build_object('type', 'RESERVE', 'reason', 'order hold',
             'reference', reserve_stock.order_ref, 'reservation_id', v_reservation_id,
             'idempotency_key', reserve_stock.idempotency_key)) then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s at %s', reserve_stock.sku, reserve_stock.location),
      inventory.shortfall(v_found.item_id, v_found.location_id, reserve_stock.sku, reserve_stock.location,
                          reserve_stock.quantity));
  end if;
  return v_result;
end
$$;
comment on function inventory.reserve_stock(text, numeric, text, text, interval, text) is 'Implements inventory_api.reserve_stock.';

create type inventory.order_line as (
  item_id bigint, location_id bigint, sku text, location text, quantity numeric, reservation_id bigint);
comment on type inventory.order_line is 'One merged line of reserve_order.';

-- Parses and checks the lines of reserve_order; returns them merged per (item, location), in lock
-- order, with a reservation id each. Raises on the first malformed line, and lists every unknown SKU.
create function inventory.parse_order_lines(lines jsonb) returns inventory.order_line[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_bad record;
  v_lines inventory.order_line[];
  v_missing jsonb;
begin
  if parse_order_lines.lines is null or pg_catalog.jsonb_typeof(parse_order_lines.lines) <> 'array'
     or pg_catalog.jsonb_array_length(parse_order_lines.lines) not between 1 and 1000 then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'lines must be a JSON array of 1 to 1000 objects {"sku", "quantity", "location"?}',
      pg_catalog.jsonb_build_object('argument', 'lines', 'problem', 'not an array of 1 to 1000 lines'));
  end if;
  select e.n, e.line into v_bad
    from pg_catalog.jsonb_array_elements(parse_order_lines.lines) with ordinality as e (line, n)
   where case when pg_catalog.jsonb_typeof(e.line) <> 'object' then true
              else pg_catalog.jsonb_typeof(e.line -> 'sku') is distinct from 'string'
                or pg_catalog.jsonb_typeof(e.line -> 'location') not in ('string', 'null')
                or exists (select from pg_catalog.jsonb_object_keys(e.line) k
                            where k not in ('sku', 'quantity', 'location'))
         end
   order by e.n limit 1;
  if found then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('lines[%s] must be an object with a string "sku", a "quantity" and an optional string "location"',
                        v_bad.n - 1),
      pg_catalog.jsonb_build_object('argument', pg_catalog.format('lines[%s]', v_bad.n - 1), 'problem', 'malformed'));
  end if;
  select e.n, e.line into v_bad
    from pg_catalog.jsonb_array_elements(parse_order_lines.lines) with ordinality as e (line, n)
   where case when pg_catalog.jsonb_typeof(e.line -> 'quantity') is distinct from 'number' then true
              else not inventory.quantity_is_valid((e.line ->> 'quantity')::numeric)
         end
   order by e.n limit 1;
  if found then
    perform inventory.raise_error('INVALID_QUANTITY',
      pg_catalog.format('lines[%s].quantity must be a number greater than 0 and at most 1e12 with at most 4 decimals',
                        v_bad.n - 1),
      pg_catalog.jsonb_build_object('argument', pg_catalog.format('lines[%s].quantity', v_bad.n - 1),
                                    'value', v_bad.line -> 'quantity'));
  end if;

  with merged as (
    select e.line ->> 'sku' as sku, coalesce(e.line ->> 'location', 'main') as location,
           pg_catalog.sum((e.line ->> 'quantity')::numeric) as quantity
      from pg_catalog.jsonb_array_elements(parse_order_lines.lines) as e (line)
     group by 1, 2)
  select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('sku', m.sku, 'location', m.location)
                              order by m.sku, m.location)
           filter (where i.item_id is null or l.location_id is null),
         pg_catalog.array_agg(row(i.item_id, l.location_id, m.sku, m.location, m.quantity,
                                  pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass)
                                 )::inventory.order_line
                              order by i.item_id, l.location_id)
           filter (where i.item_id is not null and l.location_id is not null)
    into v_missing, v_lines
    from merged m
    left join inventory.items i on i.sku = m.sku and i.deleted_at is null
    left join inventory.locations l on l.code = m.location;
  if v_missing is not null then
    if exists (select from pg_catalog.jsonb_array_elements(v_missing) x
                where not exists (select from inventory.items i where i.sku = x ->> 'sku' and i.deleted_at is null)) then
      perform inventory.raise_error('PRODUCT_NOT_FOUND', 'order lines name unknown SKUs',
        pg_catalog.jsonb_build_object('unknown', v_missing));
    end if;
    perform inventory.raise_error('LOCATION_NOT_FOUND', 'order lines name unknown locations',
      pg_catalog.jsonb_build_object('unknown', v_missing));
  end if;
  if exists (select from pg_catalog.unnest(v_lines) l where not inventory.quantity_is_valid(l.quantity)) then
    perform inventory.raise_error('INVALID_QUANTITY', 'merged lines for one SKU and location exceed 1e12',
      pg_catalog.jsonb_build_object('argument', 'lines', 'problem', 'merged quantity too large'));
  end if;
  return v_lines;
end
$$;
comment on function inventory.parse_order_lines(jsonb) is 'Validates reserve_order lines, merges duplicates per (SKU, location) and returns them in lock order.';

create function inventory.reserve_order(order_ref text, lines jsonb, expires_in interval, idempotency_key text)
returns setof inventory_api.reservation
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_lines inventory.order_line[];
  v_line inventory.order_line;
  v_unavailable jsonb;
  v_short jsonb := '[]'::jsonb;
  v_expires_at timestamptz;
  v_actor text := inventory.current_actor();
  v_result inventory_api.reservation[];
  v_replay jsonb;
begin
  perform inventory.check_text(reserve_order.order_ref, 'order_ref', 200);
  v_lines := inventory.parse_order_lines(reserve_order.lines);
  perform inventory.authorize_locations('operator', array(select l.location_id from pg_catalog.unnest(v_lines) l));
  v_expires_at := inventory.hold_expiry(reserve_order.expires_in);
  select pg_catalog.array_agg(row(l.reservation_id, reserve_order.order_ref, l.sku, l.location, l.quantity, 0,
                                  l.quantity, 'ACTIVE', v_expires_at, v_actor,
                                  pg_catalog.now())::inventory_api.reservation order by l.reservation_id)
    into v_result
    from pg_catalog.unnest(v_lines) l;
  if reserve_order.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_order.idempotency_key, 'reserve_order',
      pg_catalog.jsonb_build_object('order_ref', reserve_order.order_ref, 'lines', reserve_order.lines,
                                    'expires_in', reserve_order.expires_in::text),
      pg_catalog.to_jsonb(v_result));
    if v_replay is not null then
      return query select * from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation, v_replay);
      return;
    end if;
  end if;

  select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('sku', i.sku, 'status', i.status) order by i.sku)
    into v_unavailable
    from inventory.items i
   where i.item_id in (select l.item_id from pg_catalog.unnest(v_lines) l) and i.status <> 'active';
  if v_unavailable is not null then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE', 'order lines name items that cannot be reserved',
      pg_catalog.jsonb_build_object('unavailable', v_unavailable));
  end if;

  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, expires_at,
                                      created_by, created_at)
  select l.reservation_id, reserve_order.order_ref, l.item_id, l.location_id, l.quantity, v_expires_at,
         v_actor, pg_catalog.now()
    from pg_catalog.unnest(v_lines) l;

  -- v_lines is in (item_id, location_id) order, so concurrent orders lock levels in one global
  -- order and cannot deadlock. Every line is tried so that the error lists every short line.
  foreach v_line in array v_lines loop
    if not inventory.hold_units(v_line.item_id, v_line.location_id, v_line.quantity,
             pg_catalog.jsonb_build_object('type', 'RESERVE', 'reason', 'order hold',
               'reference', reserve_order.order_ref, 'reservation_id', v_line.reservation_id,
               'idempotency_key', reserve_order.idempotency_key)) then
      v_short := v_short || inventory.shortfall(v_line.item_id, v_line.location_id, v_line.sku,
                                                v_line.location, v_line.quantity);
    end if;
  end loop;
  if pg_catalog.jsonb_array_length(v_short) > 0 then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s of %s lines of order %s',
                        pg_catalog.jsonb_array_length(v_short), pg_catalog.cardinality(v_lines),
                        reserve_order.order_ref),
      pg_catalog.jsonb_build_object('order_ref', reserve_order.order_ref, 'short_lines', v_short));
  end if;
  return query select * from pg_catalog.unnest(v_result);
end
$$;
comment on function inventory.reserve_order(text, jsonb, interval, text) is 'Implements inventory_api.reserve_order.';

-- 45_fulfill_cancel.sql
-- Shipping and cancelling the holds of an order.

create function inventory.replay_reservation_changes(response jsonb)
returns setof inventory_api.reservation_change
language sql stable
set search_path = ''
as $$
  select * from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation_change,
                                                    replay_reservation_changes.response)
$$;
comment on function inventory.replay_reservation_changes(jsonb) is 'Rebuilds the stored result of a fulfil or cancel call for an idempotent replay.';

-- Finishes a fulfil or cancel call: applies the moves, stores the response under the key, returns it.
create function inventory.finish_hold_moves(moves inventory.hold_move[], order_ref text, idempotency_key text)
returns setof inventory_api.reservation_change
language plpgsql volatile
set search_path = ''
as $$
declare
  v_changes inventory_api.reservation_change[];
begin
  perform inventory.apply_hold_moves(finish_hold_moves.moves, finish_hold_moves.order_ref, null,
                                     finish_hold_moves.idempotency_key);
  select pg_catalog.array_agg(c order by c.reservation_id) into v_changes
    from inventory.reservation_changes(
           array(select m.reservation_id from pg_catalog.unnest(finish_hold_moves.moves) m where m.quantity > 0),
           array(select m.movement_type from pg_catalog.unnest(finish_hold_moves.moves) m where m.quantity > 0),
           array(select m.quantity from pg_catalog.unnest(finish_hold_moves.moves) m where m.quantity > 0)) c;
  if finish_hold_moves.idempotency_key is not null then
    perform inventory.complete_idempotency_key(finish_hold_moves.idempotency_key,
                                               coalesce(pg_catalog.to_jsonb(v_changes), '[]'::jsonb));
  end if;
  return query select * from pg_catalog.unnest(v_changes);
end
$$;
comment on function inventory.finish_hold_moves(inventory.hold_move[], text, text) is 'Applies fulfil/cancel moves, stores the idempotent response and returns the changes.';

create function inventory.fulfill_order(order_ref text, sku text, quantity numeric, idempotency_key text)
returns setof inventory_api.reservation_change
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item_id bigint;
  v_moves inventory.hold_move[];
  v_live numeric;
  v_replay jsonb;
begin
  perform inventory.check_text(fulfill_order.order_ref, 'order_ref', 200);
  if fulfill_order.quantity is not null then
    perform inventory.check_quantity(fulfill_order.quantity);
    if fulfill_order.sku is null then
      perform inventory.raise_error('INVALID_ARGUMENT', 'quantity needs a sku: say which item to ship',
        pg_catalog.jsonb_build_object('argument', 'sku', 'problem', 'required with quantity'));
    end if;
  end if;
  if fulfill_order.sku is not null then
    v_item_id := (inventory.item_for_sku(fulfill_order.sku)).item_id;
  end if;
  if fulfill_order.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(fulfill_order.idempotency_key, 'fulfill_order',
      pg_catalog.jsonb_build_object('order_ref', fulfill_order.order_ref, 'sku', fulfill_order.sku,
                                    'quantity', fulfill_order.quantity));
    if v_replay is not null then
      return query select * from inventory.replay_reservation_changes(v_replay);
      return;
    end if;
  end if;

  v_moves := inventory.lock_order_holds(fulfill_order.order_ref, v_item_id, fulfill_order.sku);
  select coalesce(pg_catalog.sum(m.quantity) filter (where m.movement_type is null), 0) into v_live
    from pg_catalog.unnest(v_moves) m;
  -- An overdue hold is never shipped: ship-all fails if any targeted hold lapsed; a partial
  -- shipment is served from live holds only.
  if exists (select from pg_catalog.unnest(v_moves) m where m.movement_type = 'EXPIRE')
     and (fulfill_order.quantity is null or fulfill_order.quantity > v_live) then
    perform inventory.raise_error('RESERVATION_EXPIRED',
      pg_catalog.format('order %s has expired holds; reserve again', fulfill_order.order_ref),
      pg_catalog.jsonb_build_object('order_ref', fulfill_order.order_ref,
        'expired_reservation_ids', (select pg_catalog.jsonb_agg(m.reservation_id) from pg_catalog.unnest(v_moves) m
                                     where m.movement_type = 'EXPIRE')));
  end if;
  if fulfill_order.quantity > v_live then
    perform inventory.raise_error('QUANTITY_MISMATCH',
      pg_catalog.format('order %s holds %s of %s, cannot ship %s', fulfill_order.order_ref, v_live,
                        fulfill_order.sku, fulfill_order.quantity),
      pg_catalog.jsonb_build_object('order_ref', fulfill_order.order_ref, 'sku', fulfill_order.sku,
                                    'requested', fulfill_order.quantity, 'held', v_live));
  end if;

  -- Ship first-in first-out across the live holds.
  select pg_catalog.array_agg(row(m.reservation_id, m.item_id, m.location_id, 'SHIP',
           case when fulfill_order.quantity is null then m.quantity
                else least(m.quantity, greatest(fulfill_order.quantity - m.before, 0)) end
         )::inventory.hold_move order by m.reservation_id)
    into v_moves
    from (select h.*, coalesce(pg_catalog.sum(h.quantity) over (order by h.reservation_id
                                 rows between unbounded preceding and 1 preceding), 0) as before
            from pg_catalog.unnest(v_moves) h where h.movement_type is null) m;
  return query select * from inventory.finish_hold_moves(v_moves, fulfill_order.order_ref,
                                                         fulfill_order.idempotency_key);
end
$$;
comment on function inventory.fulfill_order(text, text, numeric, text) is 'Implements inventory_api.fulfill_order.';

create function inventory.cancel_reservation(order_ref text, sku text, idempotency_key text)
returns setof inventory_api.reservation_change
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item_id bigint;
  v_moves inventory.hold_move[];
  v_replay jsonb;
begin
  perform inventory.check_text(cancel_reservation.order_ref, 'order_ref', 200);
  if cancel_reservation.sku is not null then
    v_item_id := (inventory.item_for_sku(cancel_reservation.sku)).item_id;
  end if;
  if cancel_reservation.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(cancel_reservation.idempotency_key, 'cancel_reservation',
      pg_catalog.jsonb_build_object('order_ref', cancel_reservation.order_ref, 'sku', cancel_reservation.sku));
    if v_replay is not null then
      return query select * from inventory.replay_reservation_changes(v_replay);
      return;
    end if;
  end if;
  v_moves := inventory.lock_order_holds(cancel_reservation.order_ref, v_item_id, cancel_reservation.sku);
  -- Live holds are released; holds that already lapsed are recorded as expired, as the sweeper would.
  select pg_catalog.array_agg(row(m.reservation_id, m.item_id, m.location_id,
                                  coalesce(m.movement_type, 'RELEASE'), m.quantity)::inventory.hold_move)
    into v_moves
    from pg_catalog.unnest(v_moves) m;
  return query select * from inventory.finish_hold_moves(v_moves, cancel_reservation.order_ref,
                                                         cancel_reservation.idempotency_key);
end
$$;
comment on function inventory.cancel_reservation(text, text, text) is 'Implements inventory_api.cancel_reservation.';

-- 46_returns.sql
-- Customer returns: never more than was shipped for the order and not yet returned.

create function inventory.process_return(order_ref text, sku text, quantity numeric, reason text,
                                         restock boolean, location text, idempotency_key text)
returns inventory_api.stock_return
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item_id bigint;
  v_location_id bigint;
  v_holds bigint;
  v_shipped numeric;
  v_returned numeric;
  v_movement_id bigint;
  v_return inventory.returns;
  v_result inventory_api.stock_return;
  v_replay jsonb;
begin
  perform inventory.check_text(process_return.order_ref, 'order_ref', 200);
  v_item_id := (inventory.item_for_sku(process_return.sku)).item_id;
  perform inventory.check_quantity(process_return.quantity);
  perform inventory.check_text(process_return.reason, 'reason', 500);
  if process_return.restock is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'restock must be true or false',
      pg_catalog.jsonb_build_object('argument', 'restock', 'problem', 'missing'));
  end if;
  v_location_id := inventory.location_for_code(process_return.location);
  perform inventory.authorize('operator', v_location_id);
  if process_return.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(process_return.idempotency_key, 'process_return',
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku,
        'quantity', process_return.quantity, 'reason', process_return.reason,
        'restock', process_return.restock, 'location', process_return.location));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_return, v_replay);
    end if;
  end if;

  -- Locking the order's holds of this item serialises concurrent returns against one shipped total.
  select pg_catalog.count(*), coalesce(pg_catalog.sum(h.quantity_fulfilled), 0) into v_holds, v_shipped
    from (select r.quantity_fulfilled from inventory.reservations r
           where r.order_ref = process_return.order_ref and r.item_id = v_item_id
             for update) h;
  if v_holds = 0 then
    perform inventory.raise_error('NO_RESERVATION',
      pg_catalog.format('order %s never held %s', process_return.order_ref, process_return.sku),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku));
  end if;
  select coalesce(pg_catalog.sum(t.quantity), 0) into v_returned
    from inventory.returns t where t.order_ref = process_return.order_ref and t.item_id = v_item_id;
  if process_return.quantity > v_shipped - v_returned then
    perform inventory.raise_error('QUANTITY_MISMATCH',
      pg_catalog.format('order %s shipped %s and returned %s of %s; cannot return %s more',
                        process_return.order_ref, v_shipped, v_returned, process_return.sku, process_return.quantity),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku,
        'requested', process_return.quantity, 'shipped', v_shipped, 'returned', v_returned));
  end if;

  if process_return.restock then
    perform inventory.add_on_hand(v_item_id, v_location_id, process_return.quantity,
      pg_catalog.jsonb_build_object('type', 'RETURN', 'reason', process_return.reason,
        'reference', process_return.order_ref, 'idempotency_key', process_return.idempotency_key));
    v_movement_id := pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
  end if;
  insert into inventory.returns (order_ref, item_id, location_id, quantity, reason, restocked, movement_id,
                                 created_by)
  values (process_return.order_ref, v_item_id, v_location_id, process_return.quantity, process_return.reason,
          process_return.restock, v_movement_id, inventory.current_actor())
  returning * into v_return;
  v_result := row(v_return.return_id, v_return.order_ref, process_return.sku, process_return.location,
                  v_return.quantity, v_return.reason, v_return.restocked, v_return.movement_id,
                  v_return.created_at)::inventory_api.stock_return;
  if process_return.idempotency_key is not null then
    perform inventory.complete_idempotency_key(process_return.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;
comment on function inventory.process_return(text, text, numeric, text, boolean, text, text) is 'Implements inventory_api.process_return.';

-- 47_readers.sql
-- Read-only checks: can this be reserved now, and do the books balance.

create function inventory.validate_stock(sku text, quantity numeric, location text)
returns inventory_api.stock_check
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_item_id bigint;
  v_status text;
  v_location_id bigint;
  v_available numeric;
begin
  select l.location_id into v_location_id from inventory.locations l where l.code = validate_stock.location;
  if v_location_id is null then
    return row(false, null, 'LOCATION_NOT_FOUND')::inventory_api.stock_check;
  end if;
  perform inventory.authorize('viewer', v_location_id);
  if not inventory.quantity_is_valid(validate_stock.quantity) then
    return row(false, null, 'INVALID_QUANTITY')::inventory_api.stock_check;
  end if;
  select i.item_id, i.status into v_item_id, v_status
    from inventory.items i where i.sku = validate_stock.sku and i.deleted_at is null;
  if v_item_id is null then
    return row(false, null, 'PRODUCT_NOT_FOUND')::inventory_api.stock_check;
  end if;
  v_available := coalesce(inventory.effective_available(v_item_id, v_location_id), 0);
  if v_status <> 'active' then
    return row(false, v_available, 'PRODUCT_UNAVAILABLE')::inventory_api.stock_check;
  end if;
  if v_available < validate_stock.quantity then
    return row(false, v_available, 'INSUFFICIENT_STOCK')::inventory_api.stock_check;
  end if;
  return row(true, v_available, null)::inventory_api.stock_check;
end
$$;
comment on function inventory.validate_stock(text, numeric, text) is 'Implements inventory_api.validate_stock.';

-- Every broken invariant, unfiltered (no authorization: internal).
create function inventory.inventory_violations()
returns setof inventory_api.invariant_violation
language sql stable
set search_path = ''
as $$
  with levels as (
    select s.item_id, s.location_id, s.on_hand, s.reserved, s.ledger_hash, i.sku, l.code as location
      from inventory.stock_levels s
      join inventory.items i on i.item_id = s.item_id
      join inventory.locations l on l.location_id = s.location_id
  ), ledger_sums as (
    select g.item_id, g.location_id, pg_catalog.sum(g.on_hand_delta) as on_hand,
           pg_catalog.sum(g.reserved_delta) as reserved
      from inventory.ledger g group by g.item_id, g.location_id
  ), holds as (
    select r.item_id, r.location_id, pg_catalog.sum(r.quantity - r.quantity_fulfilled) as reserved
      from inventory.reservations r where r.status = 'ACTIVE' group by r.item_id, r.location_id
  ), chain as (
    select g.item_id, g.location_id, g.movement_id, g.on_hand_before, g.reserved_before, g.prev_hash, g.hash,
           pg_catalog.lag(g.on_hand_after, 1, 0::numeric) over w as prev_on_hand,
           pg_catalog.lag(g.reserved_after, 1, 0::numeric) over w as prev_reserved,
           pg_catalog.lag(g.hash) over w as prev_link,
           pg_catalog.sha256(coalesce(g.prev_hash, ''::bytea) || inventory.ledger_entry_bytes(g)) as recomputed,
           pg_catalog.row_number() over (partition by g.item_id, g.location_id order by g.movement_id desc) as from_end
      from inventory.ledger g
    window w as (partition by g.item_id, g.location_id order by g.movement_id)
  ), shipped as (
    select r.order_ref, r.item_id, pg_catalog.sum(r.quantity_fulfilled) as quantity
      from inventory.reservations r group by r.order_ref, r.item_id
  ), returned as (
    select t.order_ref, t.item_id, pg_catalog.sum(t.quantity) as quantity
      from inventory.returns t group by t.order_ref, t.item_id
  )
  select 'on_hand_equals_ledger', v.sku, v.location, coalesce(g.on_hand, 0), v.on_hand,
         'on_hand differs from the sum of its ledger movements'
    from levels v left join ledger_sums g using (item_id, location_id)
   where v.on_hand <> coalesce(g.on_hand, 0)
  union all
  select 'reserved_equals_ledger', v.sku, v.location, coalesce(g.reserved, 0), v.reserved,
         'reserved differs from the sum of its ledger movements'
    from levels v left join ledger_sums g using (item_id, location_id)
   where v.reserved <> coalesce(g.reserved, 0)
  union all
  select 'ledger_has_level', i.sku, l.code, 0, g.on_hand, 'ledger movements for a stock level that does not exist'
    from ledger_sums g
    left join inventory.stock_levels s using (item_id, location_id)
    left join inventory.items i on i.item_id = g.item_id
    left join inventory.locations l on l.location_id = g.location_id
   where s.item_id is null
  union all
  select 'reserved_equals_active_holds', v.sku, v.location, coalesce(h.reserved, 0), v.reserved,
         'reserved differs from the open quantity of active holds'
    from levels v full join holds h using (item_id, location_id)
   where coalesce(v.reserved, -1) <> coalesce(h.reserved, 0)
  union all
  select 'not_negative', v.sku, v.location, 0, least(v.on_hand, v.reserved),
         'on_hand or reserved is negative'
    from levels v where v.on_hand < 0 or v.reserved < 0
  union all
  select 'not_oversold', v.sku, v.location, v.on_hand, v.reserved, 'reserved exceeds on_hand'
    from levels v where v.reserved > v.on_hand
  union all
  select 'ledger_is_continuous', i.sku, l.code, c.prev_on_hand, c.on_hand_before,
         pg_catalog.format('movement %s does not start where the previous one of its level ended', c.movement_id)
    from chain c
    join inventory.items i on i.item_id = c.item_id
    join inventory.locations l on l.location_id = c.location_id
   where c.on_hand_before <> c.prev_on_hand or c.reserved_before <> c.prev_reserved
  union all
  select 'ledger_hash_chain', i.sku, l.code, null, null,
         pg_catalog.format('movement %s: %s', c.movement_id,
           case when c.prev_hash is distinct from c.prev_link then 'prev_hash does not match the previous movement'
                else 'hash does not match its contents' end)
    from chain c
    join inventory.items i on i.item_id = c.item_id
    join inventory.locations l on l.location_id = c.location_id
   where c.prev_hash is distinct from c.prev_link or c.hash <> c.recomputed
  union all
  select 'ledger_hash_head', v.sku, v.location, null, null,
         'the level''s ledger_hash is not the hash of its latest movement'
    from levels v
    left join chain c on c.item_id = v.item_id and c.location_id = v.location_id and c.from_end = 1
   where v.ledger_hash is distinct from c.hash
  union all
  select 'returns_within_shipped', i.sku, null, s.quantity, t.quantity,
         pg_catalog.format('order %s returned more than it shipped', t.order_ref)
    from returned t
    left join shipped s using (order_ref, item_id)
    join inventory.items i on i.item_id = t.item_id
   where t.quantity > coalesce(s.quantity, 0)
$$;
comment on function inventory.inventory_violations() is 'Every broken invariant of the stock books (internal, unfiltered).';

create function inventory.verify_inventory()
returns setof inventory_api.invariant_violation
language plpgsql stable security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('viewer');
  return query select * from inventory.inventory_violations();
end
$$;
comment on function inventory.verify_inventory() is 'Implements inventory_api.verify_inventory.';

-- 48_stock_control.sql
-- Stock control: reason codes, adjustments with approval, cycle counts, transfers between
-- locations, stock policies and real-time reorder alerts.
--
-- Lock order (extends the rule of 43_holds.sql): adjustment rows first, then holds, then stock levels
-- by (item_id, location_id), then reorder alerts. Every function below follows it, so none of them
-- can deadlock with each other or with the order lifecycle.
--
-- Cycle counts racing with stock movement: a count is compared with on_hand while the level's row
-- is locked, so the difference is exact for that instant. A difference that needs approval is
-- stored as a PENDING adjustment holding the DELTA (counted - on_hand at count time) and the on_hand
-- it was compared with; approval applies that delta to whatever on_hand is then (movements in
-- between were real and are in both the shelf and the books), re-checking on_hand + delta >= reserved.
-- A newer count of the same level supersedes older pending count adjustments (status SUPERSEDED),
-- because it measures the whole discrepancy again; a difference is therefore never applied twice.

insert into inventory.error_codes (code, sqlstate, description) values
  ('SELF_APPROVAL_FORBIDDEN', 'PT409', 'An adjustment cannot be approved by the user who requested it; another admin must decide.'),
  ('INVALID_STATE', 'PT409', 'The object is not in a state that allows this (e.g. the adjustment was already decided, the alert is closed).'),
  ('ADJUSTMENT_NOT_FOUND', 'PT404', 'No stock adjustment with this id.'),
  ('ALERT_NOT_FOUND', 'PT404', 'No reorder alert with this id.');

-- -- tables -------------------------------------------------------------------------------------------

create table inventory.reason_codes (
  reason_code text primary key,
  description text not null,
  requires_approval boolean not null,
  approval_threshold numeric(19, 4) not null default 0,
  constraint reason_codes_code_format_check check (reason_code ~ '^[a-z][a-z0-9_]{0,39}$'),
  constraint reason_codes_approval_threshold_check
    check (approval_threshold >= 0 and approval_threshold <> 'NaN'::numeric)
);
comment on table inventory.reason_codes is 'Why stock is adjusted, and whether (above which absolute quantity) an adjustment with this reason needs an admin''s approval.';
comment on column inventory.reason_codes.reason_code is 'Machine-readable reason (received, damaged, theft, ...).';
comment on column inventory.reason_codes.description is 'What the reason means.';
comment on column inventory.reason_codes.requires_approval is 'Whether adjustments with this reason may need approval at all.';
comment on column inventory.reason_codes.approval_threshold is 'Approval is needed when requires_approval and |quantity_delta| > approval_threshold (0: always).';

insert into inventory.reason_codes (reason_code, description, requires_approval, approval_threshold) values
  ('received', 'Stock received outside a purchase order', false, 0),
  ('correction', 'Correction of a booking error', true, 10),
  ('cycle_count', 'Difference found by a cycle count', true, 10),
  ('damaged', 'Damaged goods', true, 5),
  ('shrinkage', 'Unexplained loss', true, 0),
  ('theft', 'Stolen goods', true, 0),
  ('expired', 'Past its expiry date', true, 20),
  ('promotion', 'Given away in a promotion', true, 10),
  ('restock', 'Put back on the shelf', false, 0),
  ('quality_control', 'Removed or returned by quality control', true, 10),
  ('other', 'Anything else (describe it)', true, 0);

-- Who last counted a level, and when (set by record_count).
alter table inventory.stock_levels
  add column has_stock_policy boolean not null default false,
  add column last_counted_at timestamptz,
  add column last_counted_by text;
comment on column inventory.stock_levels.has_stock_policy is 'Whether a stock policy exists for the level: the reorder alert trigger fires only then (a trigger WHEN clause, so levels without a policy pay nothing).';
comment on column inventory.stock_levels.last_counted_at is 'When the level was last physically counted (record_count).';
comment on column inventory.stock_levels.last_counted_by is 'Acting user of the last count.';

create table inventory.cycle_counts (
  count_id bigint generated by default as identity primary key,
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  counted_quantity numeric(19, 4) not null,
  on_hand_at_count numeric(19, 4) not null,
  reserved_at_count numeric(19, 4) not null,
  difference numeric(19, 4) generated always as (counted_quantity - on_hand_at_count) stored,
  counted_by text not null,
  counted_at timestamptz not null default pg_catalog.now(),
  constraint cycle_counts_counted_quantity_check check (counted_quantity >= 0 and counted_quantity <> 'NaN'::numeric)
);
create index cycle_counts_level_idx on inventory.cycle_counts (item_id, location_id, count_id);
create index cycle_counts_location_id_idx on inventory.cycle_counts (location_id);
comment on table inventory.cycle_counts is 'Physical counts of stock levels, with the on_hand they were compared with.';
comment on column inventory.cycle_counts.count_id is 'Surrogate key.';
comment on column inventory.cycle_counts.item_id is 'The item counted.';
comment on column inventory.cycle_counts.location_id is 'Where it was counted.';
comment on column inventory.cycle_counts.counted_quantity is 'Units found on the shelf.';
comment on column inventory.cycle_counts.on_hand_at_count is 'on_hand of the level at the instant of the count (read under its row lock).';
comment on column inventory.cycle_counts.reserved_at_count is 'reserved of the level at the instant of the count.';
comment on column inventory.cycle_counts.difference is 'counted_quantity - on_hand_at_count: the delta of the physical_count adjustment (none when 0).';
comment on column inventory.cycle_counts.counted_by is 'Acting user who counted.';
comment on column inventory.cycle_counts.counted_at is 'When the count was recorded.';

create table inventory.adjustments (
  adjustment_id bigint generated by default as identity primary key,
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  quantity_delta numeric(19, 4) not null,
  adjustment_type text not null,
  reason_code text not null references inventory.reason_codes (reason_code),
  description text,
  status text not null,
  requires_approval boolean not null,
  on_hand_at_request numeric(19, 4) not null,
  count_id bigint references inventory.cycle_counts (count_id),
  requested_by text not null,
  requested_at timestamptz not null default pg_catalog.now(),
  decided_by text,
  decided_at timestamptz,
  decision_note text,
  on_hand_at_apply numeric(19, 4),
  movement_id bigint,
  idempotency_key text,
  constraint adjustments_quantity_delta_check check (quantity_delta <> 0 and quantity_delta <> 'NaN'::numeric),
  constraint adjustments_type_check
    check (adjustment_type in ('physical_count', 'damage', 'correction', 'write_off', 'found')),
  constraint adjustments_status_check check (status in ('PENDING', 'APPLIED', 'APPROVED', 'REJECTED', 'SUPERSEDED')),
  constraint adjustments_applied_check check ((status in ('APPLIED', 'APPROVED')) = (movement_id is not null)),
  constraint adjustments_decided_check check ((status = 'PENDING') = (decided_at is null)),
  constraint adjustments_approval_check check (status <> 'APPLIED' or not requires_approval)
);
create index adjustments_pending_level_idx on inventory.adjustments (item_id, location_id) where status = 'PENDING';
create index adjustments_location_id_idx on inventory.adjustments (location_id, adjustment_id);
create index adjustments_count_id_idx on inventory.adjustments (count_id);
comment on table inventory.adjustments is 'Requests to change on_hand outside the order lifecycle; PENDING until an admin other than the requester approves or rejects them, or APPLIED at once when the reason needs no approval.';
comment on column inventory.adjustments.adjustment_id is 'Surrogate key.';
comment on column inventory.adjustments.item_id is 'The item adjusted.';
comment on column inventory.adjustments.location_id is 'Where it is adjusted.';
comment on column inventory.adjustments.quantity_delta is 'Change of on_hand (negative removes units); applied as a delta, whatever on_hand is at approval.';
comment on column inventory.adjustments.adjustment_type is 'physical_count, damage, correction, write_off or found.';
comment on column inventory.adjustments.reason_code is 'Reason from inventory.reason_codes.';
comment on column inventory.adjustments.description is 'Free text from the requester.';
comment on column inventory.adjustments.status is 'PENDING, APPLIED (no approval needed), APPROVED (and applied), REJECTED or SUPERSEDED (by a newer count).';
comment on column inventory.adjustments.requires_approval is 'Whether the reason and size needed approval (or a count could not be applied at once).';
comment on column inventory.adjustments.on_hand_at_request is 'on_hand when the request was made (for counts: the on_hand the count was compared with).';
comment on column inventory.adjustments.count_id is 'The cycle count that produced this adjustment, if any.';
comment on column inventory.adjustments.requested_by is 'Acting user who requested it.';
comment on column inventory.adjustments.requested_at is 'When it was requested.';
comment on column inventory.adjustments.decided_by is 'Admin who approved or rejected it (the requester for APPLIED, the counter for SUPERSEDED).';
comment on column inventory.adjustments.decided_at is 'When it left PENDING.';
comment on column inventory.adjustments.decision_note is 'Note of the decision.';
comment on column inventory.adjustments.on_hand_at_apply is 'on_hand just before the delta was applied.';
comment on column inventory.adjustments.movement_id is 'The ADJUST ledger movement that applied it.';
comment on column inventory.adjustments.idempotency_key is 'Idempotency key of the create_adjustment call.';

create table inventory.stock_policies (
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  reorder_point numeric(19, 4) not null,
  safety_stock numeric(19, 4) not null,
  reorder_quantity numeric(19, 4),
  max_stock_level numeric(19, 4),
  lead_time_days integer,
  updated_by text not null,
  updated_at timestamptz not null default pg_catalog.now(),
  primary key (item_id, location_id),
  constraint stock_policies_reorder_point_check check (reorder_point >= 0 and reorder_point <> 'NaN'::numeric),
  constraint stock_policies_safety_stock_check
    check (safety_stock >= 0 and safety_stock <> 'NaN'::numeric and safety_stock <= reorder_point),
  constraint stock_policies_reorder_quantity_check check (reorder_quantity > 0 and reorder_quantity <> 'NaN'::numeric),
  constraint stock_policies_max_stock_level_check
    check (max_stock_level > 0 and max_stock_level <> 'NaN'::numeric and max_stock_level >= reorder_point),
  constraint stock_policies_lead_time_days_check check (lead_time_days between 0 and 3650)
);
create index stock_policies_location_id_idx on inventory.stock_policies (location_id);
comment on table inventory.stock_policies is 'Replenishment policy of an item at a location: reorder point, safety stock, order quantity, maximum, lead time.';
comment on column inventory.stock_policies.item_id is 'The item.';
comment on column inventory.stock_policies.location_id is 'The location.';
comment on column inventory.stock_policies.reorder_point is 'Reorder when available falls to or below this.';
comment on column inventory.stock_policies.safety_stock is 'Critical when available falls to or below this (<= reorder_point).';
comment on column inventory.stock_policies.reorder_quantity is 'Fixed quantity to order, if any.';
comment on column inventory.stock_policies.max_stock_level is 'Order up to this level, if no reorder_quantity is set.';
comment on column inventory.stock_policies.lead_time_days is 'Days a replenishment takes to arrive.';
comment on column inventory.stock_policies.updated_by is 'Acting user who last set the policy.';
comment on column inventory.stock_policies.updated_at is 'When the policy was last set.';

create table inventory.reorder_alerts (
  alert_id bigint generated always as identity primary key,
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  severity text not null,
  status text not null default 'OPEN',
  available_at_open numeric(19, 4) not null,
  reorder_point numeric(19, 4) not null,
  safety_stock numeric(19, 4) not null,
  opened_at timestamptz not null default pg_catalog.now(),
  escalated_at timestamptz,
  acknowledged_by text,
  acknowledged_at timestamptz,
  closed_by text,
  closed_at timestamptz,
  note text,
  recovered_at timestamptz,
  constraint reorder_alerts_severity_check check (severity in ('REORDER', 'CRITICAL')),
  constraint reorder_alerts_status_check check (status in ('OPEN', 'ACKNOWLEDGED', 'RESOLVED', 'DISMISSED')),
  constraint reorder_alerts_closed_check check ((status in ('RESOLVED', 'DISMISSED')) = (closed_at is not null)),
  constraint reorder_alerts_recovered_check check (recovered_at is null or status in ('RESOLVED', 'DISMISSED'))
);
-- At most one open (OPEN or ACKNOWLEDGED) alert per level; and at most one alert per low-stock
-- episode (an alert closed by hand keeps the episode until stock recovers, so it is not reopened
-- by the next sale).
create unique index reorder_alerts_one_open_key on inventory.reorder_alerts (item_id, location_id)
  where status in ('OPEN', 'ACKNOWLEDGED');
create unique index reorder_alerts_one_episode_key on inventory.reorder_alerts (item_id, location_id)
  where recovered_at is null;
create index reorder_alerts_location_id_idx on inventory.reorder_alerts (location_id, alert_id);
comment on table inventory.reorder_alerts is 'Low-stock alerts: opened when available falls to or below the reorder point, CRITICAL at or below safety stock, resolved automatically when stock recovers.';
comment on column inventory.reorder_alerts.alert_id is 'Surrogate key.';
comment on column inventory.reorder_alerts.item_id is 'The item.';
comment on column inventory.reorder_alerts.location_id is 'The location.';
comment on column inventory.reorder_alerts.severity is 'REORDER, or CRITICAL at or below safety stock; only ever raised while the alert is open.';
comment on column inventory.reorder_alerts.status is 'OPEN, ACKNOWLEDGED, RESOLVED (by hand, or automatically when stock recovers) or DISMISSED.';
comment on column inventory.reorder_alerts.available_at_open is 'Available units when the alert opened.';
comment on column inventory.reorder_alerts.reorder_point is 'The policy''s reorder point when the alert opened.';
comment on column inventory.reorder_alerts.safety_stock is 'The policy''s safety stock when the alert opened.';
comment on column inventory.reorder_alerts.opened_at is 'When the alert opened.';
comment on column inventory.reorder_alerts.escalated_at is 'When the severity was raised to CRITICAL.';
comment on column inventory.reorder_alerts.acknowledged_by is 'User who acknowledged it.';
comment on column inventory.reorder_alerts.acknowledged_at is 'When it was acknowledged.';
comment on column inventory.reorder_alerts.closed_by is 'User who resolved or dismissed it (the user whose movement recovered the stock, for automatic resolution).';
comment on column inventory.reorder_alerts.closed_at is 'When it was resolved or dismissed.';
comment on column inventory.reorder_alerts.note is 'Note given when it was acknowledged, resolved or dismissed.';
comment on column inventory.reorder_alerts.recovered_at is 'When available rose above the reorder point again, ending the low-stock episode.';

-- -- result types ------------------------------------------------------------------------------------

create type inventory_api.adjustment as (
  adjustment_id bigint, sku text, location text, quantity_delta numeric, adjustment_type text, reason_code text,
  description text, status text, requires_approval boolean, on_hand_at_request numeric, count_id bigint,
  requested_by text, requested_at timestamptz, decided_by text, decided_at timestamptz, decision_note text,
  on_hand_at_apply numeric, movement_id bigint);
comment on type inventory_api.adjustment is 'A stock adjustment request and its outcome.';

create type inventory_api.stock_count as (
  count_id bigint, sku text, location text, counted_quantity numeric, on_hand_at_count numeric,
  reserved_at_count numeric, difference numeric, adjustment_id bigint, adjustment_status text,
  counted_by text, counted_at timestamptz);
comment on type inventory_api.stock_count is 'A recorded cycle count and the adjustment it produced (none when it matched).';

create type inventory_api.stock_transfer as (
  sku text, quantity numeric, from_location text, to_location text, reference text,
  out_movement_id bigint, in_movement_id bigint, from_on_hand numeric, from_available numeric,
  to_on_hand numeric, to_available numeric);
comment on type inventory_api.stock_transfer is 'A transfer between two locations: the linked TRANSFER_OUT and TRANSFER_IN movements and both levels after it.';

create type inventory_api.stock_policy as (
  sku text, location text, reorder_point numeric, safety_stock numeric, reorder_quantity numeric,
  max_stock_level numeric, lead_time_days integer, updated_by text, updated_at timestamptz);
comment on type inventory_api.stock_policy is 'Replenishment policy of an item at a location.';

create type inventory_api.reorder_alert as (
  alert_id bigint, sku text, location text, severity text, status text, available numeric,
  available_at_open numeric, reorder_point numeric, safety_stock numeric, opened_at timestamptz,
  escalated_at timestamptz, acknowledged_by text, acknowledged_at timestamptz, closed_by text,
  closed_at timestamptz, note text);
comment on type inventory_api.reorder_alert is 'A low-stock alert, with the level''s current available quantity.';

create type inventory_api.reorder_check as (levels_checked integer, opened integer, escalated integer, resolved integer);
comment on type inventory_api.reorder_check is 'What check_reorder_points did: levels with a policy checked, alerts opened, raised to CRITICAL and resolved.';

-- -- helpers -----------------------------------------------------------------------------------------

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

-- A quantity that may be 0 (counts, policy levels): finite, 0..1e12, at most 4 decimals.
create function inventory.check_level_quantity(quantity numeric, argument text) returns numeric
language plpgsql stable
set search_path = ''
as $$
begin
  if check_level_quantity.quantity is distinct from 0 then
    perform inventory.check_quantity(check_level_quantity.quantity, check_level_quantity.argument);
  end if;
  return check_level_quantity.quantity;
end
$$;
comment on function inventory.check_level_quantity(numeric, text) is 'Raises INVALID_QUANTITY unless the quantity is 0 or valid (> 0, <= 1e12, at most 4 decimals).';

create function inventory.adjustment_result(adjustment_id bigint) returns inventory_api.adjustment
language sql stable
set search_path = ''
as $$
  select row(a.adjustment_id, i.sku, l.code, a.quantity_delta, a.adjustment_type, a.reason_code, a.description,
             a.status, a.requires_approval, a.on_hand_at_request, a.count_id, a.requested_by, a.requested_at,
             a.decided_by, a.decided_at, a.decision_note, a.on_hand_at_apply, a.movement_id)::inventory_api.adjustment
    from inventory.adjustments a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
   where a.adjustment_id = adjustment_result.adjustment_id
$$;
comment on function inventory.adjustment_result(bigint) is 'The public view of one adjustment.';

-- Applies a delta to on_hand of one level through the ledger (an ADJUST movement described by
-- `movement`); returns the ledger row. Raises INSUFFICIENT_STOCK when on_hand would fall below
-- reserved (or below 0). The level is created empty when missing and the delta is positive.
-- Overdue holds standing in the way are expired first, before the level is locked (holds first).
create function inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric, movement jsonb,
                                              sku text, location text)
returns inventory.ledger
language plpgsql volatile
set search_path = ''
as $$
declare
  v_level inventory.stock_levels;
  v_entry inventory.ledger;
begin
  if apply_on_hand_delta.delta > 0 then
    insert into inventory.stock_levels (item_id, location_id)
    values (apply_on_hand_delta.item_id, apply_on_hand_delta.location_id)
    on conflict do nothing;
  else
    select * into v_level from inventory.stock_levels s
     where s.item_id = apply_on_hand_delta.item_id and s.location_id = apply_on_hand_delta.location_id;
    if v_level.on_hand + apply_on_hand_delta.delta < v_level.reserved
       and inventory.effective_available(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id)
           >= -apply_on_hand_delta.delta then
      perform inventory.expire_overdue_at_level(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id);
    end if;
  end if;
  update inventory.stock_levels s
     set on_hand = s.on_hand + apply_on_hand_delta.delta, pending_movement = apply_on_hand_delta.movement
   where s.item_id = apply_on_hand_delta.item_id and s.location_id = apply_on_hand_delta.location_id
     and s.on_hand + apply_on_hand_delta.delta >= s.reserved;
  if not found then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('removing %s of %s at %s would leave less on hand than is reserved',
                        -apply_on_hand_delta.delta, apply_on_hand_delta.sku, apply_on_hand_delta.location),
      inventory.shortfall(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id, apply_on_hand_delta.sku,
                          apply_on_hand_delta.location, -apply_on_hand_delta.delta));
  end if;
  select * into v_entry from inventory.ledger g
   where g.movement_id = pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
  return v_entry;
end
$$;
comment on function inventory.apply_on_hand_delta(bigint, bigint, numeric, jsonb, text, text) is 'Applies a delta to on_hand through the ledger; raises INSUFFICIENT_STOCK when on_hand would fall below reserved.';

-- -- adjustments -------------------------------------------------------------------------------------

create function inventory.create_adjustment(sku text, quantity_delta numeric, adjustment_type text,
                                            reason_code text, location text, description text,
                                            idempotency_key text)
returns inventory_api.adjustment
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_reason inventory.reason_codes;
  v_needs_approval boolean;
  v_adjustment_id bigint;
  v_on_hand numeric;
  v_entry inventory.ledger;
  v_actor text := inventory.current_actor();
  v_replay jsonb;
  v_result inventory_api.adjustment;
begin
  v_item := inventory.item_for_sku(create_adjustment.sku);
  v_location_id := inventory.location_for_code(create_adjustment.location);
  perform inventory.authorize('operator', v_location_id);
  if create_adjustment.quantity_delta is null or create_adjustment.quantity_delta = 0 then
    perform inventory.raise_error('INVALID_QUANTITY', 'quantity_delta must be a non-zero number',
      pg_catalog.jsonb_build_object('argument', 'quantity_delta',
                                    'value', create_adjustment.quantity_delta::text));
  end if;
  perform inventory.check_quantity(pg_catalog.abs(create_adjustment.quantity_delta), 'quantity_delta');
  if create_adjustment.adjustment_type is null
     or create_adjustment.adjustment_type not in ('physical_count', 'damage', 'correction', 'write_off', 'found') then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'adjustment_type must be physical_count, damage, correction, write_off or found',
      pg_catalog.jsonb_build_object('argument', 'adjustment_type', 'problem', 'not a type'));
  end if;
  if (create_adjustment.adjustment_type in ('damage', 'write_off') and create_adjustment.quantity_delta > 0)
     or (create_adjustment.adjustment_type = 'found' and create_adjustment.quantity_delta < 0) then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('a %s adjustment must %s stock', create_adjustment.adjustment_type,
                        case when create_adjustment.adjustment_type = 'found' then 'add' else 'remove' end),
      pg_catalog.jsonb_build_object('argument', 'quantity_delta', 'problem', 'wrong sign for the type'));
  end if;
  select * into v_reason from inventory.reason_codes r where r.reason_code = create_adjustment.reason_code;
  if not found then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('unknown reason_code %L (see inventory_api.reason_codes)', create_adjustment.reason_code),
      pg_catalog.jsonb_build_object('argument', 'reason_code', 'problem', 'unknown'));
  end if;
  perform inventory.check_text(create_adjustment.description, 'description', 500, required => false);
  if create_adjustment.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(create_adjustment.idempotency_key, 'create_adjustment',
      pg_catalog.jsonb_build_object('sku', create_adjustment.sku, 'quantity_delta', create_adjustment.quantity_delta,
        'adjustment_type', create_adjustment.adjustment_type, 'reason_code', create_adjustment.reason_code,
        'location', create_adjustment.location, 'description', create_adjustment.description));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.adjustment, v_replay);
    end if;
  end if;

  v_needs_approval := v_reason.requires_approval
                      and pg_catalog.abs(create_adjustment.quantity_delta) > v_reason.approval_threshold;
  v_adjustment_id := pg_catalog.nextval('inventory.adjustments_adjustment_id_seq'::regclass);
  select s.on_hand into v_on_hand from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id;
  if not v_needs_approval then
    v_entry := inventory.apply_on_hand_delta(v_item.item_id, v_location_id, create_adjustment.quantity_delta,
      pg_catalog.jsonb_build_object('type', 'ADJUST', 'reason', create_adjustment.reason_code,
        'reference', 'adjustment:' || v_adjustment_id, 'idempotency_key', create_adjustment.idempotency_key,
        'metadata', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
          'adjustment_id', v_adjustment_id, 'adjustment_type', create_adjustment.adjustment_type,
          'description', create_adjustment.description))),
      create_adjustment.sku, create_adjustment.location);
    v_on_hand := v_entry.on_hand_before;
  end if;
  insert into inventory.adjustments (adjustment_id, item_id, location_id, quantity_delta, adjustment_type,
                                     reason_code, description, status, requires_approval, on_hand_at_request,
                                     requested_by, decided_by, decided_at, on_hand_at_apply, movement_id,
                                     idempotency_key)
  values (v_adjustment_id, v_item.item_id, v_location_id, create_adjustment.quantity_delta,
          create_adjustment.adjustment_type, create_adjustment.reason_code, create_adjustment.description,
          case when v_needs_approval then 'PENDING' else 'APPLIED' end, v_needs_approval, coalesce(v_on_hand, 0),
          v_actor,
          case when v_needs_approval then null else v_actor end,
          case when v_needs_approval then null else pg_catalog.now() end,
          v_entry.on_hand_before, v_entry.movement_id, create_adjustment.idempotency_key);
  v_result := inventory.adjustment_result(v_adjustment_id);
  if create_adjustment.idempotency_key is not null then
    perform inventory.complete_idempotency_key(create_adjustment.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;
comment on function inventory.create_adjustment(text, numeric, text, text, text, text, text) is 'Implements inventory_api.create_adjustment.';

create function inventory.approve_adjustment(adjustment_id bigint, decision text, note text)
returns inventory_api.adjustment
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_adjustment inventory.adjustments;
  v_actor text := inventory.current_actor();
  v_entry inventory.ledger;
  v_sku text;
  v_location text;
begin
  if approve_adjustment.decision is null or approve_adjustment.decision not in ('approved', 'rejected') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'decision must be approved or rejected',
      pg_catalog.jsonb_build_object('argument', 'decision', 'problem', 'not a decision'));
  end if;
  perform inventory.check_text(approve_adjustment.note, 'note', 500, required => false);
  -- Adjustment rows are locked before stock levels (the global lock order).
  select * into v_adjustment from inventory.adjustments a
   where a.adjustment_id = approve_adjustment.adjustment_id
     for update;
  if not found then
    if not inventory.holds_role_somewhere('admin') then
      perform inventory.authorize('admin');
    end if;
    perform inventory.raise_error('ADJUSTMENT_NOT_FOUND',
      pg_catalog.format('no adjustment with id %s', approve_adjustment.adjustment_id),
      pg_catalog.jsonb_build_object('adjustment_id', approve_adjustment.adjustment_id));
  end if;
  perform inventory.authorize('admin', v_adjustment.location_id);
  if v_adjustment.status <> 'PENDING' then
    perform inventory.raise_error('INVALID_STATE',
      pg_catalog.format('adjustment %s is %s, not PENDING', v_adjustment.adjustment_id, v_adjustment.status),
      pg_catalog.jsonb_build_object('adjustment_id', v_adjustment.adjustment_id, 'status', v_adjustment.status,
                                    'decided_by', v_adjustment.decided_by));
  end if;
  if approve_adjustment.decision = 'approved' and v_adjustment.requested_by = v_actor then
    perform inventory.raise_error('SELF_APPROVAL_FORBIDDEN',
      pg_catalog.format('%s requested adjustment %s and cannot approve it', v_actor, v_adjustment.adjustment_id),
      pg_catalog.jsonb_build_object('adjustment_id', v_adjustment.adjustment_id, 'requested_by', v_actor));
  end if;
  if approve_adjustment.decision = 'approved' then
    select i.sku into v_sku from inventory.items i where i.item_id = v_adjustment.item_id;
    select l.code into v_location from inventory.locations l where l.location_id = v_adjustment.location_id;
    v_entry := inventory.apply_on_hand_delta(v_adjustment.item_id, v_adjustment.location_id,
      v_adjustment.quantity_delta,
      pg_catalog.jsonb_build_object('type', 'ADJUST', 'reason', v_adjustment.reason_code,
        'reference', 'adjustment:' || v_adjustment.adjustment_id,
        'metadata', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
          'adjustment_id', v_adjustment.adjustment_id, 'adjustment_type', v_adjustment.adjustment_type,
          'description', v_adjustment.description, 'requested_by', v_adjustment.requested_by,
          'approved_by', v_actor, 'count_id', v_adjustment.count_id))),
      v_sku, v_location);
  end if;
  update inventory.adjustments a
     set status = case when approve_adjustment.decision = 'approved' then 'APPROVED' else 'REJECTED' end,
         decided_by = v_actor, decided_at = pg_catalog.now(), decision_note = approve_adjustment.note,
         on_hand_at_apply = v_entry.on_hand_before, movement_id = v_entry.movement_id
   where a.adjustment_id = v_adjustment.adjustment_id;
  return inventory.adjustment_result(v_adjustment.adjustment_id);
end
$$;
comment on function inventory.approve_adjustment(bigint, text, text) is 'Implements inventory_api.approve_adjustment.';

-- -- cycle counts ------------------------------------------------------------------------------------

create function inventory.record_count(sku text, counted_quantity numeric, location text)
returns inventory_api.stock_count
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
  v_reason inventory.reason_codes;
  v_actor text := inventory.current_actor();
  v_count_id bigint;
  v_adjustment_id bigint;
  v_difference numeric;
  v_apply boolean;
  v_entry inventory.ledger;
begin
  v_item := inventory.item_for_sku(record_count.sku);
  v_location_id := inventory.location_for_code(record_count.location);
  perform inventory.authorize('operator', v_location_id);
  if record_count.counted_quantity is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'counted_quantity is required',
      pg_catalog.jsonb_build_object('argument', 'counted_quantity', 'value', null));
  end if;
  perform inventory.check_level_quantity(record_count.counted_quantity, 'counted_quantity');

  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_location_id)
  on conflict do nothing;
  -- Lock order: pending adjustments of the level, then the level. Under the level's lock on_hand
  -- cannot move, so the difference is exact for this instant.
  perform from inventory.adjustments a
   where a.item_id = v_item.item_id and a.location_id = v_location_id and a.status = 'PENDING'
     and a.adjustment_type = 'physical_count'
   order by a.adjustment_id
     for update;
  select * into v_level from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id
     for update;
  v_difference := record_count.counted_quantity - v_level.on_hand;
  v_count_id := pg_catalog.nextval('inventory.cycle_counts_count_id_seq'::regclass);
  insert into inventory.cycle_counts (count_id, item_id, location_id, counted_quantity, on_hand_at_count,
                                      reserved_at_count, counted_by)
  values (v_count_id, v_item.item_id, v_location_id, record_count.counted_quantity, v_level.on_hand,
          v_level.reserved, v_actor);
  -- This count measures the whole discrepancy again: older pending count differences are void.
  update inventory.adjustments a
     set status = 'SUPERSEDED', decided_by = v_actor, decided_at = pg_catalog.now(),
         decision_note = pg_catalog.format('superseded by count %s', v_count_id)
   where a.item_id = v_item.item_id and a.location_id = v_location_id and a.status = 'PENDING'
     and a.adjustment_type = 'physical_count';

  if v_difference = 0 then
    update inventory.stock_levels s set last_counted_at = pg_catalog.now(), last_counted_by = v_actor
     where s.item_id = v_item.item_id and s.location_id = v_location_id;
  else
    select * into v_reason from inventory.reason_codes r where r.reason_code = 'cycle_count';
    -- Applied at once when small enough and it keeps reserved <= on_hand; else left for an admin.
    v_apply := not (v_reason.requires_approval and pg_catalog.abs(v_difference) > v_reason.approval_threshold)
               and record_count.counted_quantity >= v_level.reserved;
    v_adjustment_id := pg_catalog.nextval('inventory.adjustments_adjustment_id_seq'::regclass);
    update inventory.stock_levels s
       set last_counted_at = pg_catalog.now(), last_counted_by = v_actor,
           on_hand = case when v_apply then record_count.counted_quantity else s.on_hand end,
           pending_movement = case when v_apply then pg_catalog.jsonb_build_object(
             'type', 'ADJUST', 'reason', 'cycle_count', 'reference', 'adjustment:' || v_adjustment_id,
             'metadata', pg_catalog.jsonb_build_object('adjustment_id', v_adjustment_id,
                                                       'adjustment_type', 'physical_count', 'count_id', v_count_id,
                                                       'counted_quantity', record_count.counted_quantity)) end
     where s.item_id = v_item.item_id and s.location_id = v_location_id;
    if v_apply then
      select * into v_entry from inventory.ledger g
       where g.movement_id = pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
    end if;
    insert into inventory.adjustments (adjustment_id, item_id, location_id, quantity_delta, adjustment_type,
                                       reason_code, description, status, requires_approval, on_hand_at_request,
                                       count_id, requested_by, decided_by, decided_at, on_hand_at_apply, movement_id)
    values (v_adjustment_id, v_item.item_id, v_location_id, v_difference, 'physical_count', 'cycle_count',
            pg_catalog.format('cycle count %s: counted %s, on hand %s', v_count_id,
                              record_count.counted_quantity, v_level.on_hand),
            case when v_apply then 'APPLIED' else 'PENDING' end, not v_apply, v_level.on_hand, v_count_id, v_actor,
            case when v_apply then v_actor end, case when v_apply then pg_catalog.now() end,
            v_entry.on_hand_before, v_entry.movement_id);
  end if;
  return (select row(c.count_id, record_count.sku, record_count.location, c.counted_quantity, c.on_hand_at_count,
                     c.reserved_at_count, c.difference, a.adjustment_id, a.status, c.counted_by,
                     c.counted_at)::inventory_api.stock_count
            from inventory.cycle_counts c
            left join inventory.adjustments a on a.adjustment_id = v_adjustment_id
           where c.count_id = v_count_id);
end
$$;
comment on function inventory.record_count(text, numeric, text) is 'Implements inventory_api.record_count.';

-- -- transfers ---------------------------------------------------------------------------------------

create function inventory.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
                                         reference text, idempotency_key text)
returns inventory_api.stock_transfer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_from_id bigint;
  v_to_id bigint;
  v_from inventory.stock_levels;
  v_to inventory.stock_levels;
  v_out bigint;
  v_in bigint;
  v_available numeric;
  v_replay jsonb;
  v_result inventory_api.stock_transfer;
begin
  v_item := inventory.item_for_sku(transfer_stock.sku);
  perform inventory.check_quantity(transfer_stock.quantity);
  v_from_id := inventory.location_for_code(transfer_stock.from_location);
  v_to_id := inventory.location_for_code(transfer_stock.to_location);
  perform inventory.authorize('operator', v_from_id);
  perform inventory.authorize('operator', v_to_id);
  if v_from_id = v_to_id then
    perform inventory.raise_error('INVALID_ARGUMENT', 'from_location and to_location must differ',
      pg_catalog.jsonb_build_object('argument', 'to_location', 'problem', 'same as from_location'));
  end if;
  perform inventory.check_text(transfer_stock.reference, 'reference', 200, required => false);
  if transfer_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(transfer_stock.idempotency_key, 'transfer_stock',
      pg_catalog.jsonb_build_object('sku', transfer_stock.sku, 'quantity', transfer_stock.quantity,
        'from_location', transfer_stock.from_location, 'to_location', transfer_stock.to_location,
        'reference', transfer_stock.reference));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_transfer, v_replay);
    end if;
  end if;

  -- Overdue holds in the way are expired before any level is locked (holds before levels).
  select s.available into v_available from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_from_id;
  if coalesce(v_available, 0) < transfer_stock.quantity
     and coalesce(inventory.effective_available(v_item.item_id, v_from_id), 0) >= transfer_stock.quantity then
    perform inventory.expire_overdue_at_level(v_item.item_id, v_from_id);
  end if;
  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_to_id)
  on conflict do nothing;
  -- Both levels in (item_id, location_id) order: opposite transfers cannot deadlock.
  perform from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id in (v_from_id, v_to_id)
   order by s.item_id, s.location_id
     for update;
  update inventory.stock_levels s
     set on_hand = s.on_hand - transfer_stock.quantity,
         pending_movement = pg_catalog.jsonb_build_object('type', 'TRANSFER_OUT', 'reason', 'transfer',
           'reference', transfer_stock.reference, 'idempotency_key', transfer_stock.idempotency_key,
           'metadata', pg_catalog.jsonb_build_object('to_location', transfer_stock.to_location))
   where s.item_id = v_item.item_id and s.location_id = v_from_id
     and s.on_hand - s.reserved >= transfer_stock.quantity
  returning * into v_from;
  if not found then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock of %s at %s to transfer %s', transfer_stock.sku,
                        transfer_stock.from_location, transfer_stock.quantity),
      inventory.shortfall(v_item.item_id, v_from_id, transfer_stock.sku, transfer_stock.from_location,
                          transfer_stock.quantity));
  end if;
  v_out := pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
  update inventory.stock_levels s
     set on_hand = s.on_hand + transfer_stock.quantity,
         pending_movement = pg_catalog.jsonb_build_object('type', 'TRANSFER_IN', 'reason', 'transfer',
           'reference', transfer_stock.reference, 'idempotency_key', transfer_stock.idempotency_key,
           'related_movement_id', v_out,
           'metadata', pg_catalog.jsonb_build_object('from_location', transfer_stock.from_location))
   where s.item_id = v_item.item_id and s.location_id = v_to_id
  returning * into v_to;
  v_in := pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
  v_result := row(transfer_stock.sku, transfer_stock.quantity, transfer_stock.from_location,
                  transfer_stock.to_location, transfer_stock.reference, v_out, v_in, v_from.on_hand,
                  v_from.available, v_to.on_hand, v_to.available)::inventory_api.stock_transfer;
  if transfer_stock.idempotency_key is not null then
    perform inventory.complete_idempotency_key(transfer_stock.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;
comment on function inventory.transfer_stock(text, numeric, text, text, text, text) is 'Implements inventory_api.transfer_stock.';

-- -- reorder alerts ----------------------------------------------------------------------------------

-- Re-evaluates the alert of one level whose available quantity is `available`. The caller holds the
-- level's row lock (the UPDATE that fired the trigger, or an explicit lock), so evaluations of one
-- level never run at once. Returns what it did: OPENED, ESCALATED, RESOLVED or null.
create function inventory.evaluate_reorder_alert(item_id bigint, location_id bigint, available numeric)
returns text
language plpgsql volatile
set search_path = ''
as $$
declare
  v_policy inventory.stock_policies;
  v_alert inventory.reorder_alerts;
  v_severity text;
  v_alert_id bigint;
begin
  select * into v_policy from inventory.stock_policies p
   where p.item_id = evaluate_reorder_alert.item_id and p.location_id = evaluate_reorder_alert.location_id;
  if not found then
    return null;
  end if;
  v_severity := case when evaluate_reorder_alert.available <= v_policy.safety_stock then 'CRITICAL'
                     when evaluate_reorder_alert.available <= v_policy.reorder_point then 'REORDER' end;
  select * into v_alert from inventory.reorder_alerts a
   where a.item_id = evaluate_reorder_alert.item_id and a.location_id = evaluate_reorder_alert.location_id
     and a.recovered_at is null;
  if v_severity is null then
    if v_alert.alert_id is null then
      return null;
    end if;
    update inventory.reorder_alerts a
       set recovered_at = pg_catalog.now(),
           status = case when a.status in ('OPEN', 'ACKNOWLEDGED') then 'RESOLVED' else a.status end,
           closed_at = coalesce(a.closed_at, pg_catalog.now()),
           closed_by = coalesce(a.closed_by, inventory.current_actor()),
           note = coalesce(a.note, 'stock recovered')
     where a.alert_id = v_alert.alert_id;
    return case when v_alert.status in ('OPEN', 'ACKNOWLEDGED') then 'RESOLVED' end;
  end if;
  if v_alert.alert_id is null then
    insert into inventory.reorder_alerts (item_id, location_id, severity, available_at_open, reorder_point,
                                          safety_stock)
    values (evaluate_reorder_alert.item_id, evaluate_reorder_alert.location_id, v_severity,
            evaluate_reorder_alert.available, v_policy.reorder_point, v_policy.safety_stock)
    on conflict do nothing
    returning alert_id into v_alert_id;
    if v_alert_id is not null then
      perform pg_catalog.pg_notify('inventory_alerts', pg_catalog.jsonb_build_object(
        'event', 'opened', 'alert_id', v_alert_id, 'severity', v_severity,
        'sku', (select i.sku from inventory.items i where i.item_id = evaluate_reorder_alert.item_id),
        'location', (select l.code from inventory.locations l where l.location_id = evaluate_reorder_alert.location_id),
        'available', evaluate_reorder_alert.available)::text);
      return 'OPENED';
    end if;
    return null;
  end if;
  if v_severity = 'CRITICAL' and v_alert.severity = 'REORDER' and v_alert.status in ('OPEN', 'ACKNOWLEDGED') then
    update inventory.reorder_alerts a set severity = 'CRITICAL', escalated_at = pg_catalog.now()
     where a.alert_id = v_alert.alert_id;
    perform pg_catalog.pg_notify('inventory_alerts', pg_catalog.jsonb_build_object(
      'event', 'escalated', 'alert_id', v_alert.alert_id, 'severity', 'CRITICAL',
      'available', evaluate_reorder_alert.available)::text);
    return 'ESCALATED';
  end if;
  return null;
end
$$;
comment on function inventory.evaluate_reorder_alert(bigint, bigint, numeric) is 'Opens, raises or resolves the reorder alert of one level for its available quantity (caller holds the level lock).';

create function inventory.reorder_alert_trigger() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not new.has_stock_policy then
    return null;
  end if;
  perform inventory.evaluate_reorder_alert(new.item_id, new.location_id, new.on_hand - new.reserved);
  return null;
end
$$;
comment on function inventory.reorder_alert_trigger() is 'Trigger: re-evaluates the reorder alert of a level with a stock policy when its available quantity changes.';

-- The WHEN clause is evaluated without calling any function: levels without a policy (and changes
-- that leave available unchanged) cost nothing on the reserve path.
create trigger stock_levels_reorder_alert
  after update on inventory.stock_levels
  for each row
  when (new.has_stock_policy and (new.on_hand - new.reserved) is distinct from (old.on_hand - old.reserved))
  execute function inventory.reorder_alert_trigger();

create function inventory.reorder_alert_result(alert_id bigint) returns inventory_api.reorder_alert
language sql stable
set search_path = ''
as $$
  select row(a.alert_id, i.sku, l.code, a.severity, a.status, s.available, a.available_at_open, a.reorder_point,
             a.safety_stock, a.opened_at, a.escalated_at, a.acknowledged_by, a.acknowledged_at, a.closed_by,
             a.closed_at, a.note)::inventory_api.reorder_alert
    from inventory.reorder_alerts a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
    left join inventory.stock_levels s on s.item_id = a.item_id and s.location_id = a.location_id
   where a.alert_id = reorder_alert_result.alert_id
$$;
comment on function inventory.reorder_alert_result(bigint) is 'The public view of one reorder alert.';

create function inventory.update_reorder_alert(alert_id bigint, status text, note text)
returns inventory_api.reorder_alert
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_alert inventory.reorder_alerts;
  v_actor text := inventory.current_actor();
begin
  if update_reorder_alert.status is null
     or update_reorder_alert.status not in ('ACKNOWLEDGED', 'RESOLVED', 'DISMISSED') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'status must be ACKNOWLEDGED, RESOLVED or DISMISSED',
      pg_catalog.jsonb_build_object('argument', 'status', 'problem', 'not a status'));
  end if;
  perform inventory.check_text(update_reorder_alert.note, 'note', 500, required => false);
  select * into v_alert from inventory.reorder_alerts a where a.alert_id = update_reorder_alert.alert_id
     for update;
  if not found then
    if not inventory.holds_role_somewhere('operator') then
      perform inventory.authorize('operator');
    end if;
    perform inventory.raise_error('ALERT_NOT_FOUND',
      pg_catalog.format('no reorder alert with id %s', update_reorder_alert.alert_id),
      pg_catalog.jsonb_build_object('alert_id', update_reorder_alert.alert_id));
  end if;
  perform inventory.authorize('operator', v_alert.location_id);
  if v_alert.status not in ('OPEN', 'ACKNOWLEDGED')
     or (v_alert.status = 'ACKNOWLEDGED' and update_reorder_alert.status = 'ACKNOWLEDGED') then
    perform inventory.raise_error('INVALID_STATE',
      pg_catalog.format('alert %s is %s and cannot become %s', v_alert.alert_id, v_alert.status,
                        update_reorder_alert.status),
      pg_catalog.jsonb_build_object('alert_id', v_alert.alert_id, 'status', v_alert.status));
  end if;
  update inventory.reorder_alerts a
     set status = update_reorder_alert.status,
         acknowledged_by = case when update_reorder_alert.status = 'ACKNOWLEDGED' then v_actor else a.acknowledged_by end,
         acknowledged_at = case when update_reorder_alert.status = 'ACKNOWLEDGED' then pg_catalog.now()
                                else a.acknowledged_at end,
         closed_by = case when update_reorder_alert.status = 'ACKNOWLEDGED' then null else v_actor end,
         closed_at = case when update_reorder_alert.status = 'ACKNOWLEDGED' then null else pg_catalog.now() end,
         note = coalesce(update_reorder_alert.note, a.note)
   where a.alert_id = v_alert.alert_id;
  return inventory.reorder_alert_result(v_alert.alert_id);
end
$$;
comment on function inventory.update_reorder_alert(bigint, text, text) is 'Implements inventory_api.update_reorder_alert.';

-- Re-evaluates the alerts of the given levels (all levels with a policy when item_ids is null) in one
-- pass; the caller holds the levels' row locks. Set-based: used by bulk policy imports and
-- check_reorder_points. Returns (levels checked, opened, escalated, resolved).
create function inventory.refresh_reorder_alerts(item_ids bigint[], location_ids bigint[])
returns inventory_api.reorder_check
language plpgsql volatile
set search_path = ''
as $$
declare
  v_result inventory_api.reorder_check;
begin
  -- One statement: its parts touch disjoint alerts (a level is either recovered, or low), so they
  -- may share one snapshot.
  with levels as materialized (
    select s.item_id, s.location_id, s.on_hand - s.reserved as available,
           case when s.on_hand - s.reserved <= p.safety_stock then 'CRITICAL'
                when s.on_hand - s.reserved <= p.reorder_point then 'REORDER' end as severity,
           p.reorder_point, p.safety_stock
      from inventory.stock_policies p
      join inventory.stock_levels s on s.item_id = p.item_id and s.location_id = p.location_id
     where refresh_reorder_alerts.item_ids is null
        or (p.item_id, p.location_id) in (
             select k.item_id, k.location_id
               from rows from (pg_catalog.unnest(refresh_reorder_alerts.item_ids),
                               pg_catalog.unnest(refresh_reorder_alerts.location_ids)) as k (item_id, location_id))
  ), resolved as (
    update inventory.reorder_alerts a
       set recovered_at = pg_catalog.now(),
           status = case when a.status in ('OPEN', 'ACKNOWLEDGED') then 'RESOLVED' else a.status end,
           closed_at = coalesce(a.closed_at, pg_catalog.now()),
           closed_by = coalesce(a.closed_by, inventory.current_actor()),
           note = coalesce(a.note, 'stock recovered')
      from levels r
     where a.item_id = r.item_id and a.location_id = r.location_id and a.recovered_at is null
       and r.severity is null
    returning a.alert_id
  ), escalated as (
    update inventory.reorder_alerts a set severity = 'CRITICAL', escalated_at = pg_catalog.now()
      from levels r
     where a.item_id = r.item_id and a.location_id = r.location_id and a.recovered_at is null
       and a.status in ('OPEN', 'ACKNOWLEDGED') and a.severity = 'REORDER' and r.severity = 'CRITICAL'
    returning a.alert_id
  ), opened as (
    insert into inventory.reorder_alerts (item_id, location_id, severity, available_at_open, reorder_point,
                                          safety_stock)
    select r.item_id, r.location_id, r.severity, r.available, r.reorder_point, r.safety_stock
      from levels r
     where r.severity is not null
       and not exists (select from inventory.reorder_alerts a
                        where a.item_id = r.item_id and a.location_id = r.location_id and a.recovered_at is null)
    on conflict do nothing
    returning alert_id
  )
  select (select pg_catalog.count(*) from levels)::integer, (select pg_catalog.count(*) from opened)::integer,
         (select pg_catalog.count(*) from escalated)::integer, (select pg_catalog.count(*) from resolved)::integer
    into v_result.levels_checked, v_result.opened, v_result.escalated, v_result.resolved;
  if v_result.opened > 0 or v_result.escalated > 0 then
    perform pg_catalog.pg_notify('inventory_alerts', pg_catalog.jsonb_build_object(
      'event', 'refreshed', 'opened', v_result.opened, 'escalated', v_result.escalated)::text);
  end if;
  return v_result;
end
$$;
comment on function inventory.refresh_reorder_alerts(bigint[], bigint[]) is 'Set-based re-evaluation of the reorder alerts of many levels (caller holds their locks).';

create function inventory.check_reorder_points() returns inventory_api.reorder_check
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('scheduler');
  -- One pass at a time; levels with a policy are share-locked in the global order so no movement
  -- changes them while their alerts are re-evaluated.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('inventory.check_reorder_points'));
  perform from inventory.stock_levels s
   where s.has_stock_policy
   order by s.item_id, s.location_id
     for share;
  return inventory.refresh_reorder_alerts(null, null);
end
$$;
comment on function inventory.check_reorder_points() is 'Implements inventory_api.check_reorder_points.';

-- -- stock policies ----------------------------------------------------------------------------------

create function inventory.stock_policy_result(item_id bigint, location_id bigint) returns inventory_api.stock_policy
language sql stable
set search_path = ''
as $$
  select row(i.sku, l.code, p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level,
             p.lead_time_days, p.updated_by, p.updated_at)::inventory_api.stock_policy
    from inventory.stock_policies p
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id
   where p.item_id = stock_policy_result.item_id and p.location_id = stock_policy_result.location_id
$$;
comment on function inventory.stock_policy_result(bigint, bigint) is 'The public view of one stock policy.';

create function inventory.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric,
                                           reorder_quantity numeric, max_stock_level numeric,
                                           lead_time_days integer)
returns inventory_api.stock_policy
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
begin
  v_item := inventory.item_for_sku(set_stock_policy.sku);
  v_location_id := inventory.location_for_code(set_stock_policy.location);
  perform inventory.authorize('admin', v_location_id);
  if set_stock_policy.reorder_point is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'reorder_point is required',
      pg_catalog.jsonb_build_object('argument', 'reorder_point', 'value', null));
  end if;
  perform inventory.check_level_quantity(set_stock_policy.reorder_point, 'reorder_point');
  if set_stock_policy.safety_stock is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'safety_stock is required',
      pg_catalog.jsonb_build_object('argument', 'safety_stock', 'value', null));
  end if;
  perform inventory.check_level_quantity(set_stock_policy.safety_stock, 'safety_stock');
  if set_stock_policy.safety_stock > set_stock_policy.reorder_point then
    perform inventory.raise_error('INVALID_ARGUMENT', 'safety_stock must not exceed reorder_point',
      pg_catalog.jsonb_build_object('argument', 'safety_stock', 'problem', 'above reorder_point'));
  end if;
  if set_stock_policy.reorder_quantity is not null then
    perform inventory.check_quantity(set_stock_policy.reorder_quantity, 'reorder_quantity');
  end if;
  if set_stock_policy.max_stock_level is not null then
    perform inventory.check_quantity(set_stock_policy.max_stock_level, 'max_stock_level');
    if set_stock_policy.max_stock_level < set_stock_policy.reorder_point then
      perform inventory.raise_error('INVALID_ARGUMENT', 'max_stock_level must not be below reorder_point',
        pg_catalog.jsonb_build_object('argument', 'max_stock_level', 'problem', 'below reorder_point'));
    end if;
  end if;
  if set_stock_policy.lead_time_days is not null and set_stock_policy.lead_time_days not between 0 and 3650 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'lead_time_days must be between 0 and 3650',
      pg_catalog.jsonb_build_object('argument', 'lead_time_days', 'problem', 'out of range'));
  end if;

  -- The level first (global lock order), then the policy, then its alert.
  insert into inventory.stock_levels (item_id, location_id, has_stock_policy)
  values (v_item.item_id, v_location_id, true)
  on conflict do nothing;
  select * into v_level from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id
     for update;
  insert into inventory.stock_policies as p (item_id, location_id, reorder_point, safety_stock, reorder_quantity,
                                             max_stock_level, lead_time_days, updated_by)
  values (v_item.item_id, v_location_id, set_stock_policy.reorder_point, set_stock_policy.safety_stock,
          set_stock_policy.reorder_quantity, set_stock_policy.max_stock_level, set_stock_policy.lead_time_days,
          inventory.current_actor())
  on conflict (item_id, location_id) do update
     set reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock,
         reorder_quantity = excluded.reorder_quantity, max_stock_level = excluded.max_stock_level,
         lead_time_days = excluded.lead_time_days, updated_by = excluded.updated_by, updated_at = pg_catalog.now()
   where (p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level, p.lead_time_days)
         is distinct from (excluded.reorder_point, excluded.safety_stock, excluded.reorder_quantity,
                           excluded.max_stock_level, excluded.lead_time_days);
  if not v_level.has_stock_policy then
    update inventory.stock_levels s set has_stock_policy = true
     where s.item_id = v_item.item_id and s.location_id = v_location_id;
  end if;
  perform inventory.evaluate_reorder_alert(v_item.item_id, v_location_id, v_level.on_hand - v_level.reserved);
  return inventory.stock_policy_result(v_item.item_id, v_location_id);
end
$$;
comment on function inventory.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer) is 'Implements inventory_api.set_stock_policy.';

-- -- row level security and the audit log on the new tables ------------------------------------------

do $stock_control$
declare
  v_table text;
begin
  foreach v_table in array array['reason_codes', 'cycle_counts', 'adjustments', 'stock_policies',
                                 'reorder_alerts'] loop
    execute pg_catalog.format('alter table inventory.%I enable row level security', v_table);
    perform inventory.audit_table(v_table);
  end loop;
end
$stock_control$;

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
comment on policy reason_codes_viewer_select on inventory.reason_codes is 'Reason codes are visible to anyone holding a business role.';
comment on policy cycle_counts_viewer_select on inventory.cycle_counts is 'Only counts at the locations the caller may see.';
comment on policy adjustments_viewer_select on inventory.adjustments is 'Only adjustments at the locations the caller may see.';
comment on policy stock_policies_viewer_select on inventory.stock_policies is 'Only policies at the locations the caller may see.';
comment on policy reorder_alerts_viewer_select on inventory.reorder_alerts is 'Only alerts at the locations the caller may see.';

-- 49_stock_control_import.sql
-- Bulk import of items and stock policies, one batch (a JSON array of up to 10000 rows) per call.
-- Set-based: each batch is validated, its valid rows applied and its rejected rows returned with the
-- reason, in one statement sequence of one transaction, so a batch is never half applied. Rows may
-- carry "row" (the line number in the source file) to name them in the report.

-- The JSON text of a field, trimmed; empty strings are null (CSV has no nulls).
create function inventory.import_field(value jsonb, field text) returns text
language sql immutable parallel safe
begin atomic
  select nullif(pg_catalog.btrim(import_field.value ->> import_field.field), '');
end;
comment on function inventory.import_field(jsonb, text) is 'A trimmed text field of an import row; empty means null.';

-- Whether text is a decimal with at most 4 decimals between 0 and 1e12 (checked before any cast).
create function inventory.import_quantity_is_valid(value text, allow_zero boolean) returns boolean
language sql immutable parallel safe
begin atomic
  select import_quantity_is_valid.value ~ '^[0-9]{1,13}(\.[0-9]{1,4})?$'
         and case when import_quantity_is_valid.value ~ '^[0-9]{1,13}(\.[0-9]{1,4})?$'
                  then import_quantity_is_valid.value::numeric <= 1000000000000
                       and (import_quantity_is_valid.allow_zero or import_quantity_is_valid.value::numeric > 0)
                  else false end;
end;
comment on function inventory.import_quantity_is_valid(text, boolean) is 'Whether an import field is a quantity: 0 (when allowed) or > 0, at most 1e12, at most 4 decimals.';

create function inventory.check_import_batch(rows jsonb) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if check_import_batch.rows is null or pg_catalog.jsonb_typeof(check_import_batch.rows) <> 'array'
     or pg_catalog.jsonb_array_length(check_import_batch.rows) not between 1 and 10000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'rows must be a JSON array of 1 to 10000 objects',
      pg_catalog.jsonb_build_object('argument', 'rows', 'problem', 'not an array of 1 to 10000 rows'));
  end if;
end
$$;
comment on function inventory.check_import_batch(jsonb) is 'Raises INVALID_ARGUMENT unless the batch is a JSON array of 1 to 10000 rows.';

create function inventory.import_items(rows jsonb) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_actor text := inventory.current_actor();
  v_result jsonb;
begin
  perform inventory.authorize('admin');
  perform inventory.check_import_batch(import_items.rows);
  with input as (
    select e.n, e.v,
           coalesce(case when pg_catalog.jsonb_typeof(e.v -> 'row') = 'number' then (e.v ->> 'row')::numeric::bigint end,
                    e.n) as row_number,
           case when pg_catalog.jsonb_typeof(e.v) = 'object' then inventory.import_field(e.v, 'sku') end as sku,
           case when pg_catalog.jsonb_typeof(e.v) = 'object' then inventory.import_field(e.v, 'name') end as name,
           case when pg_catalog.jsonb_typeof(e.v) = 'object'
                then coalesce(inventory.import_field(e.v, 'unit_of_measure'), 'each') end as uom,
           case when pg_catalog.jsonb_typeof(e.v) = 'object' then inventory.import_field(e.v, 'unit_cost') end as cost,
           case when pg_catalog.jsonb_typeof(e.v) = 'object'
                then pg_catalog.lower(inventory.import_field(e.v, 'track_lots')) end as lots,
           case when pg_catalog.jsonb_typeof(e.v) = 'object'
                then coalesce(inventory.import_field(e.v, 'status'), 'active') end as status
      from pg_catalog.jsonb_array_elements(import_items.rows) with ordinality as e (v, n)
  ), checked as (
    select i.*,
           case
             when pg_catalog.jsonb_typeof(i.v) <> 'object' then 'row is not an object'
             when i.sku is null then 'sku is required'
             when i.sku !~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$'
               then 'sku must be 1-64 letters, digits or . _ : / # + - (starting with a letter or digit)'
             when i.name is null then 'name is required'
             when pg_catalog.length(i.name) > 200 or i.name ~ '[[:cntrl:]]'
               then 'name must be 1 to 200 printable characters'
             when i.uom !~ '^[a-z][a-z0-9_]{0,19}$' then 'unit_of_measure must be lower-case letters, digits or _'
             when i.cost is not null and not inventory.import_quantity_is_valid(i.cost, true)
               then 'unit_cost must be a number between 0 and 1e12 with at most 4 decimals'
             when i.lots is not null and i.lots not in ('true', 'false', 't', 'f', 'yes', 'no', '1', '0')
               then 'track_lots must be true or false'
             when i.status not in ('active', 'on_hold', 'discontinued')
               then 'status must be active, on_hold or discontinued'
             when pg_catalog.count(*) over (partition by i.sku) > 1
                  and pg_catalog.row_number() over (partition by i.sku order by i.n) > 1
               then 'duplicate sku in the batch'
           end as problem
      from input i
  ), typed as (
    select c.n, c.row_number, c.sku, c.name, c.uom, c.cost::numeric(19, 4) as cost,
           coalesce(c.lots in ('true', 't', 'yes', '1'), false) as lots, c.status
      from checked c where c.problem is null
  ), existing as (
    select t.n,
           case when it.deleted_at is not null then 'sku belongs to a deleted item'
                when (it.name, it.unit_of_measure, it.unit_cost, it.status, it.track_lots)
                     is distinct from (t.name, t.uom, coalesce(t.cost, it.unit_cost), t.status, t.lots)
                  then 'an item with this sku exists with other attributes' end as problem
      from typed t join inventory.items it on it.sku = t.sku
  ), inserted as (
    insert into inventory.items (sku, name, unit_of_measure, unit_cost, status, track_lots, created_by)
    select t.sku, t.name, t.uom, t.cost, t.status, t.lots, v_actor
      from typed t
     where not exists (select from existing x where x.n = t.n)
     order by t.sku
    on conflict (sku) do nothing
    returning sku
  ), rejected as (
    select c.row_number, c.sku, 'INVALID_ARGUMENT' as code, c.problem as reason from checked c where c.problem is not null
    union all
    select t.row_number, t.sku, 'ALREADY_EXISTS', x.problem from existing x join typed t on t.n = x.n
     where x.problem is not null
    union all
    select t.row_number, t.sku, 'ALREADY_EXISTS', 'an item with this sku was created concurrently'
      from typed t
     where not exists (select from existing x where x.n = t.n)
       and not exists (select from inserted d where d.sku = t.sku)
  )
  select pg_catalog.jsonb_build_object(
           'received', pg_catalog.jsonb_array_length(import_items.rows),
           'inserted', (select pg_catalog.count(*) from inserted),
           'unchanged', (select pg_catalog.count(*) from existing x where x.problem is null),
           'updated', 0,
           'rejected', coalesce((select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                          'row', r.row_number, 'key', r.sku, 'code', r.code, 'reason', r.reason)
                                        order by r.row_number)
                                   from rejected r), '[]'::jsonb))
    into v_result;
  return v_result;
end
$$;
comment on function inventory.import_items(jsonb) is 'Implements inventory_api.import_items.';

create type inventory.policy_import_row as (
  n bigint, row_number bigint, sku text, location text, item_id bigint, location_id bigint,
  reorder_point numeric, safety_stock numeric, reorder_quantity numeric, max_stock_level numeric,
  lead_time_days integer, problem text, code text);
comment on type inventory.policy_import_row is 'One validated row of a stock policy import batch (problem null when valid).';

create function inventory.import_stock_policies(rows jsonb) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_actor text := inventory.current_actor();
  v_result jsonb;
  v_check inventory_api.reorder_check;
  v_rows inventory.policy_import_row[];
begin
  if not inventory.holds_role_somewhere('admin') then
    perform inventory.authorize('admin');
  end if;
  perform inventory.check_import_batch(import_stock_policies.rows);

  with input as (
    select e.n, e.v,
           coalesce(case when pg_catalog.jsonb_typeof(e.v -> 'row') = 'number' then (e.v ->> 'row')::numeric::bigint end,
                    e.n) as row_number,
           pg_catalog.jsonb_typeof(e.v) = 'object' as is_object
      from pg_catalog.jsonb_array_elements(import_stock_policies.rows) with ordinality as e (v, n)
  ), fields as (
    select i.n, i.row_number, i.is_object,
           case when i.is_object then inventory.import_field(i.v, 'sku') end as sku,
           case when i.is_object then coalesce(inventory.import_field(i.v, 'location'), 'main') end as location,
           case when i.is_object then inventory.import_field(i.v, 'reorder_point') end as reorder_point,
           case when i.is_object then inventory.import_field(i.v, 'safety_stock') end as safety_stock,
           case when i.is_object then inventory.import_field(i.v, 'reorder_quantity') end as reorder_quantity,
           case when i.is_object then inventory.import_field(i.v, 'max_stock_level') end as max_stock_level,
           case when i.is_object then inventory.import_field(i.v, 'lead_time_days') end as lead_time_days
      from input i
  ), resolved as (
    select f.*, it.item_id, l.location_id
      from fields f
      left join inventory.items it on it.sku = f.sku and it.deleted_at is null
      left join inventory.locations l on l.code = f.location
  ), allowed as materialized (
    select d.location_id, inventory.is_allowed('admin', d.location_id) as allowed
      from (select distinct r.location_id from resolved r where r.location_id is not null) d
  ), checked as (
    select r.*,
           case
             when not r.is_object then 'row is not an object'
             when r.sku is null then 'sku is required'
             when r.item_id is null then 'no item with this sku'
             when r.location_id is null then 'no location with this code'
             when not a.allowed then 'permission denied: needs the admin role for this location'
             when r.reorder_point is null or not inventory.import_quantity_is_valid(r.reorder_point, true)
               then 'reorder_point must be a number between 0 and 1e12 with at most 4 decimals'
             when r.safety_stock is null or not inventory.import_quantity_is_valid(r.safety_stock, true)
               then 'safety_stock must be a number between 0 and 1e12 with at most 4 decimals'
             when r.reorder_quantity is not null and not inventory.import_quantity_is_valid(r.reorder_quantity, false)
               then 'reorder_quantity must be a number greater than 0 and at most 1e12 with at most 4 decimals'
             when r.max_stock_level is not null and not inventory.import_quantity_is_valid(r.max_stock_level, false)
               then 'max_stock_level must be a number greater than 0 and at most 1e12 with at most 4 decimals'
             when r.lead_time_days is not null and r.lead_time_days !~ '^[0-9]{1,4}$'
               then 'lead_time_days must be a whole number between 0 and 3650'
           end as problem,
           case
             when r.is_object and r.sku is not null and r.item_id is null then 'PRODUCT_NOT_FOUND'
             when r.is_object and r.sku is not null and r.location_id is null then 'LOCATION_NOT_FOUND'
             when r.is_object and r.sku is not null and not a.allowed then 'PERMISSION_DENIED'
           end as code
      from resolved r left join allowed a on a.location_id = r.location_id
  ), typed as (
    select c.n, c.row_number, c.sku, c.location, c.item_id, c.location_id,
           case when c.problem is null then c.reorder_point::numeric end as reorder_point,
           case when c.problem is null then c.safety_stock::numeric end as safety_stock,
           case when c.problem is null then c.reorder_quantity::numeric end as reorder_quantity,
           case when c.problem is null then c.max_stock_level::numeric end as max_stock_level,
           case when c.problem is null then c.lead_time_days::integer end as lead_time_days,
           c.problem, coalesce(c.code, case when c.problem is not null then 'INVALID_ARGUMENT' end) as code
      from checked c
  ), final as (
    select t.n, t.row_number, t.sku, t.location, t.item_id, t.location_id, t.reorder_point, t.safety_stock,
           t.reorder_quantity, t.max_stock_level, t.lead_time_days,
           coalesce(t.problem, case
             when t.safety_stock > t.reorder_point then 'safety_stock must not exceed reorder_point'
             when t.max_stock_level < t.reorder_point then 'max_stock_level must not be below reorder_point'
             when t.lead_time_days > 3650 then 'lead_time_days must be a whole number between 0 and 3650'
             when pg_catalog.row_number() over (partition by t.item_id, t.location_id, t.problem is null
                                                order by t.n) > 1
               then 'duplicate sku and location in the batch' end) as problem,
           t.code
      from typed t
  )
  select pg_catalog.array_agg(row(f.n, f.row_number, f.sku, f.location, f.item_id, f.location_id, f.reorder_point,
                                  f.safety_stock, f.reorder_quantity, f.max_stock_level, f.lead_time_days, f.problem,
                                  case when f.problem is not null then coalesce(f.code, 'INVALID_ARGUMENT') end
                                 )::inventory.policy_import_row order by f.n)
    into v_rows
    from final f;

  -- Levels first, in the global lock order, then policies, then alerts.
  insert into inventory.stock_levels (item_id, location_id, has_stock_policy)
  select distinct s.item_id, s.location_id, true from pg_catalog.unnest(v_rows) s where s.problem is null
  order by 1, 2
  on conflict do nothing;
  perform from inventory.stock_levels l
    join pg_catalog.unnest(v_rows) s on s.item_id = l.item_id and s.location_id = l.location_id
   where s.problem is null
   order by l.item_id, l.location_id
     for update of l;

  insert into inventory.stock_policies as p (item_id, location_id, reorder_point, safety_stock, reorder_quantity,
                                             max_stock_level, lead_time_days, updated_by)
  select s.item_id, s.location_id, s.reorder_point, s.safety_stock, s.reorder_quantity, s.max_stock_level,
         s.lead_time_days, v_actor
    from pg_catalog.unnest(v_rows) s
   where s.problem is null
   order by s.item_id, s.location_id
  on conflict (item_id, location_id) do update
     set reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock,
         reorder_quantity = excluded.reorder_quantity, max_stock_level = excluded.max_stock_level,
         lead_time_days = excluded.lead_time_days, updated_by = excluded.updated_by, updated_at = pg_catalog.now()
   where (p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level, p.lead_time_days)
         is distinct from (excluded.reorder_point, excluded.safety_stock, excluded.reorder_quantity,
                           excluded.max_stock_level, excluded.lead_time_days);
  update inventory.stock_levels l set has_stock_policy = true
    from pg_catalog.unnest(v_rows) s
   where s.problem is null and s.item_id = l.item_id and s.location_id = l.location_id and not l.has_stock_policy;
  v_check := inventory.refresh_reorder_alerts(
    array(select s.item_id from pg_catalog.unnest(v_rows) s where s.problem is null order by s.n),
    array(select s.location_id from pg_catalog.unnest(v_rows) s where s.problem is null order by s.n));

  select pg_catalog.jsonb_build_object(
           'received', pg_catalog.jsonb_array_length(import_stock_policies.rows),
           'applied', (select pg_catalog.count(*) from pg_catalog.unnest(v_rows) s where s.problem is null),
           'alerts_opened', v_check.opened,
           'rejected', coalesce((select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                          'row', s.row_number, 'key', s.sku || '@' || s.location, 'code', s.code,
                                          'reason', s.problem) order by s.row_number)
                                   from pg_catalog.unnest(v_rows) s where s.problem is not null), '[]'::jsonb))
    into v_result;
  return v_result;
end
$$;
comment on function inventory.import_stock_policies(jsonb) is 'Implements inventory_api.import_stock_policies.';

-- 50_policies.sql
-- Row level security on every table. API roles never write tables directly (every change goes
-- through the SECURITY DEFINER functions, which authorise the caller themselves and run as the
-- table owner), so the only policies are for reading: the catalogue for anyone with a business
-- role, stock rows for the locations the caller may see. Tables without a policy have no grants
-- to API roles at all (settings, user_roles, idempotency_keys, audit_log, audit_chain).
-- Identity functions are called as (select ...) so they run once per statement, not per row.
-- RLS is not FORCEd: the owner (the definer functions) must see every row to check invariants.

do $rls$
declare
  v_table text;
begin
  foreach v_table in array array['error_codes', 'settings', 'items', 'locations', 'user_roles', 'stock_levels',
                                 'ledger', 'reservations', 'returns', 'idempotency_keys', 'audit_log',
                                 'audit_chain'] loop
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
create policy reservations_viewer_select on inventory.reservations for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy ledger_viewer_select on inventory.ledger for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy returns_viewer_select on inventory.returns for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));

comment on policy error_codes_viewer_select on inventory.error_codes is 'The error catalogue is public to every pyinv role.';
comment on policy items_viewer_select on inventory.items is 'The catalogue is visible to anyone holding a business role.';
comment on policy locations_viewer_select on inventory.locations is 'Only the locations the caller may see.';
comment on policy stock_levels_viewer_select on inventory.stock_levels is 'Only stock at the locations the caller may see.';
comment on policy reservations_viewer_select on inventory.reservations is 'Only holds at the locations the caller may see.';
comment on policy ledger_viewer_select on inventory.ledger is 'Only movements at the locations the caller may see.';
comment on policy returns_viewer_select on inventory.returns is 'Only returns at the locations the caller may see.';

-- 60_api.sql
-- The public API: security_invoker views and SECURITY INVOKER functions in inventory_api.
-- Each function is a thin SQL wrapper over its SECURITY DEFINER implementation in the private schema,
-- so PostgREST and linters see no definer code in the exposed schema. Parameter names and defaults
-- here are the public contract (PostgREST calls them with named arguments).

create view inventory_api.items with (security_invoker = true) as
  select i.sku, i.name, i.unit_of_measure, i.unit_cost, i.status, i.track_lots, i.created_at, i.updated_at
    from inventory.items i
   where i.deleted_at is null;
comment on view inventory_api.items is 'The catalogue (deleted items excluded).';

create view inventory_api.locations with (security_invoker = true) as
  select l.code, l.name, l.created_at from inventory.locations l;
comment on view inventory_api.locations is 'Stock locations.';

create view inventory_api.stock_levels with (security_invoker = true) as
  select i.sku, l.code as location, s.on_hand, s.reserved,
         s.available + coalesce(o.overdue, 0) as available,
         coalesce(o.overdue, 0) as expired_unreleased,
         i.status, s.version, s.updated_at
    from inventory.stock_levels s
    join inventory.items i on i.item_id = s.item_id
    join inventory.locations l on l.location_id = s.location_id
    left join lateral (
      select pg_catalog.sum(r.quantity - r.quantity_fulfilled) as overdue
        from inventory.reservations r
       where r.item_id = s.item_id and r.location_id = s.location_id
         and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()) o on true
   where i.deleted_at is null;
comment on view inventory_api.stock_levels is 'Stock per item and location. available already counts overdue holds as released (expired_unreleased of them are not swept yet), so available = on_hand - reserved + expired_unreleased.';

create view inventory_api.reservations with (security_invoker = true) as
  select r.reservation_id, r.order_ref, i.sku, l.code as location, r.quantity, r.quantity_fulfilled,
         case when r.status = 'ACTIVE' then r.quantity - r.quantity_fulfilled else 0 end as quantity_open,
         r.status, r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now() as is_overdue,
         r.expires_at, r.created_by, r.created_at, r.closed_at
    from inventory.reservations r
    join inventory.items i on i.item_id = r.item_id
    join inventory.locations l on l.location_id = r.location_id;
comment on view inventory_api.reservations is 'Holds of stock for orders. is_overdue: still ACTIVE but past expires_at, so it no longer counts and cannot be fulfilled.';

create view inventory_api.stock_movements with (security_invoker = true) as
  select g.movement_id, g.movement_type::text as movement_type, i.sku, l.code as location, g.on_hand_delta, g.reserved_delta,
         g.on_hand_before, g.on_hand_after, g.reserved_before, g.reserved_after, g.actor, g.reason,
         g.reference, g.idempotency_key, g.related_movement_id, g.reservation_id, g.metadata, g.created_at
    from inventory.ledger g
    join inventory.items i on i.item_id = g.item_id
    join inventory.locations l on l.location_id = g.location_id;
comment on view inventory_api.stock_movements is 'The ledger: every stock movement, append-only.';

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

create function inventory_api.create_item(sku text, name text, unit_of_measure text default 'each',
                                          unit_cost numeric default null, track_lots boolean default false)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_item(create_item.sku, create_item.name, create_item.unit_of_measure,
                                      create_item.unit_cost, create_item.track_lots);
end;
comment on function inventory_api.create_item(text, text, text, numeric, boolean) is
'Create an item.
Idempotent by SKU: the same attributes again return the item; other attributes raise ALREADY_EXISTS (PT409).';

create function inventory_api.set_item_status(sku text, status text)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_item_status(set_item_status.sku, set_item_status.status);
end;
comment on function inventory_api.set_item_status(text, text) is
'Set an item''s status: active, on_hold or discontinued.
on_hold and discontinued items cannot be reserved; discontinued items cannot be received.';

create function inventory_api.create_location(code text, name text)
returns inventory_api.location
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_location(create_location.code, create_location.name);
end;
comment on function inventory_api.create_location(text, text) is
'Create a stock location.
Idempotent by code: the same name again returns it; another name raises ALREADY_EXISTS (PT409).';

create function inventory_api.receive_stock(sku text, quantity numeric, location text default 'main',
                                            reference text default null, unit_cost numeric default null,
                                            idempotency_key text default null)
returns inventory_api.stock_level
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.receive_stock(receive_stock.sku, receive_stock.quantity, receive_stock.location,
                                        receive_stock.reference, receive_stock.unit_cost,
                                        receive_stock.idempotency_key);
end;
comment on function inventory_api.receive_stock(text, numeric, text, text, numeric, text) is
'Receive units into stock: on_hand += quantity.
Writes a RECEIVE movement. unit_cost, when given, updates the item''s moving-average cost.';

create function inventory_api.reserve_stock(sku text, quantity numeric, order_ref text,
                                            location text default 'main', expires_in interval default null,
                                            idempotency_key text default null)
returns inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_stock(reserve_stock.sku, reserve_stock.quantity, reserve_stock.order_ref,
                                        reserve_stock.location, reserve_stock.expires_in,
                                        reserve_stock.idempotency_key);
end;
comment on function inventory_api.reserve_stock(text, numeric, text, text, interval, text) is
'Hold stock for an order, atomically: never more than is available.
expires_in defaults to the configured TTL (24 hours). Raises INSUFFICIENT_STOCK (PT409) with the available quantity in DETAIL.';

create function inventory_api.reserve_order(order_ref text, lines jsonb, expires_in interval default null,
                                            idempotency_key text default null)
returns setof inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_order(reserve_order.order_ref, reserve_order.lines,
                                        reserve_order.expires_in, reserve_order.idempotency_key);
end;
comment on function inventory_api.reserve_order(text, jsonb, interval, text) is
'Hold every line of an order, or none.
lines: [{"sku": "A1", "quantity": 2, "location": "main"}]. Duplicate lines are merged; rows are locked in a fixed order so concurrent orders never deadlock; INSUFFICIENT_STOCK lists every short line.';

create function inventory_api.fulfill_order(order_ref text, sku text default null, quantity numeric default null,
                                            idempotency_key text default null)
returns setof inventory_api.reservation_change
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.fulfill_order(fulfill_order.order_ref, fulfill_order.sku, fulfill_order.quantity,
                                        fulfill_order.idempotency_key);
end;
comment on function inventory_api.fulfill_order(text, text, numeric, text) is
'Ship held stock: on_hand and reserved both fall.
Without sku, ships every hold of the order; with sku and quantity, ships that much first-in first-out and keeps the rest held. Overdue holds raise RESERVATION_EXPIRED.';

create function inventory_api.cancel_reservation(order_ref text, sku text default null,
                                                 idempotency_key text default null)
returns setof inventory_api.reservation_change
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.cancel_reservation(cancel_reservation.order_ref, cancel_reservation.sku,
                                             cancel_reservation.idempotency_key);
end;
comment on function inventory_api.cancel_reservation(text, text, text) is
'Release the active holds of an order (or of one SKU in it).
Holds already past expiry are recorded as EXPIRE, the rest as RELEASE.';

create function inventory_api.process_return(order_ref text, sku text, quantity numeric, reason text,
                                             restock boolean default true, location text default 'main',
                                             idempotency_key text default null)
returns inventory_api.stock_return
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.process_return(process_return.order_ref, process_return.sku, process_return.quantity,
                                         process_return.reason, process_return.restock, process_return.location,
                                         process_return.idempotency_key);
end;
comment on function inventory_api.process_return(text, text, numeric, text, boolean, text, text) is
'Record units a customer sent back; with restock, they go back on hand (RETURN movement).
Never more than was shipped for that order and SKU and not yet returned (QUANTITY_MISMATCH).';

create function inventory_api.validate_stock(sku text, quantity numeric, location text default 'main')
returns inventory_api.stock_check
language sql stable
set search_path = ''
begin atomic
  select * from inventory.validate_stock(validate_stock.sku, validate_stock.quantity, validate_stock.location);
end;
comment on function inventory_api.validate_stock(text, numeric, text) is
'Check whether a quantity could be reserved now, without reserving it.
Returns can_fulfill, the available quantity and, when it cannot, the error code reserve_stock would raise.';

create function inventory_api.expire_reservations(batch_size integer default 1000)
returns integer
language sql volatile
set search_path = ''
begin atomic
  select inventory.expire_reservations(expire_reservations.batch_size);
end;
comment on function inventory_api.expire_reservations(integer) is
'Release up to batch_size overdue holds, writing EXPIRE movements; returns how many.
Uses SKIP LOCKED, so several sessions may run it at once. Call it until it returns less than batch_size.';

create function inventory_api.verify_inventory()
returns setof inventory_api.invariant_violation
language sql stable
set search_path = ''
begin atomic
  select * from inventory.verify_inventory();
end;
comment on function inventory_api.verify_inventory() is
'List every broken invariant; no rows means the books balance.
Checks: stock levels equal their ledger sums, the ledger is continuous, reserved equals active holds, nothing negative or oversold, returns within shipped.';

create function inventory_api.grant_user_role(user_id text, role text, location text default null)
returns inventory_api.user_role
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.grant_user_role(grant_user_role.user_id, grant_user_role.role, grant_user_role.location);
end;
comment on function inventory_api.grant_user_role(text, text, text) is
'Give a user (JWT sub, or a login name) a business role: viewer, operator, admin or scheduler.
location limits the role to one location; null means every location. Admins only.';

create function inventory_api.revoke_user_role(user_id text, role text, location text default null)
returns integer
language sql volatile
set search_path = ''
begin atomic
  select inventory.revoke_user_role(revoke_user_role.user_id, revoke_user_role.role, revoke_user_role.location);
end;
comment on function inventory_api.revoke_user_role(text, text, text) is
'Take a business role away from a user; returns how many grants were removed. Admins only.';

create function inventory_api.seal_audit_log(batch_size integer default 10000)
returns integer
language sql volatile
set search_path = ''
begin atomic
  select inventory.seal_audit_log(seal_audit_log.batch_size);
end;
comment on function inventory_api.seal_audit_log(integer) is
'Append up to batch_size committed audit rows to the hash chain; returns how many.
Self-locking: a concurrent call returns 0 at once. Call it until it returns less than batch_size.';

create function inventory_api.verify_audit_chain()
returns setof inventory_api.chain_break
language sql stable
set search_path = ''
begin atomic
  select * from inventory.verify_audit_chain();
end;
comment on function inventory_api.verify_audit_chain() is
'Report the first broken link of the audit hash chain; no rows means the chain is intact.';

-- 62_stock_control_api.sql
-- The public stock control API: views and thin wrappers over the SECURITY DEFINER implementations
-- of 48_stock_control.sql and 49_stock_control_import.sql.

create view inventory_api.reason_codes with (security_invoker = true) as
  select r.reason_code, r.description, r.requires_approval, r.approval_threshold from inventory.reason_codes r;
comment on view inventory_api.reason_codes is 'Adjustment reasons: an adjustment needs approval when requires_approval and |quantity_delta| > approval_threshold.';

create view inventory_api.adjustments with (security_invoker = true) as
  select a.adjustment_id, i.sku, l.code as location, a.quantity_delta, a.adjustment_type, a.reason_code,
         a.description, a.status, a.requires_approval, a.on_hand_at_request, a.count_id, a.requested_by,
         a.requested_at, a.decided_by, a.decided_at, a.decision_note, a.on_hand_at_apply, a.movement_id
    from inventory.adjustments a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id;
comment on view inventory_api.adjustments is 'History of stock adjustments: PENDING, APPLIED (no approval needed), APPROVED, REJECTED or SUPERSEDED (by a newer count).';

create view inventory_api.cycle_counts with (security_invoker = true) as
  select c.count_id, i.sku, l.code as location, c.counted_quantity, c.on_hand_at_count, c.reserved_at_count,
         c.difference, a.adjustment_id, a.status as adjustment_status, c.counted_by, c.counted_at
    from inventory.cycle_counts c
    join inventory.items i on i.item_id = c.item_id
    join inventory.locations l on l.location_id = c.location_id
    left join inventory.adjustments a on a.count_id = c.count_id;
comment on view inventory_api.cycle_counts is 'Physical counts, the on_hand each was compared with, and the adjustment each produced.';

create view inventory_api.stock_policies with (security_invoker = true) as
  select i.sku, l.code as location, p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level,
         p.lead_time_days, p.updated_by, p.updated_at
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

create function inventory_api.create_adjustment(sku text, quantity_delta numeric, adjustment_type text,
                                                reason_code text, location text default 'main',
                                                description text default null, idempotency_key text default null)
returns inventory_api.adjustment
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_adjustment(create_adjustment.sku, create_adjustment.quantity_delta,
                                            create_adjustment.adjustment_type, create_adjustment.reason_code,
                                            create_adjustment.location, create_adjustment.description,
                                            create_adjustment.idempotency_key);
end;
comment on function inventory_api.create_adjustment(text, numeric, text, text, text, text, text) is
'Request a change of on_hand outside the order lifecycle (operators, for their locations).
adjustment_type: physical_count, damage, correction, write_off or found; reason_code from inventory_api.reason_codes. Applied at once (status APPLIED, an ADJUST movement) when the reason needs no approval at this size, else PENDING until an admin decides (approve_adjustment). Raises INSUFFICIENT_STOCK when applying it would leave less on hand than is reserved.';

create function inventory_api.approve_adjustment(adjustment_id bigint, decision text, note text default null)
returns inventory_api.adjustment
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.approve_adjustment(approve_adjustment.adjustment_id, approve_adjustment.decision,
                                             approve_adjustment.note);
end;
comment on function inventory_api.approve_adjustment(bigint, text, text) is
'Decide a PENDING adjustment: decision approved (applies its delta through the ledger as ADJUST) or rejected. Admins only, never the requester (SELF_APPROVAL_FORBIDDEN, PT409); a decided adjustment raises INVALID_STATE (PT409); INSUFFICIENT_STOCK when on_hand would fall below reserved.';

create function inventory_api.record_count(sku text, counted_quantity numeric, location text default 'main')
returns inventory_api.stock_count
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.record_count(record_count.sku, record_count.counted_quantity, record_count.location);
end;
comment on function inventory_api.record_count(text, numeric, text) is
'Record a physical count: sets last_counted_at/by and, when it differs from on_hand, creates a physical_count adjustment for the difference (applied at once when small, else PENDING).
The difference is taken under the level''s lock and stored as a delta, applied to whatever on_hand is at approval; a newer count supersedes older pending count differences.';

create function inventory_api.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
                                             reference text default null, idempotency_key text default null)
returns inventory_api.stock_transfer
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.transfer_stock(transfer_stock.sku, transfer_stock.quantity, transfer_stock.from_location,
                                         transfer_stock.to_location, transfer_stock.reference,
                                         transfer_stock.idempotency_key);
end;
comment on function inventory_api.transfer_stock(text, numeric, text, text, text, text) is
'Move available units between two locations atomically: a TRANSFER_OUT and a TRANSFER_IN movement, the second linked to the first by related_movement_id. Never more than is available (INSUFFICIENT_STOCK); levels are locked in a fixed order, so opposite transfers never deadlock.';

create function inventory_api.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric,
                                               reorder_quantity numeric default null,
                                               max_stock_level numeric default null,
                                               lead_time_days integer default null)
returns inventory_api.stock_policy
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_stock_policy(set_stock_policy.sku, set_stock_policy.location,
                                           set_stock_policy.reorder_point, set_stock_policy.safety_stock,
                                           set_stock_policy.reorder_quantity, set_stock_policy.max_stock_level,
                                           set_stock_policy.lead_time_days);
end;
comment on function inventory_api.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer) is
'Set the replenishment policy of an item at a location (admins). From then on a reorder alert opens whenever available falls to or below reorder_point (CRITICAL at or below safety_stock) and resolves when it recovers.';

create function inventory_api.update_reorder_alert(alert_id bigint, status text, note text default null)
returns inventory_api.reorder_alert
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.update_reorder_alert(update_reorder_alert.alert_id, update_reorder_alert.status,
                                               update_reorder_alert.note);
end;
comment on function inventory_api.update_reorder_alert(bigint, text, text) is
'Acknowledge, resolve or dismiss an open reorder alert (operators of its location). A closed alert raises INVALID_STATE. An alert closed by hand is not reopened until stock has recovered once.';

create function inventory_api.check_reorder_points()
returns inventory_api.reorder_check
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.check_reorder_points();
end;
comment on function inventory_api.check_reorder_points() is
'Re-evaluate every level with a stock policy in one pass: open, raise and resolve alerts; returns the counts. Alerts are also maintained in real time by a trigger, so this is a repair or a scheduled safety net.';

create function inventory_api.import_items(rows jsonb)
returns jsonb
language sql volatile
set search_path = ''
begin atomic
  select inventory.import_items(import_items.rows);
end;
comment on function inventory_api.import_items(jsonb) is
'Create up to 10000 items in one transaction: rows [{"sku", "name", "unit_of_measure"?, "unit_cost"?, "track_lots"?, "status"?, "row"?}].
Returns {"received", "inserted", "unchanged", "rejected": [{"row", "key", "code", "reason"}]}; items that exist with the same attributes are unchanged, with other attributes rejected. Admins only.';

create function inventory_api.import_stock_policies(rows jsonb)
returns jsonb
language sql volatile
set search_path = ''
begin atomic
  select inventory.import_stock_policies(import_stock_policies.rows);
end;
comment on function inventory_api.import_stock_policies(jsonb) is
'Set up to 10000 stock policies in one transaction: rows [{"sku", "location"?, "reorder_point", "safety_stock", "reorder_quantity"?, "max_stock_level"?, "lead_time_days"?, "row"?}].
Returns {"received", "applied", "alerts_opened", "rejected": [{"row", "key", "code", "reason"}]}. Admins (rows of locations the caller does not administer are rejected).';

-- 70_grants.sql
-- Privileges: an explicit allowlist per role, re-asserted after every migration (post-apply).
-- Nothing is granted to PUBLIC, and default privileges revoke EXECUTE from PUBLIC for functions
-- created later. API roles get no table privileges beyond SELECT for viewers (filtered by row level
-- security); every change goes through the SECURITY DEFINER implementations, which authorise the
-- caller's business role and location themselves.

revoke all on all functions in schema inventory, inventory_api from public;
revoke all on all tables in schema inventory, inventory_api from public;
revoke all on all sequences in schema inventory, inventory_api from public;
revoke all on type inventory.hold_move, inventory.order_line, inventory.movement_type, inventory.audit_operation
  from public;

grant usage on schema inventory, inventory_api to inventory_viewer, inventory_scheduler;

-- Identity helpers called by the row level security policies (as the caller).
grant execute on function inventory.current_actor(), inventory.visible_location_ids(), inventory.has_any_role()
  to inventory_viewer;

-- Readers (security_invoker views read the tables as the caller, under RLS).
grant select on inventory.error_codes, inventory.items, inventory.locations, inventory.stock_levels,
                inventory.reservations, inventory.ledger, inventory.returns to inventory_viewer;
grant select on inventory_api.error_codes, inventory_api.items, inventory_api.locations, inventory_api.stock_levels,
                inventory_api.reservations, inventory_api.stock_movements, inventory_api.returns
  to inventory_viewer;
grant execute on function
  inventory_api.validate_stock(text, numeric, text), inventory.validate_stock(text, numeric, text),
  inventory_api.verify_inventory(), inventory.verify_inventory()
  to inventory_viewer;

-- Order lifecycle and receiving.
grant execute on function
  inventory_api.receive_stock(text, numeric, text, text, numeric, text),
  inventory.receive_stock(text, numeric, text, text, numeric, text),
  inventory_api.reserve_stock(text, numeric, text, text, interval, text),
  inventory.reserve_stock(text, numeric, text, text, interval, text),
  inventory_api.reserve_order(text, jsonb, interval, text), inventory.reserve_order(text, jsonb, interval, text),
  inventory_api.fulfill_order(text, text, numeric, text), inventory.fulfill_order(text, text, numeric, text),
  inventory_api.cancel_reservation(text, text, text), inventory.cancel_reservation(text, text, text),
  inventory_api.process_return(text, text, numeric, text, boolean, text, text),
  inventory.process_return(text, text, numeric, text, boolean, text, text)
  to inventory_operator;

-- Catalogue, access and audit.
grant execute on function
  inventory_api.create_item(text, text, text, numeric, boolean), inventory.create_item(text, text, text, numeric, boolean),
  inventory_api.set_item_status(text, text), inventory.set_item_status(text, text),
  inventory_api.create_location(text, text), inventory.create_location(text, text),
  inventory_api.grant_user_role(text, text, text), inventory.grant_user_role(text, text, text),
  inventory_api.revoke_user_role(text, text, text), inventory.revoke_user_role(text, text, text),
  inventory_api.verify_audit_chain(), inventory.verify_audit_chain()
  to inventory_admin;

-- Maintenance: long-running, so never exposed to PostgREST's anon/authenticated.
grant execute on function
  inventory_api.expire_reservations(integer), inventory.expire_reservations(integer),
  inventory_api.seal_audit_log(integer), inventory.seal_audit_log(integer)
  to inventory_admin, inventory_scheduler;

-- 72_stock_control_grants.sql
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

-- Admins: approvals, policies, bulk imports.
grant execute on function
  inventory_api.approve_adjustment(bigint, text, text), inventory.approve_adjustment(bigint, text, text),
  inventory_api.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer),
  inventory.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer),
  inventory_api.import_items(jsonb), inventory.import_items(jsonb),
  inventory_api.import_stock_policies(jsonb), inventory.import_stock_policies(jsonb)
  to inventory_admin;

-- The one-pass re-evaluation: unscoped admins and the scheduler (checked inside as 'scheduler').
grant execute on function inventory_api.check_reorder_points(), inventory.check_reorder_points()
  to inventory_admin, inventory_scheduler;

-- 80_supabase.sql
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

-- 99_finish.sql
-- Back to the migrating login, which records the migration in inventory_meta; tell PostgREST to
-- reload its schema cache (harmless without PostgREST).
reset role;
notify pgrst, 'reload schema';
