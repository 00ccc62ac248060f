-- Layer 5, functions by concern: the maintenance runners (`pyinv maintain`) and their leader.
--
-- Any number of runners, on any number of machines, call claim_maintenance_lease every second or
-- two; the one it answers true runs the jobs. The lease is a row of inventory.maintenance_leader,
-- written only here (the scheduler and unscoped admins), never an advisory lock, which any login
-- could take and hold to stop maintenance. A leader that stops renewing loses the lead when its
-- lease runs out (a few seconds); a leader whose session is gone (its process was killed, its
-- machine lost the network and the server noticed) loses it at once: its backend is no longer in
-- pg_stat_activity. Times are the server's clock, so the runners' clocks do not matter.

create function inventory.claim_maintenance_lease(runner_id text, lease_seconds integer)
returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_problem text := inventory.text_problem(claim_maintenance_lease.runner_id, 200);
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_leads boolean;
begin
  perform inventory.authorize('scheduler');
  if v_problem is not null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'runner_id: ' || v_problem,
      pg_catalog.jsonb_build_object('argument', 'runner_id', 'problem', v_problem));
  end if;
  if claim_maintenance_lease.lease_seconds is null or claim_maintenance_lease.lease_seconds not between 1 and 3600 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'lease_seconds must be between 1 and 3600',
      pg_catalog.jsonb_build_object('argument', 'lease_seconds', 'problem', 'out of range'));
  end if;
  -- One statement: a concurrent claim waits for this row's lock and re-checks the condition on the
  -- row as this claim left it, so two runners never both get true.
  insert into inventory.maintenance_leader as m (runner_id, leader_pid, claimed_at, renewed_at, lease_until)
  values (claim_maintenance_lease.runner_id, pg_catalog.pg_backend_pid(), v_now, v_now,
          v_now + pg_catalog.make_interval(secs => claim_maintenance_lease.lease_seconds))
  on conflict (singleton) do update
     set runner_id = excluded.runner_id,
         leader_pid = excluded.leader_pid,
         claimed_at = case when m.runner_id = excluded.runner_id then m.claimed_at else excluded.claimed_at end,
         renewed_at = excluded.renewed_at,
         lease_until = excluded.lease_until
   where m.runner_id = excluded.runner_id
      or m.lease_until < excluded.renewed_at
      or not exists (select from pg_catalog.pg_stat_activity a where a.pid = m.leader_pid)
  returning true into v_leads;
  return coalesce(v_leads, false);
end
$$;

comment on function inventory.claim_maintenance_lease(text, integer) is 'Implements inventory_api.claim_maintenance_lease.';

create function inventory.release_maintenance_lease(runner_id text) returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('scheduler');
  delete from inventory.maintenance_leader m where m.runner_id = release_maintenance_lease.runner_id;
  return found;
end
$$;

comment on function inventory.release_maintenance_lease(text) is 'Implements inventory_api.release_maintenance_lease.';

create function inventory.maintenance_leader() returns setof inventory_api.maintenance_leader
language plpgsql stable security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('scheduler');
  return query
    select m.runner_id, m.claimed_at, m.renewed_at, m.lease_until,
           m.lease_until >= pg_catalog.clock_timestamp()
           and exists (select from pg_catalog.pg_stat_activity a where a.pid = m.leader_pid)
      from inventory.maintenance_leader m;
end
$$;

comment on function inventory.maintenance_leader() is 'Implements inventory_api.maintenance_leader.';

-- Jobs that do not record their runs themselves (expire_reservations, called batch after batch by
-- several sessions at once; audit_anchor), and runs of several batches, are recorded by the runner,
-- in the columns finish_job writes.
create function inventory.record_maintenance_run(job text, rows_touched bigint, duration interval, result text)
returns void
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_duration interval := coalesce(record_maintenance_run.duration, v_now - pg_catalog.now());
  v_problem text := inventory.text_problem(record_maintenance_run.result, 200);
begin
  perform inventory.authorize('scheduler');
  if record_maintenance_run.rows_touched is null or record_maintenance_run.rows_touched < 0 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'rows_touched must be 0 or more',
      pg_catalog.jsonb_build_object('argument', 'rows_touched', 'problem', 'out of range'));
  end if;
  if v_duration < interval '0' or v_duration > interval '1 day' then
    perform inventory.raise_error('INVALID_ARGUMENT', 'duration must be between 0 and 1 day',
      pg_catalog.jsonb_build_object('argument', 'duration', 'problem', 'out of range'));
  end if;
  if v_problem is not null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'result: ' || v_problem,
      pg_catalog.jsonb_build_object('argument', 'result', 'problem', v_problem));
  end if;
  update inventory.maintenance_jobs j
     set last_started_at = v_now - v_duration,
         last_finished_at = v_now,
         last_rows = record_maintenance_run.rows_touched,
         last_duration_ms = pg_catalog.round(extract(epoch from v_duration) * 1000, 3),
         last_result = record_maintenance_run.result
   where j.job = record_maintenance_run.job;
  if not found then
    perform inventory.raise_error('INVALID_ARGUMENT', 'no maintenance job is named ' ||
      coalesce(pg_catalog.quote_literal(record_maintenance_run.job), 'null'),
      pg_catalog.jsonb_build_object('argument', 'job', 'problem', 'unknown'));
  end if;
end
$$;

comment on function inventory.record_maintenance_run(text, bigint, interval, text) is 'Implements inventory_api.record_maintenance_run.';
