-- Maintenance jobs and their mutual exclusion.
--
-- A job that must not run twice at once locks its row here. Advisory locks are not used for this:
-- any login may take any advisory lock key, and could then stop sealing or hang the reorder check.
-- Row locks on this table can be taken only by pyinv's own functions (no role has any privilege on
-- it, and it is under row level security with no policy).

create table inventory.maintenance_jobs (
  job text primary key,
  description text not null,
  last_started_at timestamptz,
  last_finished_at timestamptz,
  last_rows bigint,
  constraint maintenance_jobs_job_format_check check (job ~ '^[a-z][a-z0-9_]{0,39}$')
);
comment on table inventory.maintenance_jobs is 'Maintenance jobs: a job locks its row while it runs (a lock no other login can take) and records its last run here.';
comment on column inventory.maintenance_jobs.job is 'Name of the job (the function it runs).';
comment on column inventory.maintenance_jobs.description is 'What the job does.';
comment on column inventory.maintenance_jobs.last_started_at is 'When its last run started (the run''s transaction time).';
comment on column inventory.maintenance_jobs.last_finished_at is 'When its last run finished.';
comment on column inventory.maintenance_jobs.last_rows is 'Rows the last run touched.';

insert into inventory.maintenance_jobs (job, description) values
  ('seal_audit_log', 'Append committed audit rows to the hash chain.'),
  ('check_reorder_points', 'Re-evaluate every reorder alert in one pass.');

-- Locks the row of a job for this transaction: waiting for a run in progress, or (with wait false)
-- returning false at once when one holds it. Records the start of this run.
create function inventory.lock_job(job text, wait boolean) returns boolean
language plpgsql volatile
set search_path = ''
as $$
begin
  if lock_job.wait then
    perform from inventory.maintenance_jobs j where j.job = lock_job.job for update;
  else
    perform from inventory.maintenance_jobs j where j.job = lock_job.job for update skip locked;
  end if;
  if not found then
    if not exists (select from inventory.maintenance_jobs j where j.job = lock_job.job) then
      raise exception 'unknown maintenance job %', lock_job.job using errcode = 'XX000';
    end if;
    return false;
  end if;
  -- Updating the row makes a concurrent run at REPEATABLE READ or SERIALIZABLE fail with 40001
  -- rather than work from a snapshot that misses this run.
  update inventory.maintenance_jobs j set last_started_at = pg_catalog.now() where j.job = lock_job.job;
  return true;
end
$$;
comment on function inventory.lock_job(text, boolean) is 'Locks a maintenance job''s row for this transaction (waiting, or false when busy and wait is false).';

create function inventory.finish_job(job text, rows_touched bigint) returns void
language sql volatile
set search_path = ''
as $$
  update inventory.maintenance_jobs j
     set last_finished_at = pg_catalog.clock_timestamp(), last_rows = finish_job.rows_touched
   where j.job = finish_job.job
$$;
comment on function inventory.finish_job(text, bigint) is 'Records the end of a maintenance job''s run (in the same transaction as its work).';
