-- pyinv 0.4.0: lots and expiry (issue 12). Items may be tracked by lot (track_lots, now enforced) and
-- need quality control (requires_qc): receipts name the lot and its expiry, holds are allocated to
-- sellable lots first-expiring-first-out (with a minimum shelf life), lots wait for QC, may be
-- quarantined, and expired units are written off by the new maintenance job expire_inventory_lots;
-- adjustments, counts, transfers and returns name the lot; trace_lot follows a lot to the orders it
-- went to. Items that were lot-tracked before 0.4.0 (a flag nothing read) get one lot, UNLOTTED,
-- holding their stock, history and holds, so that every new invariant holds from the start.
-- depends: 0003_hardening

set local role inventory_owner;

-- The catalogue: quality control, and whether a level is lot-tracked (a copy of its item's flag,
-- set below for existing levels once their lots exist).
alter table inventory.items
  add column requires_qc boolean not null default false,
  add constraint items_requires_qc_check check (track_lots or not requires_qc);
comment on column inventory.items.track_lots is 'Whether stock of this item is tracked by lot: receipts name the lot, holds are allocated first-expiring-first-out (FEFO) from sellable lots.';
comment on column inventory.items.requires_qc is 'Whether new lots of the item wait for inspection (qc_status PENDING, not sellable) instead of starting PASSED.';
alter table inventory.stock_levels add column track_lots boolean not null default false;
comment on column inventory.stock_levels.track_lots is 'Whether the item is lot-tracked (copied from the item when the level is created): then on_hand and reserved must equal the sums of the level''s lots, which the trigger checks on every movement.';

-- Lots, their levels, the holds' allocations to them and the lot ledger (sql/23_lots.sql). The
-- check of lot_allocations calls a predicate created with the functions below; it is added after them.
create table inventory.lots (
  lot_id bigint generated always as identity primary key,
  item_id bigint not null references inventory.items (item_id),
  lot_number text not null,
  supplier_lot text,
  received_at timestamptz not null default pg_catalog.now(),
  expires_on date,
  unit_cost numeric(19, 4),
  qc_status text not null,
  quarantined boolean not null default false,
  status_note text,
  status_changed_by text,
  status_changed_at timestamptz,
  written_off_on date,
  created_by text not null,
  version integer not null default 1,
  constraint lots_item_id_lot_number_key unique (item_id, lot_number),
  constraint lots_lot_number_check check (inventory.text_is_valid(lot_number, 64)),
  constraint lots_supplier_lot_check check (supplier_lot is null or inventory.text_is_valid(supplier_lot, 64)),
  constraint lots_qc_status_check check (qc_status in ('PENDING', 'PASSED', 'FAILED')),
  constraint lots_unit_cost_check check (unit_cost >= 0 and unit_cost <> 'NaN'::numeric),
  constraint lots_status_note_check check (status_note is null or inventory.text_is_valid(status_note, 500))
);
create index lots_expires_on_idx on inventory.lots (expires_on) where expires_on is not null;
comment on table inventory.lots is 'Lots (batches) of lot-tracked items: where they came from, when they expire, and whether they may be sold.';
comment on column inventory.lots.lot_id is 'Surrogate key.';
comment on column inventory.lots.item_id is 'The item.';
comment on column inventory.lots.lot_number is 'The lot''s number, unique per item (1-64 visible characters).';
comment on column inventory.lots.supplier_lot is 'The supplier''s own lot number, when different.';
comment on column inventory.lots.received_at is 'When the lot was first received: the tie-break of FEFO between lots expiring the same day.';
comment on column inventory.lots.expires_on is 'Last day the lot may be sold (UTC); null = does not expire.';
comment on column inventory.lots.unit_cost is 'Average cost of the units received into the lot.';
comment on column inventory.lots.qc_status is 'Quality control: PENDING (not inspected yet), PASSED or FAILED. Only PASSED lots are sellable.';
comment on column inventory.lots.quarantined is 'Held back (a recall, an investigation): not sellable while true.';
comment on column inventory.lots.status_note is 'Note given with the last status change.';
comment on column inventory.lots.status_changed_by is 'Admin who last changed qc_status or quarantined.';
comment on column inventory.lots.status_changed_at is 'When qc_status or quarantined last changed.';
comment on column inventory.lots.written_off_on is 'Day expire_inventory_lots last wrote the lot''s expired units off.';
comment on column inventory.lots.created_by is 'Acting user of the first receipt.';
comment on column inventory.lots.version is 'Incremented by every change of the row.';
create trigger lots_count_version before update on inventory.lots
  for each row execute function inventory.count_version();

create table inventory.lot_levels (
  lot_id bigint not null references inventory.lots (lot_id),
  location_id bigint not null references inventory.locations (location_id),
  item_id bigint not null,
  on_hand numeric(19, 4) not null default 0,
  reserved numeric(19, 4) not null default 0,
  version bigint not null default 1,
  primary key (lot_id, location_id),
  constraint lot_levels_quantities_check check (inventory.level_quantities_are_valid(on_hand, reserved, true))
) with (fillfactor = 70);
create index lot_levels_level_idx on inventory.lot_levels (item_id, location_id);
comment on table inventory.lot_levels is 'Units of each lot at each location; per location they sum to the item''s stock level.';
comment on column inventory.lot_levels.lot_id is 'The lot.';
comment on column inventory.lot_levels.location_id is 'The location.';
comment on column inventory.lot_levels.item_id is 'The lot''s item (copied, to find a stock level''s lots).';
comment on column inventory.lot_levels.on_hand is 'Units of the lot physically present here.';
comment on column inventory.lot_levels.reserved is 'Units of the lot here allocated to active holds.';
comment on column inventory.lot_levels.version is 'Incremented by every change, including a status change of the lot: a hold made from a snapshot that missed the change then conflicts with it (40001) at REPEATABLE READ and SERIALIZABLE.';

-- No foreign key to lots (its check would key-share-lock a hot lot's row for every hold);
-- verify_inventory() reports an allocation without its lot.
create table inventory.lot_allocations (
  reservation_id bigint not null,
  lot_id bigint not null,
  item_id bigint not null,
  location_id bigint not null,
  quantity numeric(19, 4) not null,
  quantity_fulfilled numeric(19, 4) not null default 0,
  quantity_released numeric(19, 4) not null default 0,
  quantity_returned numeric(19, 4) not null default 0,
  created_at timestamptz not null default pg_catalog.now(),
  primary key (reservation_id, lot_id)
);
create index lot_allocations_lot_id_idx on inventory.lot_allocations (lot_id);
comment on table inventory.lot_allocations is 'Which lots a hold of a lot-tracked item takes its units from (FEFO), and what became of them: open = quantity - fulfilled - released.';
comment on column inventory.lot_allocations.reservation_id is 'The hold.';
comment on column inventory.lot_allocations.lot_id is 'The lot.';
comment on column inventory.lot_allocations.item_id is 'The item (the hold''s).';
comment on column inventory.lot_allocations.location_id is 'The location (the hold''s).';
comment on column inventory.lot_allocations.quantity is 'Units of the lot allocated to the hold.';
comment on column inventory.lot_allocations.quantity_fulfilled is 'Units of the allocation shipped.';
comment on column inventory.lot_allocations.quantity_released is 'Units of the allocation given back to the lot: the hold was cancelled or expired, or moved to another lot.';
comment on column inventory.lot_allocations.quantity_returned is 'Units of the shipped ones that came back (process_return).';
comment on column inventory.lot_allocations.created_at is 'When the units were allocated.';

create table inventory.lot_movements (
  lot_movement_id bigint generated always as identity primary key,
  movement_id bigint,
  lot_id bigint not null,
  item_id bigint not null,
  location_id bigint not null,
  on_hand_delta numeric(19, 4) not null,
  reserved_delta numeric(19, 4) not null,
  reservation_id bigint,
  reason text not null,
  actor text not null,
  created_at timestamptz not null default pg_catalog.now(),
  constraint lot_movements_delta_check check (on_hand_delta <> 0 or reserved_delta <> 0)
);
create index lot_movements_movement_id_idx on inventory.lot_movements (movement_id);
create index lot_movements_lot_idx on inventory.lot_movements (lot_id, location_id, lot_movement_id);
comment on table inventory.lot_movements is 'Append-only record of every change of a lot level: lot levels equal the sum of its deltas, and a ledger movement of a lot-tracked item equals the sum of the lot movements pointing at it.';
comment on column inventory.lot_movements.lot_movement_id is 'Monotonic id.';
comment on column inventory.lot_movements.movement_id is 'The ledger movement of the stock level this is part of; null when a hold moved between lots (the level did not change).';
comment on column inventory.lot_movements.lot_id is 'The lot.';
comment on column inventory.lot_movements.item_id is 'The item.';
comment on column inventory.lot_movements.location_id is 'The location.';
comment on column inventory.lot_movements.on_hand_delta is 'Change of the lot''s on_hand here.';
comment on column inventory.lot_movements.reserved_delta is 'Change of the lot''s reserved here.';
comment on column inventory.lot_movements.reservation_id is 'The hold whose allocation changed, if any.';
comment on column inventory.lot_movements.reason is 'Why (the ledger movement''s reason, or reallocated).';
comment on column inventory.lot_movements.actor is 'Acting user.';
comment on column inventory.lot_movements.created_at is 'When.';
create trigger lot_movements_forbid_change
  before update or delete on inventory.lot_movements
  for each row execute function inventory.forbid_ledger_change();
create trigger lot_movements_forbid_truncate
  before truncate on inventory.lot_movements
  for each statement execute function inventory.forbid_ledger_change();
alter table inventory.lot_movements enable always trigger lot_movements_forbid_change;
alter table inventory.lot_movements enable always trigger lot_movements_forbid_truncate;

-- Audited like the holds: lots row by row, their levels and allocations through the ledger
-- movements that change them (sql/29_audit.sql). Readable at the reader's locations (sql/60).
do $audited$
begin
  perform inventory.audit_table('lots');
  perform inventory.audit_table(t, recorded_by_ledger => true)
     from pg_catalog.unnest(array['lot_levels', 'lot_allocations']) as t;
end
$audited$;
alter table inventory.lots enable row level security;
alter table inventory.lot_levels enable row level security;
alter table inventory.lot_allocations enable row level security;
alter table inventory.lot_movements enable row level security;
create policy lots_viewer_select on inventory.lots for select to inventory_viewer
  using ((select inventory.has_any_role()));
create policy lot_levels_viewer_select on inventory.lot_levels for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy lot_allocations_viewer_select on inventory.lot_allocations for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy lot_movements_viewer_select on inventory.lot_movements for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));

-- Adjustments and counts of lot-tracked items name their lot.
alter table inventory.adjustments add column lot_id bigint references inventory.lots (lot_id);
comment on column inventory.adjustments.lot_id is 'The lot adjusted (lot-tracked items), or null.';
alter table inventory.cycle_counts add column lot_id bigint references inventory.lots (lot_id);
comment on column inventory.cycle_counts.reserved_at_count is 'reserved of the level (of the lot, when lot_id is set) at the instant of the count.';
comment on column inventory.cycle_counts.lot_id is 'The lot counted (lot-tracked items are counted lot by lot): then on_hand_at_count and reserved_at_count are the lot''s at the location.';

insert into inventory.error_codes (code, sqlstate, description)
values ('LOT_NOT_FOUND', 'PT404', 'No lot with this number for the item.');
insert into inventory.maintenance_jobs (job, description)
values ('expire_inventory_lots', 'Write off the units of lots past their expiry date.');

-- Types of the functions below: a lot's change, the new results, and the results that gain a field.
create type inventory.lot_delta as (lot_id bigint, on_hand_delta numeric, reserved_delta numeric, reservation_id bigint);
comment on type inventory.lot_delta is 'One change of one lot''s level at a location, for one hold or none.';
alter type inventory_api.item add attribute requires_qc boolean;
alter type inventory_api.adjustment add attribute lot_number text;
alter type inventory_api.stock_count add attribute lot_number text;
create type inventory_api.lot_status_change as (
  sku text, lot_number text, qc_status text, quarantined boolean, sellable boolean, holds_reallocated integer,
  holds_released integer, units_released numeric);
comment on type inventory_api.lot_status_change is 'What set_lot_status did: the lot''s status after it, and the holds it moved to other lots or released because the lot may no longer be sold.';
create type inventory_api.lot_expiry as (
  lots_expired integer, units_written_off numeric, holds_reallocated integer, holds_released integer,
  units_released numeric);
comment on type inventory_api.lot_expiry is 'What expire_inventory_lots did: lots whose expired units it wrote off, how many units, and the holds it moved to other lots or released.';
create type inventory_api.lot_trace as (
  order_ref text, reservation_id bigint, location text, allocated numeric, fulfilled numeric, returned numeric,
  released numeric, hold_status text, reserved_at timestamptz, closed_at timestamptz);
comment on type inventory_api.lot_trace is 'One hold that took units of a lot (recall trace): allocated, shipped, returned and given back.';

-- BEGIN functions and views generated by tools/schema_diff.py
drop function inventory_api.create_item(sku text, name text, unit_of_measure text, unit_cost numeric, track_lots boolean);

drop function inventory_api.receive_stock(sku text, quantity numeric, location text, reference text, unit_cost numeric, idempotency_key text);

drop function inventory_api.reserve_stock(sku text, quantity numeric, order_ref text, location text, expires_in interval, idempotency_key text, reference_type text, notes text);

drop function inventory_api.reserve_order(order_ref text, lines jsonb, expires_in interval, idempotency_key text, reference_type text, notes text);

drop function inventory_api.process_return(order_ref text, sku text, quantity numeric, reason text, restock boolean, location text, idempotency_key text);

drop function inventory_api.create_adjustment(sku text, quantity_delta numeric, adjustment_type text, reason_code text, location text, description text, idempotency_key text);

drop function inventory_api.record_count(sku text, counted_quantity numeric, location text);

drop function inventory_api.transfer_stock(sku text, quantity numeric, from_location text, to_location text, reference text, idempotency_key text);

drop function inventory.item_for_sku(sku text, OUT item_id bigint, OUT status text);

drop function inventory.create_item(sku text, name text, unit_of_measure text, unit_cost numeric, track_lots boolean);

drop function inventory.receive_stock(sku text, quantity numeric, location text, reference text, unit_cost numeric, idempotency_key text);

drop function inventory.shortfall(item_id bigint, location_id bigint, sku text, location text, requested numeric);

drop function inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text, expires_in interval, idempotency_key text, reference_type text, notes text);

drop function inventory.reserve_order(order_ref text, lines jsonb, expires_in interval, idempotency_key text, reference_type text, notes text);

drop function inventory.process_return(order_ref text, sku text, quantity numeric, reason text, restock boolean, location text, idempotency_key text);

drop function inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric, movement inventory.movement, sku text, location text);

drop function inventory.create_adjustment(sku text, quantity_delta numeric, adjustment_type text, reason_code text, location text, description text, idempotency_key text);

drop function inventory.record_count(sku text, counted_quantity numeric, location text);

drop function inventory.transfer_stock(sku text, quantity numeric, from_location text, to_location text, reference text, idempotency_key text);

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
  new.ledger_hash := v_entry.hash;
  new.last_movement_id := v_entry.movement_id;
  if new.has_stock_policy and new.on_hand - new.reserved <> old.on_hand - old.reserved then
    perform inventory.evaluate_reorder_alert(new.item_id, new.location_id, new.on_hand - new.reserved);
  end if;
  return new;
end
$$;

comment on function inventory.record_stock_level_change() is 'Trigger: records every change of a stock level once: quantities as a ledger movement (described by pending_movement, and re-evaluating the reorder alert), anything else in the audit log.';

create function inventory.lot_allocation_is_valid(quantity numeric, fulfilled numeric, released numeric,
                                                  returned numeric)
returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return lot_allocation_is_valid.quantity > 0 and lot_allocation_is_valid.fulfilled >= 0
         and lot_allocation_is_valid.released >= 0
         and lot_allocation_is_valid.fulfilled + lot_allocation_is_valid.released <= lot_allocation_is_valid.quantity
         and lot_allocation_is_valid.returned >= 0 and lot_allocation_is_valid.returned <= lot_allocation_is_valid.fulfilled;
end
$$;

comment on function inventory.lot_allocation_is_valid(numeric, numeric, numeric, numeric) is 'Invariant of an allocation: quantity > 0; fulfilled + released <= quantity; 0 <= returned <= fulfilled.';

-- Lookups that raise the catalogued not-found errors.
create function inventory.item_for_sku(sku text, out item_id bigint, out status text, out track_lots boolean,
                                       out requires_qc boolean)
language plpgsql stable
set search_path = ''
as $$
begin
  perform inventory.check_text(item_for_sku.sku, 'sku', 64);
  select i.item_id, i.status, i.track_lots, i.requires_qc
    into item_for_sku.item_id, item_for_sku.status, item_for_sku.track_lots, item_for_sku.requires_qc
    from inventory.items i
   where i.sku = item_for_sku.sku and i.deleted_at is null;
  if not found then
    perform inventory.raise_error('PRODUCT_NOT_FOUND',
      pg_catalog.format('no item with SKU %L', item_for_sku.sku),
      pg_catalog.jsonb_build_object('sku', item_for_sku.sku));
  end if;
end
$$;

comment on function inventory.item_for_sku(text) is 'item_id, status and lot tracking of a live item; raises PRODUCT_NOT_FOUND.';

-- What is installed, read from the schema itself: pyinv's release and the migration that brings a
-- database to it. Every migration replaces it with its own values (tests/test_install.py checks
-- them against the newest file in migrations/), so that a database whose install was recorded
-- nowhere (a dump restored without inventory_meta) still tells `pyinv migrate` and
-- `pyinv sql upgrade` where it stands.
create or replace function inventory.schema_version(out version text, out migration text)
language sql stable parallel safe
set search_path = ''
begin atomic
  select '0.4.0'::text, '0004_lots'::text;
end;

comment on function inventory.schema_version() is 'The installed schema: pyinv release (version) and the last migration applied (migration).';

create or replace function inventory_api.schema_version(out version text, out migration text)
language sql stable parallel safe
set search_path = ''
begin atomic
  select v.version, v.migration from inventory.schema_version() v;
end;

comment on function inventory_api.schema_version() is
'The installed pyinv schema: its release (version, e.g. 0.4.0) and the last migration applied (migration, e.g. 0004_lots).
Upgrade with `pyinv migrate`, or print the script with `pyinv sql upgrade --from <version>`.';

-- The day of expiry is a calendar day in UTC, the same for every session whatever its TimeZone.
-- PL/pgSQL, like the other predicates on hot paths: compiled once per session (a SQL function with a
-- pinned search_path is never inlined and is planned again on every call).
create function inventory.lot_today() returns date
language plpgsql stable parallel safe
set search_path = ''
as $$
begin
  return (pg_catalog.now() at time zone 'UTC')::date;
end
$$;

comment on function inventory.lot_today() is 'Today in UTC: a lot is expired once its expires_on is before this day.';

-- Why a lot's units may not be sold, or null when they may: the one home of "sellable". A lot with
-- expires_on before sellable_until is too short-lived for the request (min_shelf_life).
create function inventory.lot_block_reason(qc_status text, quarantined boolean, expires_on date, today date,
                                           sellable_until date)
returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return case when lot_block_reason.quarantined then 'quarantined'
              when lot_block_reason.qc_status = 'FAILED' then 'qc_failed'
              when lot_block_reason.expires_on < lot_block_reason.today then 'expired'
              when lot_block_reason.qc_status = 'PENDING' then 'qc_pending'
              when lot_block_reason.expires_on < lot_block_reason.sellable_until then 'short_shelf_life'
         end;
end
$$;

comment on function inventory.lot_block_reason(text, boolean, date, date, date) is 'Why a lot is not sellable: quarantined, qc_failed, expired, qc_pending or short_shelf_life (expires before sellable_until); null when it is sellable.';

-- The last day a lot must still be sellable on for a hold with this min_shelf_life.
create function inventory.sellable_until(min_shelf_life interval) returns date
language plpgsql stable
set search_path = ''
as $$
begin
  if sellable_until.min_shelf_life is null then
    return inventory.lot_today();
  end if;
  if sellable_until.min_shelf_life < interval '0' or sellable_until.min_shelf_life > interval '36500 days' then
    perform inventory.raise_error('INVALID_ARGUMENT', 'min_shelf_life must be between 0 and 36500 days',
      pg_catalog.jsonb_build_object('argument', 'min_shelf_life', 'problem', 'out of range',
                                    'value', sellable_until.min_shelf_life::text));
  end if;
  return ((pg_catalog.now() + sellable_until.min_shelf_life) at time zone 'UTC')::date;
end
$$;

comment on function inventory.sellable_until(interval) is 'Day a lot must not expire before to serve a hold with min_shelf_life (today when null); INVALID_ARGUMENT when negative or above 36500 days.';

-- Units of a level's lots by why they are blocked (reason null: available), counting units of
-- overdue holds as released (expiry is lazy, as in overdue_quantity). The one home of a lot-tracked
-- level's availability: effective_available, shortfall and the API views read it.
create function inventory.lot_availability(item_id bigint, location_id bigint, sellable_until date)
returns table (reason text, units numeric)
language sql stable
set search_path = ''
begin atomic
  select inventory.lot_block_reason(l.qc_status, l.quarantined, l.expires_on, inventory.lot_today(),
                                    coalesce(lot_availability.sellable_until, inventory.lot_today())) as reason,
         pg_catalog.sum(ll.on_hand - ll.reserved
                        + coalesce((select pg_catalog.sum(a.quantity - a.quantity_fulfilled - a.quantity_released)
                                      from inventory.lot_allocations a
                                      join inventory.reservations r on r.reservation_id = a.reservation_id
                                     where a.lot_id = ll.lot_id and a.location_id = ll.location_id
                                       and a.quantity_fulfilled + a.quantity_released < a.quantity
                                       and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()), 0)) as units
    from inventory.lot_levels ll
    join inventory.lots l on l.lot_id = ll.lot_id
   where ll.item_id = lot_availability.item_id and ll.location_id = lot_availability.location_id
   group by 1;
end;

comment on function inventory.lot_availability(bigint, bigint, date) is 'Free units of a lot-tracked level by block reason (null = available), overdue holds counted as released.';

create function inventory.blocked_quantity(item_id bigint, location_id bigint) returns numeric
language sql stable
set search_path = ''
begin atomic
  select coalesce(pg_catalog.sum(a.units), 0)
    from inventory.lot_availability(blocked_quantity.item_id, blocked_quantity.location_id, null) a
   where a.reason is not null;
end;

comment on function inventory.blocked_quantity(bigint, bigint) is 'Units on hand at a lot-tracked level that no hold takes and no new hold may take: their lot is expired, awaiting or failed QC, or quarantined.';

create function inventory.lot_levels_add_up(item_id bigint, location_id bigint, on_hand numeric, reserved numeric)
returns boolean
language sql stable
set search_path = ''
begin atomic
  select coalesce(pg_catalog.sum(ll.on_hand), 0) = lot_levels_add_up.on_hand
         and coalesce(pg_catalog.sum(ll.reserved), 0) = lot_levels_add_up.reserved
    from inventory.lot_levels ll
   where ll.item_id = lot_levels_add_up.item_id and ll.location_id = lot_levels_add_up.location_id;
end;

comment on function inventory.lot_levels_add_up(bigint, bigint, numeric, numeric) is 'Whether a level''s lots sum to these quantities.';

-- The lot of an item with this number; LOT_NOT_FOUND otherwise.
create function inventory.lot_for_number(item_id bigint, lot_number text, sku text) returns inventory.lots
language plpgsql stable
set search_path = ''
as $$
declare
  v_lot inventory.lots;
begin
  perform inventory.check_text(lot_for_number.lot_number, 'lot_number', 64);
  select * into v_lot from inventory.lots l
   where l.item_id = lot_for_number.item_id and l.lot_number = lot_for_number.lot_number;
  if not found then
    perform inventory.raise_error('LOT_NOT_FOUND',
      pg_catalog.format('item %s has no lot %s', lot_for_number.sku, lot_for_number.lot_number),
      pg_catalog.jsonb_build_object('sku', lot_for_number.sku, 'lot_number', lot_for_number.lot_number));
  end if;
  return v_lot;
end
$$;

comment on function inventory.lot_for_number(bigint, text, text) is 'The lot with this number of the item; raises LOT_NOT_FOUND.';

-- Refuses lot arguments for an item that is not lot-tracked, and requires the lot number of one
-- that is (when required).
create function inventory.check_lot_argument(track_lots boolean, lot_number text, required boolean)
returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if not check_lot_argument.track_lots and check_lot_argument.lot_number is not null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'the item is not tracked by lot: leave lot_number out',
      pg_catalog.jsonb_build_object('argument', 'lot_number', 'problem', 'item not lot-tracked'));
  end if;
  if check_lot_argument.track_lots and check_lot_argument.required and check_lot_argument.lot_number is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'the item is tracked by lot: name the lot (lot_number)',
      pg_catalog.jsonb_build_object('argument', 'lot_number', 'problem', 'missing'));
  end if;
end
$$;

comment on function inventory.check_lot_argument(boolean, text, boolean) is 'INVALID_ARGUMENT when lot_number is given for an item without lots, or missing (and required) for one with.';

-- First expiring, first out: the free units of the sellable lots of one level, taken in order of
-- expiry (lots that never expire last), then of receipt, until `quantity` is covered. Returns the
-- reservation deltas (reserved_delta per lot), or null when the sellable lots do not cover it. The
-- caller holds the level's lock, under which no lot level of it can change.
create function inventory.fefo_allocation(item_id bigint, location_id bigint, quantity numeric,
                                          sellable_until date, reservation_id bigint)
returns inventory.lot_delta[]
language sql stable
set search_path = ''
begin atomic
  select case when pg_catalog.sum(t.take) = fefo_allocation.quantity
              then pg_catalog.array_agg(row(t.lot_id, 0, t.take, fefo_allocation.reservation_id)::inventory.lot_delta
                                        order by t.n) end
    from (select c.lot_id, c.n,
                 least(c.free, fefo_allocation.quantity - (c.running - c.free)) as take
            from (select ll.lot_id, ll.on_hand - ll.reserved as free,
                         pg_catalog.row_number() over w as n,
                         pg_catalog.sum(ll.on_hand - ll.reserved) over w as running
                    from (select inventory.lot_today() as today) t
                   cross join inventory.lot_levels ll
                    join inventory.lots l on l.lot_id = ll.lot_id
                   where ll.item_id = fefo_allocation.item_id and ll.location_id = fefo_allocation.location_id
                     and ll.on_hand > ll.reserved
                     and inventory.lot_block_reason(l.qc_status, l.quarantined, l.expires_on, t.today,
                                                    fefo_allocation.sellable_until) is null
                  window w as (order by l.expires_on nulls last, l.received_at, l.lot_id
                               rows between unbounded preceding and current row)) c
           where c.running - c.free < fefo_allocation.quantity) t;
end;

comment on function inventory.fefo_allocation(bigint, bigint, numeric, date, bigint) is 'FEFO: reservation deltas taking quantity from the sellable lots of a level, first expiring first (then first received); null when they do not cover it.';

-- Moves units of a lot-tracked level: the lots' levels first, then the stock level by their sum
-- (whose trigger checks that the two agree and writes the ledger movement described), then one
-- lot movement per delta pointing at that ledger movement. Deltas that cancel out at the level (a
-- hold moved between lots) change the lots only. Locks the level first (the global lock order).
create function inventory.move_lot_units(item_id bigint, location_id bigint, deltas inventory.lot_delta[],
                                         movement inventory.movement)
returns inventory.stock_levels
language plpgsql volatile
set search_path = ''
as $$
declare
  v_level inventory.stock_levels;
  v_on_hand numeric;
  v_reserved numeric;
begin
  select coalesce(pg_catalog.sum(d.on_hand_delta), 0), coalesce(pg_catalog.sum(d.reserved_delta), 0)
    into v_on_hand, v_reserved
    from pg_catalog.unnest(move_lot_units.deltas) d;
  select * into v_level from inventory.stock_levels s
   where s.item_id = move_lot_units.item_id and s.location_id = move_lot_units.location_id
     for update;
  if v_level.on_hand + v_on_hand >= 1000000000000000 then
    perform inventory.raise_error('INVALID_QUANTITY',
      'on hand would exceed the largest quantity a stock level holds (1e15)',
      pg_catalog.jsonb_build_object('argument', 'quantity', 'value', v_on_hand::text, 'problem', 'on_hand would overflow'));
  end if;
  -- Units arrive in a lot where it may have none yet (a receipt, a return, a transfer in); a hold only
  -- ever takes units a lot level holds already.
  if exists (select from pg_catalog.unnest(move_lot_units.deltas) d where d.on_hand_delta > 0) then
    insert into inventory.lot_levels (lot_id, location_id, item_id)
    select distinct d.lot_id, move_lot_units.location_id, move_lot_units.item_id
      from pg_catalog.unnest(move_lot_units.deltas) d
     where d.on_hand_delta > 0
    on conflict do nothing;
  end if;
  update inventory.lot_levels ll
     set on_hand = ll.on_hand + d.on_hand_delta, reserved = ll.reserved + d.reserved_delta, version = ll.version + 1
    from (select x.lot_id, pg_catalog.sum(x.on_hand_delta) as on_hand_delta,
                 pg_catalog.sum(x.reserved_delta) as reserved_delta
            from pg_catalog.unnest(move_lot_units.deltas) x group by x.lot_id) d
   where ll.lot_id = d.lot_id and ll.location_id = move_lot_units.location_id;
  if v_on_hand <> 0 or v_reserved <> 0 then
    update inventory.stock_levels s
       set on_hand = s.on_hand + v_on_hand, reserved = s.reserved + v_reserved,
           pending_movement = move_lot_units.movement
     where s.item_id = move_lot_units.item_id and s.location_id = move_lot_units.location_id
    returning * into v_level;
  end if;
  insert into inventory.lot_movements (movement_id, lot_id, item_id, location_id, on_hand_delta, reserved_delta,
                                       reservation_id, reason, actor)
  select case when v_on_hand <> 0 or v_reserved <> 0 then v_level.last_movement_id end, d.lot_id,
         move_lot_units.item_id, move_lot_units.location_id, d.on_hand_delta, d.reserved_delta, d.reservation_id,
         coalesce((move_lot_units.movement).reason, (move_lot_units.movement).movement_type::text),
         inventory.current_actor()
    from pg_catalog.unnest(move_lot_units.deltas) d
   where d.on_hand_delta <> 0 or d.reserved_delta <> 0;
  return v_level;
end
$$;

comment on function inventory.move_lot_units(bigint, bigint, inventory.lot_delta[], inventory.movement) is 'Moves units of a lot-tracked level: its lots, then the level (one ledger movement), then the lot movements naming both.';

-- Takes `quantity` more units of a lot-tracked level into a new hold, first expiring first out,
-- recording the hold's allocations. Overdue holds at the level are expired when the sellable lots do
-- not cover it, and the allocation tried once more. Returns whether the units were held.
create function inventory.hold_lot_units(item_id bigint, location_id bigint, quantity numeric,
                                         sellable_until date, reservation_id bigint, movement inventory.movement)
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  v_deltas inventory.lot_delta[];
begin
  perform from inventory.stock_levels s
   where s.item_id = hold_lot_units.item_id and s.location_id = hold_lot_units.location_id
     for update;
  if not found then
    return false;
  end if;
  for attempt in 1 .. 2 loop
    v_deltas := inventory.fefo_allocation(hold_lot_units.item_id, hold_lot_units.location_id, hold_lot_units.quantity,
                                          hold_lot_units.sellable_until, hold_lot_units.reservation_id);
    if v_deltas is not null then
      insert into inventory.lot_allocations (reservation_id, lot_id, item_id, location_id, quantity)
      select hold_lot_units.reservation_id, d.lot_id, hold_lot_units.item_id, hold_lot_units.location_id,
             d.reserved_delta
        from pg_catalog.unnest(v_deltas) d;
      perform inventory.move_lot_units(hold_lot_units.item_id, hold_lot_units.location_id, v_deltas,
                                       hold_lot_units.movement);
      return true;
    end if;
    exit when attempt = 2 or inventory.expire_overdue_at_level(hold_lot_units.item_id, hold_lot_units.location_id) = 0;
  end loop;
  return false;
end
$$;

comment on function inventory.hold_lot_units(bigint, bigint, numeric, date, bigint, inventory.movement) is 'Holds units of a lot-tracked level for a new hold, FEFO across its sellable lots, recording the allocations; false when they do not fit.';

-- Units of a lot-tracked level that a transfer or removal may take, as on-hand deltas (positive:
-- the units taken): the free units of the named lot, or FEFO across the sellable lots. Overdue holds
-- in the way are expired first. Null when they do not cover the quantity. The level is locked.
create function inventory.lot_units_to_move(item_id bigint, location_id bigint, lot_id bigint, quantity numeric)
returns inventory.lot_delta[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_free numeric;
  v_deltas inventory.lot_delta[];
begin
  for attempt in 1 .. 2 loop
    if lot_units_to_move.lot_id is not null then
      select ll.on_hand - ll.reserved into v_free from inventory.lot_levels ll
       where ll.lot_id = lot_units_to_move.lot_id and ll.location_id = lot_units_to_move.location_id;
      if v_free >= lot_units_to_move.quantity then
        return array[row(lot_units_to_move.lot_id, lot_units_to_move.quantity, 0, null)::inventory.lot_delta];
      end if;
    else
      v_deltas := inventory.fefo_allocation(lot_units_to_move.item_id, lot_units_to_move.location_id,
                                            lot_units_to_move.quantity, inventory.lot_today(), null);
      if v_deltas is not null then
        return array(select row(d.lot_id, d.reserved_delta, 0, null)::inventory.lot_delta from pg_catalog.unnest(v_deltas) d);
      end if;
    end if;
    exit when attempt = 2
           or inventory.expire_overdue_at_level(lot_units_to_move.item_id, lot_units_to_move.location_id) = 0;
  end loop;
  return null;
end
$$;

comment on function inventory.lot_units_to_move(bigint, bigint, bigint, numeric) is 'Free units of the named lot, or FEFO across sellable lots, that a transfer or removal may take; null when they do not cover the quantity.';

-- Catalogue: items and locations. These are idempotent by their natural key: creating an object that
-- exists with the same attributes returns it; with other attributes it is ALREADY_EXISTS.
create or replace function inventory.item_result(item_id bigint) returns inventory_api.item
language sql stable
set search_path = ''
as $$
  select row(i.sku, i.name, i.unit_of_measure, i.unit_cost, i.status, i.track_lots, i.created_at,
             i.updated_at, i.version, i.deleted_at, i.deleted_by, i.requires_qc)::inventory_api.item
    from inventory.items i where i.item_id = item_result.item_id
$$;

comment on function inventory.item_result(bigint) is 'Public view of one item.';

create function inventory.create_item(sku text, name text, unit_of_measure text, unit_cost numeric,
                                      track_lots boolean, requires_qc boolean)
returns inventory_api.item
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_existing inventory.items;
  v_item_id bigint;
begin
  perform inventory.authorize('admin');
  perform inventory.check_text(create_item.sku, 'sku', 64);
  if create_item.sku !~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'sku must start with a letter or digit and use only letters, digits and . _ : / # + -',
      pg_catalog.jsonb_build_object('argument', 'sku', 'problem', 'malformed'));
  end if;
  perform inventory.check_text(create_item.name, 'name', 200);
  perform inventory.check_unit_of_measure(create_item.unit_of_measure);
  perform inventory.check_unit_cost(create_item.unit_cost);
  if create_item.track_lots is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'track_lots is required',
      pg_catalog.jsonb_build_object('argument', 'track_lots', 'problem', 'missing'));
  end if;
  if create_item.requires_qc is null or (create_item.requires_qc and not create_item.track_lots) then
    perform inventory.raise_error('INVALID_ARGUMENT', 'requires_qc must be true or false, and true only with track_lots',
      pg_catalog.jsonb_build_object('argument', 'requires_qc',
                                    'problem', case when create_item.requires_qc is null then 'missing'
                                                    else 'needs track_lots' end));
  end if;

  insert into inventory.items (sku, name, unit_of_measure, unit_cost, track_lots, requires_qc, created_by)
  values (create_item.sku, create_item.name, create_item.unit_of_measure, create_item.unit_cost,
          create_item.track_lots, create_item.requires_qc, inventory.current_actor())
  on conflict on constraint items_sku_key do nothing
  returning item_id into v_item_id;
  if v_item_id is null then
    select * into v_existing from inventory.items i where i.sku = create_item.sku;
    if v_existing.deleted_at is not null
       or v_existing.name <> create_item.name
       or v_existing.unit_of_measure <> create_item.unit_of_measure
       or v_existing.unit_cost is distinct from create_item.unit_cost
       or v_existing.track_lots <> create_item.track_lots
       or v_existing.requires_qc <> create_item.requires_qc then
      perform inventory.raise_error('ALREADY_EXISTS',
        pg_catalog.format('an item with SKU %L already exists with other attributes', create_item.sku),
        pg_catalog.jsonb_build_object('sku', create_item.sku));
    end if;
    v_item_id := v_existing.item_id;
  end if;
  return inventory.item_result(v_item_id);
end
$$;

comment on function inventory.create_item(text, text, text, numeric, boolean, boolean) is 'Implements inventory_api.create_item.';

-- The lot a receipt goes into: created on first receipt (PENDING when the item requires inspection,
-- else PASSED), or the existing one, locked (a lot's row before any level: the global lock order),
-- whose expiry and supplier lot must agree with the receipt's. Its unit cost becomes the average
-- over the lot's units on hand and these.
create function inventory.receive_into_lot(item_id bigint, sku text, requires_qc boolean, lot_number text,
                                           expires_on date, supplier_lot text, unit_cost numeric, quantity numeric)
returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_lot inventory.lots;
  v_on_hand numeric;
begin
  insert into inventory.lots (item_id, lot_number, supplier_lot, expires_on, unit_cost, qc_status, created_by)
  values (receive_into_lot.item_id, receive_into_lot.lot_number, receive_into_lot.supplier_lot,
          receive_into_lot.expires_on, receive_into_lot.unit_cost,
          case when receive_into_lot.requires_qc then 'PENDING' else 'PASSED' end, inventory.current_actor())
  on conflict on constraint lots_item_id_lot_number_key do nothing
  returning lot_id into v_lot.lot_id;
  if v_lot.lot_id is not null then
    return v_lot.lot_id;
  end if;
  select * into v_lot from inventory.lots l
   where l.item_id = receive_into_lot.item_id and l.lot_number = receive_into_lot.lot_number
     for no key update;
  if (receive_into_lot.expires_on is not null and receive_into_lot.expires_on is distinct from v_lot.expires_on)
     or (receive_into_lot.supplier_lot is not null and receive_into_lot.supplier_lot is distinct from v_lot.supplier_lot) then
    perform inventory.raise_error('ALREADY_EXISTS',
      pg_catalog.format('lot %s of %s exists with %s', receive_into_lot.lot_number, receive_into_lot.sku,
                        case when receive_into_lot.expires_on is distinct from v_lot.expires_on
                                  and receive_into_lot.expires_on is not null
                             then 'expiry ' || coalesce(v_lot.expires_on::text, 'none')
                             else 'supplier lot ' || coalesce(v_lot.supplier_lot, 'none') end),
      pg_catalog.jsonb_build_object('sku', receive_into_lot.sku, 'lot_number', receive_into_lot.lot_number,
                                    'expires_on', v_lot.expires_on, 'supplier_lot', v_lot.supplier_lot));
  end if;
  if receive_into_lot.unit_cost is not null then
    select coalesce(pg_catalog.sum(ll.on_hand), 0) into v_on_hand from inventory.lot_levels ll
     where ll.lot_id = v_lot.lot_id;
    update inventory.lots l
       set unit_cost = case when l.unit_cost is null or v_on_hand = 0 then receive_into_lot.unit_cost
                            else pg_catalog.round((l.unit_cost * v_on_hand + receive_into_lot.unit_cost * receive_into_lot.quantity)
                                                  / (v_on_hand + receive_into_lot.quantity), 4) end
     where l.lot_id = v_lot.lot_id;
  end if;
  return v_lot.lot_id;
end
$$;

comment on function inventory.receive_into_lot(bigint, text, boolean, text, date, text, numeric, numeric) is 'The lot a receipt goes into, created or checked against the receipt (ALREADY_EXISTS when its expiry or supplier lot differ); averages its unit cost.';

create function inventory.receive_stock(sku text, quantity numeric, location text, reference text,
                                        unit_cost numeric, idempotency_key text, lot_number text,
                                        expires_on date, supplier_lot text)
returns inventory_api.stock_level
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
  v_result inventory_api.stock_level;
  v_replay jsonb;
  v_lot_id bigint;
begin
  v_item := inventory.item_for_sku(receive_stock.sku);
  perform inventory.check_quantity(receive_stock.quantity);
  v_location_id := inventory.location_for_code(receive_stock.location);
  perform inventory.authorize('operator', v_location_id);
  perform inventory.check_text(receive_stock.reference, 'reference', 200, required => false);
  perform inventory.check_unit_cost(receive_stock.unit_cost);
  perform inventory.check_lot_argument(v_item.track_lots, receive_stock.lot_number, required => true);
  if not v_item.track_lots and (receive_stock.expires_on is not null or receive_stock.supplier_lot is not null) then
    perform inventory.raise_error('INVALID_ARGUMENT', 'the item is not tracked by lot: leave expires_on and supplier_lot out',
      pg_catalog.jsonb_build_object('argument', case when receive_stock.expires_on is not null then 'expires_on'
                                                     else 'supplier_lot' end, 'problem', 'item not lot-tracked'));
  end if;
  if v_item.track_lots then
    perform inventory.check_text(receive_stock.lot_number, 'lot_number', 64);
    perform inventory.check_text(receive_stock.supplier_lot, 'supplier_lot', 64, required => false);
  end if;
  if receive_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(receive_stock.idempotency_key, 'receive_stock',
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'quantity', receive_stock.quantity,
        'location', receive_stock.location, 'reference', receive_stock.reference,
        'unit_cost', receive_stock.unit_cost)
      || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lot_number', receive_stock.lot_number,
           'expires_on', receive_stock.expires_on, 'supplier_lot', receive_stock.supplier_lot)));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_level, v_replay);
    end if;
  end if;

  if v_item.status = 'discontinued' then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE',
      pg_catalog.format('item %s is discontinued and cannot be received', receive_stock.sku),
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'status', v_item.status));
  end if;

  if v_item.track_lots then
    v_lot_id := inventory.receive_into_lot(v_item.item_id, receive_stock.sku, v_item.requires_qc,
                                           receive_stock.lot_number, receive_stock.expires_on,
                                           receive_stock.supplier_lot, receive_stock.unit_cost, receive_stock.quantity);
    insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_location_id)
    on conflict do nothing;
    v_level := inventory.move_lot_units(v_item.item_id, v_location_id,
      array[row(v_lot_id, receive_stock.quantity, 0, null)::inventory.lot_delta],
      inventory.describe_movement('RECEIVE', 'receipt', receive_stock.reference, receive_stock.idempotency_key,
        metadata => pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('unit_cost', receive_stock.unit_cost))));
  else
    v_level := inventory.add_on_hand(v_item.item_id, v_location_id, receive_stock.quantity,
      inventory.describe_movement('RECEIVE', 'receipt', receive_stock.reference, receive_stock.idempotency_key,
        metadata => pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('unit_cost', receive_stock.unit_cost))));
  end if;

  if receive_stock.unit_cost is not null then
    -- Moving-average cost over all units on hand, this receipt included.
    update inventory.items i
       set unit_cost = case
             when i.unit_cost is null or t.total <= receive_stock.quantity then receive_stock.unit_cost
             else pg_catalog.round((i.unit_cost * (t.total - receive_stock.quantity)
                                    + receive_stock.unit_cost * receive_stock.quantity) / t.total, 4)
           end,
           updated_at = pg_catalog.now()
      from (select pg_catalog.sum(s.on_hand) as total from inventory.stock_levels s
             where s.item_id = v_item.item_id) t
     where i.item_id = v_item.item_id;
  end if;

  v_result := row(receive_stock.sku, receive_stock.location, v_level.on_hand, v_level.reserved,
                  v_level.available, v_level.version, v_level.updated_at)::inventory_api.stock_level;
  if receive_stock.idempotency_key is not null then
    perform inventory.complete_idempotency_key(receive_stock.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.receive_stock(text, numeric, text, text, numeric, text, text, date, text) is 'Implements inventory_api.receive_stock.';

-- How a SHIP, RELEASE or EXPIRE of holds is described in the ledger: one movement per level and
-- type, naming its hold when there is one and listing them all in metadata.
create function inventory.hold_move_description(movement_type text, reason text, reference text,
                                                idempotency_key text, reservation_ids bigint[])
returns inventory.movement
language sql immutable parallel safe
set search_path = ''
begin atomic
  select inventory.describe_movement(hold_move_description.movement_type::inventory.movement_type,
           coalesce(hold_move_description.reason, case hold_move_description.movement_type
                      when 'SHIP' then 'order shipped'
                      when 'RELEASE' then 'reservation cancelled'
                      else 'reservation expired' end),
           hold_move_description.reference, hold_move_description.idempotency_key,
           reservation_id => case when pg_catalog.cardinality(hold_move_description.reservation_ids) = 1
                                  then hold_move_description.reservation_ids[1] end,
           metadata => pg_catalog.jsonb_build_object('reservation_ids',
                                                     pg_catalog.to_jsonb(hold_move_description.reservation_ids)));
end;

comment on function inventory.hold_move_description(text, text, text, text, bigint[]) is 'Ledger description of shipping, releasing or expiring holds at one level.';

-- Applies hold moves set-wise: updates the holds, then every affected stock level once per
-- movement type, locking the levels in the global order first. The ledger gets one row per level
-- and type, listing the reservations it covers. Levels of lot-tracked items move with their lots
-- (apply_lot_hold_moves).
create or replace function inventory.apply_hold_moves(moves inventory.hold_move[], reference text, reason text,
                                           idempotency_key text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_type text;
  v_lots boolean;
begin
  select coalesce(pg_catalog.bool_or(x.track_lots), false) into v_lots
    from (select s.track_lots from inventory.stock_levels s
            join (select distinct m.item_id, m.location_id from pg_catalog.unnest(apply_hold_moves.moves) m) l
              on s.item_id = l.item_id and s.location_id = l.location_id
           order by s.item_id, s.location_id
             for update of s) x;

  update inventory.reservations r
     set quantity_fulfilled = r.quantity_fulfilled + case when m.movement_type = 'SHIP' then m.quantity else 0 end,
         status = case
           when m.movement_type = 'RELEASE' then 'CANCELLED'
           when m.movement_type = 'EXPIRE' then 'EXPIRED'
           when r.quantity_fulfilled + m.quantity = r.quantity then 'FULFILLED'
           else 'ACTIVE' end,
         closed_at = case
           when m.movement_type = 'SHIP' and r.quantity_fulfilled + m.quantity < r.quantity then null
           else pg_catalog.now() end
    from pg_catalog.unnest(apply_hold_moves.moves) m
   where r.reservation_id = m.reservation_id and m.quantity > 0;

  if v_lots then
    perform inventory.apply_lot_hold_moves(apply_hold_moves.moves, apply_hold_moves.reference,
                                           apply_hold_moves.reason, apply_hold_moves.idempotency_key);
  end if;
  -- One statement per movement type: a level may get both a SHIP and a RELEASE in one call, and
  -- a row can be updated only once per statement. Each becomes its own ledger movement.
  foreach v_type in array array['SHIP', 'RELEASE', 'EXPIRE'] loop
    update inventory.stock_levels s
       set on_hand = s.on_hand - case when v_type = 'SHIP' then g.quantity else 0 end,
           reserved = s.reserved - g.quantity,
           pending_movement = inventory.hold_move_description(v_type, apply_hold_moves.reason,
             apply_hold_moves.reference, apply_hold_moves.idempotency_key, g.reservation_ids)
      from (select m.item_id, m.location_id, pg_catalog.sum(m.quantity) as quantity,
                   pg_catalog.array_agg(m.reservation_id order by m.reservation_id) as reservation_ids
              from pg_catalog.unnest(apply_hold_moves.moves) m
             where m.quantity > 0 and m.movement_type = v_type
             group by m.item_id, m.location_id) g
     where s.item_id = g.item_id and s.location_id = g.location_id and not s.track_lots;
  end loop;
end
$$;

comment on function inventory.apply_hold_moves(inventory.hold_move[], text, text, text) is 'Ships, releases or expires holds set-wise and records one ledger movement per level and type.';

-- The part of apply_hold_moves at lot-tracked levels (already locked, holds already updated): each
-- hold's open allocations are consumed first expiring first (the order they were allocated in), the
-- allocations record what was shipped or given back, and each level moves once per type with its lots.
create function inventory.apply_lot_hold_moves(moves inventory.hold_move[], reference text, reason text,
                                               idempotency_key text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_group record;
  v_deltas inventory.lot_delta[];
begin
  for v_group in
    select m.item_id, m.location_id, m.movement_type,
           pg_catalog.array_agg(m.reservation_id order by m.reservation_id) as reservation_ids
      from pg_catalog.unnest(apply_lot_hold_moves.moves) m
      join inventory.stock_levels s on s.item_id = m.item_id and s.location_id = m.location_id
     where m.quantity > 0 and s.track_lots
     group by m.item_id, m.location_id, m.movement_type
     order by m.item_id, m.location_id, m.movement_type
  loop
    with take as (
      select a.reservation_id, a.lot_id,
             least(a.quantity - a.quantity_fulfilled - a.quantity_released,
                   greatest(m.quantity - coalesce(pg_catalog.sum(a.quantity - a.quantity_fulfilled - a.quantity_released)
                              over (partition by a.reservation_id order by l.expires_on nulls last, l.received_at, a.lot_id
                                    rows between unbounded preceding and 1 preceding), 0), 0)) as units
        from pg_catalog.unnest(apply_lot_hold_moves.moves) m
        join inventory.lot_allocations a
          on a.reservation_id = m.reservation_id and a.quantity_fulfilled + a.quantity_released < a.quantity
        join inventory.lots l on l.lot_id = a.lot_id
       where m.item_id = v_group.item_id and m.location_id = v_group.location_id
         and m.movement_type = v_group.movement_type and m.quantity > 0
    ), taken as (
      update inventory.lot_allocations a
         set quantity_fulfilled = a.quantity_fulfilled + case when v_group.movement_type = 'SHIP' then t.units else 0 end,
             quantity_released = a.quantity_released + case when v_group.movement_type = 'SHIP' then 0 else t.units end
        from take t
       where a.reservation_id = t.reservation_id and a.lot_id = t.lot_id and t.units > 0
      returning a.lot_id, a.reservation_id, t.units)
    select pg_catalog.array_agg(row(t.lot_id, case when v_group.movement_type = 'SHIP' then -t.units else 0 end,
                                    -t.units, t.reservation_id)::inventory.lot_delta)
      into v_deltas
      from taken t;
    perform inventory.move_lot_units(v_group.item_id, v_group.location_id, v_deltas,
      inventory.hold_move_description(v_group.movement_type, apply_lot_hold_moves.reason,
                                      apply_lot_hold_moves.reference, apply_lot_hold_moves.idempotency_key,
                                      v_group.reservation_ids));
  end loop;
end
$$;

comment on function inventory.apply_lot_hold_moves(inventory.hold_move[], text, text, text) is 'Ships, releases or expires holds at lot-tracked levels: consumes their allocations first expiring first and moves each level once per type with its lots.';

-- Available units at a level, counting overdue holds as released (they are, lazily).
create or replace function inventory.effective_available(item_id bigint, location_id bigint) returns numeric
language sql stable
set search_path = ''
begin atomic
  select case when s.track_lots
              then (select coalesce(pg_catalog.sum(a.units) filter (where a.reason is null), 0)
                      from inventory.lot_availability(s.item_id, s.location_id, null) a)
              else s.available + inventory.overdue_quantity(s.item_id, s.location_id) end
    from inventory.stock_levels s
   where s.item_id = effective_available.item_id and s.location_id = effective_available.location_id;
end;

comment on function inventory.effective_available(bigint, bigint) is 'on_hand - reserved + units of overdue holds not yet swept, less units in lots that may not be sold; null when the level does not exist.';

-- Describes why a line does not fit, for the DETAIL of INSUFFICIENT_STOCK, with available meaning
-- what inventory_api.stock_levels shows; for a lot-tracked item also how many units their lots'
-- state blocks, by reason (for this request: sellable_until is its min_shelf_life).
create function inventory.shortfall(item_id bigint, location_id bigint, sku text, location text,
                                    requested numeric, sellable_until date default null)
returns jsonb
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
           'sku', shortfall.sku, 'location', shortfall.location, 'requested', shortfall.requested,
           'available', coalesce(case when s.track_lots then b.available else s.available + o.overdue end, 0),
           'on_hand', coalesce(s.on_hand, 0), 'reserved', coalesce(s.reserved, 0))
         || case when s.track_lots then pg_catalog.jsonb_build_object('blocked', b.blocked) else '{}'::jsonb end
    from (select) dummy
    left join inventory.stock_levels s
      on s.item_id = shortfall.item_id and s.location_id = shortfall.location_id
    left join lateral (select inventory.overdue_quantity(s.item_id, s.location_id) as overdue) o on true
    left join lateral (
          select coalesce(pg_catalog.sum(a.units) filter (where a.reason is null), 0) as available,
                 coalesce(pg_catalog.jsonb_object_agg(a.reason, a.units) filter (where a.reason is not null and a.units > 0),
                          '{}'::jsonb) as blocked
            from inventory.lot_availability(s.item_id, s.location_id, shortfall.sellable_until) a
           where s.track_lots) b on true
$$;

comment on function inventory.shortfall(bigint, bigint, text, text, numeric, date) is 'JSON specifics of a line that does not fit: requested, available (overdue holds counted as released), on hand, reserved, and for lot-tracked items the units blocked by lot state (expired, qc_pending, qc_failed, quarantined, short_shelf_life).';

-- min_shelf_life joins a hold's idempotency request only when given, so keys stored before it
-- existed still match their retries.
create function inventory.shelf_life_request(min_shelf_life interval) returns jsonb
language sql immutable
set search_path = ''
begin atomic
  select case when shelf_life_request.min_shelf_life is null then '{}'::jsonb
              else pg_catalog.jsonb_build_object('min_shelf_life', inventory.interval_key(shelf_life_request.min_shelf_life))
         end;
end;

comment on function inventory.shelf_life_request(interval) is 'The min_shelf_life part of a hold''s idempotency request ({} when not given).';

-- The rest of reserve_stock for a lot-tracked item (validated, authorised, key claimed, status
-- checked): the hold row, then its units FEFO from the sellable lots under the level's lock.
create function inventory.reserve_from_lots(item_id bigint, location_id bigint, sellable_until date,
                                            hold inventory_api.reservation, idempotency_key text)
returns inventory_api.reservation
language plpgsql volatile
set search_path = ''
as $$
begin
  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, expires_at,
                                      created_by, created_at, reference_type, notes)
  values ((reserve_from_lots.hold).reservation_id, (reserve_from_lots.hold).order_ref, reserve_from_lots.item_id,
          reserve_from_lots.location_id, (reserve_from_lots.hold).quantity, (reserve_from_lots.hold).expires_at,
          (reserve_from_lots.hold).created_by, (reserve_from_lots.hold).created_at,
          (reserve_from_lots.hold).reference_type::inventory.reference_type, (reserve_from_lots.hold).notes);
  if not inventory.hold_lot_units(reserve_from_lots.item_id, reserve_from_lots.location_id,
           (reserve_from_lots.hold).quantity, reserve_from_lots.sellable_until, (reserve_from_lots.hold).reservation_id,
           inventory.describe_movement('RESERVE', 'order hold', (reserve_from_lots.hold).order_ref,
                                       reserve_from_lots.idempotency_key,
                                       reservation_id => (reserve_from_lots.hold).reservation_id)) then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient sellable stock for %s at %s', (reserve_from_lots.hold).sku,
                        (reserve_from_lots.hold).location),
      inventory.shortfall(reserve_from_lots.item_id, reserve_from_lots.location_id, (reserve_from_lots.hold).sku,
                          (reserve_from_lots.hold).location, (reserve_from_lots.hold).quantity,
                          reserve_from_lots.sellable_until));
  end if;
  return reserve_from_lots.hold;
end
$$;

comment on function inventory.reserve_from_lots(bigint, bigint, date, inventory_api.reservation, text) is 'reserve_stock for a lot-tracked item: the hold and its FEFO allocation, or INSUFFICIENT_STOCK saying what the lots'' state blocks.';

create function inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text,
                                        expires_in interval, idempotency_key text, reference_type text,
                                        notes text, min_shelf_life interval)
returns inventory_api.reservation
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_found record;
  v_reservation_id bigint;
  v_result inventory_api.reservation;
  v_replay jsonb;
  v_sellable_until date;
begin
  -- The hottest path in pyinv: one query resolves the item, the location, the level's current
  -- availability and the default hold lifetime; the helpers run only to raise their errors.
  select i.item_id, i.status, i.track_lots, l.location_id, s.available, t.default_reservation_ttl
    into v_found
    from inventory.settings t
    left join inventory.items i on i.sku = reserve_stock.sku and i.deleted_at is null
    left join inventory.locations l on l.code = reserve_stock.location
    left join inventory.stock_levels s on s.item_id = i.item_id and s.location_id = l.location_id;
  if v_found.item_id is null then
    perform inventory.item_for_sku(reserve_stock.sku);
  end if;
  -- The inlinable predicates run first; the raising helpers only when they fail.
  if not inventory.quantity_is_valid(reserve_stock.quantity) then
    perform inventory.check_quantity(reserve_stock.quantity);
  end if;
  if not inventory.text_is_valid(reserve_stock.order_ref, 200) then
    perform inventory.check_text(reserve_stock.order_ref, 'order_ref', 200);
  end if;
  if v_found.location_id is null then
    perform inventory.location_for_code(reserve_stock.location);
  end if;
  if not inventory.is_allowed('operator', v_found.location_id) then
    perform inventory.authorize('operator', v_found.location_id);
  end if;
  if reserve_stock.reference_type is distinct from 'order' or reserve_stock.notes is not null then
    perform inventory.check_hold_description(reserve_stock.reference_type, reserve_stock.notes);
  end if;
  if v_found.track_lots or reserve_stock.min_shelf_life is not null then
    v_sellable_until := inventory.sellable_until(reserve_stock.min_shelf_life);
  end if;
  -- A retry with the key replays the original result even if stock or status changed since.
  v_reservation_id := pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass);
  v_result := row(v_reservation_id, reserve_stock.order_ref, reserve_stock.sku, reserve_stock.location,
                  reserve_stock.quantity, 0, reserve_stock.quantity, 'ACTIVE',
                  case when reserve_stock.expires_in is null then pg_catalog.now() + v_found.default_reservation_ttl
                       else inventory.hold_expiry(reserve_stock.expires_in) end,
                  inventory.current_actor(), pg_catalog.now(), reserve_stock.reference_type,
                  reserve_stock.notes)::inventory_api.reservation;
  if reserve_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_stock.idempotency_key, 'reserve_stock',
      inventory.hold_request(
        pg_catalog.jsonb_build_object('sku', reserve_stock.sku, 'quantity', reserve_stock.quantity,
          'order_ref', reserve_stock.order_ref, 'location', reserve_stock.location,
          'expires_in', inventory.interval_key(reserve_stock.expires_in))
          || inventory.shelf_life_request(reserve_stock.min_shelf_life),
        reserve_stock.reference_type, reserve_stock.notes),
      pg_catalog.to_jsonb(v_result));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.reservation, v_replay);
    end if;
  end if;

  if v_found.status <> 'active' then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE',
      pg_catalog.format('item %s is %s and cannot be reserved', reserve_stock.sku, v_found.status),
      pg_catalog.jsonb_build_object('sku', reserve_stock.sku, 'status', v_found.status));
  end if;
  -- Sold out is answered from this plain read, without writing or locking anything (unless overdue
  -- holds, which no longer count, are what stands in the way).
  if v_found.track_lots then
    return inventory.reserve_from_lots(v_found.item_id, v_found.location_id, v_sellable_until, v_result,
                                       reserve_stock.idempotency_key);
  end if;
  if coalesce(v_found.available, 0) < reserve_stock.quantity
     and coalesce(inventory.effective_available(v_found.item_id, v_found.location_id), 0) < reserve_stock.quantity then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s at %s', reserve_stock.sku, reserve_stock.location),
      inventory.shortfall(v_found.item_id, v_found.location_id, reserve_stock.sku, reserve_stock.location,
                          reserve_stock.quantity));
  end if;

  -- Every column given: a column left to its default costs a re-parsed default expression per statement.
  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, quantity_fulfilled,
                                      status, expires_at, created_by, created_at, closed_at, quantity_returned,
                                      reference_type, notes)
  values (v_reservation_id, reserve_stock.order_ref, v_found.item_id, v_found.location_id, reserve_stock.quantity,
          0, 'ACTIVE', v_result.expires_at, v_result.created_by, v_result.created_at, null, 0,
          reserve_stock.reference_type::inventory.reference_type, reserve_stock.notes);

  -- hold_units' conditional UPDATE is the one statement that locks the level; only the ledger row
  -- and the commit follow it.
  if not inventory.hold_units(v_found.item_id, v_found.location_id, reserve_stock.quantity,
           inventory.describe_movement('RESERVE', 'order hold', reserve_stock.order_ref,
                                       reserve_stock.idempotency_key, reservation_id => v_reservation_id)) then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s at %s', reserve_stock.sku, reserve_stock.location),
      inventory.shortfall(v_found.item_id, v_found.location_id, reserve_stock.sku, reserve_stock.location,
                          reserve_stock.quantity));
  end if;
  return v_result;
end
$$;

comment on function inventory.reserve_stock(text, numeric, text, text, interval, text, text, text, interval) is 'Implements inventory_api.reserve_stock.';

create function inventory.reserve_order(order_ref text, lines jsonb, expires_in interval, idempotency_key text,
                                        reference_type text, notes text, min_shelf_life interval)
returns setof inventory_api.reservation
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_lines inventory.order_line[];
  v_line inventory.order_line;
  v_unavailable jsonb;
  v_short jsonb := '[]'::jsonb;
  v_expires_at timestamptz;
  v_actor text := inventory.current_actor();
  v_result inventory_api.reservation[];
  v_replay jsonb;
  v_lot_items bigint[];
  v_sellable_until date := inventory.sellable_until(reserve_order.min_shelf_life);
  v_held boolean;
begin
  perform inventory.check_text(reserve_order.order_ref, 'order_ref', 200);
  perform inventory.check_hold_description(reserve_order.reference_type, reserve_order.notes);
  v_lines := inventory.parse_order_lines(reserve_order.lines);
  perform inventory.authorize_locations('operator', array(select l.location_id from pg_catalog.unnest(v_lines) l));
  v_expires_at := inventory.hold_expiry(reserve_order.expires_in);
  select pg_catalog.array_agg(row(l.reservation_id, reserve_order.order_ref, l.sku, l.location, l.quantity, 0,
                                  l.quantity, 'ACTIVE', v_expires_at, v_actor, pg_catalog.now(),
                                  reserve_order.reference_type, reserve_order.notes
                                 )::inventory_api.reservation order by l.reservation_id)
    into v_result
    from pg_catalog.unnest(v_lines) l;
  if reserve_order.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_order.idempotency_key, 'reserve_order',
      inventory.hold_request(
        pg_catalog.jsonb_build_object('order_ref', reserve_order.order_ref, 'lines', reserve_order.lines,
                                      'expires_in', inventory.interval_key(reserve_order.expires_in))
          || inventory.shelf_life_request(reserve_order.min_shelf_life),
        reserve_order.reference_type, reserve_order.notes),
      pg_catalog.to_jsonb(v_result));
    if v_replay is not null then
      return query select * from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation, v_replay);
      return;
    end if;
  end if;

  select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('sku', i.sku, 'status', i.status) order by i.sku)
           filter (where i.status <> 'active'),
         pg_catalog.array_agg(i.item_id) filter (where i.track_lots)
    into v_unavailable, v_lot_items
    from inventory.items i
   where i.item_id in (select l.item_id from pg_catalog.unnest(v_lines) l);
  if v_unavailable is not null then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE', 'order lines name items that cannot be reserved',
      pg_catalog.jsonb_build_object('unavailable', v_unavailable));
  end if;

  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, expires_at,
                                      created_by, created_at, reference_type, notes)
  select l.reservation_id, reserve_order.order_ref, l.item_id, l.location_id, l.quantity, v_expires_at,
         v_actor, pg_catalog.now(), reserve_order.reference_type::inventory.reference_type, reserve_order.notes
    from pg_catalog.unnest(v_lines) l;

  -- v_lines is in (item_id, location_id) order, so concurrent orders lock levels in one global
  -- order and cannot deadlock. Every line is tried so that the error lists every short line.
  foreach v_line in array v_lines loop
    if v_line.item_id = any (v_lot_items) then
      v_held := inventory.hold_lot_units(v_line.item_id, v_line.location_id, v_line.quantity, v_sellable_until,
                  v_line.reservation_id,
                  inventory.describe_movement('RESERVE', 'order hold', reserve_order.order_ref,
                                              reserve_order.idempotency_key, reservation_id => v_line.reservation_id));
    else
      v_held := inventory.hold_units(v_line.item_id, v_line.location_id, v_line.quantity,
                  inventory.describe_movement('RESERVE', 'order hold', reserve_order.order_ref,
                                              reserve_order.idempotency_key, reservation_id => v_line.reservation_id));
    end if;
    if not v_held then
      v_short := v_short || inventory.shortfall(v_line.item_id, v_line.location_id, v_line.sku,
                                                v_line.location, v_line.quantity, v_sellable_until);
    end if;
  end loop;
  if pg_catalog.jsonb_array_length(v_short) > 0 then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s of %s lines of order %s',
                        pg_catalog.jsonb_array_length(v_short), pg_catalog.cardinality(v_lines),
                        reserve_order.order_ref),
      pg_catalog.jsonb_build_object('order_ref', reserve_order.order_ref, 'short_lines', v_short));
  end if;
  return query select * from pg_catalog.unnest(v_result);
end
$$;

comment on function inventory.reserve_order(text, jsonb, interval, text, text, text, interval) is 'Implements inventory_api.reserve_order.';

-- Which lots returned units go back into: the named lot, or else the lots shipped to the order's
-- holds (first shipped, first returned), whose allocations count the return (the recall trace shows
-- it). The holds are locked by the caller. Returns the on-hand deltas of the restock.
create function inventory.return_to_lots(reservation_ids bigint[], lot_id bigint, quantity numeric, sku text)
returns inventory.lot_delta[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_deltas inventory.lot_delta[];
begin
  with take as (
    select a.reservation_id, a.lot_id,
           least(a.quantity_fulfilled - a.quantity_returned,
                 greatest(return_to_lots.quantity - coalesce(pg_catalog.sum(a.quantity_fulfilled - a.quantity_returned)
                            over (order by a.reservation_id, l.expires_on nulls last, l.received_at, a.lot_id
                                  rows between unbounded preceding and 1 preceding), 0), 0)) as units
      from inventory.lot_allocations a
      join inventory.lots l on l.lot_id = a.lot_id
     where a.reservation_id = any (return_to_lots.reservation_ids) and a.quantity_fulfilled > a.quantity_returned
       and (return_to_lots.lot_id is null or a.lot_id = return_to_lots.lot_id)
  ), counted as (
    update inventory.lot_allocations a
       set quantity_returned = a.quantity_returned + t.units
      from take t
     where a.reservation_id = t.reservation_id and a.lot_id = t.lot_id and t.units > 0
    returning a.lot_id, a.reservation_id, t.units)
  select pg_catalog.array_agg(row(c.lot_id, c.units, 0, c.reservation_id)::inventory.lot_delta)
    into v_deltas
    from counted c;
  if return_to_lots.lot_id is not null then
    -- Everything goes back into the named lot, whether or not it was shipped to this order.
    return array[row(return_to_lots.lot_id, return_to_lots.quantity, 0, null)::inventory.lot_delta];
  end if;
  if coalesce((select pg_catalog.sum(d.on_hand_delta) from pg_catalog.unnest(v_deltas) d), 0) < return_to_lots.quantity then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('no shipped lot of %s is left to return these units into: name the lot (lot_number)',
                        return_to_lots.sku),
      pg_catalog.jsonb_build_object('argument', 'lot_number', 'problem', 'missing'));
  end if;
  return v_deltas;
end
$$;

comment on function inventory.return_to_lots(bigint[], bigint, numeric, text) is 'Counts a return on the order''s lot allocations and says which lots the units go back into (the named lot, or the lots shipped).';

create function inventory.process_return(order_ref text, sku text, quantity numeric, reason text,
                                         restock boolean, location text, idempotency_key text, lot_number text)
returns inventory_api.stock_return
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_item_id bigint;
  v_lot inventory.lots;
  v_deltas inventory.lot_delta[];
  v_location_id bigint;
  v_holds bigint[];
  v_shipped_from bigint[];
  v_shipped numeric;
  v_returned numeric;
  v_movement_id bigint;
  v_return inventory.returns;
  v_result inventory_api.stock_return;
  v_replay jsonb;
begin
  perform inventory.check_text(process_return.order_ref, 'order_ref', 200);
  v_item := inventory.item_for_sku(process_return.sku);
  v_item_id := v_item.item_id;
  perform inventory.check_lot_argument(v_item.track_lots, process_return.lot_number, required => false);
  if process_return.lot_number is not null then
    v_lot := inventory.lot_for_number(v_item_id, process_return.lot_number, process_return.sku);
  end if;
  perform inventory.check_quantity(process_return.quantity);
  perform inventory.check_text(process_return.reason, 'reason', 500);
  if process_return.restock is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'restock must be true or false',
      pg_catalog.jsonb_build_object('argument', 'restock', 'problem', 'missing'));
  end if;
  v_location_id := inventory.location_for_code(process_return.location);
  perform inventory.authorize('operator', v_location_id);
  if process_return.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(process_return.idempotency_key, 'process_return',
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku,
        'quantity', process_return.quantity, 'reason', process_return.reason,
        'restock', process_return.restock, 'location', process_return.location)
      || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lot_number', process_return.lot_number)));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_return, v_replay);
    end if;
  end if;

  -- The return is counted on the order's holds of this item, which it locks and updates: under
  -- READ COMMITTED a concurrent return of the same shipment is re-read after it commits, under
  -- REPEATABLE READ and SERIALIZABLE it is a serialization failure (40001, retry). The caller must
  -- operate where the units were shipped from as well: a return consumes that shipment. Locks in the
  -- global order: the levels the units were shipped from and the one they come back to, then the holds.
  select pg_catalog.array_agg(distinct r.location_id) into v_shipped_from
    from inventory.reservations r where r.order_ref = process_return.order_ref and r.item_id = v_item_id;
  if v_shipped_from is null then
    perform inventory.raise_error('NO_RESERVATION',
      pg_catalog.format('order %s never held %s', process_return.order_ref, process_return.sku),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku));
  end if;
  perform inventory.authorize_locations('operator', v_shipped_from);
  if process_return.restock then
    insert into inventory.stock_levels (item_id, location_id) values (v_item_id, v_location_id)
    on conflict do nothing;
  end if;
  perform from inventory.stock_levels s
   where s.item_id = v_item_id and s.location_id = any (v_shipped_from || v_location_id)
   order by s.item_id, s.location_id
     for update;
  select pg_catalog.array_agg(r.reservation_id order by r.reservation_id),
         coalesce(pg_catalog.sum(r.quantity_fulfilled), 0), coalesce(pg_catalog.sum(r.quantity_returned), 0)
    into v_holds, v_shipped, v_returned
    from (select h.reservation_id, h.quantity_fulfilled, h.quantity_returned
            from inventory.reservations h
           where h.order_ref = process_return.order_ref and h.item_id = v_item_id
           order by h.reservation_id
             for update) r;
  if process_return.quantity > v_shipped - v_returned then
    perform inventory.raise_error('QUANTITY_MISMATCH',
      pg_catalog.format('order %s shipped %s and returned %s of %s; cannot return %s more',
                        process_return.order_ref, v_shipped, v_returned, process_return.sku, process_return.quantity),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku,
        'requested', process_return.quantity, 'shipped', v_shipped, 'returned', v_returned));
  end if;
  -- First shipped, first returned.
  update inventory.reservations r
     set quantity_returned = r.quantity_returned + t.take
    from (select h.reservation_id,
                 least(h.quantity_fulfilled - h.quantity_returned,
                       greatest(process_return.quantity - coalesce(pg_catalog.sum(h.quantity_fulfilled - h.quantity_returned)
                                  over (order by h.reservation_id rows between unbounded preceding and 1 preceding), 0),
                                0)) as take
            from inventory.reservations h
           where h.reservation_id = any (v_holds)) t
   where r.reservation_id = t.reservation_id and t.take > 0;

  if v_item.track_lots then
    v_deltas := inventory.return_to_lots(v_holds, v_lot.lot_id, process_return.quantity, process_return.sku);
  end if;
  if process_return.restock and v_item.track_lots then
    v_movement_id := (inventory.move_lot_units(v_item_id, v_location_id, v_deltas,
      inventory.describe_movement('RETURN', process_return.reason, process_return.order_ref,
                                  process_return.idempotency_key))).last_movement_id;
  elsif process_return.restock then
    v_movement_id := (inventory.add_on_hand(v_item_id, v_location_id, process_return.quantity,
      inventory.describe_movement('RETURN', process_return.reason, process_return.order_ref,
                                  process_return.idempotency_key))).last_movement_id;
  end if;
  insert into inventory.returns (order_ref, item_id, location_id, quantity, reason, restocked, movement_id,
                                 created_by)
  values (process_return.order_ref, v_item_id, v_location_id, process_return.quantity, process_return.reason,
          process_return.restock, v_movement_id, inventory.current_actor())
  returning * into v_return;
  v_result := row(v_return.return_id, v_return.order_ref, process_return.sku, process_return.location,
                  v_return.quantity, v_return.reason, v_return.restocked, v_return.movement_id,
                  v_return.created_at)::inventory_api.stock_return;
  if process_return.idempotency_key is not null then
    perform inventory.complete_idempotency_key(process_return.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.process_return(text, text, numeric, text, boolean, text, text, text) is 'Implements inventory_api.process_return.';

create or replace function inventory.adjustment_result(adjustment_id bigint) returns inventory_api.adjustment
language sql stable
set search_path = ''
as $$
  select row(a.adjustment_id, i.sku, l.code, a.quantity_delta, a.adjustment_type, a.reason_code, a.description,
             a.status, a.requires_approval, a.on_hand_at_request, a.count_id, a.requested_by, a.requested_at,
             a.decided_by, a.decided_at, a.decision_note, a.on_hand_at_apply, a.movement_id,
             t.lot_number)::inventory_api.adjustment
    from inventory.adjustments a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
    left join inventory.lots t on t.lot_id = a.lot_id
   where a.adjustment_id = adjustment_result.adjustment_id
$$;

comment on function inventory.adjustment_result(bigint) is 'The public view of one adjustment.';

-- Applies a delta to on_hand of one level through the ledger (an ADJUST movement described by
-- `movement`); returns the level after it (its last_movement_id is the movement's). Raises
-- INSUFFICIENT_STOCK when on_hand would fall below reserved (or below 0). The level is created empty
-- when missing and the delta is positive. Overdue holds standing in the way are expired first. For a
-- lot-tracked item the delta applies to the lot named (lot_id), whose free units bound a removal.
create function inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric,
                                              movement inventory.movement, sku text, location text, lot_id bigint)
returns inventory.stock_levels
language plpgsql volatile
set search_path = ''
as $$
declare
  v_level inventory.stock_levels;
begin
  if apply_on_hand_delta.lot_id is not null then
    insert into inventory.stock_levels (item_id, location_id)
    values (apply_on_hand_delta.item_id, apply_on_hand_delta.location_id)
    on conflict do nothing;
    perform from inventory.stock_levels s
     where s.item_id = apply_on_hand_delta.item_id and s.location_id = apply_on_hand_delta.location_id
       for update;
    if apply_on_hand_delta.delta < 0
       and inventory.lot_units_to_move(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id,
                                       apply_on_hand_delta.lot_id, -apply_on_hand_delta.delta) is null then
      perform inventory.raise_error('INSUFFICIENT_STOCK',
        pg_catalog.format('removing %s of %s at %s would leave less of the lot on hand than is reserved',
                          -apply_on_hand_delta.delta, apply_on_hand_delta.sku, apply_on_hand_delta.location),
        inventory.shortfall(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id, apply_on_hand_delta.sku,
                            apply_on_hand_delta.location, -apply_on_hand_delta.delta)
        || pg_catalog.jsonb_build_object('lot_on_hand', (select ll.on_hand from inventory.lot_levels ll
                                                          where ll.lot_id = apply_on_hand_delta.lot_id
                                                            and ll.location_id = apply_on_hand_delta.location_id)));
    end if;
    return inventory.move_lot_units(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id,
      array[row(apply_on_hand_delta.lot_id, apply_on_hand_delta.delta, 0, null)::inventory.lot_delta],
      apply_on_hand_delta.movement);
  end if;
  if apply_on_hand_delta.delta > 0 then
    insert into inventory.stock_levels (item_id, location_id)
    values (apply_on_hand_delta.item_id, apply_on_hand_delta.location_id)
    on conflict do nothing;
  else
    select * into v_level from inventory.stock_levels s
     where s.item_id = apply_on_hand_delta.item_id and s.location_id = apply_on_hand_delta.location_id;
    if v_level.on_hand + apply_on_hand_delta.delta < v_level.reserved
       and inventory.effective_available(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id)
           >= -apply_on_hand_delta.delta then
      perform inventory.expire_overdue_at_level(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id);
    end if;
  end if;
  update inventory.stock_levels s
     set on_hand = s.on_hand + apply_on_hand_delta.delta, pending_movement = apply_on_hand_delta.movement
   where s.item_id = apply_on_hand_delta.item_id and s.location_id = apply_on_hand_delta.location_id
     and s.on_hand + apply_on_hand_delta.delta >= s.reserved
  returning * into v_level;
  if not found then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('removing %s of %s at %s would leave less on hand than is reserved',
                        -apply_on_hand_delta.delta, apply_on_hand_delta.sku, apply_on_hand_delta.location),
      inventory.shortfall(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id, apply_on_hand_delta.sku,
                          apply_on_hand_delta.location, -apply_on_hand_delta.delta));
  end if;
  return v_level;
end
$$;

comment on function inventory.apply_on_hand_delta(bigint, bigint, numeric, inventory.movement, text, text, bigint) is 'Applies a delta to on_hand (of one lot, for lot-tracked items) through the ledger and returns the level after it; raises INSUFFICIENT_STOCK when on_hand would fall below reserved.';

create function inventory.create_adjustment(sku text, quantity_delta numeric, adjustment_type text,
                                            reason_code text, location text, description text,
                                            idempotency_key text, lot_number text)
returns inventory_api.adjustment
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_reason inventory.reason_codes;
  v_needs_approval boolean;
  v_adjustment_id bigint;
  v_on_hand numeric;
  v_level inventory.stock_levels;
  v_actor text := inventory.current_actor();
  v_replay jsonb;
  v_result inventory_api.adjustment;
  v_lot inventory.lots;
begin
  v_item := inventory.item_for_sku(create_adjustment.sku);
  v_location_id := inventory.location_for_code(create_adjustment.location);
  perform inventory.authorize('operator', v_location_id);
  if create_adjustment.quantity_delta is null or create_adjustment.quantity_delta = 0 then
    perform inventory.raise_error('INVALID_QUANTITY', 'quantity_delta must be a non-zero number',
      pg_catalog.jsonb_build_object('argument', 'quantity_delta',
                                    'value', create_adjustment.quantity_delta::text));
  end if;
  perform inventory.check_quantity(pg_catalog.abs(create_adjustment.quantity_delta), 'quantity_delta');
  if create_adjustment.adjustment_type is null
     or create_adjustment.adjustment_type not in ('physical_count', 'damage', 'correction', 'write_off', 'found') then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'adjustment_type must be physical_count, damage, correction, write_off or found',
      pg_catalog.jsonb_build_object('argument', 'adjustment_type', 'problem', 'not a type'));
  end if;
  if (create_adjustment.adjustment_type in ('damage', 'write_off') and create_adjustment.quantity_delta > 0)
     or (create_adjustment.adjustment_type = 'found' and create_adjustment.quantity_delta < 0) then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('a %s adjustment must %s stock', create_adjustment.adjustment_type,
                        case when create_adjustment.adjustment_type = 'found' then 'add' else 'remove' end),
      pg_catalog.jsonb_build_object('argument', 'quantity_delta', 'problem', 'wrong sign for the type'));
  end if;
  select * into v_reason from inventory.reason_codes r where r.reason_code = create_adjustment.reason_code;
  if not found then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('unknown reason_code %L (see inventory_api.reason_codes)', create_adjustment.reason_code),
      pg_catalog.jsonb_build_object('argument', 'reason_code', 'problem', 'unknown'));
  end if;
  if (v_reason.direction = 'add' and create_adjustment.quantity_delta < 0)
     or (v_reason.direction = 'remove' and create_adjustment.quantity_delta > 0) then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('reason %s can only %s stock', v_reason.reason_code, v_reason.direction),
      pg_catalog.jsonb_build_object('argument', 'quantity_delta', 'problem', 'wrong direction for the reason',
                                    'reason_code', v_reason.reason_code, 'direction', v_reason.direction));
  end if;
  perform inventory.check_text(create_adjustment.description, 'description', 500, required => false);
  perform inventory.check_lot_argument(v_item.track_lots, create_adjustment.lot_number, required => true);
  if v_item.track_lots then
    v_lot := inventory.lot_for_number(v_item.item_id, create_adjustment.lot_number, create_adjustment.sku);
  end if;
  if create_adjustment.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(create_adjustment.idempotency_key, 'create_adjustment',
      pg_catalog.jsonb_build_object('sku', create_adjustment.sku, 'quantity_delta', create_adjustment.quantity_delta,
        'adjustment_type', create_adjustment.adjustment_type, 'reason_code', create_adjustment.reason_code,
        'location', create_adjustment.location, 'description', create_adjustment.description)
      || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lot_number', create_adjustment.lot_number)));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.adjustment, v_replay);
    end if;
  end if;

  v_needs_approval := inventory.adjustment_needs_approval(v_reason, create_adjustment.quantity_delta);
  v_adjustment_id := pg_catalog.nextval('inventory.adjustments_adjustment_id_seq'::regclass);
  select s.on_hand into v_on_hand from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id;
  if not v_needs_approval then
    v_level := inventory.apply_on_hand_delta(v_item.item_id, v_location_id, create_adjustment.quantity_delta,
      inventory.describe_movement('ADJUST', create_adjustment.reason_code, 'adjustment:' || v_adjustment_id,
        create_adjustment.idempotency_key,
        metadata => pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
          'adjustment_id', v_adjustment_id, 'adjustment_type', create_adjustment.adjustment_type,
          'description', create_adjustment.description))),
      create_adjustment.sku, create_adjustment.location, v_lot.lot_id);
    v_on_hand := v_level.on_hand - create_adjustment.quantity_delta;
  end if;
  insert into inventory.adjustments (adjustment_id, item_id, location_id, quantity_delta, adjustment_type,
                                     reason_code, description, status, requires_approval, on_hand_at_request,
                                     requested_by, decided_by, decided_at, on_hand_at_apply, movement_id,
                                     idempotency_key, lot_id)
  values (v_adjustment_id, v_item.item_id, v_location_id, create_adjustment.quantity_delta,
          create_adjustment.adjustment_type, create_adjustment.reason_code, create_adjustment.description,
          case when v_needs_approval then 'PENDING' else 'APPLIED' end, v_needs_approval, coalesce(v_on_hand, 0),
          v_actor,
          case when v_needs_approval then null else v_actor end,
          case when v_needs_approval then null else pg_catalog.now() end,
          case when v_level.item_id is not null then v_on_hand end, v_level.last_movement_id,
          create_adjustment.idempotency_key, v_lot.lot_id);
  v_result := inventory.adjustment_result(v_adjustment_id);
  if create_adjustment.idempotency_key is not null then
    perform inventory.complete_idempotency_key(create_adjustment.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.create_adjustment(text, numeric, text, text, text, text, text, text) is 'Implements inventory_api.create_adjustment.';

create or replace function inventory.approve_adjustment(adjustment_id bigint, decision text, note text)
returns inventory_api.adjustment
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_adjustment inventory.adjustments;
  v_actor text := inventory.current_actor();
  v_level inventory.stock_levels;
  v_sku text;
  v_location text;
begin
  if approve_adjustment.decision is null or approve_adjustment.decision not in ('approved', 'rejected') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'decision must be approved or rejected',
      pg_catalog.jsonb_build_object('argument', 'decision', 'problem', 'not a decision'));
  end if;
  perform inventory.check_text(approve_adjustment.note, 'note', 500, required => false);
  -- The level first, then the adjustment row (the global lock order): a count at the same level,
  -- which locks the level and then supersedes pending count adjustments, cannot deadlock with this.
  select * into v_adjustment from inventory.adjustments a where a.adjustment_id = approve_adjustment.adjustment_id;
  if found then
    perform inventory.authorize('admin', v_adjustment.location_id);
    insert into inventory.stock_levels (item_id, location_id)
    values (v_adjustment.item_id, v_adjustment.location_id)
    on conflict do nothing;
    perform from inventory.stock_levels s
     where s.item_id = v_adjustment.item_id and s.location_id = v_adjustment.location_id
       for update;
    select * into v_adjustment from inventory.adjustments a
     where a.adjustment_id = approve_adjustment.adjustment_id
       for update;
  end if;
  if v_adjustment.adjustment_id is null then
    if not inventory.holds_role_somewhere('admin') then
      perform inventory.authorize('admin');
    end if;
    perform inventory.raise_error('ADJUSTMENT_NOT_FOUND',
      pg_catalog.format('no adjustment with id %s', approve_adjustment.adjustment_id),
      pg_catalog.jsonb_build_object('adjustment_id', approve_adjustment.adjustment_id));
  end if;
  if v_adjustment.status <> 'PENDING' then
    perform inventory.raise_error('INVALID_STATE',
      pg_catalog.format('adjustment %s is %s, not PENDING', v_adjustment.adjustment_id, v_adjustment.status),
      pg_catalog.jsonb_build_object('adjustment_id', v_adjustment.adjustment_id, 'status', v_adjustment.status,
                                    'decided_by', v_adjustment.decided_by));
  end if;
  if approve_adjustment.decision = 'approved' and v_adjustment.requested_by = v_actor then
    perform inventory.raise_error('SELF_APPROVAL_FORBIDDEN',
      pg_catalog.format('%s requested adjustment %s and cannot approve it', v_actor, v_adjustment.adjustment_id),
      pg_catalog.jsonb_build_object('adjustment_id', v_adjustment.adjustment_id, 'requested_by', v_actor));
  end if;
  if approve_adjustment.decision = 'approved' then
    select i.sku into v_sku from inventory.items i where i.item_id = v_adjustment.item_id;
    select l.code into v_location from inventory.locations l where l.location_id = v_adjustment.location_id;
    v_level := inventory.apply_on_hand_delta(v_adjustment.item_id, v_adjustment.location_id,
      v_adjustment.quantity_delta,
      inventory.describe_movement('ADJUST', v_adjustment.reason_code, 'adjustment:' || v_adjustment.adjustment_id,
        metadata => pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
          'adjustment_id', v_adjustment.adjustment_id, 'adjustment_type', v_adjustment.adjustment_type,
          'description', v_adjustment.description, 'requested_by', v_adjustment.requested_by,
          'approved_by', v_actor, 'count_id', v_adjustment.count_id))),
      v_sku, v_location, v_adjustment.lot_id);
  end if;
  update inventory.adjustments a
     set status = case when approve_adjustment.decision = 'approved' then 'APPROVED' else 'REJECTED' end,
         decided_by = v_actor, decided_at = pg_catalog.now(), decision_note = approve_adjustment.note,
         on_hand_at_apply = v_level.on_hand - v_adjustment.quantity_delta, movement_id = v_level.last_movement_id
   where a.adjustment_id = v_adjustment.adjustment_id;
  return inventory.adjustment_result(v_adjustment.adjustment_id);
end
$$;

comment on function inventory.approve_adjustment(bigint, text, text) is 'Implements inventory_api.approve_adjustment.';

create function inventory.record_count(sku text, counted_quantity numeric, location text, lot_number text)
returns inventory_api.stock_count
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
  v_reason inventory.reason_codes;
  v_actor text := inventory.current_actor();
  v_count_id bigint;
  v_adjustment_id bigint;
  v_difference numeric;
  v_apply boolean;
  v_movement_id bigint;
  v_lot inventory.lots;
  v_on_hand numeric;
  v_reserved numeric;
begin
  v_item := inventory.item_for_sku(record_count.sku);
  v_location_id := inventory.location_for_code(record_count.location);
  perform inventory.authorize('operator', v_location_id);
  perform inventory.check_lot_argument(v_item.track_lots, record_count.lot_number, required => true);
  if v_item.track_lots then
    v_lot := inventory.lot_for_number(v_item.item_id, record_count.lot_number, record_count.sku);
  end if;
  if record_count.counted_quantity is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'counted_quantity is required',
      pg_catalog.jsonb_build_object('argument', 'counted_quantity', 'value', null));
  end if;
  perform inventory.check_level_quantity(record_count.counted_quantity, 'counted_quantity');

  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_location_id)
  on conflict do nothing;
  -- Lock order: the level, then its pending count adjustments. Under the level's lock on_hand cannot
  -- move, so the difference is exact for this instant; and every pending count of the level was
  -- committed by a count that held this lock before, so the next statement sees them all.
  select * into v_level from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id
     for update;
  perform from inventory.adjustments a
   where a.item_id = v_item.item_id and a.location_id = v_location_id and a.status = 'PENDING'
     and a.adjustment_type = 'physical_count' and a.lot_id is not distinct from v_lot.lot_id
   order by a.adjustment_id
     for update;
  -- A lot-tracked item is counted lot by lot: the count is compared with the lot's units there.
  if v_lot.lot_id is not null then
    select coalesce(pg_catalog.sum(ll.on_hand), 0), coalesce(pg_catalog.sum(ll.reserved), 0) into v_on_hand, v_reserved
      from inventory.lot_levels ll where ll.lot_id = v_lot.lot_id and ll.location_id = v_location_id;
  else
    v_on_hand := v_level.on_hand;
    v_reserved := v_level.reserved;
  end if;
  v_difference := record_count.counted_quantity - v_on_hand;
  v_count_id := pg_catalog.nextval('inventory.cycle_counts_count_id_seq'::regclass);
  insert into inventory.cycle_counts (count_id, item_id, location_id, counted_quantity, on_hand_at_count,
                                      reserved_at_count, counted_by, lot_id)
  values (v_count_id, v_item.item_id, v_location_id, record_count.counted_quantity, v_on_hand,
          v_reserved, v_actor, v_lot.lot_id);
  -- This count measures the whole discrepancy again: older pending count differences are void.
  update inventory.adjustments a
     set status = 'SUPERSEDED', decided_by = v_actor, decided_at = pg_catalog.now(),
         decision_note = pg_catalog.format('superseded by count %s', v_count_id)
   where a.item_id = v_item.item_id and a.location_id = v_location_id and a.status = 'PENDING'
     and a.adjustment_type = 'physical_count' and a.lot_id is not distinct from v_lot.lot_id;

  if v_difference = 0 then
    update inventory.stock_levels s set last_counted_at = pg_catalog.now(), last_counted_by = v_actor
     where s.item_id = v_item.item_id and s.location_id = v_location_id;
  else
    select * into v_reason from inventory.reason_codes r where r.reason_code = 'cycle_count';
    -- Applied at once when small enough and it keeps reserved <= on_hand; else left for an admin.
    v_apply := not inventory.adjustment_needs_approval(v_reason, v_difference)
               and record_count.counted_quantity >= v_reserved;
    v_adjustment_id := pg_catalog.nextval('inventory.adjustments_adjustment_id_seq'::regclass);
    if v_apply and v_lot.lot_id is not null then
      v_movement_id := (inventory.move_lot_units(v_item.item_id, v_location_id,
        array[row(v_lot.lot_id, v_difference, 0, null)::inventory.lot_delta],
        inventory.describe_movement('ADJUST', 'cycle_count', 'adjustment:' || v_adjustment_id,
          metadata => pg_catalog.jsonb_build_object('adjustment_id', v_adjustment_id,
                                                    'adjustment_type', 'physical_count', 'count_id', v_count_id,
                                                    'counted_quantity', record_count.counted_quantity,
                                                    'lot_number', v_lot.lot_number)))).last_movement_id;
      v_apply := false;  -- moved: the statement below only records the count
    end if;
    update inventory.stock_levels s
       set last_counted_at = pg_catalog.now(), last_counted_by = v_actor,
           on_hand = case when v_apply then record_count.counted_quantity else s.on_hand end,
           pending_movement = case when v_apply then inventory.describe_movement('ADJUST', 'cycle_count',
             'adjustment:' || v_adjustment_id,
             metadata => pg_catalog.jsonb_build_object('adjustment_id', v_adjustment_id,
                                                       'adjustment_type', 'physical_count', 'count_id', v_count_id,
                                                       'counted_quantity', record_count.counted_quantity)) end
     where s.item_id = v_item.item_id and s.location_id = v_location_id
    returning coalesce(v_movement_id, case when v_apply then s.last_movement_id end) into v_movement_id;
    v_apply := v_movement_id is not null;
    insert into inventory.adjustments (adjustment_id, item_id, location_id, quantity_delta, adjustment_type,
                                       reason_code, description, status, requires_approval, on_hand_at_request,
                                       count_id, requested_by, decided_by, decided_at, on_hand_at_apply, movement_id,
                                       lot_id)
    values (v_adjustment_id, v_item.item_id, v_location_id, v_difference, 'physical_count', 'cycle_count',
            pg_catalog.format('cycle count %s: counted %s, on hand %s', v_count_id,
                              record_count.counted_quantity, v_on_hand),
            case when v_apply then 'APPLIED' else 'PENDING' end, not v_apply, v_level.on_hand, v_count_id, v_actor,
            case when v_apply then v_actor end, case when v_apply then pg_catalog.now() end,
            case when v_apply then v_level.on_hand end, case when v_apply then v_movement_id end, v_lot.lot_id);
  end if;
  return (select row(c.count_id, record_count.sku, record_count.location, c.counted_quantity, c.on_hand_at_count,
                     c.reserved_at_count, c.difference, a.adjustment_id, a.status, c.counted_by,
                     c.counted_at, record_count.lot_number)::inventory_api.stock_count
            from inventory.cycle_counts c
            left join inventory.adjustments a on a.adjustment_id = v_adjustment_id
           where c.count_id = v_count_id);
end
$$;

comment on function inventory.record_count(text, numeric, text, text) is 'Implements inventory_api.record_count.';

-- The result of a transfer, stored under its idempotency key.
create function inventory.finish_transfer(from_level inventory.stock_levels, to_level inventory.stock_levels, sku text,
                                          quantity numeric, from_location text, to_location text, reference text,
                                          idempotency_key text)
returns inventory_api.stock_transfer
language plpgsql volatile
set search_path = ''
as $$
declare
  v_result inventory_api.stock_transfer;
begin
  v_result := row(finish_transfer.sku, finish_transfer.quantity, finish_transfer.from_location,
                  finish_transfer.to_location, finish_transfer.reference, (finish_transfer.from_level).last_movement_id,
                  (finish_transfer.to_level).last_movement_id, (finish_transfer.from_level).on_hand,
                  (finish_transfer.from_level).available, (finish_transfer.to_level).on_hand,
                  (finish_transfer.to_level).available)::inventory_api.stock_transfer;
  if finish_transfer.idempotency_key is not null then
    perform inventory.complete_idempotency_key(finish_transfer.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.finish_transfer(inventory.stock_levels, inventory.stock_levels, text, numeric, text, text, text, text) is 'Builds a transfer''s result and stores it under its idempotency key.';

create function inventory.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
                                         reference text, idempotency_key text, lot_number text)
returns inventory_api.stock_transfer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_from_id bigint;
  v_to_id bigint;
  v_from inventory.stock_levels;
  v_to inventory.stock_levels;
  v_available numeric;
  v_replay jsonb;
  v_lot inventory.lots;
  v_deltas inventory.lot_delta[];
begin
  v_item := inventory.item_for_sku(transfer_stock.sku);
  perform inventory.check_quantity(transfer_stock.quantity);
  v_from_id := inventory.location_for_code(transfer_stock.from_location);
  v_to_id := inventory.location_for_code(transfer_stock.to_location);
  perform inventory.authorize('operator', v_from_id);
  perform inventory.authorize('operator', v_to_id);
  if v_from_id = v_to_id then
    perform inventory.raise_error('INVALID_ARGUMENT', 'from_location and to_location must differ',
      pg_catalog.jsonb_build_object('argument', 'to_location', 'problem', 'same as from_location'));
  end if;
  perform inventory.check_text(transfer_stock.reference, 'reference', 200, required => false);
  perform inventory.check_lot_argument(v_item.track_lots, transfer_stock.lot_number, required => false);
  if transfer_stock.lot_number is not null then
    v_lot := inventory.lot_for_number(v_item.item_id, transfer_stock.lot_number, transfer_stock.sku);
  end if;
  if transfer_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(transfer_stock.idempotency_key, 'transfer_stock',
      pg_catalog.jsonb_build_object('sku', transfer_stock.sku, 'quantity', transfer_stock.quantity,
        'from_location', transfer_stock.from_location, 'to_location', transfer_stock.to_location,
        'reference', transfer_stock.reference)
      || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lot_number', transfer_stock.lot_number)));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_transfer, v_replay);
    end if;
  end if;

  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_to_id)
  on conflict do nothing;
  -- Both levels in (item_id, location_id) order, before anything else at them: opposite transfers
  -- cannot deadlock. Overdue holds in the way are expired only then; expiry skips holds that are
  -- locked, so it never waits while these levels are held.
  perform from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id in (v_from_id, v_to_id)
   order by s.item_id, s.location_id
     for update;
  select s.on_hand - s.reserved into v_available
    from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_from_id;
  if v_item.track_lots then
    -- A named lot moves in whatever state it is (quarantined stock goes to the quarantine area);
    -- without a name the sellable lots go, first expiring first.
    v_deltas := inventory.lot_units_to_move(v_item.item_id, v_from_id, v_lot.lot_id, transfer_stock.quantity);
    if v_deltas is null then
      perform inventory.raise_error('INSUFFICIENT_STOCK',
        pg_catalog.format('insufficient %s of %s at %s to transfer %s',
                          coalesce('free stock in lot ' || transfer_stock.lot_number, 'sellable stock'),
                          transfer_stock.sku, transfer_stock.from_location, transfer_stock.quantity),
        inventory.shortfall(v_item.item_id, v_from_id, transfer_stock.sku, transfer_stock.from_location,
                            transfer_stock.quantity)
        || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('lot_number', transfer_stock.lot_number)));
    end if;
    v_from := inventory.move_lot_units(v_item.item_id, v_from_id,
      array(select row(d.lot_id, -d.on_hand_delta, 0, null)::inventory.lot_delta from pg_catalog.unnest(v_deltas) d),
      inventory.describe_movement('TRANSFER_OUT', 'transfer', transfer_stock.reference, transfer_stock.idempotency_key,
        metadata => pg_catalog.jsonb_build_object('to_location', transfer_stock.to_location)));
    v_to := inventory.move_lot_units(v_item.item_id, v_to_id, v_deltas,
      inventory.describe_movement('TRANSFER_IN', 'transfer', transfer_stock.reference, transfer_stock.idempotency_key,
        related_movement_id => v_from.last_movement_id,
        metadata => pg_catalog.jsonb_build_object('from_location', transfer_stock.from_location)));
    return inventory.finish_transfer(v_from, v_to, transfer_stock.sku, transfer_stock.quantity,
                                     transfer_stock.from_location, transfer_stock.to_location,
                                     transfer_stock.reference, transfer_stock.idempotency_key);
  end if;
  if coalesce(v_available, 0) < transfer_stock.quantity
     and coalesce(inventory.effective_available(v_item.item_id, v_from_id), 0) >= transfer_stock.quantity then
    perform inventory.expire_overdue_at_level(v_item.item_id, v_from_id);
  end if;
  update inventory.stock_levels s
     set on_hand = s.on_hand - transfer_stock.quantity,
         pending_movement = inventory.describe_movement('TRANSFER_OUT', 'transfer', transfer_stock.reference,
           transfer_stock.idempotency_key,
           metadata => pg_catalog.jsonb_build_object('to_location', transfer_stock.to_location))
   where s.item_id = v_item.item_id and s.location_id = v_from_id
     and s.on_hand - s.reserved >= transfer_stock.quantity
  returning * into v_from;
  if not found then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock of %s at %s to transfer %s', transfer_stock.sku,
                        transfer_stock.from_location, transfer_stock.quantity),
      inventory.shortfall(v_item.item_id, v_from_id, transfer_stock.sku, transfer_stock.from_location,
                          transfer_stock.quantity));
  end if;
  update inventory.stock_levels s
     set on_hand = s.on_hand + transfer_stock.quantity,
         pending_movement = inventory.describe_movement('TRANSFER_IN', 'transfer', transfer_stock.reference,
           transfer_stock.idempotency_key, related_movement_id => v_from.last_movement_id,
           metadata => pg_catalog.jsonb_build_object('from_location', transfer_stock.from_location))
   where s.item_id = v_item.item_id and s.location_id = v_to_id
  returning * into v_to;
  return inventory.finish_transfer(v_from, v_to, transfer_stock.sku, transfer_stock.quantity,
                                   transfer_stock.from_location, transfer_stock.to_location,
                                   transfer_stock.reference, transfer_stock.idempotency_key);
end
$$;

comment on function inventory.transfer_stock(text, numeric, text, text, text, text, text) is 'Implements inventory_api.transfer_stock.';

-- Every broken invariant, unfiltered (no authorization: internal).
create or replace function inventory.inventory_violations()
returns setof inventory_api.invariant_violation
language sql stable
set search_path = ''
as $$
  with levels as (
    select s.item_id, s.location_id, s.on_hand, s.reserved, s.ledger_hash, i.sku, l.code as location
      from inventory.stock_levels s
      join inventory.items i on i.item_id = s.item_id
      join inventory.locations l on l.location_id = s.location_id
  ), ledger_sums as (
    select g.item_id, g.location_id, pg_catalog.sum(g.on_hand_delta) as on_hand,
           pg_catalog.sum(g.reserved_delta) as reserved
      from inventory.ledger g group by g.item_id, g.location_id
  ), holds as (
    select r.item_id, r.location_id, pg_catalog.sum(r.quantity - r.quantity_fulfilled) as reserved
      from inventory.reservations r where r.status = 'ACTIVE' group by r.item_id, r.location_id
  ), chain as (
    select g.item_id, g.location_id, g.movement_id, g.on_hand_before, g.reserved_before, g.prev_hash, g.hash,
           pg_catalog.lag(g.on_hand_after, 1, 0::numeric) over w as prev_on_hand,
           pg_catalog.lag(g.reserved_after, 1, 0::numeric) over w as prev_reserved,
           pg_catalog.lag(g.hash) over w as prev_link,
           pg_catalog.sha256(coalesce(g.prev_hash, ''::bytea) || inventory.ledger_entry_bytes(g)) as recomputed,
           pg_catalog.row_number() over (partition by g.item_id, g.location_id order by g.movement_id desc) as from_end
      from inventory.ledger g
    window w as (partition by g.item_id, g.location_id order by g.movement_id)
  ), counted_returns as (
    select r.order_ref, r.item_id, pg_catalog.sum(r.quantity_returned) as quantity
      from inventory.reservations r group by r.order_ref, r.item_id
  ), returned as (
    select t.order_ref, t.item_id, pg_catalog.sum(t.quantity) as quantity
      from inventory.returns t group by t.order_ref, t.item_id
  )
  select 'on_hand_equals_ledger', v.sku, v.location, coalesce(g.on_hand, 0), v.on_hand,
         'on_hand differs from the sum of its ledger movements'
    from levels v left join ledger_sums g using (item_id, location_id)
   where v.on_hand <> coalesce(g.on_hand, 0)
  union all
  select 'reserved_equals_ledger', v.sku, v.location, coalesce(g.reserved, 0), v.reserved,
         'reserved differs from the sum of its ledger movements'
    from levels v left join ledger_sums g using (item_id, location_id)
   where v.reserved <> coalesce(g.reserved, 0)
  union all
  select 'ledger_has_level', i.sku, l.code, 0, g.on_hand, 'ledger movements for a stock level that does not exist'
    from ledger_sums g
    left join inventory.stock_levels s using (item_id, location_id)
    left join inventory.items i on i.item_id = g.item_id
    left join inventory.locations l on l.location_id = g.location_id
   where s.item_id is null
  union all
  select 'reserved_equals_active_holds', v.sku, v.location, coalesce(h.reserved, 0), v.reserved,
         'reserved differs from the open quantity of active holds'
    from levels v full join holds h using (item_id, location_id)
   where coalesce(v.reserved, -1) <> coalesce(h.reserved, 0)
  union all
  select 'not_negative', v.sku, v.location, 0, least(v.on_hand, v.reserved),
         'on_hand or reserved is negative'
    from levels v where v.on_hand < 0 or v.reserved < 0
  union all
  select 'not_oversold', v.sku, v.location, v.on_hand, v.reserved, 'reserved exceeds on_hand'
    from levels v where v.reserved > v.on_hand
  union all
  select 'ledger_is_continuous', i.sku, l.code, c.prev_on_hand, c.on_hand_before,
         pg_catalog.format('movement %s does not start where the previous one of its level ended', c.movement_id)
    from chain c
    join inventory.items i on i.item_id = c.item_id
    join inventory.locations l on l.location_id = c.location_id
   where c.on_hand_before <> c.prev_on_hand or c.reserved_before <> c.prev_reserved
  union all
  select 'ledger_hash_chain', i.sku, l.code, null, null,
         pg_catalog.format('movement %s: %s', c.movement_id,
           case when c.prev_hash is distinct from c.prev_link then 'prev_hash does not match the previous movement'
                else 'hash does not match its contents' end)
    from chain c
    join inventory.items i on i.item_id = c.item_id
    join inventory.locations l on l.location_id = c.location_id
   where c.prev_hash is distinct from c.prev_link or c.hash <> c.recomputed
  union all
  select 'ledger_hash_head', v.sku, v.location, null, null,
         'the level''s ledger_hash is not the hash of its latest movement'
    from levels v
    left join chain c on c.item_id = v.item_id and c.location_id = v.location_id and c.from_end = 1
   where v.ledger_hash is distinct from c.hash
  union all
  select 'returns_equal_holds', i.sku, null, coalesce(c.quantity, 0), coalesce(t.quantity, 0),
         pg_catalog.format('returns recorded for order %s differ from the returned quantity of its holds',
                           coalesce(t.order_ref, c.order_ref))
    from returned t
    full join counted_returns c using (order_ref, item_id)
    join inventory.items i on i.item_id = coalesce(t.item_id, c.item_id)
   where coalesce(t.quantity, 0) <> coalesce(c.quantity, 0)
  union all
  select 'level_equals_lots', v.sku, v.location, coalesce(o.on_hand, 0), v.on_hand,
         pg_catalog.format('the level''s on_hand / reserved (%s / %s) differ from the sums of its lots (%s / %s)',
                           v.on_hand, v.reserved, coalesce(o.on_hand, 0), coalesce(o.reserved, 0))
    from levels v
    join inventory.items i on i.item_id = v.item_id
    left join (select ll.item_id, ll.location_id, pg_catalog.sum(ll.on_hand) as on_hand,
                      pg_catalog.sum(ll.reserved) as reserved
                 from inventory.lot_levels ll group by ll.item_id, ll.location_id) o
      on o.item_id = v.item_id and o.location_id = v.location_id
   where (i.track_lots or o.item_id is not null)
     and (not i.track_lots or v.on_hand <> coalesce(o.on_hand, 0) or v.reserved <> coalesce(o.reserved, 0))
  union all
  select 'level_tracks_lots_like_item', v.sku, v.location, null, null,
         'the level''s track_lots differs from its item''s'
    from levels v
    join inventory.items i on i.item_id = v.item_id
    join inventory.stock_levels s on s.item_id = v.item_id and s.location_id = v.location_id
   where s.track_lots <> i.track_lots
  union all
  select 'lot_level_equals_lot_movements', i.sku, l.code, coalesce(m.on_hand, 0), ll.on_hand,
         pg_catalog.format('lot %s: on_hand / reserved (%s / %s) differ from the sums of its lot movements (%s / %s)',
                           t.lot_number, ll.on_hand, ll.reserved, coalesce(m.on_hand, 0), coalesce(m.reserved, 0))
    from inventory.lot_levels ll
    join inventory.lots t on t.lot_id = ll.lot_id
    join inventory.items i on i.item_id = t.item_id
    join inventory.locations l on l.location_id = ll.location_id
    left join (select x.lot_id, x.location_id, pg_catalog.sum(x.on_hand_delta) as on_hand,
                      pg_catalog.sum(x.reserved_delta) as reserved
                 from inventory.lot_movements x group by x.lot_id, x.location_id) m
      on m.lot_id = ll.lot_id and m.location_id = ll.location_id
   where ll.on_hand <> coalesce(m.on_hand, 0) or ll.reserved <> coalesce(m.reserved, 0)
  union all
  select 'movement_equals_lot_movements', i.sku, l.code, g.on_hand_delta, m.on_hand,
         pg_catalog.format('movement %s moved %s / %s, its lot movements %s / %s', g.movement_id, g.on_hand_delta,
                           g.reserved_delta, coalesce(m.on_hand, 0), coalesce(m.reserved, 0))
    from inventory.ledger g
    join inventory.stock_levels s on s.item_id = g.item_id and s.location_id = g.location_id and s.track_lots
    join inventory.items i on i.item_id = g.item_id
    join inventory.locations l on l.location_id = g.location_id
    left join (select x.movement_id, pg_catalog.sum(x.on_hand_delta) as on_hand, pg_catalog.sum(x.reserved_delta) as reserved
                 from inventory.lot_movements x where x.movement_id is not null group by x.movement_id) m
      on m.movement_id = g.movement_id
   where g.on_hand_delta <> coalesce(m.on_hand, 0) or g.reserved_delta <> coalesce(m.reserved, 0)
  union all
  select 'lot_reserved_equals_allocations', i.sku, l.code, coalesce(a.open, 0), ll.reserved,
         pg_catalog.format('lot %s: reserved differs from the open allocations of active holds', t.lot_number)
    from inventory.lot_levels ll
    join inventory.lots t on t.lot_id = ll.lot_id
    join inventory.items i on i.item_id = t.item_id
    join inventory.locations l on l.location_id = ll.location_id
    left join (select x.lot_id, x.location_id, pg_catalog.sum(x.quantity - x.quantity_fulfilled - x.quantity_released) as open
                 from inventory.lot_allocations x
                 join inventory.reservations r on r.reservation_id = x.reservation_id and r.status = 'ACTIVE'
                group by x.lot_id, x.location_id) a on a.lot_id = ll.lot_id and a.location_id = ll.location_id
   where ll.reserved <> coalesce(a.open, 0)
  union all
  select 'allocation_has_lot', i.sku, l.code, null, x.quantity,
         pg_catalog.format('hold %s is allocated from lot id %s, which is not a lot of its item', x.reservation_id,
                           x.lot_id)
    from inventory.lot_allocations x
    left join inventory.lots t on t.lot_id = x.lot_id and t.item_id = x.item_id
    left join inventory.items i on i.item_id = x.item_id
    left join inventory.locations l on l.location_id = x.location_id
   where t.lot_id is null
  union all
  select 'hold_equals_allocations', i.sku, l.code, r.quantity_fulfilled, coalesce(a.fulfilled, 0),
         pg_catalog.format('hold %s: shipped %s and open %s, its lot allocations %s and %s', r.reservation_id,
                           r.quantity_fulfilled, case when r.status = 'ACTIVE' then r.quantity - r.quantity_fulfilled else 0 end,
                           coalesce(a.fulfilled, 0), coalesce(a.open, 0))
    from inventory.reservations r
    join inventory.items i on i.item_id = r.item_id and i.track_lots
    join inventory.locations l on l.location_id = r.location_id
    left join (select x.reservation_id, pg_catalog.sum(x.quantity_fulfilled) as fulfilled,
                      pg_catalog.sum(x.quantity_returned) as returned,
                      pg_catalog.sum(x.quantity - x.quantity_fulfilled - x.quantity_released) as open
                 from inventory.lot_allocations x group by x.reservation_id) a on a.reservation_id = r.reservation_id
   where r.quantity_fulfilled <> coalesce(a.fulfilled, 0)
      or (case when r.status = 'ACTIVE' then r.quantity - r.quantity_fulfilled else 0 end) <> coalesce(a.open, 0)
      or r.quantity_returned < coalesce(a.returned, 0)
$$;

comment on function inventory.inventory_violations() is 'Every broken invariant of the stock books (internal, unfiltered).';

-- Moves the open holds on a lot that may no longer be sold to other sellable lots of their level
-- (first expiring first), each hold wholly or not at all; a hold that no other lot can take is
-- released, and an overdue one expired. The lot's row is locked by the caller (a lot's row before any
-- level); this locks its levels in key order, then the holds. Returns the counts.
create function inventory.reallocate_lot_holds(lot_id bigint, reason text,
                                               out holds_reallocated integer, out holds_released integer,
                                               out units_released numeric)
language plpgsql volatile
set search_path = ''
as $$
declare
  v_hold record;
  v_deltas inventory.lot_delta[];
  v_release inventory.hold_move[] := '{}'::inventory.hold_move[];
begin
  holds_reallocated := 0;
  perform from inventory.stock_levels s
   where (s.item_id, s.location_id) in (select ll.item_id, ll.location_id from inventory.lot_levels ll
                                         where ll.lot_id = reallocate_lot_holds.lot_id and ll.reserved > 0)
   order by s.item_id, s.location_id
     for update;
  for v_hold in
    select r.reservation_id, r.item_id, r.location_id, r.expires_at <= pg_catalog.now() as overdue,
           a.quantity - a.quantity_fulfilled - a.quantity_released as units
      from inventory.lot_allocations a
      join inventory.reservations r on r.reservation_id = a.reservation_id
     where a.lot_id = reallocate_lot_holds.lot_id and a.quantity_fulfilled + a.quantity_released < a.quantity
       and r.status = 'ACTIVE'
     order by r.reservation_id
       for update of r
  loop
    v_deltas := null;
    if not v_hold.overdue then
      v_deltas := inventory.fefo_allocation(v_hold.item_id, v_hold.location_id, v_hold.units, inventory.lot_today(),
                                            v_hold.reservation_id);
    end if;
    if v_deltas is null then
      v_release := v_release || row(v_hold.reservation_id, v_hold.item_id, v_hold.location_id,
                                    case when v_hold.overdue then 'EXPIRE' else 'RELEASE' end,
                                    (select r.quantity - r.quantity_fulfilled from inventory.reservations r
                                      where r.reservation_id = v_hold.reservation_id))::inventory.hold_move;
      continue;
    end if;
    update inventory.lot_allocations a
       set quantity_released = a.quantity_released + v_hold.units
     where a.reservation_id = v_hold.reservation_id and a.lot_id = reallocate_lot_holds.lot_id;
    insert into inventory.lot_allocations as a (reservation_id, lot_id, item_id, location_id, quantity)
    select v_hold.reservation_id, d.lot_id, v_hold.item_id, v_hold.location_id, d.reserved_delta
      from pg_catalog.unnest(v_deltas) d
    on conflict on constraint lot_allocations_pkey do update set quantity = a.quantity + excluded.quantity;
    perform inventory.move_lot_units(v_hold.item_id, v_hold.location_id,
      v_deltas || row(reallocate_lot_holds.lot_id, 0, -v_hold.units, v_hold.reservation_id)::inventory.lot_delta,
      inventory.describe_movement('RESERVE', 'reallocated: ' || reallocate_lot_holds.reason));
    holds_reallocated := holds_reallocated + 1;
  end loop;
  holds_released := pg_catalog.cardinality(v_release);
  units_released := coalesce((select pg_catalog.sum(m.quantity) from pg_catalog.unnest(v_release) m), 0);
  if holds_released > 0 then
    perform inventory.apply_hold_moves(v_release, null, reallocate_lot_holds.reason, null);
  end if;
end
$$;

comment on function inventory.reallocate_lot_holds(bigint, text) is 'Moves the open holds on a lot that may not be sold to other sellable lots (FEFO), releasing those no lot can take; returns the counts.';

create function inventory.set_lot_status(sku text, lot_number text, qc_status text, quarantined boolean, note text)
returns inventory_api.lot_status_change
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_lot inventory.lots;
  v_moved record;
  v_sellable boolean;
begin
  perform inventory.authorize('admin');
  v_item := inventory.item_for_sku(set_lot_status.sku);
  perform inventory.check_lot_argument(v_item.track_lots, set_lot_status.lot_number, required => true);
  if set_lot_status.qc_status is not null and set_lot_status.qc_status not in ('PENDING', 'PASSED', 'FAILED') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'qc_status must be PENDING, PASSED or FAILED',
      pg_catalog.jsonb_build_object('argument', 'qc_status', 'problem', 'not a status'));
  end if;
  if set_lot_status.qc_status is null and set_lot_status.quarantined is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'give qc_status or quarantined (or both): nothing to change',
      pg_catalog.jsonb_build_object('argument', 'qc_status', 'problem', 'missing'));
  end if;
  perform inventory.check_text(set_lot_status.note, 'note', 500, required => false);
  perform inventory.lot_for_number(v_item.item_id, set_lot_status.lot_number, set_lot_status.sku);
  select * into v_lot from inventory.lots l
   where l.item_id = v_item.item_id and l.lot_number = set_lot_status.lot_number
     for no key update;
  update inventory.lots l
     set qc_status = coalesce(set_lot_status.qc_status, l.qc_status),
         quarantined = coalesce(set_lot_status.quarantined, l.quarantined),
         status_note = set_lot_status.note, status_changed_by = inventory.current_actor(),
         status_changed_at = pg_catalog.now()
   where l.lot_id = v_lot.lot_id
  returning * into v_lot;
  -- A hold allocated from a snapshot that still showed the old status must conflict with this
  -- change at REPEATABLE READ and SERIALIZABLE: it updates these rows too (levels first, in key order).
  perform from inventory.stock_levels s
   where s.item_id = v_item.item_id
     and s.location_id in (select ll.location_id from inventory.lot_levels ll where ll.lot_id = v_lot.lot_id)
   order by s.item_id, s.location_id
     for update;
  update inventory.lot_levels ll set version = ll.version + 1 where ll.lot_id = v_lot.lot_id;
  v_sellable := inventory.lot_block_reason(v_lot.qc_status, v_lot.quarantined, v_lot.expires_on, inventory.lot_today(),
                                           inventory.lot_today()) is null;
  if v_sellable then
    select 0 as holds_reallocated, 0 as holds_released, 0::numeric as units_released into v_moved;
  else
    select * into v_moved from inventory.reallocate_lot_holds(v_lot.lot_id,
      'lot ' || v_lot.lot_number || ' ' || inventory.lot_block_reason(v_lot.qc_status, v_lot.quarantined,
                                                                       v_lot.expires_on, inventory.lot_today(),
                                                                       inventory.lot_today()));
  end if;
  return row(set_lot_status.sku, v_lot.lot_number, v_lot.qc_status, v_lot.quarantined, v_sellable,
             v_moved.holds_reallocated, v_moved.holds_released, v_moved.units_released)::inventory_api.lot_status_change;
end
$$;

comment on function inventory.set_lot_status(text, text, text, boolean, text) is 'Implements inventory_api.set_lot_status.';

-- Writes off the units of every lot past its expiry, once: its holds go to other lots (or are
-- released), then its units on hand leave stock with an ADJUST movement of reason expired. Lots'
-- rows are locked first, in id order (a lot's row before any level), then each lot's levels.
create function inventory.expire_inventory_lots() returns inventory_api.lot_expiry
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_lot inventory.lots;
  v_lots bigint[];
  v_level record;
  v_moved record;
  v_result inventory_api.lot_expiry := row(0, 0, 0, 0, 0)::inventory_api.lot_expiry;
begin
  perform inventory.authorize('scheduler');
  if not inventory.lock_job('expire_inventory_lots', false) then
    perform inventory.raise_error('BUSY', 'another expire_inventory_lots run is in progress; it does this work',
      pg_catalog.jsonb_build_object('job', 'expire_inventory_lots'));
  end if;
  select pg_catalog.array_agg(l.lot_id order by l.lot_id) into v_lots
    from (select l.lot_id from inventory.lots l
           where l.expires_on < inventory.lot_today()
             and exists (select from inventory.lot_levels ll where ll.lot_id = l.lot_id and ll.on_hand > 0)
           order by l.lot_id
             for no key update) l;
  for v_lot in select * from inventory.lots l where l.lot_id = any (v_lots) order by l.lot_id loop
    select * into v_moved from inventory.reallocate_lot_holds(v_lot.lot_id, 'lot ' || v_lot.lot_number || ' expired');
    v_result.holds_reallocated := v_result.holds_reallocated + v_moved.holds_reallocated;
    v_result.holds_released := v_result.holds_released + v_moved.holds_released;
    v_result.units_released := v_result.units_released + v_moved.units_released;
    for v_level in
      select ll.item_id, ll.location_id, ll.on_hand from inventory.lot_levels ll
       where ll.lot_id = v_lot.lot_id and ll.on_hand > 0
       order by ll.location_id
    loop
      perform inventory.move_lot_units(v_level.item_id, v_level.location_id,
        array[row(v_lot.lot_id, -v_level.on_hand, 0, null)::inventory.lot_delta],
        inventory.describe_movement('ADJUST', 'expired', 'lot:' || v_lot.lot_number,
          metadata => pg_catalog.jsonb_build_object('lot_number', v_lot.lot_number, 'expires_on', v_lot.expires_on)));
      v_result.units_written_off := v_result.units_written_off + v_level.on_hand;
    end loop;
    update inventory.lots l set written_off_on = inventory.lot_today() where l.lot_id = v_lot.lot_id;
    v_result.lots_expired := v_result.lots_expired + 1;
  end loop;
  perform inventory.finish_job('expire_inventory_lots', v_result.lots_expired);
  return v_result;
end
$$;

comment on function inventory.expire_inventory_lots() is 'Implements inventory_api.expire_inventory_lots.';

create function inventory.trace_lot(sku text, lot_number text) returns setof inventory_api.lot_trace
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_item record;
  v_lot inventory.lots;
begin
  if not inventory.holds_role_somewhere('viewer') then
    perform inventory.authorize('viewer');
  end if;
  v_item := inventory.item_for_sku(trace_lot.sku);
  perform inventory.check_lot_argument(v_item.track_lots, trace_lot.lot_number, required => true);
  v_lot := inventory.lot_for_number(v_item.item_id, trace_lot.lot_number, trace_lot.sku);
  return query
    select r.order_ref, a.reservation_id, l.code, a.quantity, a.quantity_fulfilled, a.quantity_returned,
           a.quantity_released, r.status, a.created_at, r.closed_at
      from inventory.lot_allocations a
      join inventory.reservations r on r.reservation_id = a.reservation_id
      join inventory.locations l on l.location_id = a.location_id
     where a.lot_id = v_lot.lot_id and inventory.is_allowed('viewer', a.location_id)
     order by a.created_at, a.reservation_id;
end
$$;

comment on function inventory.trace_lot(text, text) is 'Implements inventory_api.trace_lot.';

create or replace view inventory_api.items with (security_invoker = true) as
  select i.sku, i.name, i.unit_of_measure, i.unit_cost, i.status, i.track_lots, i.created_at, i.updated_at,
         i.version, i.deleted_at, i.deleted_by, i.requires_qc
    from inventory.items i;

comment on view inventory_api.items is 'The catalogue, deleted items included (deleted_at is set; filter deleted_at=is.null for the live ones).';

create or replace view inventory_api.stock_levels with (security_invoker = true) as
  select i.sku, l.code as location, s.on_hand, s.reserved,
         s.available + o.overdue - b.blocked as available, o.overdue as expired_unreleased,
         i.status, s.version, s.updated_at, b.blocked
    from inventory.stock_levels s
    join inventory.items i on i.item_id = s.item_id
    join inventory.locations l on l.location_id = s.location_id
    cross join lateral (select inventory.overdue_quantity(s.item_id, s.location_id) as overdue) o
    cross join lateral (select case when s.track_lots then inventory.blocked_quantity(s.item_id, s.location_id)
                                    else 0::numeric end as blocked) b
   where i.deleted_at is null;

comment on view inventory_api.stock_levels is 'Stock per item and location. available already counts overdue holds as released (expired_unreleased of them are not swept yet) and leaves out units in lots that may not be sold (blocked: expired, awaiting or failed QC, quarantined), so available = on_hand - reserved + expired_unreleased - blocked.';

create or replace view inventory_api.stock_movements with (security_invoker = true) as
  select g.movement_id, g.movement_type::text as movement_type, i.sku, l.code as location, g.on_hand_delta, g.reserved_delta,
         g.on_hand_before, g.on_hand_after, g.reserved_before, g.reserved_after, g.actor, g.reason,
         g.reference, g.idempotency_key, g.related_movement_id, g.reservation_id, g.metadata, g.created_at,
         (select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('lot_number', t.lot_number,
                   'on_hand_delta', m.on_hand_delta, 'reserved_delta', m.reserved_delta) order by m.lot_movement_id)
            from inventory.lot_movements m join inventory.lots t on t.lot_id = m.lot_id
           where m.movement_id = g.movement_id) as lots
    from inventory.ledger g
    join inventory.items i on i.item_id = g.item_id
    join inventory.locations l on l.location_id = g.location_id;

comment on view inventory_api.stock_movements is 'The ledger: every stock movement, append-only. lots: for lot-tracked items, the lots the movement moved (lot_number, on_hand_delta, reserved_delta).';

create or replace view inventory_api.adjustments with (security_invoker = true) as
  select a.adjustment_id, i.sku, l.code as location, a.quantity_delta, a.adjustment_type, a.reason_code,
         a.description, a.status, a.requires_approval, a.on_hand_at_request, a.count_id, a.requested_by,
         a.requested_at, a.decided_by, a.decided_at, a.decision_note, a.on_hand_at_apply, a.movement_id,
         t.lot_number
    from inventory.adjustments a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
    left join inventory.lots t on t.lot_id = a.lot_id;

comment on view inventory_api.adjustments is 'History of stock adjustments: PENDING, APPLIED (no approval needed), APPROVED, REJECTED or SUPERSEDED (by a newer count).';

create or replace view inventory_api.cycle_counts with (security_invoker = true) as
  select c.count_id, i.sku, l.code as location, c.counted_quantity, c.on_hand_at_count, c.reserved_at_count,
         c.difference, a.adjustment_id, a.status as adjustment_status, c.counted_by, c.counted_at, t.lot_number
    from inventory.cycle_counts c
    join inventory.items i on i.item_id = c.item_id
    join inventory.locations l on l.location_id = c.location_id
    left join inventory.adjustments a on a.count_id = c.count_id
    left join inventory.lots t on t.lot_id = c.lot_id;

comment on view inventory_api.cycle_counts is 'Physical counts, the on_hand each was compared with, and the adjustment each produced.';

create view inventory_api.lots with (security_invoker = true) as
  select i.sku, t.lot_number, t.supplier_lot, l.code as location, ll.on_hand, ll.reserved,
         case when b.reason is null then ll.on_hand - ll.reserved else 0::numeric end as available,
         t.received_at, t.expires_on, t.unit_cost, t.qc_status, t.quarantined, b.reason is null as sellable,
         b.reason as blocked_reason
    from inventory.lot_levels ll
    join inventory.lots t on t.lot_id = ll.lot_id
    join inventory.items i on i.item_id = t.item_id
    join inventory.locations l on l.location_id = ll.location_id
    cross join lateral (select inventory.lot_block_reason(t.qc_status, t.quarantined, t.expires_on, inventory.lot_today(),
                                                          inventory.lot_today()) as reason) b
   where i.deleted_at is null;

comment on view inventory_api.lots is 'Lots of lot-tracked items per location: units on hand and allocated to holds, and whether they may be sold (blocked_reason: expired, qc_pending, qc_failed or quarantined; available is 0 then).';

create view inventory_api.expiring_lots with (security_invoker = true) as
  select i.sku, t.lot_number, l.code as location, ll.on_hand, ll.reserved, t.expires_on,
         t.expires_on - inventory.lot_today() as days_left,
         case when t.expires_on < inventory.lot_today() then 'EXPIRED'
              when t.expires_on <= inventory.lot_today() + 7 then 'EXPIRING_SOON'
              else 'EXPIRING' end as expiry_status
    from inventory.lot_levels ll
    join inventory.lots t on t.lot_id = ll.lot_id
    join inventory.items i on i.item_id = t.item_id
    join inventory.locations l on l.location_id = ll.location_id
   where i.deleted_at is null and ll.on_hand > 0 and t.expires_on <= inventory.lot_today() + 30;

comment on view inventory_api.expiring_lots is 'Lots with units on hand that expired (EXPIRED: past expires_on, not written off yet) or expire within 7 days (EXPIRING_SOON) or 30 days (EXPIRING); days_left counts from today (UTC).';

create view inventory_api.lot_allocations with (security_invoker = true) as
  select a.reservation_id, r.order_ref, i.sku, l.code as location, t.lot_number, a.quantity,
         a.quantity_fulfilled as fulfilled, a.quantity_released as released, a.quantity_returned as returned,
         r.status as hold_status, a.created_at
    from inventory.lot_allocations a
    join inventory.reservations r on r.reservation_id = a.reservation_id
    join inventory.lots t on t.lot_id = a.lot_id
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id;

comment on view inventory_api.lot_allocations is 'Which lots each hold of a lot-tracked item takes its units from (first expiring first out): allocated, shipped (fulfilled), given back (released: cancelled, expired or moved to another lot) and returned.';

create function inventory_api.create_item(sku text, name text, unit_of_measure text default 'each',
                                          unit_cost numeric default null, track_lots boolean default false,
                                          requires_qc boolean default false)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_item(create_item.sku, create_item.name, create_item.unit_of_measure,
                                      create_item.unit_cost, create_item.track_lots, create_item.requires_qc);
end;

comment on function inventory_api.create_item(text, text, text, numeric, boolean, boolean) is
'Create an item.
Idempotent by SKU: the same attributes again return the item; other attributes raise ALREADY_EXISTS (PT409). track_lots: receipts name the lot and holds take the first-expiring sellable lots (FEFO); requires_qc (lot-tracked items only): new lots wait for inspection (set_lot_status) before they may be sold.';

create or replace function inventory_api.set_item_status(sku text, status text)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_item_status(set_item_status.sku, set_item_status.status);
end;

comment on function inventory_api.set_item_status(text, text) is
'Set an item''s status: active, on_hold or discontinued.
on_hold and discontinued items cannot be reserved; discontinued items cannot be received.';

create or replace function inventory_api.update_item(sku text, name text default null, unit_of_measure text default null,
                                          unit_cost numeric default null, expected_version integer default null)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.update_item(update_item.sku, update_item.name, update_item.unit_of_measure,
                                      update_item.unit_cost, update_item.expected_version);
end;

comment on function inventory_api.update_item(text, text, text, numeric, integer) is
'Change an item''s name, unit of measure or unit cost (null arguments leave them as they are).
expected_version (from the items view) guards against lost updates: VERSION_CONFLICT (PT409) when the item changed since. The unit of measure changes only while nothing is on hand or held (INVALID_STATE).';

create or replace function inventory_api.delete_item(sku text, expected_version integer default null)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.delete_item(delete_item.sku, delete_item.expected_version);
end;

comment on function inventory_api.delete_item(text, integer) is
'Soft-delete an item: it then behaves as unknown (PRODUCT_NOT_FOUND) everywhere but stays in the ledger and the items view (deleted_at, deleted_by).
Refused with INVALID_STATE while stock is on hand or held anywhere; VERSION_CONFLICT when expected_version is stale. restore_item undoes it.';

create or replace function inventory_api.restore_item(sku text)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.restore_item(restore_item.sku);
end;

comment on function inventory_api.restore_item(text) is
'Undo delete_item: the item is live again with its history.';

create function inventory_api.receive_stock(sku text, quantity numeric, location text default 'main',
                                            reference text default null, unit_cost numeric default null,
                                            idempotency_key text default null, lot_number text default null,
                                            expires_on date default null, supplier_lot text default null)
returns inventory_api.stock_level
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.receive_stock(receive_stock.sku, receive_stock.quantity, receive_stock.location,
                                        receive_stock.reference, receive_stock.unit_cost,
                                        receive_stock.idempotency_key, receive_stock.lot_number,
                                        receive_stock.expires_on, receive_stock.supplier_lot);
end;

comment on function inventory_api.receive_stock(text, numeric, text, text, numeric, text, text, date, text) is
'Receive units into stock: on_hand += quantity.
Writes a RECEIVE movement. unit_cost, when given, updates the item''s moving-average cost. Lot-tracked items need lot_number (INVALID_ARGUMENT without; refused for other items): a new lot is created (qc_status PENDING when the item requires QC, else PASSED), an existing one grows; an expires_on or supplier_lot other than the lot''s raises ALREADY_EXISTS.';

create function inventory_api.reserve_stock(sku text, quantity numeric, order_ref text,
                                            location text default 'main', expires_in interval default null,
                                            idempotency_key text default null, reference_type text default 'order',
                                            notes text default null, min_shelf_life interval default null)
returns inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_stock(reserve_stock.sku, reserve_stock.quantity, reserve_stock.order_ref,
                                        reserve_stock.location, reserve_stock.expires_in,
                                        reserve_stock.idempotency_key, reserve_stock.reference_type,
                                        reserve_stock.notes, reserve_stock.min_shelf_life);
end;

comment on function inventory_api.reserve_stock(text, numeric, text, text, interval, text, text, text, interval) is
'Hold stock for an order, atomically: never more than is available.
expires_in defaults to the configured TTL (24 hours). reference_type says what order_ref is (order, work_order, transfer, production, sample, other); notes is free text. Raises INSUFFICIENT_STOCK (PT409) with the available quantity in DETAIL. Lot-tracked items are allocated first-expiring-first-out from sellable lots (see inventory_api.lot_allocations), skipping lots that expire before now + min_shelf_life; DETAIL.blocked then says how many units lot state keeps back (expired, qc_pending, qc_failed, quarantined, short_shelf_life).';

create function inventory_api.reserve_order(order_ref text, lines jsonb, expires_in interval default null,
                                            idempotency_key text default null, reference_type text default 'order',
                                            notes text default null, min_shelf_life interval default null)
returns setof inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_order(reserve_order.order_ref, reserve_order.lines,
                                        reserve_order.expires_in, reserve_order.idempotency_key,
                                        reserve_order.reference_type, reserve_order.notes,
                                        reserve_order.min_shelf_life);
end;

comment on function inventory_api.reserve_order(text, jsonb, interval, text, text, text, interval) is
'Hold every line of an order, or none.
lines: [{"sku": "A1", "quantity": 2, "location": "main"}]. Duplicate lines are merged; rows are locked in a fixed order so concurrent orders never deadlock; INSUFFICIENT_STOCK lists every short line. Lines of lot-tracked items are allocated FEFO, skipping lots that expire before now + min_shelf_life.';

create function inventory_api.process_return(order_ref text, sku text, quantity numeric, reason text,
                                             restock boolean default true, location text default 'main',
                                             idempotency_key text default null, lot_number text default null)
returns inventory_api.stock_return
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.process_return(process_return.order_ref, process_return.sku, process_return.quantity,
                                         process_return.reason, process_return.restock, process_return.location,
                                         process_return.idempotency_key, process_return.lot_number);
end;

comment on function inventory_api.process_return(text, text, numeric, text, boolean, text, text, text) is
'Record units a customer sent back; with restock, they go back on hand (RETURN movement).
Never more than was shipped for that order and SKU and not yet returned (QUANTITY_MISMATCH). Lot-tracked items go back into lot_number when given (LOT_NOT_FOUND when unknown), else into the lots shipped to the order.';

create function inventory_api.create_adjustment(sku text, quantity_delta numeric, adjustment_type text,
                                                reason_code text, location text default 'main',
                                                description text default null, idempotency_key text default null,
                                                lot_number text default null)
returns inventory_api.adjustment
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_adjustment(create_adjustment.sku, create_adjustment.quantity_delta,
                                            create_adjustment.adjustment_type, create_adjustment.reason_code,
                                            create_adjustment.location, create_adjustment.description,
                                            create_adjustment.idempotency_key, create_adjustment.lot_number);
end;

comment on function inventory_api.create_adjustment(text, numeric, text, text, text, text, text, text) is
'Request a change of on_hand outside the order lifecycle (operators, for their locations).
adjustment_type: physical_count, damage, correction, write_off or found; reason_code from inventory_api.reason_codes. Applied at once (status APPLIED, an ADJUST movement) when the reason needs no approval at this size, else PENDING until an admin decides (approve_adjustment). Raises INSUFFICIENT_STOCK when applying it would leave less on hand than is reserved. Lot-tracked items name the lot (lot_number, required).';

create or replace function inventory_api.approve_adjustment(adjustment_id bigint, decision text, note text default null)
returns inventory_api.adjustment
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.approve_adjustment(approve_adjustment.adjustment_id, approve_adjustment.decision,
                                             approve_adjustment.note);
end;

comment on function inventory_api.approve_adjustment(bigint, text, text) is
'Decide a PENDING adjustment: decision approved (applies its delta through the ledger as ADJUST) or rejected. Admins only, never the requester (SELF_APPROVAL_FORBIDDEN, PT409); a decided adjustment raises INVALID_STATE (PT409); INSUFFICIENT_STOCK when on_hand would fall below reserved.';

create function inventory_api.record_count(sku text, counted_quantity numeric, location text default 'main',
                                            lot_number text default null)
returns inventory_api.stock_count
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.record_count(record_count.sku, record_count.counted_quantity, record_count.location,
                                       record_count.lot_number);
end;

comment on function inventory_api.record_count(text, numeric, text, text) is
'Record a physical count: sets last_counted_at/by and, when it differs from on_hand, creates a physical_count adjustment for the difference (applied at once when small, else PENDING).
The difference is taken under the level''s lock and stored as a delta, applied to whatever on_hand is at approval; a newer count supersedes older pending count differences. Lot-tracked items are counted lot by lot (lot_number, required).';

create function inventory_api.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
                                             reference text default null, idempotency_key text default null,
                                             lot_number text default null)
returns inventory_api.stock_transfer
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.transfer_stock(transfer_stock.sku, transfer_stock.quantity, transfer_stock.from_location,
                                         transfer_stock.to_location, transfer_stock.reference,
                                         transfer_stock.idempotency_key, transfer_stock.lot_number);
end;

comment on function inventory_api.transfer_stock(text, numeric, text, text, text, text, text) is
'Move available units between two locations atomically: a TRANSFER_OUT and a TRANSFER_IN movement, the second linked to the first by related_movement_id. Never more than is available (INSUFFICIENT_STOCK); levels are locked in a fixed order, so opposite transfers never deadlock. Lot-tracked items move the free units of lot_number (in any state), or without it the sellable lots first expiring first.';

create function inventory_api.set_lot_status(sku text, lot_number text, qc_status text default null,
                                             quarantined boolean default null, note text default null)
returns inventory_api.lot_status_change
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_lot_status(set_lot_status.sku, set_lot_status.lot_number, set_lot_status.qc_status,
                                         set_lot_status.quarantined, set_lot_status.note);
end;

comment on function inventory_api.set_lot_status(text, text, text, boolean, text) is
'Set a lot''s quality status (PENDING, PASSED, FAILED) and/or quarantine (unscoped admins; audited).
Takes effect at once: passing QC or lifting quarantine makes the units available, failing or quarantining takes them out of availability and moves the lot''s open holds to other sellable lots (FEFO), releasing those no lot can take (counted in the result).';

create function inventory_api.trace_lot(sku text, lot_number text)
returns setof inventory_api.lot_trace
language sql stable
set search_path = ''
begin atomic
  select * from inventory.trace_lot(trace_lot.sku, trace_lot.lot_number);
end;

comment on function inventory_api.trace_lot(text, text) is
'Recall trace: every hold (order) that was allocated units of the lot, with units allocated, shipped, returned and given back, the location and dates. Rows at locations the caller may not see are left out.';

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
-- END functions and views generated by tools/schema_diff.py

-- The allocations' invariant, now that its predicate exists.
alter table inventory.lot_allocations
  add constraint lot_allocations_quantities_check
    check (inventory.lot_allocation_is_valid(quantity, quantity_fulfilled, quantity_released, quantity_returned));

-- The API views' columns: those 0.4.0 computes are described here, two whose table column's
-- description changed get the new one, and every other new column the comment of the table column
-- it shows (as sql/70_api_views.sql does).
comment on column inventory_api.stock_levels.blocked is 'Units on hand in lots that may not be sold (expired, awaiting or failed QC, quarantined) and no hold takes: not available.';
comment on column inventory_api.stock_movements.lots is 'For lot-tracked items, the lots the movement moved: [{lot_number, on_hand_delta, reserved_delta}]; null otherwise.';
comment on column inventory_api.lots.available is 'Units of the lot a new hold may take here: on_hand - reserved when the lot is sellable, else 0.';
comment on column inventory_api.lots.sellable is 'Whether the lot may be sold now: QC PASSED, not quarantined, not expired.';
comment on column inventory_api.lots.blocked_reason is 'Why the lot may not be sold: quarantined, qc_failed, expired or qc_pending; null when sellable.';
comment on column inventory_api.expiring_lots.days_left is 'Days from today (UTC) to expires_on: 0 on the last sellable day, negative once expired.';
comment on column inventory_api.expiring_lots.expiry_status is 'EXPIRED (past expires_on), EXPIRING_SOON (within 7 days) or EXPIRING (within 30 days).';
comment on column inventory_api.lot_allocations.fulfilled is 'Units of the allocation shipped.';
comment on column inventory_api.lot_allocations.released is 'Units of the allocation given back to the lot: the hold was cancelled or expired, or moved to another lot.';
comment on column inventory_api.lot_allocations.returned is 'Units of the shipped ones that came back (process_return).';
comment on column inventory_api.lot_allocations.hold_status is 'Status of the hold (ACTIVE, FULFILLED, CANCELLED, EXPIRED).';
comment on column inventory_api.items.track_lots is 'Whether stock of this item is tracked by lot: receipts name the lot, holds are allocated first-expiring-first-out (FEFO) from sellable lots.';
comment on column inventory_api.cycle_counts.reserved_at_count is 'reserved of the level (of the lot, when lot_id is set) at the instant of the count.';
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

-- Items flagged track_lots before 0.4.0 (which stored the flag and read it nowhere) may have stock,
-- holds and history but no lots. Each such item with stock levels gets one lot, UNLOTTED (passed QC,
-- no expiry, received with the item's first movement), that holds all of it: a lot level equal to
-- each stock level, a lot movement for each ledger movement of those levels, an allocation for
-- each hold (what the hold shipped, returned and, once closed, gave back), and their adjustments
-- and counts name it. The levels become lot-tracked last, once their lots add up to them (the
-- flag alone changes no quantity: the trigger records it as a direct change, without a movement).
-- (Every lot at this point is one of these.)
insert into inventory.lots (item_id, lot_number, received_at, unit_cost, qc_status, created_by)
select i.item_id, 'UNLOTTED',
       coalesce((select pg_catalog.min(g.created_at) from inventory.ledger g where g.item_id = i.item_id),
                i.created_at),
       i.unit_cost, 'PASSED', 'pyinv'
  from inventory.items i
 where i.track_lots and exists (select from inventory.stock_levels s where s.item_id = i.item_id)
 order by i.item_id;
insert into inventory.lot_levels (lot_id, location_id, item_id, on_hand, reserved)
select t.lot_id, s.location_id, s.item_id, s.on_hand, s.reserved
  from inventory.lots t
  join inventory.stock_levels s on s.item_id = t.item_id
 where s.on_hand <> 0 or s.reserved <> 0
    or exists (select from inventory.ledger g where g.item_id = s.item_id and g.location_id = s.location_id)
 order by s.item_id, s.location_id;
insert into inventory.lot_movements (movement_id, lot_id, item_id, location_id, on_hand_delta, reserved_delta,
                                     reservation_id, reason, actor, created_at)
select g.movement_id, t.lot_id, g.item_id, g.location_id, g.on_hand_delta, g.reserved_delta, g.reservation_id,
       'migrated to lot tracking', g.actor, g.created_at
  from inventory.lots t
  join inventory.ledger g on g.item_id = t.item_id
 order by g.movement_id;
insert into inventory.lot_allocations (reservation_id, lot_id, item_id, location_id, quantity, quantity_fulfilled,
                                       quantity_released, quantity_returned, created_at)
select r.reservation_id, t.lot_id, r.item_id, r.location_id, r.quantity, r.quantity_fulfilled,
       case when r.status = 'ACTIVE' then 0 else r.quantity - r.quantity_fulfilled end, r.quantity_returned,
       r.created_at
  from inventory.lots t
  join inventory.reservations r on r.item_id = t.item_id
 order by r.reservation_id;
update inventory.adjustments a set lot_id = t.lot_id from inventory.lots t where t.item_id = a.item_id;
update inventory.cycle_counts c set lot_id = t.lot_id from inventory.lots t where t.item_id = c.item_id;
update inventory.stock_levels s set track_lots = true
  from inventory.items i where i.item_id = s.item_id and i.track_lots;

reset role;
notify pgrst, 'reload schema';
