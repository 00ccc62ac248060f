-- Layer 5, functions by concern: what the metrics (inventory_api.inventory_metrics, 75_api_metrics.sql)
-- need that a reader cannot compute under its own privileges: the audit rows still waiting for the
-- sealer (the audit log is readable by unscoped admins only, the sealer's state by no API role), and
-- the intervals the maintenance runner works to by default.

-- Audit rows committed (visible to the caller's snapshot) that are not on the hash chain yet. The
-- sealer appends rows in audit_id order and records how far it got (audit_seal_state.sealed_through:
-- every row up to it is sealed, or was rolled back and never existed), so the backlog is the rows
-- above that mark: a range scan of the primary key. A figure about the whole database, like the
-- maintenance jobs' status: shown to anyone holding a business role (who may read maintenance_status),
-- null to others.
create function inventory.unsealed_audit_rows() returns bigint
language sql stable security definer
set search_path = ''
begin atomic
  select case when inventory.has_any_role() then
           (select pg_catalog.count(*) from inventory.audit_log a
             where a.audit_id > (select s.sealed_through from inventory.audit_seal_state s))
         end;
end;

comment on function inventory.unsealed_audit_rows() is 'Committed audit rows not sealed onto the hash chain yet (above audit_seal_state.sealed_through); null for a caller without a business role.';

-- The default interval of each job of `pyinv maintain` (pyinv/maintenance.py DEFAULT_INTERVALS, tested
-- equal in tests/test_metrics.py): the schedule maintenance_lag_seconds measures lateness against.
-- audit_anchor is left out: it runs only where an anchor directory is configured.
create function inventory.maintenance_default_interval(job text) returns interval
language sql immutable parallel safe
set search_path = ''
begin atomic
  select case maintenance_default_interval.job
           when 'expire_reservations' then interval '1 minute'
           when 'seal_audit_log' then interval '1 minute'
           when 'refresh_inventory_views' then interval '5 minutes'
           when 'check_reorder_points' then interval '1 hour'
           when 'expire_inventory_lots' then interval '1 day'
           when 'purge_events' then interval '1 day'
         end;
end;

comment on function inventory.maintenance_default_interval(text) is 'The interval pyinv maintain runs a job at by default (null: audit_anchor, run only where configured, or an unknown job).';
