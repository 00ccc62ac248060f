-- Layer 3, shared functions: running a maintenance job under its private lock.

-- Locks the row of a job for this transaction: waiting for a run in progress, or (with wait false)
-- returning false at once when one holds it. Records the start of this run (the clock time the lock
-- was taken, so that a run that waited for another, or ran late in its transaction, is timed right).
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
  update inventory.maintenance_jobs j set last_started_at = pg_catalog.clock_timestamp() where j.job = lock_job.job;
  return true;
end
$$;

comment on function inventory.lock_job(text, boolean) is 'Locks a maintenance job''s row for this transaction (waiting, or false when busy and wait is false).';

create function inventory.finish_job(job text, rows_touched bigint, result text default 'ok') returns void
language sql volatile
set search_path = ''
as $$
  update inventory.maintenance_jobs j
     set last_finished_at = c.now, last_rows = finish_job.rows_touched,
         last_duration_ms = pg_catalog.round(extract(epoch from c.now - j.last_started_at) * 1000, 3),
         last_result = coalesce(finish_job.result, 'ok')
    from (select pg_catalog.clock_timestamp() as now) c
   where j.job = finish_job.job
$$;

comment on function inventory.finish_job(text, bigint, text) is 'Records the end of a maintenance job''s run (in the same transaction as its work): when, how long since lock_job, rows touched and its result.';
