-- Layer 2, tables: stock levels and the append-only ledger that proves them.
--
-- Every change of on_hand or reserved, whoever makes it (an API function, a DBA in psql), passes
-- through the BEFORE trigger on stock_levels, which appends the movement to the ledger in the same
-- transaction. API functions describe the movement in the transient column pending_movement; the
-- trigger consumes it and clears it, so it is never stored. A change without a description is
-- recorded as an ADJUST by the acting user. The triggers here guard invariants of the tables
-- themselves; triggers that implement a feature live with that feature's functions.

-- Enums, not CHECK constraints: PostgreSQL re-reads and re-plans every CHECK expression of a table
-- for each INSERT or UPDATE statement, and the ledger is written on every movement.
create type inventory.movement_type as enum
  ('RECEIVE', 'RESERVE', 'RELEASE', 'EXPIRE', 'SHIP', 'RETURN', 'ADJUST', 'TRANSFER_OUT', 'TRANSFER_IN', 'REBALANCE');
comment on type inventory.movement_type is 'Kinds of stock movement recorded in the ledger. REBALANCE moves free units between a hot level and its buckets (23_hot_buckets.sql): it changes no total.';

-- The one way a function describes the movement it is about to make: typed, so the trigger reads
-- fields instead of parsing JSON under the level's lock.
create type inventory.movement as (
  movement_type inventory.movement_type, reason text, reference text, idempotency_key text,
  reservation_id bigint, related_movement_id bigint, metadata jsonb);
comment on type inventory.movement is 'Description of a stock movement, set in stock_levels.pending_movement by the function that moves stock and written to the ledger by its trigger.';

create function inventory.describe_movement(movement_type inventory.movement_type, reason text,
                                            reference text default null, idempotency_key text default null,
                                            reservation_id bigint default null,
                                            related_movement_id bigint default null,
                                            metadata jsonb default '{}')
returns inventory.movement
language sql immutable parallel safe
set search_path = ''
begin atomic
  select row(describe_movement.movement_type, describe_movement.reason, describe_movement.reference,
             describe_movement.idempotency_key, describe_movement.reservation_id,
             describe_movement.related_movement_id, coalesce(describe_movement.metadata, '{}'))::inventory.movement;
end;
comment on function inventory.describe_movement(inventory.movement_type, text, text, text, bigint, bigint, jsonb) is 'A movement description, by named arguments.';

-- The invariants of the hot tables are named CHECK constraints calling an immutable PL/pgSQL
-- predicate: PostgreSQL re-reads and re-plans a CHECK expression for every INSERT or UPDATE
-- statement, and a predicate compiled once per session costs a fifth of the same expression
-- written out (5 against 25 microseconds per statement, measured).
create function inventory.level_quantities_are_valid(on_hand numeric, reserved numeric, movement_cleared boolean)
returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  -- NaN sorts above every number: reserved <= on_hand < 1e15 excludes it from both.
  return level_quantities_are_valid.reserved >= 0 and level_quantities_are_valid.reserved <= level_quantities_are_valid.on_hand
         and level_quantities_are_valid.on_hand < 1000000000000000 and level_quantities_are_valid.movement_cleared;
end
$$;
comment on function inventory.level_quantities_are_valid(numeric, numeric, boolean) is 'Invariant of a stock level: 0 <= reserved <= on_hand, no NaN, no movement description left behind.';

create table inventory.stock_levels (
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  on_hand numeric(19, 4) not null default 0,
  reserved numeric(19, 4) not null default 0,
  available numeric(19, 4) generated always as (on_hand - reserved) stored,
  version bigint not null default 1,
  updated_at timestamptz not null default pg_catalog.now(),
  pending_movement inventory.movement,
  ledger_hash bytea,
  has_stock_policy boolean not null default false,
  last_counted_at timestamptz,
  last_counted_by text,
  last_movement_id bigint,
  item_deleted boolean not null default false,
  track_lots boolean not null default false,
  hot_buckets smallint not null default 1,
  primary key (item_id, location_id),
  constraint stock_levels_quantities_check
    check (inventory.level_quantities_are_valid(on_hand, reserved, pending_movement is null))
) with (fillfactor = 70);
create index stock_levels_location_id_idx on inventory.stock_levels (location_id);
comment on table inventory.stock_levels is 'Quantity of each item at each location. Changed only through the ledger trigger.';
comment on column inventory.stock_levels.item_id is 'The item.';
comment on column inventory.stock_levels.location_id is 'The location.';
comment on column inventory.stock_levels.on_hand is 'Units physically present.';
comment on column inventory.stock_levels.reserved is 'Units held by active reservations (including overdue holds not yet swept).';
comment on column inventory.stock_levels.available is 'on_hand - reserved (generated): what a new hold may take once overdue holds in the way are expired; inventory_api.stock_levels shows available with overdue holds already counted as released.';
comment on column inventory.stock_levels.version is 'Incremented on every movement; usable for compare-and-set.';
comment on column inventory.stock_levels.updated_at is 'Time of the last movement.';
comment on column inventory.stock_levels.pending_movement is 'Transient description of the movement being written; consumed and cleared by the ledger trigger, never stored.';
comment on column inventory.stock_levels.ledger_hash is 'Hash of the level''s latest ledger movement: the head of its hash chain.';
comment on column inventory.stock_levels.has_stock_policy is 'Whether a stock policy exists for the level: the reorder alert trigger fires only then (a trigger WHEN clause, so levels without a policy pay nothing).';
comment on column inventory.stock_levels.last_counted_at is 'When the level was last physically counted (record_count).';
comment on column inventory.stock_levels.last_counted_by is 'Acting user of the last count.';
comment on column inventory.stock_levels.item_deleted is 'Whether the item is deleted: set by delete_item under the level''s lock (and for new levels by the trigger); the trigger then refuses any increase, so no call that looked the item up before it was deleted can put stock under it.';
comment on column inventory.stock_levels.track_lots is 'Whether the item is lot-tracked (copied from the item when the level is created): then on_hand and reserved must equal the sums of the level''s lots, which the trigger checks on every movement.';
comment on column inventory.stock_levels.hot_buckets is 'Hot mode (set_hot_mode): how many buckets (inventory.hot_buckets) share the level''s free units; 1 = off. While on, reserved also counts the free units parked in buckets: inventory_api.stock_levels shows the true figures.';
comment on column inventory.stock_levels.last_movement_id is 'Id of the level''s latest ledger movement, set by the ledger trigger: the one way to learn the id of the movement just written (UPDATE ... RETURNING last_movement_id).';

create function inventory.movement_adds_up(on_hand_before numeric, on_hand_delta numeric, on_hand_after numeric,
                                          reserved_before numeric, reserved_delta numeric, reserved_after numeric)
returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return movement_adds_up.on_hand_after = movement_adds_up.on_hand_before + movement_adds_up.on_hand_delta
         and movement_adds_up.reserved_after = movement_adds_up.reserved_before + movement_adds_up.reserved_delta
         and (movement_adds_up.on_hand_delta <> 0 or movement_adds_up.reserved_delta <> 0);
end
$$;
comment on function inventory.movement_adds_up(numeric, numeric, numeric, numeric, numeric, numeric) is 'Invariant of a ledger movement: after = before + delta for on_hand and reserved, and something moved.';

create table inventory.ledger (
  movement_id bigint generated always as identity primary key,
  movement_type inventory.movement_type not null,
  item_id bigint not null,
  location_id bigint not null,
  on_hand_delta numeric(19, 4) not null,
  reserved_delta numeric(19, 4) not null,
  on_hand_before numeric(19, 4) not null,
  on_hand_after numeric(19, 4) not null,
  reserved_before numeric(19, 4) not null,
  reserved_after numeric(19, 4) not null,
  actor text not null,
  reason text,
  reference text,
  idempotency_key text,
  related_movement_id bigint,
  reservation_id bigint,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default pg_catalog.now(),
  transaction_id xid8 not null default pg_catalog.pg_current_xact_id(),
  prev_hash bytea,
  hash bytea not null,
  bucket smallint,
  constraint ledger_arithmetic_check
    check (inventory.movement_adds_up(on_hand_before, on_hand_delta, on_hand_after, reserved_before, reserved_delta,
                                      reserved_after))
);

create index ledger_level_idx on inventory.ledger (item_id, location_id, movement_id);

comment on table inventory.ledger is 'Append-only record of every stock movement; stock_levels equal the sum of its deltas.';

comment on column inventory.ledger.movement_id is 'Monotonic id; orders movements of one stock level.';

comment on column inventory.ledger.movement_type is 'RECEIVE, RESERVE, RELEASE, EXPIRE, SHIP, RETURN, ADJUST, TRANSFER_OUT or TRANSFER_IN.';

comment on column inventory.ledger.item_id is 'The item moved.';

comment on column inventory.ledger.location_id is 'Where it moved.';

comment on column inventory.ledger.on_hand_delta is 'Change of on_hand.';

comment on column inventory.ledger.reserved_delta is 'Change of reserved.';

comment on column inventory.ledger.on_hand_before is 'on_hand before the movement.';

comment on column inventory.ledger.on_hand_after is 'on_hand after the movement.';

comment on column inventory.ledger.reserved_before is 'reserved before the movement.';

comment on column inventory.ledger.reserved_after is 'reserved after the movement.';

comment on column inventory.ledger.actor is 'Acting user (JWT sub under PostgREST, else the login).';

comment on column inventory.ledger.reason is 'Why the stock moved.';

comment on column inventory.ledger.reference is 'Business reference: order number, receipt, ...';

comment on column inventory.ledger.idempotency_key is 'Idempotency key of the call that caused the movement.';

comment on column inventory.ledger.related_movement_id is 'Linked movement (e.g. the other half of a transfer).';

comment on column inventory.ledger.reservation_id is 'The reservation moved, when exactly one.';

comment on column inventory.ledger.metadata is 'Free-form details (reservation ids of aggregated movements, unit cost, ...) and, for calls through PostgREST, request_path and request_id.';

comment on column inventory.ledger.created_at is 'Transaction time of the movement.';

comment on column inventory.ledger.transaction_id is 'Id of the writing transaction.';

comment on column inventory.ledger.prev_hash is 'Hash of the previous movement of the same stock level (null for its first).';

comment on column inventory.ledger.bucket is 'Null for a movement of the stock level itself; for a movement of one of a hot level''s buckets, its number: then on_hand_* are the units parked in the bucket and reserved_* the units its holds take (a bucket has its own hash chain), and only REBALANCE moves parked units, so sums of on_hand_delta over the level count only rows with bucket null.';

comment on column inventory.ledger.hash is 'sha256(prev_hash || canonical bytes of this movement): a tamper-evident chain per stock level.';

-- Canonical bytes of a movement: independent of TimeZone and DateStyle.
create function inventory.ledger_entry_bytes(entry inventory.ledger) returns bytea
language sql stable parallel safe
set search_path = ''
-- Fields in a fixed order, separated by a unit separator; texts of numbers, ids and jsonb are
-- canonical, and the time is an epoch number, so the bytes do not depend on session settings.
begin atomic
  select pg_catalog.convert_to(pg_catalog.concat_ws(pg_catalog.chr(31),
           (ledger_entry_bytes.entry).movement_id, (ledger_entry_bytes.entry).movement_type,
           (ledger_entry_bytes.entry).item_id, (ledger_entry_bytes.entry).location_id,
           (ledger_entry_bytes.entry).on_hand_before, (ledger_entry_bytes.entry).on_hand_delta,
           (ledger_entry_bytes.entry).on_hand_after, (ledger_entry_bytes.entry).reserved_before,
           (ledger_entry_bytes.entry).reserved_delta, (ledger_entry_bytes.entry).reserved_after,
           pg_catalog.quote_nullable((ledger_entry_bytes.entry).actor),
           pg_catalog.quote_nullable((ledger_entry_bytes.entry).reason),
           pg_catalog.quote_nullable((ledger_entry_bytes.entry).reference),
           pg_catalog.quote_nullable((ledger_entry_bytes.entry).idempotency_key),
           coalesce((ledger_entry_bytes.entry).related_movement_id::text, 'null'),
           coalesce((ledger_entry_bytes.entry).reservation_id::text, 'null'),
           (ledger_entry_bytes.entry).metadata,
           extract(epoch from (ledger_entry_bytes.entry).created_at),
           (ledger_entry_bytes.entry).transaction_id,
           -- concat_ws skips nulls: the bytes of a level's own movements are those they had before buckets.
           (ledger_entry_bytes.entry).bucket), 'UTF8');
end;

comment on function inventory.ledger_entry_bytes(inventory.ledger) is 'Canonical, session-independent bytes of a movement, hashed by the per-level chain.';

-- The one trigger every change of a stock level passes through, so that each change is recorded
-- once: a change of on_hand or reserved becomes a ledger movement (described by pending_movement)
-- and re-evaluates the level's reorder alert when it has a stock policy; any other change (a count's
-- timestamp, the policy flag, a DBA's UPDATE of another column) goes to the audit log. One BEFORE
-- row trigger without a WHEN clause: a WHEN clause and AFTER triggers are re-prepared per statement,
-- a branch in this function costs nothing.
create function inventory.record_stock_level_change() returns trigger
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
    old.ledger_hash, null, null)::inventory.ledger;
  v_entry.hash := pg_catalog.sha256(coalesce(old.ledger_hash, ''::bytea) || inventory.ledger_entry_bytes(v_entry));
  insert into inventory.ledger overriding system value select v_entry.*;
  -- Its event (56_events.sql): the movement's id, its details stay in the ledger row; from here, not
  -- from an AFTER trigger on the ledger, which would queue every movement.
  perform inventory.emit_event(inventory.movement_event_type(v_entry.movement_type), new.item_id, new.location_id,
                               null, v_entry.movement_id);
  new.ledger_hash := v_entry.hash;
  new.last_movement_id := v_entry.movement_id;
  -- A hot level's holds move its buckets, not this row: its alert is re-evaluated at each rebalance.
  if new.has_stock_policy
     and (new.on_hand - new.reserved <> old.on_hand - old.reserved or v_movement.movement_type = 'REBALANCE') then
    perform inventory.evaluate_reorder_alert(new.item_id, new.location_id,
      new.on_hand - new.reserved + case when new.hot_buckets > 1 or v_movement.movement_type = 'REBALANCE'
                                        then inventory.parked_units(new.item_id, new.location_id) else 0 end);
  end if;
  return new;
end
$$;
comment on function inventory.record_stock_level_change() is 'Trigger: records every change of a stock level once: quantities as a ledger movement (described by pending_movement, with its event, and re-evaluating the reorder alert), anything else in the audit log.';

create trigger stock_levels_record_change
  before insert or update on inventory.stock_levels
  for each row execute function inventory.record_stock_level_change();
alter table inventory.stock_levels enable always trigger stock_levels_record_change;

-- A stock level holding stock cannot disappear: its units would vanish from the books.
create function inventory.forbid_stock_level_delete() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'TRUNCATE' or old.on_hand <> 0 or old.reserved <> 0 then
    perform inventory.raise_error('APPEND_ONLY',
      'stock levels holding stock cannot be deleted; move the stock out through the API first',
      null);
  end if;
  return old;
end
$$;

comment on function inventory.forbid_stock_level_delete() is 'Trigger: refuses to delete stock levels that hold stock, and any TRUNCATE.';

create trigger stock_levels_forbid_delete
  before delete on inventory.stock_levels
  for each row execute function inventory.forbid_stock_level_delete();

create trigger stock_levels_forbid_truncate
  before truncate on inventory.stock_levels
  for each statement execute function inventory.forbid_stock_level_delete();

alter table inventory.stock_levels enable always trigger stock_levels_forbid_delete;

alter table inventory.stock_levels enable always trigger stock_levels_forbid_truncate;

create function inventory.forbid_ledger_change() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform inventory.raise_error('APPEND_ONLY',
    pg_catalog.format('%s is append-only: %s is not allowed; record a reversing movement instead',
                      tg_table_name, pg_catalog.lower(tg_op)),
    pg_catalog.jsonb_build_object('table', tg_table_name, 'operation', tg_op));
  return null;
end
$$;

comment on function inventory.forbid_ledger_change() is 'Trigger: refuses UPDATE, DELETE and TRUNCATE on append-only tables.';

create trigger ledger_forbid_change
  before update or delete on inventory.ledger
  for each row execute function inventory.forbid_ledger_change();

create trigger ledger_forbid_truncate
  before truncate on inventory.ledger
  for each statement execute function inventory.forbid_ledger_change();

alter table inventory.ledger enable always trigger ledger_forbid_change;

alter table inventory.ledger enable always trigger ledger_forbid_truncate;
