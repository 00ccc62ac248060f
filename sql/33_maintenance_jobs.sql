-- Layer 3, shared functions: running a maintenance job under its private lock.

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
