-- Layer 7, the public API: maintenance and the audit chain (for the scheduler and admins; never
-- exposed to PostgREST's authenticated users).

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

create function inventory_api.seal_audit_log(batch_size integer default 10000)
returns integer
language sql volatile
set search_path = ''
begin atomic
  select inventory.seal_audit_log(seal_audit_log.batch_size);
end;

comment on function inventory_api.seal_audit_log(integer) is
'Append up to batch_size committed audit rows to the hash chain; returns how many (0: nothing to seal), or null when another sealer is running.
Self-locking through a lock only pyinv can take. Call it until it returns less than batch_size. Rows of transactions still running are sealed by a later call.';

create function inventory_api.verify_audit_chain(anchor jsonb default null)
returns setof inventory_api.chain_break
language sql stable
set search_path = ''
begin atomic
  select * from inventory.verify_audit_chain(verify_audit_chain.anchor);
end;

comment on function inventory_api.verify_audit_chain(jsonb) is
'Report the first broken link of the audit hash chain, rows sealing skipped, and committed rows left unsealed longer than settings.audit_seal_max_lag; no rows means the chain is intact.
With an anchor (from audit_anchor), also report a chain truncated or rewritten since it was taken.';

create function inventory_api.audit_anchor(wait_seconds numeric default 10)
returns jsonb
language sql volatile
set search_path = ''
begin atomic
  select inventory.take_anchor(audit_anchor.wait_seconds);
end;

comment on function inventory_api.audit_anchor(numeric) is
'Export the heads of the audit chain and of every stock level''s ledger chain, to keep where the database cannot write (maintenance: admins and the scheduler).
Pass the result to verify_audit_chain(anchor) and verify_inventory(anchor) later. Must run at READ COMMITTED; waits up to wait_seconds for transactions that could still write below its ledger cut (BUSY when they do not end).';

create function inventory_api.check_reorder_points()
returns inventory_api.reorder_check
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.check_reorder_points();
end;

comment on function inventory_api.check_reorder_points() is
'Re-evaluate every level with a stock policy in one pass: open, raise and resolve alerts; returns the counts. Alerts are also maintained in real time by a trigger, so this is a repair or a scheduled safety net.';

create function inventory_api.expire_inventory_lots()
returns inventory_api.lot_expiry
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.expire_inventory_lots();
end;

comment on function inventory_api.expire_inventory_lots() is
'Write off the units of lots past their expiry date (ADJUST movements of reason expired), once per lot; their open holds move to other sellable lots or are released (counted in the result).
Run daily by the scheduler (or an unscoped admin). Raises BUSY (55P03) while another run is in progress.';

create function inventory_api.refresh_inventory_views()
returns inventory_api.views_refresh
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.refresh_inventory_views();
end;

comment on function inventory_api.refresh_inventory_views() is
'Refresh every materialized view behind the reports (low_stock_items) concurrently: readers are never blocked and see the old rows until it commits.
Self-locking through a lock only pyinv can take: while a run is in progress another returns at once with refreshed false. Records its run in maintenance_status (scheduler or an unscoped admin; every 5 minutes).';

create function inventory_api.claim_maintenance_lease(runner_id text, lease_seconds integer default 5)
returns boolean
language sql volatile
set search_path = ''
begin atomic
  select inventory.claim_maintenance_lease(claim_maintenance_lease.runner_id, claim_maintenance_lease.lease_seconds);
end;

comment on function inventory_api.claim_maintenance_lease(text, integer) is
'Take or renew the lead of the maintenance runners for lease_seconds (1-3600); true when runner_id leads.
A runner takes over when the leader''s lease ran out or its session is gone. Renew well within the lease (pyinv maintain: every second, lease 5 s); only the scheduler and unscoped admins may claim it.';

create function inventory_api.release_maintenance_lease(runner_id text)
returns boolean
language sql volatile
set search_path = ''
begin atomic
  select inventory.release_maintenance_lease(release_maintenance_lease.runner_id);
end;

comment on function inventory_api.release_maintenance_lease(text) is
'Give up the lead (a runner shutting down cleanly), so that another runner takes over at its next claim; false when runner_id did not lead.';

create function inventory_api.maintenance_leader()
returns setof inventory_api.maintenance_leader
language sql stable
set search_path = ''
begin atomic
  select * from inventory.maintenance_leader();
end;

comment on function inventory_api.maintenance_leader() is
'The maintenance runner that leads or led last (no row: none since the last clean shutdown); is_current says whether its lease is current and its session alive.';

create function inventory_api.record_maintenance_run(job text, rows_touched bigint, duration interval default null,
                                                     result text default 'ok')
returns void
language sql volatile
set search_path = ''
begin atomic
  select inventory.record_maintenance_run(record_maintenance_run.job, record_maintenance_run.rows_touched,
                                          record_maintenance_run.duration, record_maintenance_run.result);
end;

comment on function inventory_api.record_maintenance_run(text, bigint, interval, text) is
'Record a run of a maintenance job that does not record itself (expire_reservations, audit_anchor) or ran in several batches, as maintenance_status shows it: rows touched, how long (default: since the transaction began) and its result.';
