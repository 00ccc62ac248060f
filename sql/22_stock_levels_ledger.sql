-- Layer 2, tables: stock levels and the append-only ledger that proves them.
--
-- Every change of on_hand or reserved, whoever makes it (an API function, a DBA in psql), passes
-- through the BEFORE trigger on stock_levels, which appends the movement to the ledger in the same
-- transaction. API functions describe the movement in the transient column pending_movement; the
-- trigger consumes it and clears it, so it is never stored. A change without a description is
-- recorded as an ADJUST by the acting user. The triggers here guard invariants of the tables
-- themselves; triggers that implement a feature live with that feature's functions.

create table inventory.stock_levels (
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  on_hand numeric(19, 4) not null default 0,
  reserved numeric(19, 4) not null default 0,
  available numeric(19, 4) generated always as (on_hand - reserved) stored,
  version bigint not null default 1,
  updated_at timestamptz not null default pg_catalog.now(),
  pending_movement jsonb,
  ledger_hash bytea,
  has_stock_policy boolean not null default false,
  last_counted_at timestamptz,
  last_counted_by text,
  primary key (item_id, location_id),
  constraint stock_levels_on_hand_check check (on_hand >= 0 and on_hand <> 'NaN'::numeric),
  constraint stock_levels_reserved_check check (reserved >= 0 and reserved <> 'NaN'::numeric),
  constraint stock_levels_reserved_within_on_hand_check check (reserved <= on_hand),
  constraint stock_levels_pending_movement_check check (pending_movement is null)
) with (fillfactor = 70);

create index stock_levels_location_id_idx on inventory.stock_levels (location_id);

comment on table inventory.stock_levels is 'Quantity of each item at each location. Changed only through the ledger trigger.';

comment on column inventory.stock_levels.item_id is 'The item.';

comment on column inventory.stock_levels.location_id is 'The location.';

comment on column inventory.stock_levels.on_hand is 'Units physically present.';

comment on column inventory.stock_levels.reserved is 'Units held by active reservations (including overdue holds not yet swept).';

comment on column inventory.stock_levels.available is 'on_hand - reserved (generated).';

comment on column inventory.stock_levels.version is 'Incremented on every movement; usable for compare-and-set.';

comment on column inventory.stock_levels.updated_at is 'Time of the last movement.';

comment on column inventory.stock_levels.ledger_hash is 'Hash of the level''s latest ledger movement: the head of its hash chain.';

comment on column inventory.stock_levels.has_stock_policy is 'Whether a stock policy exists for the level: the reorder alert trigger fires only then (a trigger WHEN clause, so levels without a policy pay nothing).';
comment on column inventory.stock_levels.last_counted_at is 'When the level was last physically counted (record_count).';
comment on column inventory.stock_levels.last_counted_by is 'Acting user of the last count.';
comment on column inventory.stock_levels.pending_movement is 'Transient description of the movement being written (type, reason, reference...); consumed and cleared by the ledger trigger, never stored.';

-- Enums, not CHECK constraints: PostgreSQL re-reads and re-plans every CHECK expression of a table
-- for each INSERT or UPDATE statement, and the ledger is written on every movement.
create type inventory.movement_type as enum
  ('RECEIVE', 'RESERVE', 'RELEASE', 'EXPIRE', 'SHIP', 'RETURN', 'ADJUST', 'TRANSFER_OUT', 'TRANSFER_IN');

comment on type inventory.movement_type is 'Kinds of stock movement recorded in the ledger.';

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
  constraint ledger_arithmetic_check check (on_hand_after = on_hand_before + on_hand_delta
                                            and reserved_after = reserved_before + reserved_delta
                                            and (on_hand_delta <> 0 or reserved_delta <> 0))
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

comment on column inventory.ledger.metadata is 'Free-form details (reservation ids of aggregated movements, unit cost, ...).';

comment on column inventory.ledger.created_at is 'Transaction time of the movement.';

comment on column inventory.ledger.transaction_id is 'Id of the writing transaction.';

comment on column inventory.ledger.prev_hash is 'Hash of the previous movement of the same stock level (null for its first).';

comment on column inventory.ledger.hash is 'sha256(prev_hash || canonical bytes of this movement): a tamper-evident chain per stock level.';

-- Canonical bytes of a movement: independent of TimeZone and DateStyle.
create function inventory.ledger_entry_bytes(entry inventory.ledger) returns bytea
language sql stable parallel safe
-- Fields in a fixed order, separated by a unit separator; texts of numbers, ids and jsonb are
-- canonical, and the time is an epoch number, so the bytes do not depend on session settings.
-- A SQL-standard body: the ledger trigger inlines it under the stock level's row lock.
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
           (ledger_entry_bytes.entry).transaction_id), 'UTF8');
end;

comment on function inventory.ledger_entry_bytes(inventory.ledger) is 'Canonical, session-independent bytes of a movement, hashed by the per-level chain.';

create function inventory.record_stock_movement() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_movement jsonb := coalesce(new.pending_movement, '{}'::jsonb);
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
    return new;
  end if;
  new.version := old.version + 1;
  new.ledger_hash := old.ledger_hash;
  if new.on_hand = old.on_hand and new.reserved = old.reserved then
    return new;
  end if;
  new.updated_at := pg_catalog.now();
  v_entry := row(
    pg_catalog.nextval('inventory.ledger_movement_id_seq'::regclass),
    coalesce(v_movement ->> 'type', 'ADJUST')::inventory.movement_type,
    new.item_id, new.location_id,
    new.on_hand - old.on_hand, new.reserved - old.reserved,
    old.on_hand, new.on_hand, old.reserved, new.reserved,
    inventory.current_actor(),
    case when v_movement = '{}'::jsonb then 'direct change of inventory.stock_levels' else v_movement ->> 'reason' end,
    v_movement ->> 'reference',
    v_movement ->> 'idempotency_key',
    (v_movement ->> 'related_movement_id')::bigint,
    (v_movement ->> 'reservation_id')::bigint,
    coalesce(v_movement -> 'metadata', '{}'::jsonb),
    pg_catalog.now(), pg_catalog.pg_current_xact_id(),
    old.ledger_hash, null)::inventory.ledger;
  v_entry.hash := pg_catalog.sha256(coalesce(old.ledger_hash, ''::bytea) || inventory.ledger_entry_bytes(v_entry));
  insert into inventory.ledger overriding system value select v_entry.*;
  new.ledger_hash := v_entry.hash;
  return new;
end
$$;

comment on function inventory.record_stock_movement() is 'Trigger: appends every change of a stock level to the ledger, described by pending_movement.';

create trigger stock_levels_record_movement
  before insert or update on inventory.stock_levels
  for each row execute function inventory.record_stock_movement();

alter table inventory.stock_levels enable always trigger stock_levels_record_movement;

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
