-- pyinv 0.5.0: operations (issue 13). Reporting views (valuation, movement summary, active holds, low
-- stock from a private materialized view, dashboard, alert statistics), stock_as_of from the ledger,
-- refresh_inventory_views (concurrent, self-locking), maintenance_status, the maintenance runner's
-- leader election (a lease row only pyinv's functions write) with the runs it records, events (written
-- in the transaction of each change, read without loss, acknowledged per consumer, purged after their
-- retention) and the metrics.
-- depends: 0004_lots

set local role inventory_owner;

-- The result types of the new functions, before the functions that return them.
create type inventory_api.stock_snapshot as (
  sku text, location text, at timestamptz, on_hand numeric, reserved numeric, available numeric,
  movement_id bigint, movement_at timestamptz);
comment on type inventory_api.stock_snapshot is 'A stock level as the ledger recorded it at a moment (stock_as_of): on hand, reserved and available (on_hand - reserved) after the last movement of the level at or before it (movement_id, movement_at; null when there was none, and the quantities are 0).';

create type inventory_api.views_refresh as (
  refreshed boolean, views text[], rows bigint, started_at timestamptz, duration_ms numeric, message text);
comment on type inventory_api.views_refresh is 'What refresh_inventory_views did: whether it refreshed (false when another run was in progress: it returned at once), the materialized views refreshed, the rows they now hold, when it started and how long it took.';

create type inventory_api.maintenance_leader as (
  runner_id text, claimed_at timestamptz, renewed_at timestamptz, lease_until timestamptz, is_current boolean);
comment on type inventory_api.maintenance_leader is 'The maintenance runner that leads: since when, its last renewal, until when its lease runs, and whether it is still current.';

create type inventory_api.event as (
  id bigint, type text, sku text, location text, payload jsonb, created_at timestamptz);
comment on type inventory_api.event is 'One event (read_events): its id, type (stock.received, reservation.created, ...), the item and location concerned (location null for a lot), the details and when it happened.';

create type inventory_api.event_consumer as (
  consumer text, owner text, acknowledged_id bigint, updated_at timestamptz);
comment on type inventory_api.event_consumer is 'A consumer of events (ack_events): who owns it, the last event it acknowledged, and when its position last moved.';

-- Maintenance jobs: how long each run took and how it ended; the jobs the runner records itself.
alter table inventory.maintenance_jobs add column last_duration_ms numeric(19, 3), add column last_result text;
comment on table inventory.maintenance_jobs is 'Maintenance jobs: a job locks its row while it runs (a lock no other login can take) and records its last run here.';
comment on column inventory.maintenance_jobs.last_started_at is 'When its last run started (the moment it took the job''s lock).';
comment on column inventory.maintenance_jobs.last_duration_ms is 'How long the last finished run took, in milliseconds (from taking the lock to finishing).';
comment on column inventory.maintenance_jobs.last_result is 'Outcome of the last finished run, as its job reports it (ok, or a short summary).';
insert into inventory.maintenance_jobs (job, description) values
  ('refresh_inventory_views', 'Refresh every materialized view of the reports (concurrently).'),
  ('expire_reservations', 'Release overdue holds, batch after batch while a batch is full.'),
  ('audit_anchor', 'Export the heads of the audit and ledger chains to a place the database cannot write.');
create policy maintenance_jobs_viewer_select on inventory.maintenance_jobs for select to inventory_viewer
  using ((select inventory.has_any_role()));
create policy maintenance_jobs_scheduler_select on inventory.maintenance_jobs for select to inventory_scheduler
  using (true);
comment on policy maintenance_jobs_viewer_select on inventory.maintenance_jobs is 'Maintenance jobs and their last runs are visible to anyone holding a business role.';
comment on policy maintenance_jobs_scheduler_select on inventory.maintenance_jobs is 'The scheduler (which runs the jobs) sees them all.';

-- The leader of the maintenance runners: a lease row only pyinv's functions write.
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
alter table inventory.maintenance_leader enable row level security;

-- The private materialized view of low stock (read through inventory_api.low_stock_items), filled
-- here so that refresh_inventory_views can refresh it concurrently from the start.
create materialized view inventory.mv_low_stock_items as
  select s.item_id, s.location_id, i.sku, l.code as location, s.on_hand, s.reserved, a.available,
         p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level,
         case when a.available <= 0 then 'OUT_OF_STOCK'
              when a.available <= p.safety_stock then 'CRITICAL'
              else 'LOW' end as stock_status,
         p.reorder_point - a.available as shortfall,
         case when p.reorder_quantity is not null then p.reorder_quantity
              when p.max_stock_level is not null then p.max_stock_level - a.available
         end as suggested_order_quantity,
         pg_catalog.now() as refreshed_at
    from inventory.stock_policies p
    join inventory.stock_levels s on s.item_id = p.item_id and s.location_id = p.location_id
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id
    left join (select r.item_id, r.location_id, pg_catalog.sum(r.quantity - r.quantity_fulfilled) as units
                 from inventory.reservations r
                where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
                group by r.item_id, r.location_id) o on o.item_id = s.item_id and o.location_id = s.location_id
    -- effective_available, computed once per level (offset 0) and set-based for levels without lots:
    -- on_hand - reserved + the open units of overdue holds (overdue_quantity, for every level at once).
    -- A lot-tracked level calls effective_available itself (its lots' states decide what is blocked).
    cross join lateral (select case when s.track_lots then inventory.effective_available(s.item_id, s.location_id)
                                    else s.available + coalesce(o.units, 0) end as available
                         offset 0) a
   -- available is never below on_hand - reserved except for lot-tracked levels (units in lots that
   -- may not be sold): the cheap test first leaves well-stocked levels out early.
   where i.deleted_at is null and (s.track_lots or s.available <= p.reorder_point)
     and a.available <= p.reorder_point
  with data;

-- REFRESH ... CONCURRENTLY needs a unique index covering every row.
create unique index mv_low_stock_items_level_key on inventory.mv_low_stock_items (item_id, location_id);
comment on materialized view inventory.mv_low_stock_items is 'Levels with a stock policy at or below their reorder point, as of the last refresh_inventory_views; read through inventory_api.low_stock_items (filtered by the caller''s locations), never directly.';
comment on column inventory.mv_low_stock_items.item_id is 'The item.';
comment on column inventory.mv_low_stock_items.location_id is 'The location.';
comment on column inventory.mv_low_stock_items.sku is 'SKU of the item.';
comment on column inventory.mv_low_stock_items.location is 'Code of the location.';
comment on column inventory.mv_low_stock_items.on_hand is 'Units physically present at the refresh.';
comment on column inventory.mv_low_stock_items.reserved is 'Units held at the refresh.';
comment on column inventory.mv_low_stock_items.available is 'Units a new hold could take at the refresh (as inventory_api.stock_levels shows them).';
comment on column inventory.mv_low_stock_items.reorder_point is 'The policy''s reorder point.';
comment on column inventory.mv_low_stock_items.safety_stock is 'The policy''s safety stock.';
comment on column inventory.mv_low_stock_items.reorder_quantity is 'The policy''s fixed order quantity, if any.';
comment on column inventory.mv_low_stock_items.max_stock_level is 'The policy''s maximum level, if any.';
comment on column inventory.mv_low_stock_items.stock_status is 'OUT_OF_STOCK (available <= 0), CRITICAL (available <= safety_stock) or LOW (available <= reorder_point); the first that holds.';
comment on column inventory.mv_low_stock_items.shortfall is 'reorder_point - available: units below the reorder point (0 when exactly at it).';
comment on column inventory.mv_low_stock_items.suggested_order_quantity is 'Units to order: the reorder quantity, else up to the maximum level; null when the policy gives neither.';
comment on column inventory.mv_low_stock_items.refreshed_at is 'When the row was computed (the refresh''s transaction time).';

-- Events: the settings that switch them, keep them and ration their notifications (sql/20), their
-- tables (sql/26_events.sql, where the reading rule is explained), row security, the purge job.
alter table inventory.settings
  add column events_enabled boolean not null default true,
  add column event_retention interval not null default interval '30 days',
  add column event_notify_interval interval not null default interval '100 milliseconds',
  add constraint settings_event_retention_check check (event_retention > interval '0'),
  add constraint settings_event_notify_interval_check
    check (event_notify_interval >= interval '0' and event_notify_interval <= interval '1 hour');
comment on column inventory.settings.events_enabled is 'Whether changes write events (inventory_api.events) and notify the channel pyinv_events; false: nothing is written (changes made while off are never emitted).';
comment on column inventory.settings.event_notify_interval is 'How often at most events notify the channel pyinv_events: an event notifies (with its id) when none did for this long, later ones within it do not, because PostgreSQL serializes the commits of notifying transactions (every event notifying cut reservation throughput by 5/6 with 32 clients). 0: every event notifies. Followers read again shortly after each notification and poll as a fallback, so they miss nothing either way.';
comment on column inventory.settings.event_retention is 'How long events are kept: purge_events (default argument, and the daily maintenance job) deletes older ones, whether or not every consumer acknowledged them.';

create table inventory.events (
  event_id bigint generated always as identity primary key,
  type text not null,
  item_id bigint,
  location_id bigint,
  movement_id bigint,
  payload jsonb,
  created_at timestamptz not null default pg_catalog.now(),
  transaction_id xid8 not null default pg_catalog.pg_current_xact_id(),
  constraint events_details_check check ((movement_id is null) <> (payload is null))
);

-- The readers' order; also how purge_events finds old rows by transaction.
create index events_transaction_idx on inventory.events (transaction_id, event_id);

comment on table inventory.events is 'Events: one per stock movement, adjustment decision, lot status change and reorder alert change, written in the transaction of the change; read through inventory_api.read_events, kept for settings.event_retention.';

comment on column inventory.events.event_id is 'Id of the event, drawn from a sequence (unique; in commit order only within a transaction: see transaction_id).';

comment on column inventory.events.type is 'What happened: stock.received, reservation.created, reservation.released, reservation.expired, stock.shipped, stock.returned, stock.adjusted, stock.transferred_out, stock.transferred_in, adjustment.<status>, lot.<change>, alert.<change>.';

comment on column inventory.events.item_id is 'The item concerned.';

comment on column inventory.events.location_id is 'The location concerned (null for a lot, which belongs to no one location).';

comment on column inventory.events.movement_id is 'The ledger movement of a stock.* or reservation.* event: its details (payload) are read from the ledger row, so writing the event on the reservation path costs a small row and no JSON.';

comment on column inventory.events.payload is 'Details of an event without a movement: the ids (adjustment, lot, alert), statuses before and after, quantities, note and acting user (null for a movement: see movement_id).';

comment on column inventory.events.created_at is 'Transaction time of the change.';

comment on column inventory.events.transaction_id is 'Id of the writing transaction: readers take events of transactions that have ended (below event_horizon()), in (transaction_id, event_id) order.';

create table inventory.event_consumers (
  consumer text primary key,
  owner text not null,
  acknowledged_id bigint not null default 0,
  acknowledged_transaction_id xid8 not null default '0'::xid8,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  constraint event_consumers_consumer_format_check check (consumer ~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$'),
  constraint event_consumers_acknowledged_id_check check (acknowledged_id >= 0)
);

comment on table inventory.event_consumers is 'Named readers of the events and how far each has acknowledged them (ack_events): read_events resumes after that position.';

comment on column inventory.event_consumers.consumer is 'Name of the consumer (1-64 characters: letters, digits and . _ : / # + -).';

comment on column inventory.event_consumers.owner is 'Acting user who created it (its first ack_events); only they and unscoped admins read or acknowledge for it.';

comment on column inventory.event_consumers.acknowledged_id is 'Id of the last event acknowledged (0: none yet).';

comment on column inventory.event_consumers.acknowledged_transaction_id is 'Transaction of that event: the position is (acknowledged_transaction_id, acknowledged_id) in the readers'' order.';

comment on column inventory.event_consumers.created_at is 'When the consumer first acknowledged.';

comment on column inventory.event_consumers.updated_at is 'When its position last moved.';

-- When an event last notified pyinv_events (milliseconds since the epoch; see emit_event): a sequence,
-- because it is shared by every session without a row lock or a transaction (setval is not rolled back).
create sequence inventory.event_notify_clock as bigint minvalue 0 start 0;

comment on sequence inventory.event_notify_clock is 'When an event last notified pyinv_events, in milliseconds since the epoch (emit_event notifies again once settings.event_notify_interval has passed).';

alter table inventory.events enable row level security;
alter table inventory.event_consumers enable row level security;
create policy events_viewer_select on inventory.events for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[])
         or (location_id is null and (select inventory.has_any_role())));
create policy event_consumers_viewer_select on inventory.event_consumers for select to inventory_viewer
  using (owner = (select inventory.current_actor()) or (select inventory.is_allowed('admin')));
comment on policy events_viewer_select on inventory.events is 'Only events at the locations the caller may see (lot events, which have no location, to anyone holding a business role).';
comment on policy event_consumers_viewer_select on inventory.event_consumers is 'Consumers of the caller''s own; unscoped admins see them all.';
insert into inventory.maintenance_jobs (job, description) values
  ('purge_events', 'Delete events older than settings.event_retention.');

-- BEGIN functions and views generated by tools/schema_diff.py
drop function inventory.finish_job(job text, rows_touched bigint);

-- The one trigger every change of a stock level passes through, so that each change is recorded
-- once: a change of on_hand or reserved becomes a ledger movement (described by pending_movement)
-- and re-evaluates the level's reorder alert when it has a stock policy; any other change (a count's
-- timestamp, the policy flag, a DBA's UPDATE of another column) goes to the audit log. One BEFORE
-- row trigger without a WHEN clause: a WHEN clause and AFTER triggers are re-prepared per statement,
-- a branch in this function costs nothing.
create or replace function inventory.record_stock_level_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_movement inventory.movement := new.pending_movement;
  v_entry inventory.ledger;
begin
  new.pending_movement := null;
  if tg_op = 'INSERT' then
    -- Levels are born empty and filled by an UPDATE, so that an INSERT ... ON CONFLICT DO UPDATE
    -- (whose BEFORE INSERT trigger fires even when the row then conflicts) cannot record a
    -- movement twice.
    if new.on_hand <> 0 or new.reserved <> 0 then
      perform inventory.raise_error('INVALID_ARGUMENT',
        'stock levels are created empty; add stock with receive_stock or an UPDATE, which the ledger records',
        pg_catalog.jsonb_build_object('argument', 'on_hand', 'problem', 'must start at 0'));
    end if;
    new.version := 1;
    new.last_movement_id := null;
    -- A locking read waits for a delete_item in progress and sees its outcome (see item_deleted).
    select i.deleted_at is not null, i.track_lots into new.item_deleted, new.track_lots
      from inventory.items i where i.item_id = new.item_id
       for key share;
    new.item_deleted := coalesce(new.item_deleted, false);  -- no such item: the foreign key says so
    new.track_lots := coalesce(new.track_lots, false);
    return new;
  end if;
  new.version := old.version + 1;
  new.ledger_hash := old.ledger_hash;
  new.last_movement_id := old.last_movement_id;
  if new.on_hand = old.on_hand and new.reserved = old.reserved then
    perform inventory.audit_row_change('stock_levels', 'UPDATE', pg_catalog.to_jsonb(old), pg_catalog.to_jsonb(new));
    return new;
  end if;
  new.updated_at := pg_catalog.now();
  if new.item_deleted and (new.on_hand > old.on_hand or new.reserved > old.reserved) then
    perform inventory.raise_error('PRODUCT_NOT_FOUND', 'the item was deleted; restore it (restore_item) first',
      pg_catalog.jsonb_build_object('item_id', new.item_id, 'deleted', true));
  end if;
  if new.track_lots and not inventory.lot_levels_add_up(new.item_id, new.location_id, new.on_hand, new.reserved) then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'the item is tracked by lot: its stock moves only together with its lots (name the lot)',
      pg_catalog.jsonb_build_object('argument', 'lot_number', 'problem', 'lot quantities do not add up',
                                    'item_id', new.item_id, 'location_id', new.location_id));
  end if;
  if v_movement is null then  -- not described: a direct change (a DBA's UPDATE)
    v_movement := inventory.describe_movement('ADJUST', 'direct change of inventory.stock_levels');
  end if;
  if pg_catalog.current_setting('request.jwt.claims', true) <> '' then
    -- Under PostgREST the movement keeps the request that made it (the gateway's only, never a
    -- login's own settings: see audit_context); a direct session pays nothing for this.
    select coalesce(v_movement.metadata, '{}'::jsonb)
             || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('request_path', c.request_path,
                                                                           'request_id', c.request_id))
      into v_movement.metadata
      from inventory.audit_context() c;
  end if;
  v_entry := row(
    pg_catalog.nextval('inventory.ledger_movement_id_seq'::regclass),
    v_movement.movement_type, new.item_id, new.location_id,
    new.on_hand - old.on_hand, new.reserved - old.reserved,
    old.on_hand, new.on_hand, old.reserved, new.reserved,
    inventory.current_actor(), v_movement.reason, v_movement.reference, v_movement.idempotency_key,
    v_movement.related_movement_id, v_movement.reservation_id, coalesce(v_movement.metadata, '{}'::jsonb),
    pg_catalog.now(), pg_catalog.pg_current_xact_id(),
    old.ledger_hash, null)::inventory.ledger;
  v_entry.hash := pg_catalog.sha256(coalesce(old.ledger_hash, ''::bytea) || inventory.ledger_entry_bytes(v_entry));
  insert into inventory.ledger overriding system value select v_entry.*;
  -- Its event (56_events.sql): the movement's id, its details stay in the ledger row; from here, not
  -- from an AFTER trigger on the ledger, which would queue every movement.
  perform inventory.emit_event(inventory.movement_event_type(v_entry.movement_type), new.item_id, new.location_id,
                               null, v_entry.movement_id);
  new.ledger_hash := v_entry.hash;
  new.last_movement_id := v_entry.movement_id;
  if new.has_stock_policy and new.on_hand - new.reserved <> old.on_hand - old.reserved then
    perform inventory.evaluate_reorder_alert(new.item_id, new.location_id, new.on_hand - new.reserved);
  end if;
  return new;
end
$$;

comment on function inventory.record_stock_level_change() is 'Trigger: records every change of a stock level once: quantities as a ledger movement (described by pending_movement, with its event, and re-evaluating the reorder alert), anything else in the audit log.';

-- Locks the row of a job for this transaction: waiting for a run in progress, or (with wait false)
-- returning false at once when one holds it. Records the start of this run (the clock time the lock
-- was taken, so that a run that waited for another, or ran late in its transaction, is timed right).
create or replace function inventory.lock_job(job text, wait boolean) returns boolean
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

-- What is installed, read from the schema itself: pyinv's release and the migration that brings a
-- database to it. Every migration replaces it with its own values (tests/test_install.py checks
-- them against the newest file in migrations/), so that a database whose install was recorded
-- nowhere (a dump restored without inventory_meta) still tells `pyinv migrate` and
-- `pyinv sql upgrade` where it stands.
create or replace function inventory.schema_version(out version text, out migration text)
language sql stable parallel safe
set search_path = ''
begin atomic
  select '0.5.0'::text, '0005_operations'::text;
end;

comment on function inventory.schema_version() is 'The installed schema: pyinv release (version) and the last migration applied (migration).';

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

-- The rows of the materialized view the caller may see: the same rule as the row level security
-- policies of the stock tables (60_row_security.sql), applied here because the view has none. A
-- caller who may read every location (an unscoped viewer grant) skips the per-row test, which compares
-- with every location id.
create function inventory.low_stock_rows() returns setof inventory.mv_low_stock_items
language sql stable security definer
set search_path = ''
begin atomic
  select m.* from inventory.mv_low_stock_items m
   where (select inventory.is_allowed('viewer'))
      or m.location_id = any ((select inventory.visible_location_ids())::bigint[]);
end;

comment on function inventory.low_stock_rows() is 'Rows of inventory.mv_low_stock_items at the locations the caller may see (read by inventory_api.low_stock_items).';

-- Refreshes every materialized view of the inventory schema, concurrently (readers are never
-- blocked), under the job lock of refresh_inventory_views: a second caller returns at once with
-- refreshed false instead of waiting to redo the same work.
create function inventory.refresh_inventory_views() returns inventory_api.views_refresh
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_started timestamptz := pg_catalog.clock_timestamp();
  v_view regclass;
  v_rows bigint;
  v_result inventory_api.views_refresh := row(false, '{}', 0, v_started, 0, null)::inventory_api.views_refresh;
begin
  perform inventory.authorize('scheduler');
  if not inventory.lock_job('refresh_inventory_views', wait => false) then
    v_result.message := 'another refresh_inventory_views run is in progress; it does this work';
    v_result.duration_ms := pg_catalog.round(extract(epoch from pg_catalog.clock_timestamp() - v_started) * 1000, 3);
    return v_result;
  end if;
  for v_view in
    select c.oid::regclass from pg_catalog.pg_class c
     where c.relnamespace = 'inventory'::regnamespace and c.relkind = 'm'
     order by c.relname
  loop
    execute pg_catalog.format('refresh materialized view concurrently %s', v_view);
    execute pg_catalog.format('select pg_catalog.count(*) from %s', v_view) into v_rows;
    v_result.views := v_result.views || v_view::text;
    v_result.rows := v_result.rows + v_rows;
  end loop;
  v_result.refreshed := true;
  v_result.message := pg_catalog.format('refreshed %s materialized view(s), %s rows',
                                        pg_catalog.cardinality(v_result.views), v_result.rows);
  perform inventory.finish_job('refresh_inventory_views', v_result.rows, v_result.message);
  v_result.duration_ms := (select j.last_duration_ms from inventory.maintenance_jobs j
                            where j.job = 'refresh_inventory_views');
  return v_result;
end
$$;

comment on function inventory.refresh_inventory_views() is 'Implements inventory_api.refresh_inventory_views.';

-- The level after the last movement (by movement id, the order of the level's hash chain) whose
-- transaction time is at or before `at`: what the level was at that moment.
create function inventory.stock_as_of(sku text, location text, at timestamptz)
returns inventory_api.stock_snapshot
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_location_id bigint;
  v_item record;
  v_entry record;
  v_result inventory_api.stock_snapshot;
begin
  if stock_as_of.at is null or not pg_catalog.isfinite(stock_as_of.at) then
    perform inventory.raise_error('INVALID_ARGUMENT', 'at must be a finite moment',
      pg_catalog.jsonb_build_object('argument', 'at', 'problem', 'missing or infinite'));
  end if;
  v_location_id := inventory.location_for_code(stock_as_of.location);
  perform inventory.authorize('viewer', v_location_id);
  v_item := inventory.item_for_sku(stock_as_of.sku);
  select g.on_hand_after, g.reserved_after, g.movement_id, g.created_at into v_entry
    from inventory.ledger g
   where g.item_id = v_item.item_id and g.location_id = v_location_id and g.created_at <= stock_as_of.at
   order by g.movement_id desc
   limit 1;
  -- No movement yet: the level was empty (levels are born empty).
  v_result := row(stock_as_of.sku, stock_as_of.location, stock_as_of.at, coalesce(v_entry.on_hand_after, 0),
                  coalesce(v_entry.reserved_after, 0),
                  coalesce(v_entry.on_hand_after - v_entry.reserved_after, 0), v_entry.movement_id,
                  v_entry.created_at)::inventory_api.stock_snapshot;
  return v_result;
end
$$;

comment on function inventory.stock_as_of(text, text, timestamptz) is 'Implements inventory_api.stock_as_of.';

-- The one writer of events: inserts the row (when settings.events_enabled) and notifies the channel
-- pyinv_events with its id only (listeners re-read under row level security). In the caller's
-- transaction, so a rolled-back change leaves neither row nor notification. Returns the id (null when
-- events are off).
--
-- PostgreSQL serializes the commits of all notifying transactions (one lock held through the commit's
-- WAL flush), so an event that notified each time would make every movement wait for every other:
-- measured with 32 clients, reservations fell from 1,520 to 260 a second. So only the first event of
-- each settings.event_notify_interval (100 ms) notifies; followers read again shortly after a
-- notification and poll as a fallback, so they miss nothing and lag by about that interval at most.
create function inventory.emit_event(type text, item_id bigint, location_id bigint, payload jsonb,
                                     movement_id bigint default null)
returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_written record;
  v_interval numeric;
  v_now bigint;
begin
  -- One statement reads the switch, writes the row and reads the notification clock.
  with s as (select t.event_notify_interval from inventory.settings t where t.events_enabled),
       e as (insert into inventory.events (type, item_id, location_id, movement_id, payload, created_at,
                                           transaction_id)
             select emit_event.type, emit_event.item_id, emit_event.location_id, emit_event.movement_id,
                    case when emit_event.movement_id is null then coalesce(emit_event.payload, '{}'::jsonb) end,
                    pg_catalog.now(), pg_catalog.pg_current_xact_id()
               from s
             returning event_id)
  select e.event_id, s.event_notify_interval, c.last_value into v_written
    from e, s, inventory.event_notify_clock c;
  if v_written.event_id is null then
    return null;
  end if;
  v_interval := extract(epoch from v_written.event_notify_interval) * 1000;
  if v_interval > 0 then
    v_now := pg_catalog.floor(extract(epoch from pg_catalog.clock_timestamp()) * 1000)::bigint;
    if v_now - v_written.last_value between 0 and v_interval - 1 then
      return v_written.event_id;  -- an event notified less than an interval ago
    end if;
    perform pg_catalog.setval('inventory.event_notify_clock'::regclass, v_now);
  end if;
  perform pg_catalog.pg_notify('pyinv_events', v_written.event_id::text);
  return v_written.event_id;
end
$$;

comment on function inventory.emit_event(text, bigint, bigint, jsonb, bigint) is 'Writes one event (of a ledger movement: by its id, without payload) (when settings.events_enabled) in the current transaction and, when it is the first of its settings.event_notify_interval, notifies pyinv_events with its id; the one writer of inventory.events (internal).';

create function inventory.movement_event_type(movement_type inventory.movement_type) returns text
language sql immutable parallel safe
set search_path = ''
begin atomic
  select case movement_event_type.movement_type
           when 'RECEIVE' then 'stock.received'
           when 'RESERVE' then 'reservation.created'
           when 'RELEASE' then 'reservation.released'
           when 'EXPIRE' then 'reservation.expired'
           when 'SHIP' then 'stock.shipped'
           when 'RETURN' then 'stock.returned'
           when 'ADJUST' then 'stock.adjusted'
           when 'TRANSFER_OUT' then 'stock.transferred_out'
           when 'TRANSFER_IN' then 'stock.transferred_in' end;
end;

comment on function inventory.movement_event_type(inventory.movement_type) is 'Event type of a ledger movement: RECEIVE stock.received, RESERVE reservation.created, RELEASE reservation.released (cancelled, or no longer sellable), EXPIRE reservation.expired, SHIP stock.shipped, RETURN stock.returned, ADJUST stock.adjusted, TRANSFER_OUT/IN stock.transferred_out/in.';

-- The details of a movement's event, read from its ledger row.
create function inventory.movement_payload(entry inventory.ledger) returns jsonb
language sql stable parallel safe
set search_path = ''
begin atomic
  select pg_catalog.jsonb_build_object(
           'movement_id', (movement_payload.entry).movement_id, 'movement_type', (movement_payload.entry).movement_type,
           'on_hand_before', (movement_payload.entry).on_hand_before, 'on_hand_after', (movement_payload.entry).on_hand_after,
           'reserved_before', (movement_payload.entry).reserved_before,
           'reserved_after', (movement_payload.entry).reserved_after,
           'reason', (movement_payload.entry).reason, 'reference', (movement_payload.entry).reference,
           'actor', (movement_payload.entry).actor, 'reservation_id', (movement_payload.entry).reservation_id,
           'reservation_ids', (movement_payload.entry).metadata -> 'reservation_ids',
           'related_movement_id', (movement_payload.entry).related_movement_id);
end;

comment on function inventory.movement_payload(inventory.ledger) is 'Payload of a movement''s event: ids, quantities before and after, reason, reference (the order), acting user, the hold or holds it moved.';

create function inventory.emit_adjustment_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform inventory.emit_event('adjustment.' || pg_catalog.lower(new.status), new.item_id, new.location_id,
    pg_catalog.jsonb_build_object(
      'adjustment_id', new.adjustment_id, 'status', new.status, 'previous_status', case when tg_op = 'UPDATE' then old.status end,
      'quantity_delta', new.quantity_delta, 'adjustment_type', new.adjustment_type, 'reason_code', new.reason_code,
      'description', new.description, 'requires_approval', new.requires_approval, 'requested_by', new.requested_by,
      'decided_by', new.decided_by, 'decision_note', new.decision_note, 'movement_id', new.movement_id,
      'count_id', new.count_id, 'lot_id', new.lot_id, 'actor', inventory.current_actor()));
  return null;
end
$$;

comment on function inventory.emit_adjustment_event() is 'Trigger: the event of an adjustment requested (adjustment.pending), applied at once (adjustment.applied) or decided (adjustment.approved, adjustment.rejected, adjustment.superseded).';

create function inventory.emit_lot_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform inventory.emit_event(
    case when old.written_off_on is null and new.written_off_on is not null then 'lot.written_off'
         when old.quarantined is distinct from new.quarantined
           then case when new.quarantined then 'lot.quarantined' else 'lot.quarantine_lifted' end
         when old.qc_status is distinct from new.qc_status then 'lot.qc_' || pg_catalog.lower(new.qc_status)
         when old.expires_on is distinct from new.expires_on then 'lot.expiry_changed'
         else 'lot.status_changed' end,
    new.item_id, null,
    pg_catalog.jsonb_build_object(
      'lot_id', new.lot_id, 'lot_number', new.lot_number, 'qc_status', new.qc_status,
      'previous_qc_status', old.qc_status, 'quarantined', new.quarantined, 'previous_quarantined', old.quarantined,
      'expires_on', new.expires_on, 'previous_expires_on', old.expires_on, 'written_off_on', new.written_off_on,
      'note', new.status_note, 'actor', inventory.current_actor()));
  return null;
end
$$;

comment on function inventory.emit_lot_event() is 'Trigger: the event of a lot''s status change: lot.written_off, lot.quarantined, lot.quarantine_lifted, lot.qc_passed / lot.qc_failed / lot.qc_pending, lot.expiry_changed (a lot belongs to no one location: location null).';

create function inventory.emit_alert_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform inventory.emit_event(
    case when tg_op = 'INSERT' then 'alert.opened'
         when old.status is distinct from new.status
           then case new.status when 'OPEN' then 'alert.reopened' else 'alert.' || pg_catalog.lower(new.status) end
         when old.severity is distinct from new.severity
           then case when new.severity = 'CRITICAL' then 'alert.escalated' else 'alert.severity_changed' end
         when old.recovered_at is null and new.recovered_at is not null then 'alert.recovered'
         else 'alert.changed' end,
    new.item_id, new.location_id,
    pg_catalog.jsonb_build_object(
      'alert_id', new.alert_id, 'status', new.status, 'previous_status', case when tg_op = 'UPDATE' then old.status end,
      'severity', new.severity, 'available_at_open', new.available_at_open, 'reorder_point', new.reorder_point,
      'safety_stock', new.safety_stock, 'acknowledged_by', new.acknowledged_by, 'closed_by', new.closed_by,
      'note', new.note, 'recovered_at', new.recovered_at, 'actor', inventory.current_actor()));
  return null;
end
$$;

comment on function inventory.emit_alert_event() is 'Trigger: the event of a reorder alert opened (alert.opened) or changed: alert.acknowledged, alert.resolved, alert.dismissed, alert.reopened, alert.escalated, alert.recovered.';

-- Below which transaction id every event is final: the oldest transaction of this database still
-- running in the current snapshot (else the snapshot's xmax). Transactions of other databases of the
-- cluster are left out, so that a long transaction elsewhere does not hold events back: an xid is
-- known to be another database's when the same backend holds it before and after its database is
-- read (a backend's database never changes, and while it holds the xid its pid is not reused);
-- anything not known so (a prepared transaction, a race) counts, which only delays. In a STABLE
-- function every statement sees the caller's snapshot, the one read_events and ack_events read with.
create function inventory.event_horizon() returns xid8
language plpgsql volatile
set search_path = ''
as $$
declare
  -- Volatile, so that under READ COMMITTED this statement takes a snapshot of its own, and the
  -- caller's next statement (which reads the events) a later one.
  v_snapshot pg_catalog.pg_snapshot := pg_catalog.pg_current_snapshot();
  v_horizon xid8;
begin
  -- Of the transactions running at that snapshot, those of this database still running now (a
  -- backend's database never changes; prepared transactions have none) hold events back. One that has
  -- ended since is visible to any later snapshot, and those of other databases write no events here.
  select coalesce(pg_catalog.min(x.xid), pg_catalog.pg_snapshot_xmax(v_snapshot)) into v_horizon
    from pg_catalog.pg_snapshot_xip(v_snapshot) x (xid)
   where pg_catalog.xid(x.xid) in (
           select a.backend_xid from pg_catalog.pg_stat_activity a
            where a.datid = (select d.oid from pg_catalog.pg_database d where d.datname = pg_catalog.current_database())
              and a.backend_xid is not null
           union all
           select p.transaction from pg_catalog.pg_prepared_xacts p where p.database = pg_catalog.current_database());
  if pg_catalog.current_setting('transaction_isolation') <> 'read committed' then
    -- The events will be read with the transaction's snapshot, older than this one: only what had ended
    -- before it is sure to be in it.
    v_horizon := least(v_horizon, pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()));
  end if;
  return v_horizon;
end
$$;

comment on function inventory.event_horizon() is 'Transaction id below which every event is final for the next statement''s snapshot (READ COMMITTED; the transaction snapshot''s xmin under REPEATABLE READ and SERIALIZABLE): the oldest transaction of this database still running, or the next transaction id (internal).';

-- A consumer name, checked: INVALID_ARGUMENT naming the argument.
create function inventory.check_consumer(consumer text) returns void
language plpgsql stable
set search_path = ''
as $$
begin
  if check_consumer.consumer is null or check_consumer.consumer !~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'consumer must be 1-64 characters: letters, digits and . _ : / # + - (starting with a letter or digit)',
      pg_catalog.jsonb_build_object('argument', 'consumer',
                                    'problem', case when check_consumer.consumer is null then 'missing' else 'malformed' end));
  end if;
end
$$;

comment on function inventory.check_consumer(text) is 'Raises INVALID_ARGUMENT unless consumer is a valid consumer name (internal).';

-- The position (transaction, id) of a consumer the caller may act for, (0, 0) when it does not exist yet.
create function inventory.consumer_position(consumer text, for_update boolean, out transaction_id xid8,
                                            out event_id bigint)
language plpgsql volatile
set search_path = ''
as $$
declare
  v_consumer inventory.event_consumers;
begin
  if consumer_position.for_update then
    select * into v_consumer from inventory.event_consumers c where c.consumer = consumer_position.consumer for update;
  else
    select * into v_consumer from inventory.event_consumers c where c.consumer = consumer_position.consumer;
  end if;
  if v_consumer.consumer is not null and v_consumer.owner <> inventory.current_actor()
     and not inventory.is_allowed('admin') then
    perform inventory.raise_error('PERMISSION_DENIED',
      pg_catalog.format('consumer %s belongs to %s; name a consumer of your own', consumer_position.consumer,
                        v_consumer.owner),
      pg_catalog.jsonb_build_object('consumer', consumer_position.consumer, 'owner', v_consumer.owner,
                                    'user', inventory.current_actor()));
  end if;
  transaction_id := coalesce(v_consumer.acknowledged_transaction_id, '0'::xid8);
  event_id := coalesce(v_consumer.acknowledged_id, 0);
end
$$;

comment on function inventory.consumer_position(text, boolean) is 'A consumer''s position for the caller (its owner or an unscoped admin; PERMISSION_DENIED otherwise); (0, 0) for a new consumer (internal).';

-- The position of event event_id, when a reader could have been given it: committed by a transaction
-- below the horizon (event_horizon). INVALID_ARGUMENT otherwise.
create function inventory.event_position(event_id bigint) returns xid8
language plpgsql stable
set search_path = ''
as $$
declare
  v_transaction_id xid8;
begin
  if event_position.event_id is null or event_position.event_id < 0 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'an event id is a whole number of 0 or more',
      pg_catalog.jsonb_build_object('argument', 'up_to_id', 'problem',
                                    case when event_position.event_id is null then 'missing' else 'out of range' end));
  end if;
  if event_position.event_id = 0 then
    return '0'::xid8;
  end if;
  select e.transaction_id into v_transaction_id from inventory.events e
   where e.event_id = event_position.event_id;
  if v_transaction_id >= pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
     and v_transaction_id >= inventory.event_horizon() then
    v_transaction_id := null;  -- not final yet: read_events could not have returned it
  end if;
  if v_transaction_id is null then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('there is no event %s to acknowledge: acknowledge an id read_events returned', event_position.event_id),
      pg_catalog.jsonb_build_object('argument', 'up_to_id', 'problem', 'unknown event', 'value', event_position.event_id));
  end if;
  return v_transaction_id;
end
$$;

comment on function inventory.event_position(bigint) is 'Transaction of an event read_events could have returned (INVALID_ARGUMENT for an unknown, purged or not yet readable id) (internal).';

-- Volatile although it writes nothing: under READ COMMITTED its events are read with a snapshot taken
-- after the horizon was (event_horizon), so a transaction that ended in between holds nothing back.
create function inventory.read_events(consumer text, max_events integer, after_id bigint)
returns setof inventory_api.event
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_transaction_id xid8;
  v_event_id bigint;
  v_visible bigint[];
  v_horizon xid8;
begin
  if not inventory.has_any_role() then
    perform inventory.raise_error('PERMISSION_DENIED',
      pg_catalog.format('%s may not read events: it needs the viewer role', inventory.current_actor()),
      pg_catalog.jsonb_build_object('user', inventory.current_actor(), 'required_role', 'viewer'));
  end if;
  if read_events.max_events is null or read_events.max_events not between 1 and 10000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'max_events must be between 1 and 10000',
      pg_catalog.jsonb_build_object('argument', 'max_events', 'problem', 'out of range'));
  end if;
  if read_events.after_id is not null then
    v_transaction_id := inventory.event_position(read_events.after_id);
    v_event_id := read_events.after_id;
  elsif read_events.consumer is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'name a consumer (or give after_id)',
      pg_catalog.jsonb_build_object('argument', 'consumer', 'problem', 'missing'));
  end if;
  if read_events.consumer is not null then
    perform inventory.check_consumer(read_events.consumer);
    if v_event_id is null then
      select p.transaction_id, p.event_id into v_transaction_id, v_event_id
        from inventory.consumer_position(read_events.consumer, false) p;
    else
      perform inventory.consumer_position(read_events.consumer, false);  -- may the caller use it?
    end if;
  end if;
  v_visible := inventory.visible_location_ids();
  v_horizon := inventory.event_horizon();
  -- Only transactions below the horizon (the oldest transaction of this database still running): they
  -- have all ended before this statement's snapshot, so nothing can still appear before the last
  -- event returned.
  return query
    select e.event_id, e.type, i.sku, l.code, coalesce(e.payload, inventory.movement_payload(g)), e.created_at
      from inventory.events e
      left join inventory.ledger g on g.movement_id = e.movement_id
      left join inventory.items i on i.item_id = e.item_id
      left join inventory.locations l on l.location_id = e.location_id
     where (e.transaction_id, e.event_id) > (v_transaction_id, v_event_id)
       and e.transaction_id < v_horizon
       and (e.location_id = any (v_visible) or e.location_id is null)
     order by e.transaction_id, e.event_id
     limit read_events.max_events;
end
$$;

comment on function inventory.read_events(text, integer, bigint) is 'Implements inventory_api.read_events.';

create function inventory.ack_events(consumer text, up_to_id bigint) returns inventory_api.event_consumer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_transaction_id xid8;
  v_result inventory_api.event_consumer;
begin
  if not inventory.has_any_role() then
    perform inventory.raise_error('PERMISSION_DENIED',
      pg_catalog.format('%s may not acknowledge events: it needs the viewer role', inventory.current_actor()),
      pg_catalog.jsonb_build_object('user', inventory.current_actor(), 'required_role', 'viewer'));
  end if;
  perform inventory.check_consumer(ack_events.consumer);
  v_transaction_id := inventory.event_position(ack_events.up_to_id);
  insert into inventory.event_consumers (consumer, owner) values (ack_events.consumer, inventory.current_actor())
  on conflict on constraint event_consumers_pkey do nothing;
  perform inventory.consumer_position(ack_events.consumer, true);
  -- Monotonic: a position before the current one (a late or repeated ack) changes nothing.
  update inventory.event_consumers c
     set acknowledged_id = ack_events.up_to_id, acknowledged_transaction_id = v_transaction_id,
         updated_at = pg_catalog.now()
   where c.consumer = ack_events.consumer
     and (c.acknowledged_transaction_id, c.acknowledged_id) < (v_transaction_id, ack_events.up_to_id);
  select c.consumer, c.owner, c.acknowledged_id, c.updated_at into v_result
    from inventory.event_consumers c where c.consumer = ack_events.consumer;
  return v_result;
end
$$;

comment on function inventory.ack_events(text, bigint) is 'Implements inventory_api.ack_events.';

create function inventory.purge_events(older_than interval) returns bigint
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_older_than interval;
  v_deleted bigint;
begin
  perform inventory.authorize('scheduler');
  select coalesce(purge_events.older_than, s.event_retention) into v_older_than from inventory.settings s;
  if v_older_than < interval '0' then
    perform inventory.raise_error('INVALID_ARGUMENT', 'older_than must be 0 or more',
      pg_catalog.jsonb_build_object('argument', 'older_than', 'problem', 'out of range',
                                    'value', purge_events.older_than::text));
  end if;
  if not inventory.lock_job('purge_events', wait => false) then
    return 0;  -- another run is deleting the same rows
  end if;
  delete from inventory.events e where e.created_at < pg_catalog.now() - v_older_than;
  get diagnostics v_deleted = row_count;
  perform inventory.finish_job('purge_events', v_deleted);
  return v_deleted;
end
$$;

comment on function inventory.purge_events(interval) is 'Implements inventory_api.purge_events.';

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

-- Reports (issue 13). Every one reads the tables as the caller, so each shows only the caller's
-- locations; low_stock_items reads a private materialized view through inventory.low_stock_rows(),
-- which applies the same rule.
create view inventory_api.inventory_valuation with (security_invoker = true) as
  select i.sku, l.code as location, null::text as lot_number, s.on_hand, i.unit_cost,
         s.on_hand * i.unit_cost as value, case when i.unit_cost is not null then 'item' end as cost_source
    from inventory.stock_levels s
    join inventory.items i on i.item_id = s.item_id
    join inventory.locations l on l.location_id = s.location_id
   where not s.track_lots and s.on_hand <> 0 and i.deleted_at is null
  union all
  select i.sku, l.code, t.lot_number, ll.on_hand, coalesce(t.unit_cost, i.unit_cost),
         ll.on_hand * coalesce(t.unit_cost, i.unit_cost),
         case when t.unit_cost is not null then 'lot' when i.unit_cost is not null then 'item' end
    from inventory.lot_levels ll
    join inventory.lots t on t.lot_id = ll.lot_id
    join inventory.items i on i.item_id = ll.item_id
    join inventory.locations l on l.location_id = ll.location_id
   where ll.on_hand <> 0 and i.deleted_at is null;

comment on view inventory_api.inventory_valuation is 'Value of the stock on hand at unit cost: one row per item and location, or per lot and location for lot-tracked items (at the lot''s own unit cost, else the item''s). value is null where no cost is known.';

create view inventory_api.movement_summary with (security_invoker = true) as
  select i.sku, l.code as location, g.received, g.shipped, g.returned, g.adjusted, g.transferred_in,
         g.transferred_out, g.net_change, g.movements, g.first_movement_at, g.last_movement_at
    from (select g.item_id, g.location_id,
                 coalesce(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'RECEIVE'), 0) as received,
                 coalesce(-(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'SHIP')), 0) as shipped,
                 coalesce(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'RETURN'), 0) as returned,
                 coalesce(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'ADJUST'), 0) as adjusted,
                 coalesce(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'TRANSFER_IN'), 0)
                   as transferred_in,
                 coalesce(-(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'TRANSFER_OUT')), 0)
                   as transferred_out,
                 pg_catalog.sum(g.on_hand_delta) as net_change, pg_catalog.count(*) as movements,
                 pg_catalog.min(g.created_at) as first_movement_at, pg_catalog.max(g.created_at) as last_movement_at
            from inventory.ledger g
           where g.created_at >= pg_catalog.now() - interval '90 days'
           group by g.item_id, g.location_id) g
    join inventory.items i on i.item_id = g.item_id
    join inventory.locations l on l.location_id = g.location_id;

comment on view inventory_api.movement_summary is 'Movements of the last 90 days per item and location: units received, shipped, returned, adjusted (net, signed), transferred in and out, and the net change of on_hand (received - shipped + returned + adjusted + transferred_in - transferred_out). Levels without a movement in the window are left out.';

create view inventory_api.active_reservations_summary with (security_invoker = true) as
  select i.sku, l.code as location, r.holds, r.units, r.overdue_holds, r.overdue_units, r.oldest_hold_at,
         r.next_expiry_at
    from (select r.item_id, r.location_id,
                 pg_catalog.count(*) filter (where not o.overdue) as holds,
                 coalesce(pg_catalog.sum(r.quantity - r.quantity_fulfilled) filter (where not o.overdue), 0) as units,
                 pg_catalog.count(*) filter (where o.overdue) as overdue_holds,
                 coalesce(pg_catalog.sum(r.quantity - r.quantity_fulfilled) filter (where o.overdue), 0)
                   as overdue_units,
                 pg_catalog.min(r.created_at) filter (where not o.overdue) as oldest_hold_at,
                 pg_catalog.min(r.expires_at) filter (where not o.overdue) as next_expiry_at
            from inventory.reservations r
            cross join lateral (select coalesce(r.expires_at <= pg_catalog.now(), false) as overdue) o
           where r.status = 'ACTIVE'
           group by r.item_id, r.location_id) r
    join inventory.items i on i.item_id = r.item_id
    join inventory.locations l on l.location_id = r.location_id;

comment on view inventory_api.active_reservations_summary is 'ACTIVE holds per item and location: how many and how many units they hold, the oldest and the next to expire; overdue holds (past expires_at, no longer counting, not yet swept) are counted apart.';

create view inventory_api.low_stock_items with (security_invoker = true) as
  select m.sku, m.location, m.on_hand, m.reserved, m.available, m.reorder_point, m.safety_stock, m.stock_status,
         m.shortfall, m.reorder_quantity, m.max_stock_level, m.suggested_order_quantity, m.refreshed_at
    from inventory.low_stock_rows() m;

comment on view inventory_api.low_stock_items is 'Levels with a stock policy at or below their reorder point, as of the last refresh_inventory_views (refreshed_at): stock_status OUT_OF_STOCK (available <= 0), CRITICAL (available <= safety_stock) or LOW (available <= reorder_point).';

create view inventory_api.alert_statistics with (security_invoker = true) as
  select a.status, a.severity, pg_catalog.count(*) as alerts,
         pg_catalog.count(distinct (a.item_id, a.location_id)) as levels,
         pg_catalog.min(a.opened_at) as oldest_opened_at, pg_catalog.max(a.opened_at) as latest_opened_at
    from inventory.reorder_alerts a
   group by a.status, a.severity;

comment on view inventory_api.alert_statistics is 'Reorder alerts counted by status (OPEN, ACKNOWLEDGED, RESOLVED, DISMISSED) and severity (REORDER, CRITICAL); combinations without an alert are left out.';

create view inventory_api.maintenance_status with (security_invoker = true) as
  select j.job, j.description, j.last_started_at, j.last_finished_at, j.last_duration_ms, j.last_rows, j.last_result,
         pg_catalog.now() - j.last_finished_at as lag
    from inventory.maintenance_jobs j;

comment on view inventory_api.maintenance_status is 'Each maintenance job''s last run: when it started and finished, how long it took, rows touched, its result, and the time since (lag; null when it never ran).';

create view inventory_api.dashboard with (security_invoker = true) as
  select (select pg_catalog.count(*) from inventory.items i where i.deleted_at is null) as items,
         (select pg_catalog.count(*) from inventory.locations l) as locations,
         s.units_on_hand, s.units_reserved,
         (select pg_catalog.sum(v.value) from inventory_api.inventory_valuation v) as inventory_value,
         a.open_alerts, a.open_reorder_alerts, a.open_critical_alerts,
         (select pg_catalog.count(*) from inventory.adjustments d where d.status = 'PENDING') as pending_approvals,
         e.expiring_lots, e.expired_lots,
         (select pg_catalog.count(*) from inventory.reservations r
           where r.status = 'ACTIVE' and r.expires_at > pg_catalog.now()
             and r.expires_at <= pg_catalog.now() + interval '1 hour') as holds_expiring_within_hour,
         (select pg_catalog.count(*) from inventory_api.low_stock_items k) as low_stock_items,
         (select pg_catalog.max(j.last_finished_at) from inventory.maintenance_jobs j) as last_maintenance_at,
         pg_catalog.now() as as_of
    from (select coalesce(pg_catalog.sum(s.on_hand), 0) as units_on_hand,
                 coalesce(pg_catalog.sum(s.reserved), 0) as units_reserved
            from inventory.stock_levels s) s,
         (select pg_catalog.count(*) as open_alerts,
                 pg_catalog.count(*) filter (where a.severity = 'REORDER') as open_reorder_alerts,
                 pg_catalog.count(*) filter (where a.severity = 'CRITICAL') as open_critical_alerts
            from inventory.reorder_alerts a where a.status in ('OPEN', 'ACKNOWLEDGED')) a,
         (select pg_catalog.count(*) filter (where x.expiry_status <> 'EXPIRED') as expiring_lots,
                 pg_catalog.count(*) filter (where x.expiry_status = 'EXPIRED') as expired_lots
            from inventory_api.expiring_lots x) e;

comment on view inventory_api.dashboard is 'One row of figures over the caller''s locations: items, locations, units on hand and reserved, stock value, open reorder alerts by severity, adjustments waiting for approval, expiring and expired lots, holds lapsing within the hour, low-stock levels (as of the last refresh) and the last maintenance run.';

create view inventory_api.events with (security_invoker = true) as
  select e.event_id as id, e.type, i.sku, l.code as location, coalesce(e.payload, inventory.movement_payload(g)) as payload,
         e.created_at
    from inventory.events e
    left join inventory.ledger g on g.movement_id = e.movement_id
    left join inventory.items i on i.item_id = e.item_id
    left join inventory.locations l on l.location_id = e.location_id;

comment on view inventory_api.events is 'Events at the caller''s locations (and of lots), kept for settings.event_retention: every stock movement, reservation state change, adjustment decision, lot status change and reorder alert change, written in the transaction of the change. To consume them without missing one committed late, use read_events and ack_events.';

create view inventory_api.event_consumers with (security_invoker = true) as
  select c.consumer, c.owner, c.acknowledged_id, c.updated_at
    from inventory.event_consumers c;

comment on view inventory_api.event_consumers is 'Consumers of events and the last event each acknowledged (your own; unscoped admins see all).';

create function inventory_api.stock_as_of(sku text, location text default 'main',
                                          at timestamptz default pg_catalog.now())
returns inventory_api.stock_snapshot
language sql stable
set search_path = ''
begin atomic
  select * from inventory.stock_as_of(stock_as_of.sku, stock_as_of.location, stock_as_of.at);
end;

comment on function inventory_api.stock_as_of(text, text, timestamptz) is
'The stock of an item at a location at a past moment, from the ledger: on hand, reserved and available (on_hand - reserved) after the last movement of the level at or before at (by transaction time), with that movement''s id and time; 0 before the first movement.
Needs the viewer role at the location. Holds that were overdue then still count as reserved (the ledger records them until they were swept).';

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

create function inventory_api.read_events(consumer text default null, max_events integer default 100,
                                          after_id bigint default null)
returns setof inventory_api.event
language sql stable
set search_path = ''
begin atomic
  select * from inventory.read_events(read_events.consumer, read_events.max_events, read_events.after_id);
end;

comment on function inventory_api.read_events(text, integer, bigint) is
'Up to max_events (1-10000) events after the consumer''s last acknowledged one (after_id: after that event instead), at the caller''s locations, in order.
Nothing is skipped: an event whose transaction committed after a later id was read still comes, because only events of transactions that have ended (older than the oldest transaction of this database still running) are returned, in (transaction, id) order; a long-running transaction in this database delays them until it ends. Then acknowledge the last id with ack_events. A consumer belongs to who created it (PERMISSION_DENIED for others but unscoped admins).';

create function inventory_api.ack_events(consumer text, up_to_id bigint)
returns inventory_api.event_consumer
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.ack_events(ack_events.consumer, ack_events.up_to_id);
end;

comment on function inventory_api.ack_events(text, bigint) is
'Record that consumer has processed every event read_events returned up to and including up_to_id (the next read_events starts after it). Creates the consumer when new (owned by the caller); never moves a position back (a repeated or late ack changes nothing). INVALID_ARGUMENT for an id read_events could not have returned.';

create function inventory_api.purge_events(older_than interval default null)
returns bigint
language sql volatile
set search_path = ''
begin atomic
  select inventory.purge_events(purge_events.older_than);
end;

comment on function inventory_api.purge_events(interval) is
'Delete events older than older_than (default settings.event_retention, 30 days); returns how many. Retention wins over consumers: an event a consumer has not acknowledged is deleted too once old enough. The scheduler (or an unscoped admin), daily; returns 0 while another run is in progress.';

-- One row per metric. Each figure is defined once, here (the README's "Metrics" repeats it):
--   stock_out_rate                    levels of live items whose available (as inventory_api.stock_levels
--                                     shows it: overdue holds released, blocked lots left out) is 0 or
--                                     less, divided by all levels of live items; null without levels.
--   out_of_stock_levels               the numerator of stock_out_rate.
--   items_at_or_below_reorder_point   levels with a stock policy whose available is at or below the
--                                     reorder point, now (low_stock_items shows them as of the last refresh).
--   reservation_fill_rate             over the holds closed (fulfilled, cancelled or expired) in the last
--                                     30 days: units shipped from them / units they held. A request
--                                     refused for lack of stock leaves no row anywhere (its transaction
--                                     rolls back), so it cannot count: this is the share of what was
--                                     held that was shipped.
--   inventory_turnover                units shipped (SHIP movements) in the last 365 days / average units
--                                     on hand, where the average is (on hand now + on hand 365 days ago)
--                                     / 2, the latter reconstructed from the ledger (now - the net change
--                                     of the window); null when the average is 0. Per year.
--   inventory_accuracy                cycle counts of the last 30 days whose counted quantity equals the
--                                     on hand it was compared with / all counts of the window; null
--                                     without counts.
--   lot_expiration_waste_units        units written off with reason expired (expire_inventory_lots and
--                                     adjustments with reason code expired) in the last 30 days.
--   lot_expiration_waste_value        those units at the lot's unit cost (else the item's); units without
--                                     a known cost left out.
--   holds_expired_last_day            holds that lapsed in the last 24 hours (expires_at passed without
--                                     being fulfilled or cancelled): EXPIRED ones and overdue ones not
--                                     swept yet.
--   maintenance_lag_seconds           over the jobs that ran at least once, the most any is overdue:
--                                     now - (last start + its default interval), 0 when none is late.
--                                     Jobs run at other intervals (pyinv maintain --every) show their
--                                     lateness against the default one.
--   maintenance_jobs_never_run        jobs of pyinv maintain's default schedule that never ran.
--   audit_rows_unsealed               committed audit rows the sealer has not put on the hash chain yet.
-- The two maintenance figures and the audit backlog are about the whole database; the other figures
-- about the caller's locations. A caller without a business role sees no rows.
create view inventory_api.inventory_metrics with (security_invoker = true) as
  with levels as (
    select pg_catalog.count(*) filter (where i.deleted_at is null) as levels,
           pg_catalog.count(*) filter (where i.deleted_at is null and a.available <= 0) as out_of_stock,
           pg_catalog.count(*) filter (where i.deleted_at is null and p.item_id is not null
                                        and a.available <= p.reorder_point) as at_or_below_reorder_point,
           coalesce(pg_catalog.sum(s.on_hand), 0) as on_hand
      from inventory.stock_levels s
      join inventory.items i on i.item_id = s.item_id
      left join inventory.stock_policies p on p.item_id = s.item_id and p.location_id = s.location_id
      -- Open units of overdue holds, for every level at once (the sweeper has not released them yet,
      -- but they no longer count).
      left join (select r.item_id, r.location_id, pg_catalog.sum(r.quantity - r.quantity_fulfilled) as units
                   from inventory.reservations r
                  where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
                  group by r.item_id, r.location_id) o on o.item_id = s.item_id and o.location_id = s.location_id
      cross join lateral (select s.available + coalesce(o.units, 0)
                                 - case when s.track_lots then inventory.blocked_quantity(s.item_id, s.location_id)
                                        else 0 end as available) a
  ),
  moves as (
    select coalesce(-(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'SHIP')), 0) as shipped,
           coalesce(pg_catalog.sum(g.on_hand_delta), 0) as net_change
      from inventory.ledger g
     where g.created_at >= pg_catalog.now() - interval '365 days'
  ),
  waste as (
    select coalesce(-pg_catalog.sum(coalesce(lm.on_hand_delta, g.on_hand_delta)), 0) as units,
           coalesce(-pg_catalog.sum(coalesce(lm.on_hand_delta, g.on_hand_delta) * coalesce(t.unit_cost, i.unit_cost)),
                    0) as value
      from inventory.ledger g
      join inventory.items i on i.item_id = g.item_id
      left join inventory.lot_movements lm on lm.movement_id = g.movement_id and lm.on_hand_delta <> 0
      left join inventory.lots t on t.lot_id = lm.lot_id
     where g.movement_type = 'ADJUST' and g.reason = 'expired' and g.created_at >= pg_catalog.now() - interval '30 days'
  ),
  holds as (
    select pg_catalog.sum(r.quantity_fulfilled) filter (where r.closed) as units_shipped,
           pg_catalog.sum(r.quantity) filter (where r.closed) as units_held,
           pg_catalog.count(*) filter (where r.lapsed) as lapsed
      from (select r.quantity, r.quantity_fulfilled,
                   r.status <> 'ACTIVE' and r.closed_at >= pg_catalog.now() - interval '30 days' as closed,
                   r.status in ('ACTIVE', 'EXPIRED') and r.expires_at <= pg_catalog.now()
                   and r.expires_at > pg_catalog.now() - interval '1 day' as lapsed
              from inventory.reservations r
             where r.closed_at >= pg_catalog.now() - interval '30 days'
                or (r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now())) r
  ),
  counts as (
    select pg_catalog.count(*) as counts,
           pg_catalog.count(*) filter (where c.counted_quantity = c.on_hand_at_count) as exact
      from inventory.cycle_counts c
     where c.counted_at >= pg_catalog.now() - interval '30 days'
  ),
  jobs as (
    select pg_catalog.max(greatest(pg_catalog.now() - j.last_started_at - d.every, interval '0'))
             filter (where j.last_started_at is not null) as lag,
           pg_catalog.count(*) filter (where j.last_started_at is null) as never_run
      from inventory.maintenance_jobs j
      cross join lateral (select inventory.maintenance_default_interval(j.job) as every) d
     where d.every is not null
  )
  select m.metric, m.value, m.unit, m.period, m.description
    from levels cross join moves cross join waste cross join holds cross join counts cross join jobs
    cross join lateral (values
      ('stock_out_rate', pg_catalog.round(levels.out_of_stock::numeric / nullif(levels.levels, 0), 6),
       'ratio', null::interval,
       'Share of stock levels (item and location) with nothing available'),
      ('out_of_stock_levels', levels.out_of_stock::numeric, 'count', null,
       'Stock levels with nothing available'),
      ('items_at_or_below_reorder_point', levels.at_or_below_reorder_point::numeric, 'count', null,
       'Stock levels with a stock policy whose available units are at or below the reorder point'),
      ('reservation_fill_rate', pg_catalog.round(holds.units_shipped / nullif(holds.units_held, 0), 6),
       'ratio', interval '30 days',
       'Units shipped from the holds closed in the window / units they held'),
      ('inventory_turnover',
       pg_catalog.round(moves.shipped / nullif((2 * levels.on_hand - moves.net_change) / 2, 0), 6),
       'per year', interval '365 days',
       'Units shipped in the window / average units on hand ((now + at the start of the window) / 2)'),
      ('inventory_accuracy', pg_catalog.round(counts.exact::numeric / nullif(counts.counts, 0), 6),
       'ratio', interval '30 days',
       'Cycle counts in the window that found exactly the on hand recorded / all counts in the window'),
      ('lot_expiration_waste_units', waste.units, 'units', interval '30 days',
       'Units written off as expired in the window'),
      ('lot_expiration_waste_value', waste.value, 'currency', interval '30 days',
       'Value of the units written off as expired in the window, at the lot''s unit cost (else the item''s)'),
      ('holds_expired_last_day', holds.lapsed::numeric, 'count', interval '1 day',
       'Holds that lapsed unfulfilled in the window (expired, or overdue and not swept yet)'),
      ('maintenance_lag_seconds', pg_catalog.round(extract(epoch from jobs.lag), 3), 'seconds', null,
       'How far the most overdue maintenance job is behind its default schedule (0: none is late)'),
      ('maintenance_jobs_never_run', jobs.never_run::numeric, 'count', null,
       'Maintenance jobs of the default schedule that never ran'),
      ('audit_rows_unsealed', (select inventory.unsealed_audit_rows())::numeric, 'count', null,
       'Committed audit rows not sealed onto the hash chain yet')
    ) as m (metric, value, unit, period, description)
   where (select inventory.has_any_role());

comment on view inventory_api.inventory_metrics is 'Operational metrics, one row each (pyinv metrics; Prometheus gauges pyinv_<metric>). Over the caller''s locations: stock_out_rate and out_of_stock_levels (available <= 0 among the levels of live items), items_at_or_below_reorder_point (levels with a policy, now), reservation_fill_rate (units shipped / units held, holds closed in the last 30 days; refused requests are not recorded anywhere), inventory_turnover (units shipped in 365 days / (on hand now + on hand 365 days ago, from the ledger) / 2), inventory_accuracy (counts of the last 30 days that matched the recorded on hand / all counts), lot_expiration_waste_units and _value (units written off with reason expired in 30 days, at the lot''s else the item''s unit cost), holds_expired_last_day (holds that lapsed in the last 24 hours, swept or not). About the whole database: maintenance_lag_seconds (the most any job that ran is overdue against pyinv maintain''s default interval, 0 when none is), maintenance_jobs_never_run, audit_rows_unsealed. No rows for a caller without a business role.';

-- Movements per day, for the HTML report's chart: the last 30 days (UTC), today included, one row per
-- day even without movements, summed over the caller's locations (none for a caller without a
-- business role, like inventory_metrics).
create view inventory_api.daily_movements with (security_invoker = true) as
  select d.day, coalesce(g.received, 0) as received, coalesce(g.shipped, 0) as shipped,
         coalesce(g.returned, 0) as returned, coalesce(g.adjusted, 0) as adjusted,
         coalesce(g.transferred_in, 0) as transferred_in, coalesce(g.transferred_out, 0) as transferred_out,
         coalesce(g.net_change, 0) as net_change, coalesce(g.movements, 0) as movements
    from (select (pg_catalog.timezone('UTC', pg_catalog.now()))::date - n as day
            from pg_catalog.generate_series(0, 29) n) d
    left join (select (pg_catalog.timezone('UTC', g.created_at))::date as day,
                      pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'RECEIVE') as received,
                      -(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'SHIP')) as shipped,
                      pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'RETURN') as returned,
                      pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'ADJUST') as adjusted,
                      pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'TRANSFER_IN') as transferred_in,
                      -(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'TRANSFER_OUT'))
                        as transferred_out,
                      pg_catalog.sum(g.on_hand_delta) as net_change, pg_catalog.count(*) as movements
                 from inventory.ledger g
                where g.created_at >= pg_catalog.timezone('UTC', (pg_catalog.timezone('UTC', pg_catalog.now()))::date - 29)
                group by 1) g on g.day = d.day
   where (select inventory.has_any_role());

comment on view inventory_api.daily_movements is 'Units moved per day (UTC) over the last 30 days, today included, summed over the caller''s locations: one row per day, zeros on days without movements (the movement chart of pyinv report); no rows for a caller without a business role.';
-- END functions and views generated by tools/schema_diff.py

-- The events of adjustments, lots and reorder alerts (sql/56_events.sql).
create trigger adjustments_emit_event after insert on inventory.adjustments
  for each row execute function inventory.emit_adjustment_event();
create trigger adjustments_emit_event_on_status after update of status on inventory.adjustments
  for each row when (old.status is distinct from new.status)
  execute function inventory.emit_adjustment_event();
alter table inventory.adjustments enable always trigger adjustments_emit_event,
  enable always trigger adjustments_emit_event_on_status;
create trigger lots_emit_event after update on inventory.lots
  for each row when (old.qc_status is distinct from new.qc_status or old.quarantined is distinct from new.quarantined
                     or old.expires_on is distinct from new.expires_on
                     or old.written_off_on is distinct from new.written_off_on)
  execute function inventory.emit_lot_event();
alter table inventory.lots enable always trigger lots_emit_event;
create trigger reorder_alerts_emit_event after insert on inventory.reorder_alerts
  for each row execute function inventory.emit_alert_event();
create trigger reorder_alerts_emit_event_on_change after update on inventory.reorder_alerts
  for each row when (old.status is distinct from new.status or old.severity is distinct from new.severity
                     or old.recovered_at is distinct from new.recovered_at)
  execute function inventory.emit_alert_event();
alter table inventory.reorder_alerts enable always trigger reorder_alerts_emit_event,
  enable always trigger reorder_alerts_emit_event_on_change;

-- The new API views' columns: those computed here are described explicitly, every other one gets the
-- comment of the table column it shows (as sql/70_api_views.sql does).
comment on column inventory_api.inventory_valuation.sku is 'SKU of the item.';
comment on column inventory_api.inventory_valuation.location is 'Code of the location.';
comment on column inventory_api.inventory_valuation.lot_number is 'The lot, for a lot-tracked item; null otherwise.';
comment on column inventory_api.inventory_valuation.on_hand is 'Units physically present (of the lot, for a lot-tracked item); held units included.';
comment on column inventory_api.inventory_valuation.unit_cost is 'Unit cost used: the lot''s unit_cost when it has one, else the item''s moving-average unit_cost; null when neither is known.';
comment on column inventory_api.inventory_valuation.value is 'on_hand * unit_cost (exact); null when no cost is known.';
comment on column inventory_api.inventory_valuation.cost_source is 'Where unit_cost comes from: lot, item, or null (unknown).';
comment on column inventory_api.movement_summary.sku is 'SKU of the item.';
comment on column inventory_api.movement_summary.location is 'Code of the location.';
comment on column inventory_api.movement_summary.received is 'Units received (RECEIVE movements).';
comment on column inventory_api.movement_summary.shipped is 'Units shipped (SHIP movements), as a positive number.';
comment on column inventory_api.movement_summary.returned is 'Units restocked by customer returns (RETURN movements).';
comment on column inventory_api.movement_summary.adjusted is 'Net units added (positive) or removed (negative) by adjustments, counts, lot write-offs and direct changes (ADJUST movements).';
comment on column inventory_api.movement_summary.transferred_in is 'Units that arrived from other locations (TRANSFER_IN movements).';
comment on column inventory_api.movement_summary.transferred_out is 'Units sent to other locations (TRANSFER_OUT movements), as a positive number.';
comment on column inventory_api.movement_summary.net_change is 'Change of on_hand over the window: the sum of every movement''s on_hand_delta.';
comment on column inventory_api.movement_summary.movements is 'Ledger movements in the window, of every type (holds made, released and expired included).';
comment on column inventory_api.movement_summary.first_movement_at is 'Time of the first movement in the window.';
comment on column inventory_api.movement_summary.last_movement_at is 'Time of the last movement in the window.';
comment on column inventory_api.active_reservations_summary.sku is 'SKU of the item held.';
comment on column inventory_api.active_reservations_summary.location is 'Code of the location.';
comment on column inventory_api.active_reservations_summary.holds is 'ACTIVE holds that are not overdue.';
comment on column inventory_api.active_reservations_summary.units is 'Units they hold (quantity - quantity_fulfilled).';
comment on column inventory_api.active_reservations_summary.overdue_holds is 'ACTIVE holds past expires_at: they no longer count and wait for expire_reservations.';
comment on column inventory_api.active_reservations_summary.overdue_units is 'Units of the overdue holds.';
comment on column inventory_api.active_reservations_summary.oldest_hold_at is 'When the oldest hold that is not overdue was made.';
comment on column inventory_api.active_reservations_summary.next_expiry_at is 'When the next hold lapses; null when none of them expires.';
comment on column inventory_api.low_stock_items.sku is 'SKU of the item.';
comment on column inventory_api.low_stock_items.location is 'Code of the location.';
comment on column inventory_api.low_stock_items.on_hand is 'Units physically present at the refresh.';
comment on column inventory_api.low_stock_items.reserved is 'Units held at the refresh.';
comment on column inventory_api.low_stock_items.available is 'Units a new hold could take at the refresh (as inventory_api.stock_levels shows them).';
comment on column inventory_api.low_stock_items.reorder_point is 'The policy''s reorder point.';
comment on column inventory_api.low_stock_items.safety_stock is 'The policy''s safety stock.';
comment on column inventory_api.low_stock_items.stock_status is 'OUT_OF_STOCK (available <= 0), CRITICAL (available <= safety_stock) or LOW (available <= reorder_point); the first that holds.';
comment on column inventory_api.low_stock_items.shortfall is 'reorder_point - available: units below the reorder point (0 when exactly at it).';
comment on column inventory_api.low_stock_items.reorder_quantity is 'The policy''s fixed order quantity, if any.';
comment on column inventory_api.low_stock_items.max_stock_level is 'The policy''s maximum level, if any.';
comment on column inventory_api.low_stock_items.suggested_order_quantity is 'Units to order: the reorder quantity, else up to the maximum level; null when the policy gives neither.';
comment on column inventory_api.low_stock_items.refreshed_at is 'When the row was computed (the last refresh_inventory_views).';
comment on column inventory_api.alert_statistics.status is 'OPEN, ACKNOWLEDGED, RESOLVED or DISMISSED.';
comment on column inventory_api.alert_statistics.severity is 'REORDER or CRITICAL.';
comment on column inventory_api.alert_statistics.alerts is 'Alerts with this status and severity.';
comment on column inventory_api.alert_statistics.levels is 'Distinct levels (item and location) they concern.';
comment on column inventory_api.alert_statistics.oldest_opened_at is 'When the oldest of them opened.';
comment on column inventory_api.alert_statistics.latest_opened_at is 'When the latest of them opened.';
comment on column inventory_api.maintenance_status.lag is 'Time since the last run finished (now() - last_finished_at); null when the job never ran.';
comment on column inventory_api.dashboard.items is 'Live items in the catalogue.';
comment on column inventory_api.dashboard.locations is 'Locations the caller may see.';
comment on column inventory_api.dashboard.units_on_hand is 'Units physically present, over every item and location.';
comment on column inventory_api.dashboard.units_reserved is 'Units held by ACTIVE holds (overdue ones not yet swept included).';
comment on column inventory_api.dashboard.inventory_value is 'Value of the stock on hand at unit cost (the sum of inventory_valuation; units without a known cost left out).';
comment on column inventory_api.dashboard.open_alerts is 'Reorder alerts OPEN or ACKNOWLEDGED.';
comment on column inventory_api.dashboard.open_reorder_alerts is 'Open alerts of severity REORDER.';
comment on column inventory_api.dashboard.open_critical_alerts is 'Open alerts of severity CRITICAL.';
comment on column inventory_api.dashboard.pending_approvals is 'Adjustments PENDING an admin''s approval.';
comment on column inventory_api.dashboard.expiring_lots is 'Lots (per location) with stock that expire within 30 days (expiring_lots: EXPIRING_SOON or EXPIRING).';
comment on column inventory_api.dashboard.expired_lots is 'Lots (per location) with stock past their expiry date, not written off yet (expiring_lots: EXPIRED).';
comment on column inventory_api.dashboard.holds_expiring_within_hour is 'ACTIVE holds that lapse within the next hour.';
comment on column inventory_api.dashboard.low_stock_items is 'Levels at or below their reorder point as of the last refresh (low_stock_items).';
comment on column inventory_api.dashboard.last_maintenance_at is 'When the last maintenance job run finished (maintenance_status).';
comment on column inventory_api.dashboard.as_of is 'When the figures were computed.';
comment on column inventory_api.inventory_metrics.metric is 'Name of the metric (snake_case; the Prometheus gauge is pyinv_<metric>).';
comment on column inventory_api.inventory_metrics.value is 'Its value now; null when it is undefined (a rate without anything to count).';
comment on column inventory_api.inventory_metrics.unit is 'ratio (0 to 1), count, units (of stock), currency (unit cost''s), per year or seconds.';
comment on column inventory_api.inventory_metrics.period is 'The window the figure covers, ending now; null for a figure of the present moment.';
comment on column inventory_api.inventory_metrics.description is 'What the figure is, in one line (the view''s comment defines each precisely).';
comment on column inventory_api.daily_movements.day is 'The day (UTC).';
comment on column inventory_api.daily_movements.received is 'Units received (RECEIVE movements).';
comment on column inventory_api.daily_movements.shipped is 'Units shipped (SHIP movements), as a positive number.';
comment on column inventory_api.daily_movements.returned is 'Units restocked by customer returns (RETURN movements).';
comment on column inventory_api.daily_movements.adjusted is 'Net units added (positive) or removed (negative) by adjustments, counts and write-offs (ADJUST movements).';
comment on column inventory_api.daily_movements.transferred_in is 'Units that arrived from other locations (TRANSFER_IN movements).';
comment on column inventory_api.daily_movements.transferred_out is 'Units sent to other locations (TRANSFER_OUT movements), as a positive number.';
comment on column inventory_api.daily_movements.net_change is 'Change of on_hand that day: the sum of every movement''s on_hand_delta.';
comment on column inventory_api.daily_movements.movements is 'Ledger movements that day, of every type (holds included).';
comment on column inventory_api.events.id is 'Id of the event (unique; acknowledge it with ack_events).';
comment on column inventory_api.events.type is 'What happened: stock.received, reservation.created, reservation.released, reservation.expired, stock.shipped, stock.returned, stock.adjusted, stock.transferred_out, stock.transferred_in, adjustment.pending/applied/approved/rejected/superseded, lot.qc_passed/qc_failed/qc_pending/quarantined/quarantine_lifted/expiry_changed/written_off, alert.opened/acknowledged/resolved/dismissed/reopened/escalated/recovered.';
comment on column inventory_api.events.sku is 'The item concerned.';
comment on column inventory_api.events.location is 'The location concerned (null for a lot event).';
comment on column inventory_api.events.payload is 'Details: ids (movement_id, reservation_id or reservation_ids, adjustment_id, lot_id, alert_id), quantities before and after, reason, reference (the order), actor.';
comment on column inventory_api.events.created_at is 'Transaction time of the change.';
comment on column inventory_api.event_consumers.consumer is 'Name of the consumer.';
comment on column inventory_api.event_consumers.owner is 'Acting user who created it; only they and unscoped admins read and acknowledge for it.';
comment on column inventory_api.event_consumers.acknowledged_id is 'Id of the last event acknowledged (0: none yet).';
comment on column inventory_api.event_consumers.updated_at is 'When its position last moved.';
do $view_column_comments$
declare
  v_column record;
begin
  for v_column in
    select v.oid::regclass as view_name, a.attname,
           (select d.description
              from pg_catalog.pg_depend dep
              join pg_catalog.pg_rewrite rw on rw.oid = dep.objid and rw.ev_class = v.oid
              join pg_catalog.pg_attribute ta on ta.attrelid = dep.refobjid and ta.attnum = dep.refobjsubid
              join pg_catalog.pg_class t on t.oid = dep.refobjid and t.relkind in ('r', 'p')
              join pg_catalog.pg_description d on d.objoid = t.oid and d.classoid = 'pg_catalog.pg_class'::regclass
                                              and d.objsubid = ta.attnum
             where dep.classid = 'pg_catalog.pg_rewrite'::regclass and ta.attname = a.attname
             -- the table the view is named after first (items for inventory_api.items), then any
             order by (t.relname = v.relname) desc, t.relname
             limit 1) as description
      from pg_catalog.pg_class v
      join pg_catalog.pg_attribute a on a.attrelid = v.oid and a.attnum > 0 and not a.attisdropped
     where v.relnamespace = 'inventory_api'::regnamespace and v.relkind = 'v'
       and not exists (select from pg_catalog.pg_description d
                        where d.objoid = v.oid and d.classoid = 'pg_catalog.pg_class'::regclass
                          and d.objsubid = a.attnum)
  loop
    if v_column.description is not null or v_column.attname = 'location' then
      execute pg_catalog.format('comment on column %s.%I is %L', v_column.view_name, v_column.attname,
                                coalesce(v_column.description, 'Code of the location.'));
    end if;
  end loop;
end
$view_column_comments$;
