-- Layer 5, functions by concern: events. One home writes them (emit_event); the triggers that call
-- it live here, except the stock-level trigger (22_stock_levels_ledger.sql), which already holds the
-- ledger row it has just written and emits its event there: an AFTER trigger on the ledger would add
-- a per-statement trigger queue to every movement, the hottest path of pyinv.
--
-- What emits what: every ledger movement one event (its type named by movement_event_type; a
-- movement of several holds at one level, e.g. an order shipped or a batch of holds expired, is one
-- event listing them in reservation_ids); every adjustment inserted or changing status; every change
-- of a lot's QC status, quarantine, expiry date or write-off; every reorder alert opened or changing
-- status, severity or recovery. A hold changes state only with a ledger movement naming it, so holds
-- need no trigger of their own: each state change is said once.
--
-- Readers: read_events (no loss, see 26_events.sql), ack_events (a consumer's position, monotonic),
-- purge_events (retention).

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
  -- As text: a literal of a new enum value may not be used in the transaction that adds it (0006).
  select case movement_event_type.movement_type::text
           when 'RECEIVE' then 'stock.received'
           when 'RESERVE' then 'reservation.created'
           when 'RELEASE' then 'reservation.released'
           when 'EXPIRE' then 'reservation.expired'
           when 'SHIP' then 'stock.shipped'
           when 'RETURN' then 'stock.returned'
           when 'ADJUST' then 'stock.adjusted'
           when 'TRANSFER_OUT' then 'stock.transferred_out'
           when 'TRANSFER_IN' then 'stock.transferred_in'
           when 'REBALANCE' then 'stock.rebalanced' end;
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

create trigger adjustments_emit_event after insert on inventory.adjustments
  for each row execute function inventory.emit_adjustment_event();
create trigger adjustments_emit_event_on_status after update of status on inventory.adjustments
  for each row when (old.status is distinct from new.status)
  execute function inventory.emit_adjustment_event();
alter table inventory.adjustments enable always trigger adjustments_emit_event,
  enable always trigger adjustments_emit_event_on_status;

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

create trigger lots_emit_event after update on inventory.lots
  for each row when (old.qc_status is distinct from new.qc_status or old.quarantined is distinct from new.quarantined
                     or old.expires_on is distinct from new.expires_on
                     or old.written_off_on is distinct from new.written_off_on)
  execute function inventory.emit_lot_event();
alter table inventory.lots enable always trigger lots_emit_event;

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

create trigger reorder_alerts_emit_event after insert on inventory.reorder_alerts
  for each row execute function inventory.emit_alert_event();
create trigger reorder_alerts_emit_event_on_change after update on inventory.reorder_alerts
  for each row when (old.status is distinct from new.status or old.severity is distinct from new.severity
                     or old.recovered_at is distinct from new.recovered_at)
  execute function inventory.emit_alert_event();
alter table inventory.reorder_alerts enable always trigger reorder_alerts_emit_event,
  enable always trigger reorder_alerts_emit_event_on_change;

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
