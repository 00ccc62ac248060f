-- Layer 2, tables: lots (batches) of lot-tracked items, their quantities per location, the holds'
-- allocations to them, and the lot ledger.
--
-- For an item with track_lots, the stock level of each location is the sum of its lots' levels
-- there, always: every function that moves units of such an item changes the lot levels first and
-- then the stock level, whose trigger refuses a change that leaves the two apart (so a DBA's direct
-- UPDATE of the level cannot part them either). Every change of a lot level is a lot movement,
-- pointing at the ledger movement of its stock level (none for a hold moved from one lot to
-- another, which does not change the level).
--
-- Lock order (43_holds.sql): a lot's row (its status) before any stock level; a stock level before
-- the levels of its lots; holds before their allocations. A lot's row is locked FOR NO KEY UPDATE,
-- never FOR UPDATE: new allocations and lot levels key-share it (their foreign keys) while their
-- stock level is locked, and must not wait for a status change that waits for that level.

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

-- No foreign key to lots, as holds have none to items and locations: its check would key-share-lock
-- the lot's row for every hold, and the holds of a hot lot would pile multixact locks on it. The
-- functions resolve the lot first; verify_inventory() reports an allocation without its lot.
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
  primary key (reservation_id, lot_id),
  constraint lot_allocations_quantities_check
    check (inventory.lot_allocation_is_valid(quantity, quantity_fulfilled, quantity_released, quantity_returned))
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
