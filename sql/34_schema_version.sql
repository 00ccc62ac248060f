-- Layer 3, shared functions: the version of the installed schema.

-- What is installed, read from the schema itself: pyinv's release and the migration that brings a
-- database to it. Every migration replaces it with its own values (tests/test_install.py checks
-- them against the newest file in migrations/), so that a database whose install was recorded
-- nowhere (a dump restored without inventory_meta) still tells `pyinv migrate` and
-- `pyinv sql upgrade` where it stands.
create function inventory.schema_version(out version text, out migration text)
language sql stable parallel safe
set search_path = ''
begin atomic
  select '0.6.0'::text, '0006_hot_mode'::text;
end;

comment on function inventory.schema_version() is 'The installed schema: pyinv release (version) and the last migration applied (migration).';

create function inventory_api.schema_version(out version text, out migration text)
language sql stable parallel safe
set search_path = ''
begin atomic
  select v.version, v.migration from inventory.schema_version() v;
end;

comment on function inventory_api.schema_version() is
'The installed pyinv schema: its release (version, e.g. 0.4.0) and the last migration applied (migration, e.g. 0004_lots).
Upgrade with `pyinv migrate`, or print the script with `pyinv sql upgrade --from <version>`.';
