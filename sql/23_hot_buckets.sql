-- Layer 2, tables: the buckets of hot stock levels (hot mode, set_hot_mode in 58_hot_mode.sql).
--
-- A flash sale puts every buyer on one stock_levels row, and PostgreSQL serialises them on that
-- row's lock and the commit flush. In hot mode the level's free units are parked in N bucket rows:
-- a hold takes a bucket nobody has locked (SKIP LOCKED) and moves only that row, so N holds commit
-- side by side. The level row keeps on_hand exact and counts parked units in reserved (they are
-- spoken for: by the bucket), so that no path that ignores buckets can sell them twice; the one
-- home of "available" (inventory.effective_available, inventory_api.stock_levels) gives them back.
--
-- Each bucket is a small ledger of its own: parked (units given to it) and held (units its holds
-- take); every change is a ledger movement with bucket set, in the bucket's own hash chain. Holds
-- leave a bucket only by moving back to the level row (REBALANCE) before they are shipped,
-- released or expired there, so the level's ledger keeps every SHIP, RELEASE and EXPIRE.

create table inventory.hot_buckets (
  item_id bigint not null,
  location_id bigint not null,
  bucket smallint not null,
  parked numeric(19, 4) not null default 0,
  held numeric(19, 4) not null default 0,
  free numeric(19, 4) generated always as (parked - held) stored,
  version bigint not null default 1,
  updated_at timestamptz not null default pg_catalog.now(),
  pending_movement inventory.movement,
  ledger_hash bytea,
  last_movement_id bigint,
  primary key (item_id, location_id, bucket),
  foreign key (item_id, location_id) references inventory.stock_levels (item_id, location_id),
  -- The level's invariant, read as 0 <= held <= parked: a bucket never goes negative.
  constraint hot_buckets_quantities_check
    check (inventory.level_quantities_are_valid(parked, held, pending_movement is null)),
  constraint hot_buckets_bucket_check check (bucket between 1 and 64)
) with (fillfactor = 50);

comment on table inventory.hot_buckets is 'Buckets of a hot stock level (set_hot_mode): each holds part of the level''s free units, so that holds on the level commit side by side. Changed only by pyinv''s functions, each change a ledger movement of the bucket.';
comment on column inventory.hot_buckets.item_id is 'The item.';
comment on column inventory.hot_buckets.location_id is 'The location.';
comment on column inventory.hot_buckets.bucket is 'Bucket number, 1 to 64.';
comment on column inventory.hot_buckets.parked is 'Units of the level parked in this bucket (counted in the level row''s reserved).';
comment on column inventory.hot_buckets.held is 'Units of parked taken by holds made in this bucket (reservations.bucket).';
comment on column inventory.hot_buckets.free is 'parked - held (generated): what a new hold may take from this bucket.';
comment on column inventory.hot_buckets.version is 'Incremented on every movement.';
comment on column inventory.hot_buckets.updated_at is 'Time of the last movement.';
comment on column inventory.hot_buckets.pending_movement is 'Transient description of the movement being written; consumed by the trigger, never stored.';
comment on column inventory.hot_buckets.ledger_hash is 'Hash of the bucket''s latest ledger movement: the head of its own hash chain.';
comment on column inventory.hot_buckets.last_movement_id is 'Id of the bucket''s latest ledger movement.';

-- The bucket's twin of record_stock_level_change: a movement, its ledger row in the bucket's chain
-- and its event. Nothing else: no audit path (only functions move buckets, and a change without a
-- description is refused) and no reorder alert (the level's rebalance evaluates it). The ledger row
-- is built here as the level's trigger builds its own rather than by one shared function: that
-- function, tried, made every reservation 7-15 % slower (2,000 reserve_stock calls in one
-- transaction: 1.49-2.10 s against 1.59-2.30 s), and this is the path of every hold.
create function inventory.record_hot_bucket_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_movement inventory.movement := new.pending_movement;
  v_entry inventory.ledger;
begin
  new.pending_movement := null;
  if tg_op = 'INSERT' then
    if new.parked <> 0 or new.held <> 0 then
      perform inventory.raise_error('INVALID_ARGUMENT', 'hot buckets are created empty (set_hot_mode)',
        pg_catalog.jsonb_build_object('argument', 'parked', 'problem', 'must start at 0'));
    end if;
    new.version := 1;
    new.ledger_hash := null;
    new.last_movement_id := null;
    return new;
  end if;
  if v_movement is null then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'hot buckets change only through pyinv''s functions (set_hot_mode, reserve_stock, ...)',
      pg_catalog.jsonb_build_object('argument', 'hot_buckets', 'problem', 'direct change'));
  end if;
  new.version := old.version + 1;
  new.ledger_hash := old.ledger_hash;
  new.last_movement_id := old.last_movement_id;
  if new.parked = old.parked and new.held = old.held then
    return new;
  end if;
  new.updated_at := pg_catalog.now();
  if pg_catalog.current_setting('request.jwt.claims', true) <> '' then
    select coalesce(v_movement.metadata, '{}'::jsonb)
             || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('request_path', c.request_path,
                                                                           'request_id', c.request_id))
      into v_movement.metadata
      from inventory.audit_context() c;
  end if;
  v_entry := row(
    pg_catalog.nextval('inventory.ledger_movement_id_seq'::regclass),
    v_movement.movement_type, new.item_id, new.location_id,
    new.parked - old.parked, new.held - old.held,
    old.parked, new.parked, old.held, new.held,
    inventory.current_actor(), v_movement.reason, v_movement.reference, v_movement.idempotency_key,
    v_movement.related_movement_id, v_movement.reservation_id, coalesce(v_movement.metadata, '{}'::jsonb),
    pg_catalog.now(), pg_catalog.pg_current_xact_id(),
    old.ledger_hash, null, new.bucket)::inventory.ledger;
  v_entry.hash := pg_catalog.sha256(coalesce(old.ledger_hash, ''::bytea) || inventory.ledger_entry_bytes(v_entry));
  insert into inventory.ledger overriding system value select v_entry.*;
  perform inventory.emit_event(inventory.movement_event_type(v_entry.movement_type), new.item_id, new.location_id,
                               null, v_entry.movement_id);
  new.ledger_hash := v_entry.hash;
  new.last_movement_id := v_entry.movement_id;
  return new;
end
$$;
comment on function inventory.record_hot_bucket_change() is 'Trigger: records every change of a hot bucket as a ledger movement in the bucket''s own chain (with its event); refuses changes not described by a pyinv function.';

create trigger hot_buckets_record_change
  before insert or update on inventory.hot_buckets
  for each row execute function inventory.record_hot_bucket_change();
alter table inventory.hot_buckets enable always trigger hot_buckets_record_change;

-- A bucket is never deleted: turning hot mode off leaves it empty, with its chain.
create trigger hot_buckets_forbid_delete
  before delete on inventory.hot_buckets
  for each row execute function inventory.forbid_ledger_change();
create trigger hot_buckets_forbid_truncate
  before truncate on inventory.hot_buckets
  for each statement execute function inventory.forbid_ledger_change();
alter table inventory.hot_buckets enable always trigger hot_buckets_forbid_delete;
alter table inventory.hot_buckets enable always trigger hot_buckets_forbid_truncate;
