-- Layer 2, tables: maintenance jobs and their mutual exclusion.
--
-- A job that must not run twice at once locks its row here. Advisory locks are not used for this:
-- any login may take any advisory lock key, and could then stop sealing or hang the reorder check.
-- Row locks on this table can be taken only by pyinv's own functions: API roles may only read it
-- (through inventory_api.maintenance_status), and locking a row needs the UPDATE privilege, which no
-- role has.

create table inventory.maintenance_jobs (
  job text primary key,
  description text not null,
  last_started_at timestamptz,
  last_finished_at timestamptz,
  last_rows bigint,
  last_duration_ms numeric(19, 3),
  last_result text,
  constraint maintenance_jobs_job_format_check check (job ~ '^[a-z][a-z0-9_]{0,39}$')
);

comment on table inventory.maintenance_jobs is 'Maintenance jobs: a job locks its row while it runs (a lock no other login can take) and records its last run here.';

comment on column inventory.maintenance_jobs.job is 'Name of the job (the function it runs).';

comment on column inventory.maintenance_jobs.description is 'What the job does.';

comment on column inventory.maintenance_jobs.last_started_at is 'When its last run started (the moment it took the job''s lock).';

comment on column inventory.maintenance_jobs.last_finished_at is 'When its last run finished.';

comment on column inventory.maintenance_jobs.last_rows is 'Rows the last run touched.';

comment on column inventory.maintenance_jobs.last_duration_ms is 'How long the last finished run took, in milliseconds (from taking the lock to finishing).';

comment on column inventory.maintenance_jobs.last_result is 'Outcome of the last finished run, as its job reports it (ok, or a short summary).';

insert into inventory.maintenance_jobs (job, description) values
  ('seal_audit_log', 'Append committed audit rows to the hash chain.'),
  ('check_reorder_points', 'Re-evaluate every reorder alert in one pass.'),
  ('expire_inventory_lots', 'Write off the units of lots past their expiry date.'),
  ('refresh_inventory_views', 'Refresh every materialized view of the reports (concurrently).'),
  ('purge_events', 'Delete events older than settings.event_retention.');

-- Jobs that do not record their runs themselves: the maintenance runner records them
-- (inventory_api.record_maintenance_run) after each run.
insert into inventory.maintenance_jobs (job, description) values
  ('expire_reservations', 'Release overdue holds, batch after batch while a batch is full.'),
  ('audit_anchor', 'Export the heads of the audit and ledger chains to a place the database cannot write.');

-- The leader of the maintenance runners (`pyinv maintain`): any number of runners, on any number of
-- machines, claim this one row; the one whose lease is current runs the jobs. Like the job rows, it
-- is written only by pyinv's functions (claim_maintenance_lease, release_maintenance_lease: the
-- scheduler and unscoped admins), so no other login can take or hold the lead (an advisory lock
-- could be taken by any login). Not audited: a lease is renewed every second or two.
create table inventory.maintenance_leader (
  singleton boolean primary key default true,
  runner_id text not null,
  leader_pid integer not null,
  claimed_at timestamptz not null,
  renewed_at timestamptz not null,
  lease_until timestamptz not null,
  constraint maintenance_leader_singleton_check check (singleton),
  constraint maintenance_leader_lease_check check (lease_until >= renewed_at and renewed_at >= claimed_at)
);

comment on table inventory.maintenance_leader is 'The one maintenance runner that leads (runs the jobs) while its lease is current; one row at most.';

comment on column inventory.maintenance_leader.singleton is 'Always true: the table holds one row at most.';

comment on column inventory.maintenance_leader.runner_id is 'The leading runner, as it named itself (host, process, a random part).';

comment on column inventory.maintenance_leader.leader_pid is 'Backend process id of the session that last renewed the lease: when it is gone, the lease is void at once.';

comment on column inventory.maintenance_leader.claimed_at is 'When this runner took the lead.';

comment on column inventory.maintenance_leader.renewed_at is 'When it last renewed its lease.';

comment on column inventory.maintenance_leader.lease_until is 'Until when it leads without renewing; another runner takes over after this.';
