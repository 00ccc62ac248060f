-- Layer 2, tables: events (what changed, for other systems) and their consumers' positions.
--
-- Every stock movement, adjustment decision, lot status change and reorder alert change writes one
-- event row in the transaction that makes the change (inventory.emit_event, 56_events.sql), and
-- notifies the channel pyinv_events with the event's id (at most once per
-- settings.event_notify_interval: see emit_event). A rolled-back change leaves no event.
--
-- Reading without loss: event ids are drawn before commit, so a transaction holding a lower id may
-- commit after one holding a higher id. Readers therefore take only events of transactions older
-- than the oldest transaction of this database still running (event_horizon; all older ones have
-- ended before the snapshot the events are then read with), in (transaction_id, event_id) order: every event committed later belongs
-- to a transaction at or above that horizon, so it sorts after anything already read, and a consumer's position (transaction_id, event_id) never passes an event it has
-- not seen. The order is by id within a transaction and by transaction id across them.
--
-- A movement's event stores only the movement's id: its details come from the ledger row when read
-- (inventory.movement_payload), which is append-only and never purged.
--
-- Neither table is audited: an event is derived from a change already recorded (the ledger row, the
-- audited adjustment, lot or alert row), like the ledger itself, and a consumer's position is moved
-- on every batch it reads (see 29_audit.sql).

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
