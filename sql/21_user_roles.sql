-- Layer 2, tables: business roles granted to users. Who may do what where is decided by
-- 30_identity_access.sql from these rows and from membership of the inventory_* group roles.

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
