-- Layer 2, tables: settings, items and locations.

create table inventory.settings (
  singleton boolean primary key default true,
  default_reservation_ttl interval default interval '24 hours',
  gateway_roles text[] not null default array['authenticator'],
  audit_seal_max_lag interval not null default interval '1 hour',
  events_enabled boolean not null default true,
  event_retention interval not null default interval '30 days',
  event_notify_interval interval not null default interval '100 milliseconds',
  constraint settings_singleton_check check (singleton),
  constraint settings_event_retention_check check (event_retention > interval '0'),
  constraint settings_event_notify_interval_check
    check (event_notify_interval >= interval '0' and event_notify_interval <= interval '1 hour'),
  constraint settings_audit_seal_max_lag_check check (audit_seal_max_lag > interval '0'),
  -- Days and time only, both positive: then now() + ttl lies after now and at most 366 days later,
  -- whatever the month, and reserve_stock need not check it on every call.
  constraint settings_default_reservation_ttl_check
    check (default_reservation_ttl is null
           or (default_reservation_ttl > interval '0' and default_reservation_ttl <= interval '366 days'
               and extract(year from default_reservation_ttl) = 0 and extract(month from default_reservation_ttl) = 0
               and extract(day from default_reservation_ttl) >= 0
               and default_reservation_ttl - pg_catalog.make_interval(days => extract(day from default_reservation_ttl)::integer)
                   >= interval '0'))
);

comment on table inventory.settings is 'Engine settings (one row).';

comment on column inventory.settings.singleton is 'Always true: the table holds exactly one row.';

comment on column inventory.settings.default_reservation_ttl is 'Lifetime of a hold when reserve_* is called without expires_in; null means holds do not expire by default.';

comment on column inventory.settings.audit_seal_max_lag is 'verify_audit_chain reports committed audit rows older than this that are not sealed yet (a sealer that is not running).';

comment on column inventory.settings.events_enabled is 'Whether changes write events (inventory_api.events) and notify the channel pyinv_events; false: nothing is written (changes made while off are never emitted).';

comment on column inventory.settings.event_notify_interval is 'How often at most events notify the channel pyinv_events: an event notifies (with its id) when none did for this long, later ones within it do not, because PostgreSQL serializes the commits of notifying transactions (every event notifying cut reservation throughput by 5/6 with 32 clients). 0: every event notifies. Followers read again shortly after each notification and poll as a fallback, so they miss nothing either way.';

comment on column inventory.settings.event_retention is 'How long events are kept: purge_events (default argument, and the daily maintenance job) deletes older ones, whether or not every consumer acknowledged them.';

comment on column inventory.settings.gateway_roles is 'Login roles (PostgREST''s authenticator) whose request.jwt.claims are trusted for the acting user.';

insert into inventory.settings default values;

-- Counts every change of a row (the API's, a DBA's): callers pass the version they read as
-- expected_version, and a change made since is a VERSION_CONFLICT instead of a lost update.
create function inventory.count_version() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.version := old.version + 1;
  return new;
end
$$;

comment on function inventory.count_version() is 'Trigger: increments the version of a changed row (optimistic locking with expected_version).';

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
  deleted_by text,
  version integer not null default 1,
  requires_qc boolean not null default false,
  constraint items_sku_format_check check (sku ~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$'),
  constraint items_name_check check (inventory.text_is_valid(name, 200)),
  constraint items_unit_of_measure_check check (unit_of_measure ~ '^[a-z][a-z0-9_]{0,19}$'),
  constraint items_unit_cost_check check (unit_cost >= 0 and unit_cost <> 'NaN'::numeric),
  constraint items_status_check check (status in ('active', 'on_hold', 'discontinued')),
  constraint items_requires_qc_check check (track_lots or not requires_qc)
);

comment on table inventory.items is 'Catalogue of stock-keeping units.';

comment on column inventory.items.item_id is 'Surrogate key.';

comment on column inventory.items.sku is 'Stock-keeping unit: 1-64 characters, letters, digits and . _ : / # + -, unique.';

comment on column inventory.items.name is 'Human-readable name.';

comment on column inventory.items.unit_of_measure is 'Unit the quantities are counted in (each, kg, m, ...).';

comment on column inventory.items.unit_cost is 'Moving-average unit cost, updated by receive_stock when a cost is given.';

comment on column inventory.items.status is 'active (sellable), on_hold (no new holds) or discontinued (no new holds, no receipts).';

comment on column inventory.items.track_lots is 'Whether stock of this item is tracked by lot: receipts name the lot, holds are allocated first-expiring-first-out (FEFO) from sellable lots.';

comment on column inventory.items.requires_qc is 'Whether new lots of the item wait for inspection (qc_status PENDING, not sellable) instead of starting PASSED.';

comment on column inventory.items.created_by is 'Acting user who created the item.';

comment on column inventory.items.created_at is 'When the item was created.';

comment on column inventory.items.updated_at is 'When the item last changed.';

comment on column inventory.items.deleted_at is 'Soft delete: a deleted item is treated as unknown by every function.';

comment on column inventory.items.deleted_by is 'Acting user who deleted the item (null while it is live).';

comment on column inventory.items.version is 'Incremented by every change of the row: pass it as expected_version to update_item or delete_item.';

create trigger items_count_version before update on inventory.items
  for each row execute function inventory.count_version();

create table inventory.locations (
  location_id bigint generated always as identity primary key,
  code text not null constraint locations_code_key unique,
  name text not null,
  created_by text not null,
  created_at timestamptz not null default pg_catalog.now(),
  constraint locations_code_format_check check (code ~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$'),
  constraint locations_name_check check (inventory.text_is_valid(name, 200))
);

comment on table inventory.locations is 'Places stock is kept (warehouses, stores, bins).';

comment on column inventory.locations.location_id is 'Surrogate key.';

comment on column inventory.locations.code is 'Short unique code used by the API (e.g. main).';

comment on column inventory.locations.name is 'Human-readable name.';

comment on column inventory.locations.created_by is 'Acting user who created the location.';

comment on column inventory.locations.created_at is 'When the location was created.';

insert into inventory.locations (code, name, created_by) values ('main', 'Main warehouse', 'pyinv');
