-- pyinv 0.6.0: hot-SKU mode (issue 14). set_hot_mode spreads a level's free units over buckets
-- (inventory.hot_buckets, each with its own ledger chain) that holds take with SKIP LOCKED; a hold is
-- refused only when the level as a whole is short (the units of every bucket are pooled under the
-- level's lock first); levels and their buckets lock as one unit in key order (lock_levels).
-- reserve_many: many independent orders' holds in one call.
-- depends: 0005_operations

set local role inventory_owner;

-- Used only as text in this transaction (a new enum value may not be used before it commits).
alter type inventory.movement_type add value if not exists 'REBALANCE';  -- if not exists: a rollback leaves it
comment on type inventory.movement_type is 'Kinds of stock movement recorded in the ledger. REBALANCE moves free units between a hot level and its buckets (23_hot_buckets.sql): it changes no total.';

alter table inventory.stock_levels add column hot_buckets smallint not null default 1;
comment on column inventory.stock_levels.hot_buckets is 'Hot mode (set_hot_mode): how many buckets (inventory.hot_buckets) share the level''s free units; 1 = off. While on, reserved also counts the free units parked in buckets: inventory_api.stock_levels shows the true figures.';
alter table inventory.ledger add column bucket smallint;
comment on column inventory.ledger.bucket is 'Null for a movement of the stock level itself; for a movement of one of a hot level''s buckets, its number: then on_hand_* are the units parked in the bucket and reserved_* the units its holds take (a bucket has its own hash chain), and only REBALANCE moves parked units, so sums of on_hand_delta over the level count only rows with bucket null.';
alter table inventory.reservations add column bucket smallint;
comment on column inventory.reservations.bucket is 'The hot bucket (inventory.hot_buckets) whose units the hold takes, while it is there; null when the hold is on the level row itself (every hold is moved back there before it is shipped, released or expired).';

-- The result types of the new functions (sql/40_result_types.sql, sql/57_reserve_many.sql).

create type inventory_api.hot_mode as (
  sku text, location text, buckets integer, on_hand numeric, reserved numeric, available numeric, bucket_free numeric[]);

comment on type inventory_api.hot_mode is 'A level''s hot mode after set_hot_mode: buckets (1 = off), its quantities (as inventory_api.stock_levels shows them, before overdue holds are swept) and the free units of each active bucket.';

create type inventory_api.reserve_many_result as (
  ordinal integer, order_ref text, sku text, location text, reservation_id bigint, quantity numeric,
  expires_at timestamptz, ok boolean, sqlstate text, error_code text, message text, detail jsonb,
  reservation jsonb);

comment on type inventory_api.reserve_many_result is 'The outcome of one request of reserve_many: its hold (ok, reservation = what reserve_stock returns, as JSON) or the error reserve_stock would have raised (sqlstate, error_code = the HINT, message, detail).';

create type inventory.reserve_many_line as (
  ordinal integer, order_ref text, sku text, location text, quantity numeric, expires_in interval,
  idempotency_key text, item_id bigint, location_id bigint, status text, track_lots boolean,
  expires_at timestamptz, key_request jsonb, level_no integer);

comment on type inventory.reserve_many_line is 'One validated request of reserve_many (working state).';

-- The buckets of hot levels (sql/23_hot_buckets.sql), their row security (sql/60).

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

alter table inventory.hot_buckets enable row level security;

create policy hot_buckets_viewer_select on inventory.hot_buckets for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));

comment on policy hot_buckets_viewer_select on inventory.hot_buckets is 'Only buckets of levels at the locations the caller may see.';

-- The low-stock snapshot counts the units parked in hot buckets as available: rebuilt, with what
-- reads it (inventory.low_stock_rows, inventory_api.low_stock_items and inventory_api.dashboard,
-- the last one below), and filled so that it can be refreshed concurrently from the start.

drop materialized view inventory.mv_low_stock_items cascade;

create function inventory.parked_units(item_id bigint, location_id bigint) returns numeric
language sql stable parallel safe
set search_path = ''
begin atomic
  select coalesce(pg_catalog.sum(b.free), 0) from inventory.hot_buckets b
   where b.item_id = parked_units.item_id and b.location_id = parked_units.location_id;
end;

create materialized view inventory.mv_low_stock_items as
  select s.item_id, s.location_id, i.sku, l.code as location, s.on_hand, (s.reserved - a.parked)::numeric(19, 4) as reserved, a.available,
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
                                    else s.available + coalesce(o.units, 0) + k.parked end as available,
                               k.parked
                          from (select case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id) else 0 end as parked) k
                         offset 0) a
   -- available is never below on_hand - reserved except for lot-tracked levels (units in lots that
   -- may not be sold): the cheap test first leaves well-stocked levels out early.
   where i.deleted_at is null and (s.track_lots or s.available <= p.reorder_point)
     and a.available <= p.reorder_point
  with data;

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

create function inventory.low_stock_rows() returns setof inventory.mv_low_stock_items
language sql stable security definer
set search_path = ''
begin atomic
  select m.* from inventory.mv_low_stock_items m
   where (select inventory.is_allowed('viewer'))
      or m.location_id = any ((select inventory.visible_location_ids())::bigint[]);
end;

comment on function inventory.low_stock_rows() is 'Rows of inventory.mv_low_stock_items at the locations the caller may see (read by inventory_api.low_stock_items).';

create view inventory_api.low_stock_items with (security_invoker = true) as
  select m.sku, m.location, m.on_hand, m.reserved, m.available, m.reorder_point, m.safety_stock, m.stock_status,
         m.shortfall, m.reorder_quantity, m.max_stock_level, m.suggested_order_quantity, m.refreshed_at
    from inventory.low_stock_rows() m;

comment on view inventory_api.low_stock_items is 'Levels with a stock policy at or below their reorder point, as of the last refresh_inventory_views (refreshed_at): stock_status OUT_OF_STOCK (available <= 0), CRITICAL (available <= safety_stock) or LOW (available <= reorder_point).';

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

-- BEGIN functions and views generated by tools/schema_diff.py
-- Canonical bytes of a movement: independent of TimeZone and DateStyle.
create or replace function inventory.ledger_entry_bytes(entry inventory.ledger) returns bytea
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

-- What is installed, read from the schema itself: pyinv's release and the migration that brings a
-- database to it. Every migration replaces it with its own values (tests/test_install.py checks
-- them against the newest file in migrations/), so that a database whose install was recorded
-- nowhere (a dump restored without inventory_meta) still tells `pyinv migrate` and
-- `pyinv sql upgrade` where it stands.
create or replace function inventory.schema_version(out version text, out migration text)
language sql stable parallel safe
set search_path = ''
begin atomic
  select '0.6.0'::text, '0006_hot_mode'::text;
end;

comment on function inventory.schema_version() is 'The installed schema: pyinv release (version) and the last migration applied (migration).';

-- Free units parked in a level's buckets: the correction from the level row's reserved (which
-- counts them) to the truth, used wherever "available" is computed.
-- inventory.parked_units: created above, before the materialized view that calls it

comment on function inventory.parked_units(bigint, bigint) is 'Free units parked in a hot level''s buckets (counted in the level row''s reserved, available in truth).';

-- Available units at a level, counting overdue holds as released (they are, lazily).
create or replace function inventory.effective_available(item_id bigint, location_id bigint) returns numeric
language sql stable
set search_path = ''
begin atomic
  select case when s.track_lots
              then (select coalesce(pg_catalog.sum(a.units) filter (where a.reason is null), 0)
                      from inventory.lot_availability(s.item_id, s.location_id, null) a)
              else s.available + inventory.overdue_quantity(s.item_id, s.location_id)
                   + case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id) else 0 end end
    from inventory.stock_levels s
   where s.item_id = effective_available.item_id and s.location_id = effective_available.location_id;
end;

comment on function inventory.effective_available(bigint, bigint) is 'on_hand - reserved + units of overdue holds not yet swept + free units parked in hot buckets, less units in lots that may not be sold; null when the level does not exist.';

-- Describes why a line does not fit, for the DETAIL of INSUFFICIENT_STOCK, with available meaning
-- what inventory_api.stock_levels shows; for a lot-tracked item also how many units their lots'
-- state blocks, by reason (for this request: sellable_until is its min_shelf_life).
create or replace function inventory.shortfall(item_id bigint, location_id bigint, sku text, location text,
                                    requested numeric, sellable_until date default null)
returns jsonb
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
           'sku', shortfall.sku, 'location', shortfall.location, 'requested', shortfall.requested,
           'available', coalesce(case when s.track_lots then b.available else s.available + o.overdue + o.parked end, 0),
           'on_hand', coalesce(s.on_hand, 0), 'reserved', coalesce(s.reserved - o.parked, 0))
         || case when s.track_lots then pg_catalog.jsonb_build_object('blocked', b.blocked) else '{}'::jsonb end
    from (select) dummy
    left join inventory.stock_levels s
      on s.item_id = shortfall.item_id and s.location_id = shortfall.location_id
    left join lateral (select inventory.overdue_quantity(s.item_id, s.location_id) as overdue,
                              case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id)
                                   else 0 end as parked) o on true
    left join lateral (
          select coalesce(pg_catalog.sum(a.units) filter (where a.reason is null), 0) as available,
                 coalesce(pg_catalog.jsonb_object_agg(a.reason, a.units) filter (where a.reason is not null and a.units > 0),
                          '{}'::jsonb) as blocked
            from inventory.lot_availability(s.item_id, s.location_id, shortfall.sellable_until) a
           where s.track_lots) b on true
$$;

comment on function inventory.shortfall(bigint, bigint, text, text, numeric, date) is 'JSON specifics of a line that does not fit: requested, available (overdue holds counted as released), on hand, reserved, and for lot-tracked items the units blocked by lot state (expired, qc_pending, qc_failed, quarantined, short_shelf_life).';

create or replace function inventory.receive_stock(sku text, quantity numeric, location text, reference text,
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
  v_parked numeric := 0;
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

  if v_level.hot_buckets > 1 then  -- free units parked in hot buckets are available, not held
    v_parked := inventory.parked_units(v_item.item_id, v_level.location_id);
  end if;
  v_result := row(receive_stock.sku, receive_stock.location, v_level.on_hand, v_level.reserved - v_parked,
                  v_level.available + v_parked, v_level.version, v_level.updated_at)::inventory_api.stock_level;
  if receive_stock.idempotency_key is not null then
    perform inventory.complete_idempotency_key(receive_stock.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.receive_stock(text, numeric, text, text, numeric, text, text, date, text) is 'Implements inventory_api.receive_stock.';

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
  v_lots := inventory.lock_levels(array(select m.item_id from pg_catalog.unnest(apply_hold_moves.moves) m),
                                  array(select m.location_id from pg_catalog.unnest(apply_hold_moves.moves) m));
  perform inventory.unpark_holds(array(select m.reservation_id from pg_catalog.unnest(apply_hold_moves.moves) m
                                        where m.quantity > 0));

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

-- Locks the active holds of an order (optionally of one item), after their stock levels (the global
-- lock order), checks that the caller may act at their locations, and describes them as moves of
-- their whole open quantity: EXPIRE for overdue holds, movement_type null for live ones. Raises
-- NO_RESERVATION when there are none.
create or replace function inventory.lock_order_holds(order_ref text, item_id bigint, sku text)
returns inventory.hold_move[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_moves inventory.hold_move[];
begin
  -- Which levels (a hold never changes level), and may the caller act there; then lock them.
  perform inventory.authorize_locations('operator', array(
    select distinct r.location_id from inventory.reservations r
     where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
       and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id)));
  perform inventory.lock_levels(pg_catalog.array_agg(r.item_id), pg_catalog.array_agg(r.location_id))
     from inventory.reservations r
    where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
      and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id);
  select pg_catalog.array_agg(row(h.reservation_id, h.item_id, h.location_id,
                                  case when h.expires_at <= pg_catalog.now() then 'EXPIRE' end,
                                  h.quantity - h.quantity_fulfilled)::inventory.hold_move
                              order by h.reservation_id)
    into v_moves
    from (select r.reservation_id, r.item_id, r.location_id, r.expires_at, r.quantity, r.quantity_fulfilled
            from inventory.reservations r
           where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
             and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id)
           order by r.reservation_id
             for update) h;
  -- Holds made after the check above, at other locations, are authorised too.
  perform inventory.authorize_locations('operator', array(select m.location_id from pg_catalog.unnest(v_moves) m));
  if v_moves is null then
    perform inventory.raise_error('NO_RESERVATION',
      pg_catalog.format('order %s has no active reservation%s', lock_order_holds.order_ref,
                        coalesce(' for ' || lock_order_holds.sku, '')),
      pg_catalog.jsonb_build_object('order_ref', lock_order_holds.order_ref, 'sku', lock_order_holds.sku));
  end if;
  return v_moves;
end
$$;

comment on function inventory.lock_order_holds(text, bigint, text) is 'Locks the stock levels of an order''s active holds, then the holds; authorises their locations and returns them as moves (EXPIRE for overdue ones); raises NO_RESERVATION when none.';

create or replace function inventory.expire_reservations(batch_size integer) returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_expired integer;
  v_items bigint[];
  v_locations bigint[];
begin
  perform inventory.authorize('scheduler');
  if expire_reservations.batch_size is null or expire_reservations.batch_size not between 1 and 100000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'batch_size must be between 1 and 100000',
      pg_catalog.jsonb_build_object('argument', 'batch_size', 'problem', 'out of range'));
  end if;
  -- A batch takes overdue holds level by level: the levels of the oldest overdue holds first, each
  -- with all its overdue holds in expiry order. So a batch locks, updates and writes a ledger row
  -- for a few stock levels, not one per hold, and few reservations wait on it. Levels are claimed
  -- with SKIP LOCKED, so concurrent sweepers share the work level by level instead of queueing on
  -- the same rows. This pass never waits for a lock; when it expires nothing, a rolled-back
  -- subtransaction releases what it claimed before the fallback below waits for levels in key order.
  begin
    select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id)) into v_expired
      from (select h.reservation_id
              from (select o.item_id, o.location_id, pg_catalog.min(o.expires_at) as first_due
                      from (select r.item_id, r.location_id, r.expires_at from inventory.reservations r
                             where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
                             order by r.expires_at
                             limit expire_reservations.batch_size) o
                     group by o.item_id, o.location_id
                     order by first_due, o.item_id, o.location_id) l
             cross join lateral (
                   select s.item_id, s.location_id from inventory.stock_levels s
                    where s.item_id = l.item_id and s.location_id = l.location_id
                      and s.hot_buckets = 1  -- a hot level's buckets must be locked in key order: below
                      for update of s skip locked) lv
             cross join lateral (
                   select r.reservation_id from inventory.reservations r
                    where r.item_id = lv.item_id and r.location_id = lv.location_id and r.status = 'ACTIVE'
                      and r.expires_at <= pg_catalog.now()
                    order by r.expires_at
                    limit expire_reservations.batch_size
                      for update of r skip locked) h
             limit expire_reservations.batch_size) d;
    if v_expired = 0 then
      raise sqlstate 'P0002';
    end if;
  exception when no_data_found then
    v_expired := 0;
  end;
  if v_expired = 0 then
    -- Nothing is overdue, or every level with overdue holds was locked just now (by reservations or
    -- other sweepers): wait for the levels of the oldest overdue holds (in key order, like every
    -- level), then take their holds, so that 0 keeps meaning that nothing is overdue (apart from
    -- holds other sweepers are expiring).
    select pg_catalog.array_agg(o.item_id), pg_catalog.array_agg(o.location_id) into v_items, v_locations
      from (select distinct r.item_id, r.location_id
              from (select h.item_id, h.location_id from inventory.reservations h
                     where h.status = 'ACTIVE' and h.expires_at <= pg_catalog.now()
                     order by h.expires_at
                     limit expire_reservations.batch_size) r) o;
    perform inventory.lock_levels(v_items, v_locations);
    select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id)) into v_expired
      from (select r.reservation_id from inventory.reservations r
             where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
               and (r.item_id, r.location_id) in (
                     select l.item_id, l.location_id
                       from rows from (pg_catalog.unnest(v_items), pg_catalog.unnest(v_locations)) as l (item_id, location_id))
             order by r.expires_at
             limit expire_reservations.batch_size
               for update skip locked) d;
  end if;
  return v_expired;
end
$$;

comment on function inventory.expire_reservations(integer) is 'Implements inventory_api.expire_reservations.';

-- Takes `quantity` more units of one level into holds, if they fit. First the conditional UPDATE
-- of the level row (not for a hot level: its row is then left unlocked), else a hot bucket nobody
-- holds (SKIP LOCKED); else, under the level's lock, overdue holds are expired and every free unit,
-- the row's and the buckets', is pooled (rebalance_level) before the answer: so a hold is refused
-- only when the level as a whole is short at that moment. Returns whether the units were held.
create or replace function inventory.hold_units(item_id bigint, location_id bigint, quantity numeric,
                                     movement inventory.movement)
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  v_bucket smallint;
  v_wait boolean;
begin
  update inventory.stock_levels s
     set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
   where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
     and s.on_hand - s.reserved >= hold_units.quantity and s.hot_buckets = 1;
  if found then
    return true;
  end if;
  if exists (select from inventory.stock_levels s
              where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id and s.hot_buckets > 1) then
    -- Each attempt in a subtransaction: SKIP LOCKED may leave a bucket locked that it then found
    -- empty (its re-check failed), and waiting for another bucket or the level while holding it
    -- would deadlock with a rebalance of the level. Rolling the attempt back releases it.
    foreach v_wait in array array[false, true] loop
      begin
        if inventory.take_from_bucket(hold_units.item_id, hold_units.location_id, hold_units.quantity,
                                      hold_units.movement, wait => v_wait) is not null then
          return true;
        end if;
        raise sqlstate 'P0002';
      exception when no_data_found then
        null;
      end;
    end loop;
    -- Sold out is answered from this plain read, without locking the level (as reserve_stock does
    -- for a level that is not hot): the level's own free units, its buckets' and overdue holds'.
    if coalesce(inventory.effective_available(hold_units.item_id, hold_units.location_id), 0) < hold_units.quantity then
      return false;
    end if;
  end if;
  perform inventory.expire_overdue_at_level(hold_units.item_id, hold_units.location_id);
  v_bucket := inventory.rebalance_level(hold_units.item_id, hold_units.location_id, hold_units.quantity, false);
  if v_bucket is null then
    return false;
  elsif v_bucket > 0 then
    return inventory.take_from_bucket(hold_units.item_id, hold_units.location_id, hold_units.quantity,
                                      hold_units.movement, v_bucket) is not null;
  end if;
  update inventory.stock_levels s
     set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
   where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
     and s.on_hand - s.reserved >= hold_units.quantity;
  return found;
end
$$;

comment on function inventory.hold_units(bigint, bigint, numeric, inventory.movement) is 'Conditionally holds units at one level: its row, else a free hot bucket, else under its lock after expiring overdue holds and pooling every free unit; true when they fit.';

create or replace function inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text,
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
  select i.item_id, i.status, i.track_lots, l.location_id, s.available, s.hot_buckets, t.default_reservation_ttl
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
  -- (A hot level's row counts its buckets' free units as reserved: hold_units answers for it.)
  if coalesce(v_found.available, 0) < reserve_stock.quantity and coalesce(v_found.hot_buckets, 1) = 1
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

-- Applies a delta to on_hand of one level through the ledger (an ADJUST movement described by
-- `movement`); returns the level after it (its last_movement_id is the movement's). Raises
-- INSUFFICIENT_STOCK when on_hand would fall below reserved (or below 0). The level is created empty
-- when missing and the delta is positive. Overdue holds standing in the way are expired first. For a
-- lot-tracked item the delta applies to the lot named (lot_id), whose free units bound a removal.
create or replace function inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric,
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
    if apply_on_hand_delta.delta < 0 then
      -- Units parked in hot buckets are free: back on the level row before it is checked.
      perform inventory.lock_levels(array[apply_on_hand_delta.item_id], array[apply_on_hand_delta.location_id],
                                    gather => true);
    end if;
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

create or replace function inventory.record_count(sku text, counted_quantity numeric, location text, lot_number text)
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
  perform inventory.lock_levels(array[v_item.item_id], array[v_location_id], gather => true);
  select * into v_level from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id;
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

create or replace function inventory.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
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
  perform inventory.lock_levels(array[v_item.item_id, v_item.item_id], array[v_from_id, v_to_id], gather => true);
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

-- Re-evaluates the alerts of the given levels (all levels with a policy when item_ids is null) in one
-- pass; the caller holds the levels' row locks. Set-based: used by bulk policy imports and
-- check_reorder_points. Returns (levels checked, opened, escalated, resolved).
create or replace function inventory.refresh_reorder_alerts(item_ids bigint[], location_ids bigint[])
returns inventory_api.reorder_check
language plpgsql volatile
set search_path = ''
as $$
declare
  v_result inventory_api.reorder_check;
begin
  -- One statement: its parts touch disjoint alerts (a level is either recovered, or low), so they
  -- may share one snapshot.
  with levels as materialized (
    select s.item_id, s.location_id, s.available,
           case when s.available <= p.safety_stock then 'CRITICAL'
                when s.available <= p.reorder_point then 'REORDER' end as severity,
           p.reorder_point, p.safety_stock
      from inventory.stock_policies p
      join (select x.item_id, x.location_id,
                   x.on_hand - x.reserved
                   + case when x.hot_buckets > 1 then inventory.parked_units(x.item_id, x.location_id) else 0 end
                     as available
              from inventory.stock_levels x) s on s.item_id = p.item_id and s.location_id = p.location_id
     where refresh_reorder_alerts.item_ids is null
        or (p.item_id, p.location_id) in (
             select k.item_id, k.location_id
               from rows from (pg_catalog.unnest(refresh_reorder_alerts.item_ids),
                               pg_catalog.unnest(refresh_reorder_alerts.location_ids)) as k (item_id, location_id))
  ), resolved as (
    update inventory.reorder_alerts a
       set recovered_at = pg_catalog.now(),
           status = case when a.status in ('OPEN', 'ACKNOWLEDGED') then 'RESOLVED' else a.status end,
           closed_at = coalesce(a.closed_at, pg_catalog.now()),
           closed_by = coalesce(a.closed_by, inventory.current_actor()),
           note = coalesce(a.note, 'stock recovered')
      from levels r
     where a.item_id = r.item_id and a.location_id = r.location_id and a.recovered_at is null
       and r.severity is null
    returning a.alert_id
  ), escalated as (
    update inventory.reorder_alerts a set severity = 'CRITICAL', escalated_at = pg_catalog.now()
      from levels r
     where a.item_id = r.item_id and a.location_id = r.location_id and a.recovered_at is null
       and a.status in ('OPEN', 'ACKNOWLEDGED') and a.severity = 'REORDER' and r.severity = 'CRITICAL'
    returning a.alert_id
  ), opened as (
    insert into inventory.reorder_alerts (item_id, location_id, severity, available_at_open, reorder_point,
                                          safety_stock)
    select r.item_id, r.location_id, r.severity, r.available, r.reorder_point, r.safety_stock
      from levels r
     where r.severity is not null
       and not exists (select from inventory.reorder_alerts a
                        where a.item_id = r.item_id and a.location_id = r.location_id and a.recovered_at is null)
    on conflict do nothing
    returning alert_id
  )
  select (select pg_catalog.count(*) from levels)::integer, (select pg_catalog.count(*) from opened)::integer,
         (select pg_catalog.count(*) from escalated)::integer, (select pg_catalog.count(*) from resolved)::integer
    into v_result.levels_checked, v_result.opened, v_result.escalated, v_result.resolved;
  if v_result.opened > 0 or v_result.escalated > 0 then
    perform inventory.notify_alert('refreshed', null);
  end if;
  return v_result;
end
$$;

comment on function inventory.refresh_reorder_alerts(bigint[], bigint[]) is 'Set-based re-evaluation of the reorder alerts of many levels (caller holds their locks).';

create or replace function inventory.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric,
                                           reorder_quantity numeric, max_stock_level numeric,
                                           lead_time_days integer, expected_version integer)
returns inventory_api.stock_policy
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
  v_version integer;
begin
  v_item := inventory.item_for_sku(set_stock_policy.sku);
  v_location_id := inventory.location_for_code(set_stock_policy.location);
  perform inventory.authorize('admin', v_location_id);
  if set_stock_policy.reorder_point is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'reorder_point is required',
      pg_catalog.jsonb_build_object('argument', 'reorder_point', 'value', null));
  end if;
  perform inventory.check_level_quantity(set_stock_policy.reorder_point, 'reorder_point');
  if set_stock_policy.safety_stock is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'safety_stock is required',
      pg_catalog.jsonb_build_object('argument', 'safety_stock', 'value', null));
  end if;
  perform inventory.check_level_quantity(set_stock_policy.safety_stock, 'safety_stock');
  if set_stock_policy.safety_stock > set_stock_policy.reorder_point then
    perform inventory.raise_error('INVALID_ARGUMENT', 'safety_stock must not exceed reorder_point',
      pg_catalog.jsonb_build_object('argument', 'safety_stock', 'problem', 'above reorder_point'));
  end if;
  if set_stock_policy.reorder_quantity is not null then
    perform inventory.check_quantity(set_stock_policy.reorder_quantity, 'reorder_quantity');
  end if;
  if set_stock_policy.max_stock_level is not null then
    perform inventory.check_quantity(set_stock_policy.max_stock_level, 'max_stock_level');
    if set_stock_policy.max_stock_level < set_stock_policy.reorder_point then
      perform inventory.raise_error('INVALID_ARGUMENT', 'max_stock_level must not be below reorder_point',
        pg_catalog.jsonb_build_object('argument', 'max_stock_level', 'problem', 'below reorder_point'));
    end if;
  end if;
  if set_stock_policy.lead_time_days is not null and set_stock_policy.lead_time_days not between 0 and 3650 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'lead_time_days must be between 0 and 3650',
      pg_catalog.jsonb_build_object('argument', 'lead_time_days', 'problem', 'out of range'));
  end if;

  -- The level first (global lock order), then the policy, then its alert.
  insert into inventory.stock_levels (item_id, location_id, has_stock_policy)
  values (v_item.item_id, v_location_id, true)
  on conflict do nothing;
  select * into v_level from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id
     for update;
  if set_stock_policy.expected_version is not null then
    -- A level's policy is changed only under the level's lock, so the version read here stays.
    select p.version into v_version from inventory.stock_policies p
     where p.item_id = v_item.item_id and p.location_id = v_location_id;
    perform inventory.check_version(coalesce(v_version, 0), set_stock_policy.expected_version,
      pg_catalog.jsonb_build_object('sku', set_stock_policy.sku, 'location', set_stock_policy.location));
  end if;
  insert into inventory.stock_policies as p (item_id, location_id, reorder_point, safety_stock, reorder_quantity,
                                             max_stock_level, lead_time_days, updated_by)
  values (v_item.item_id, v_location_id, set_stock_policy.reorder_point, set_stock_policy.safety_stock,
          set_stock_policy.reorder_quantity, set_stock_policy.max_stock_level, set_stock_policy.lead_time_days,
          inventory.current_actor())
  on conflict (item_id, location_id) do update
     set reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock,
         reorder_quantity = excluded.reorder_quantity, max_stock_level = excluded.max_stock_level,
         lead_time_days = excluded.lead_time_days, updated_by = excluded.updated_by, updated_at = pg_catalog.now()
   where (p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level, p.lead_time_days)
         is distinct from (excluded.reorder_point, excluded.safety_stock, excluded.reorder_quantity,
                           excluded.max_stock_level, excluded.lead_time_days);
  if not v_level.has_stock_policy then
    update inventory.stock_levels s set has_stock_policy = true
     where s.item_id = v_item.item_id and s.location_id = v_location_id;
  end if;
  perform inventory.evaluate_reorder_alert(v_item.item_id, v_location_id,
    v_level.on_hand - v_level.reserved
    + case when v_level.hot_buckets > 1 then inventory.parked_units(v_item.item_id, v_location_id) else 0 end);
  return inventory.stock_policy_result(v_item.item_id, v_location_id);
end
$$;

comment on function inventory.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer, integer) is 'Implements inventory_api.set_stock_policy.';

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
      from inventory.ledger g where g.bucket is null group by g.item_id, g.location_id
  ), holds as (
    -- The level row's reserved: its own holds and the units parked in its hot buckets.
    select h.item_id, h.location_id, pg_catalog.sum(h.units) as reserved
      from (select r.item_id, r.location_id, r.quantity - r.quantity_fulfilled as units
              from inventory.reservations r where r.status = 'ACTIVE' and r.bucket is null
            union all
            select b.item_id, b.location_id, b.parked from inventory.hot_buckets b) h
     group by h.item_id, h.location_id
  ), buckets as (
    select b.item_id, b.location_id, b.bucket, b.parked, b.held, b.ledger_hash, i.sku, l.code as location,
           s.hot_buckets,
           (select pg_catalog.sum(r.quantity - r.quantity_fulfilled) from inventory.reservations r
             where r.item_id = b.item_id and r.location_id = b.location_id and r.bucket = b.bucket
               and r.status = 'ACTIVE') as holds,
           (select coalesce(pg_catalog.sum(g.on_hand_delta), 0) from inventory.ledger g
             where g.item_id = b.item_id and g.location_id = b.location_id and g.bucket = b.bucket) as ledger_parked,
           (select coalesce(pg_catalog.sum(g.reserved_delta), 0) from inventory.ledger g
             where g.item_id = b.item_id and g.location_id = b.location_id and g.bucket = b.bucket) as ledger_held
      from inventory.hot_buckets b
      join inventory.stock_levels s on s.item_id = b.item_id and s.location_id = b.location_id
      join inventory.items i on i.item_id = b.item_id
      join inventory.locations l on l.location_id = b.location_id
  ), chain as (
    select g.item_id, g.location_id, g.bucket, g.movement_id, g.on_hand_before, g.reserved_before, g.prev_hash, g.hash,
           pg_catalog.lag(g.on_hand_after, 1, 0::numeric) over w as prev_on_hand,
           pg_catalog.lag(g.reserved_after, 1, 0::numeric) over w as prev_reserved,
           pg_catalog.lag(g.hash) over w as prev_link,
           pg_catalog.sha256(coalesce(g.prev_hash, ''::bytea) || inventory.ledger_entry_bytes(g)) as recomputed,
           pg_catalog.row_number() over (partition by g.item_id, g.location_id, g.bucket order by g.movement_id desc)
             as from_end
      from inventory.ledger g
    window w as (partition by g.item_id, g.location_id, g.bucket order by g.movement_id)
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
         'reserved differs from the open quantity of active holds (and the units parked in hot buckets)'
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
    left join chain c on c.item_id = v.item_id and c.location_id = v.location_id and c.bucket is null
                     and c.from_end = 1
   where v.ledger_hash is distinct from c.hash
  union all
  select 'bucket_equals_ledger', b.sku, b.location, null, null,
         pg_catalog.format('hot bucket %s: parked / held (%s / %s) differ from the sums of its ledger movements (%s / %s)',
                           b.bucket, b.parked, b.held, b.ledger_parked, b.ledger_held)
    from buckets b
   where b.parked <> b.ledger_parked or b.held <> b.ledger_held
  union all
  select 'bucket_held_equals_holds', b.sku, b.location, coalesce(b.holds, 0), b.held,
         pg_catalog.format('hot bucket %s: held differs from the open quantity of the active holds in it', b.bucket)
    from buckets b
   where b.held <> coalesce(b.holds, 0)
  union all
  select 'bucket_hash_head', b.sku, b.location, null, null,
         pg_catalog.format('hot bucket %s: ledger_hash is not the hash of its latest movement', b.bucket)
    from buckets b
    left join chain c on c.item_id = b.item_id and c.location_id = b.location_id and c.bucket = b.bucket
                     and c.from_end = 1
   where b.ledger_hash is distinct from c.hash
  union all
  select 'cold_level_parks_nothing', b.sku, b.location, 0, b.parked - b.held,
         pg_catalog.format('hot bucket %s keeps free units although the level is not hot', b.bucket)
    from buckets b
   where b.hot_buckets = 1 and b.parked > b.held
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

-- Per-location digests of the ledger chain heads at a cut: for each level with movements at or
-- below the cut, its latest such movement's id and hash.
create or replace function inventory.ledger_digests(through_movement bigint)
returns table (location text, levels bigint, digest text)
language sql stable
set search_path = ''
as $$
  select l.code, pg_catalog.count(*),
         pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.string_agg(
           h.item_id::text || ':' || h.movement_id::text || ':' || pg_catalog.encode(h.hash, 'hex'), ','
           order by h.item_id), 'UTF8')), 'hex')
    from inventory.stock_levels s
    join inventory.locations l on l.location_id = s.location_id
    cross join lateral (
          select g.item_id, g.movement_id, g.hash from inventory.ledger g
           where g.item_id = s.item_id and g.location_id = s.location_id and g.bucket is null
             and g.movement_id <= ledger_digests.through_movement
           order by g.movement_id desc
           limit 1) h
   group by l.code
$$;

comment on function inventory.ledger_digests(bigint) is 'sha256 per location over the ledger chain heads of its levels at a movement id cut.';

-- The level after the last movement (by movement id, the order of the level's hash chain) whose
-- transaction time is at or before `at`: what the level was at that moment.
create or replace function inventory.stock_as_of(sku text, location text, at timestamptz)
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
  -- The level row's latest movement; less the units its hot buckets kept free then (counted in its
  -- reserved): each bucket's latest movement says how many.
  select g.on_hand_after, g.reserved_after - coalesce((
           select pg_catalog.sum(f.on_hand_after - f.reserved_after)
             from inventory.hot_buckets b
             cross join lateral (select x.on_hand_after, x.reserved_after from inventory.ledger x
                                  where x.item_id = b.item_id and x.location_id = b.location_id
                                    and x.bucket = b.bucket and x.created_at <= stock_as_of.at
                                  order by x.movement_id desc limit 1) f
            where b.item_id = v_item.item_id and b.location_id = v_location_id), 0) as reserved_after,
         g.movement_id, g.created_at into v_entry
    from inventory.ledger g
   where g.item_id = v_item.item_id and g.location_id = v_location_id and g.created_at <= stock_as_of.at
     and g.bucket is null
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

create or replace function inventory.movement_event_type(movement_type inventory.movement_type) returns text
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

-- reserve_stock's checks for one request, in reserve_stock's order, raising its errors; returns what
-- the rest of the call needs.
create function inventory.reserve_many_check(sku text, quantity numeric, order_ref text, location text,
                                             expires_in interval, idempotency_key text,
                                             out item_id bigint, out status text, out track_lots boolean,
                                             out location_id bigint, out expires_at timestamptz)
language plpgsql volatile
set search_path = ''
as $$
declare
  v_found record;
begin
  select i.item_id, i.status, i.track_lots, l.location_id, t.default_reservation_ttl
    into v_found
    from inventory.settings t
    left join inventory.items i on i.sku = reserve_many_check.sku and i.deleted_at is null
    left join inventory.locations l on l.code = reserve_many_check.location;
  if v_found.item_id is null then
    perform inventory.item_for_sku(reserve_many_check.sku);
  end if;
  if not inventory.quantity_is_valid(reserve_many_check.quantity) then
    perform inventory.check_quantity(reserve_many_check.quantity);
  end if;
  if not inventory.text_is_valid(reserve_many_check.order_ref, 200) then
    perform inventory.check_text(reserve_many_check.order_ref, 'order_ref', 200);
  end if;
  if v_found.location_id is null then
    perform inventory.location_for_code(reserve_many_check.location);
  end if;
  if not inventory.is_allowed('operator', v_found.location_id) then
    perform inventory.authorize('operator', v_found.location_id);
  end if;
  if v_found.track_lots then
    perform inventory.sellable_until(null);
  end if;
  reserve_many_check.expires_at := case when reserve_many_check.expires_in is null
                                        then pg_catalog.now() + v_found.default_reservation_ttl
                                        else inventory.hold_expiry(reserve_many_check.expires_in) end;
  if reserve_many_check.idempotency_key is not null then
    perform inventory.check_text(reserve_many_check.idempotency_key, 'idempotency_key', 200);
  end if;
  reserve_many_check.item_id := v_found.item_id;
  reserve_many_check.status := v_found.status;
  reserve_many_check.track_lots := v_found.track_lots;
  reserve_many_check.location_id := v_found.location_id;
end
$$;

comment on function inventory.reserve_many_check(text, numeric, text, text, interval, text) is 'reserve_stock''s validation and authorisation of one reserve_many request, raising reserve_stock''s errors in its order.';

-- An error outcome, as raise_error would raise it (SQLSTATE from the catalogue, the code as HINT).
create function inventory.reserve_many_error(line inventory.reserve_many_line, code text, message text, detail jsonb)
returns inventory_api.reserve_many_result
language sql stable
set search_path = ''
as $$
  select row((reserve_many_error.line).ordinal, (reserve_many_error.line).order_ref, (reserve_many_error.line).sku,
             (reserve_many_error.line).location, null, (reserve_many_error.line).quantity, null, false,
             e.sqlstate, reserve_many_error.code, reserve_many_error.message,
             coalesce(reserve_many_error.detail, '{}'::jsonb), null)::inventory_api.reserve_many_result
    from inventory.error_codes e where e.code = reserve_many_error.code
$$;

comment on function inventory.reserve_many_error(inventory.reserve_many_line, text, text, jsonb) is 'The reserve_many outcome of a request that fails with a catalogued error.';

-- A successful outcome from a reservation (new or replayed).
create function inventory.reserve_many_ok(ordinal integer, reservation jsonb)
returns inventory_api.reserve_many_result
language sql immutable
set search_path = ''
as $$
  select row(reserve_many_ok.ordinal, r.order_ref, r.sku, r.location, r.reservation_id, r.quantity, r.expires_at,
             true, null, null, null, null, reserve_many_ok.reservation)::inventory_api.reserve_many_result
    from pg_catalog.jsonb_populate_record(null::inventory_api.reservation, reserve_many_ok.reservation) r
$$;

comment on function inventory.reserve_many_ok(integer, jsonb) is 'The reserve_many outcome of a request that holds stock (or replays a hold).';

create function inventory.reserve_many(requests jsonb)
returns setof inventory_api.reserve_many_result
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_request jsonb;
  v_n integer;
  v_line inventory.reserve_many_line;
  v_lines inventory.reserve_many_line[] := '{}'::inventory.reserve_many_line[];
  v_results inventory_api.reserve_many_result[] := '{}'::inventory_api.reserve_many_result[];
  v_rids bigint[] := '{}'::bigint[];
  v_checked record;
  v_sqlstate text;
  v_message text;
  v_detail text;
  v_hint text;
  v_actor text := inventory.current_actor();
  v_keys text[];
  v_new_keys text[];
  v_stored jsonb;
  v_owner jsonb := '{}'::jsonb;
  v_settled boolean := false;
  v_key jsonb;
  v_lv_item bigint[];
  v_lv_location bigint[];
  v_lv_on_hand numeric[];
  v_lv_reserved numeric[];
  v_lv_overdue numeric[];
  v_lv_expire boolean[];
  v_k integer;
  v_raw numeric;
  v_reservation inventory_api.reservation;
  v_levels integer;
  v_updated integer;
  v_passed inventory.reserve_many_line[];
begin
  -- A caller who may reserve nowhere is refused as a whole (nothing about the requests is revealed).
  if not (inventory.is_allowed('operator') or inventory.holds_role_somewhere('operator')) then
    perform inventory.authorize('operator');
  end if;
  if reserve_many.requests is null or pg_catalog.jsonb_typeof(reserve_many.requests) <> 'array'
     or pg_catalog.jsonb_array_length(reserve_many.requests) not between 1 and 10000 then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'requests must be a JSON array of 1 to 10000 objects {"order_ref", "sku", "quantity", "location"?, "expires_in"?, "idempotency_key"?}',
      pg_catalog.jsonb_build_object('argument', 'requests', 'problem', 'not an array of 1 to 10000 requests'));
  end if;
  v_count := pg_catalog.jsonb_array_length(reserve_many.requests);

  -- 1a. The common case in one query, with no subtransaction per request: the requests that pass
  -- every check reserve_stock makes (well-formed, a live SKU, a location, a valid quantity and
  -- order_ref, the default lifetime, a valid key, not lot-tracked, the caller an operator there).
  -- Their outcome of step 1b could only be "checked"; every other request takes step 1b.
  with request as (
    select e.n::integer as n, e.r, coalesce(e.r -> 'location', '"main"') #>> '{}' as location
      from pg_catalog.jsonb_array_elements(reserve_many.requests) with ordinality as e (r, n)
     where pg_catalog.jsonb_typeof(e.r) = 'object'
       and pg_catalog.jsonb_typeof(e.r -> 'quantity') = 'number'
       and pg_catalog.jsonb_typeof(e.r -> 'order_ref') = 'string'
       and pg_catalog.jsonb_typeof(e.r -> 'sku') = 'string'
       and coalesce(pg_catalog.jsonb_typeof(e.r -> 'location'), 'string') = 'string'
       and coalesce(pg_catalog.jsonb_typeof(e.r -> 'expires_in'), 'null') = 'null'
       and coalesce(pg_catalog.jsonb_typeof(e.r -> 'idempotency_key'), 'null') in ('null', 'string')
       and not exists (select from pg_catalog.jsonb_object_keys(e.r) k
                        where k not in ('order_ref', 'sku', 'quantity', 'location', 'expires_in', 'idempotency_key'))
  ), place as materialized (  -- authorised once per location, not per request
    select l.location_id, l.code, inventory.is_allowed('operator', l.location_id) as allowed
      from inventory.locations l where l.code in (select r.location from request r)
  )
  select pg_catalog.array_agg(row(r.n, r.r ->> 'order_ref', r.r ->> 'sku', r.location, (r.r ->> 'quantity')::numeric,
                                  null, r.r ->> 'idempotency_key', i.item_id, p.location_id, i.status, i.track_lots,
                                  pg_catalog.now() + t.default_reservation_ttl,
                                  case when r.r ->> 'idempotency_key' is not null then inventory.hold_request(
                                    pg_catalog.jsonb_build_object('sku', r.r ->> 'sku',
                                      'quantity', (r.r ->> 'quantity')::numeric, 'order_ref', r.r ->> 'order_ref',
                                      'location', r.location, 'expires_in', inventory.interval_key(null)),
                                    'order', null) end,
                                  null)::inventory.reserve_many_line order by r.n)
    into v_passed
    from request r
    cross join inventory.settings t
    -- lateral: one index probe per request (a hash join read the whole catalogue)
    cross join lateral (select x.item_id, x.status, x.track_lots from inventory.items x
                         where x.sku = r.r ->> 'sku' and x.deleted_at is null and not x.track_lots) i
    join place p on p.code = r.location and p.allowed
   where inventory.quantity_is_valid((r.r ->> 'quantity')::numeric)
     and inventory.text_is_valid(r.r ->> 'order_ref', 200)
     and (r.r ->> 'idempotency_key' is null or inventory.text_is_valid(r.r ->> 'idempotency_key', 200));
  v_k := 1;
  if pg_catalog.cardinality(v_passed) = v_count then  -- all of them (no per-request loop at all)
    v_lines := v_passed;
    v_results := pg_catalog.array_fill(null::inventory_api.reserve_many_result, array[v_count]);
    v_rids := pg_catalog.array_fill(null::bigint, array[v_count]);
  end if;

  -- 1b. Each other request parsed and checked on its own, as reserve_stock would check it.
  for v_request, v_n in
    select e.r, e.n::integer from pg_catalog.jsonb_array_elements(reserve_many.requests) with ordinality as e (r, n)
     where pg_catalog.cardinality(v_passed) is distinct from v_count
     order by e.n
  loop
    v_rids := v_rids || null::bigint;
    if (v_passed[v_k]).ordinal = v_n then
      v_lines := v_lines || v_passed[v_k];
      v_results := v_results || null::inventory_api.reserve_many_result;
      v_k := v_k + 1;
      continue;
    end if;
    v_line := null;
    v_line.ordinal := v_n;
    begin
      if pg_catalog.jsonb_typeof(v_request) = 'object' then
        v_line.order_ref := v_request ->> 'order_ref';
        v_line.sku := v_request ->> 'sku';
        v_line.location := coalesce(v_request -> 'location', '"main"') #>> '{}';
        if pg_catalog.jsonb_typeof(v_request -> 'quantity') = 'number' then
          v_line.quantity := (v_request ->> 'quantity')::numeric;
        end if;
      end if;
      if (case when pg_catalog.jsonb_typeof(v_request) is distinct from 'object' then true
              else exists (select from pg_catalog.jsonb_each(v_request) f
                            where f.key not in ('order_ref', 'sku', 'quantity', 'location', 'expires_in', 'idempotency_key')
                               or pg_catalog.jsonb_typeof(f.value)
                                    not in (case when f.key = 'quantity' then 'number' else 'string' end, 'null'))
          end) then
        perform inventory.raise_error('INVALID_ARGUMENT',
          pg_catalog.format('requests[%s] must be an object with string "order_ref", "sku", optional "location", "expires_in", "idempotency_key" and a number "quantity"',
                            v_n - 1),
          pg_catalog.jsonb_build_object('argument', pg_catalog.format('requests[%s]', v_n - 1), 'problem', 'malformed'));
      end if;
      v_line.idempotency_key := v_request ->> 'idempotency_key';
      begin
        v_line.expires_in := (v_request ->> 'expires_in')::interval;
      exception when invalid_datetime_format or datetime_field_overflow or interval_field_overflow then
        perform inventory.raise_error('INVALID_ARGUMENT',
          pg_catalog.format('requests[%s].expires_in must be an interval, e.g. "2 hours"', v_n - 1),
          pg_catalog.jsonb_build_object('argument', pg_catalog.format('requests[%s].expires_in', v_n - 1),
                                        'problem', 'not an interval', 'value', v_request ->> 'expires_in'));
      end;
      select * into v_checked
        from inventory.reserve_many_check(v_line.sku, v_line.quantity, v_line.order_ref, v_line.location,
                                          v_line.expires_in, v_line.idempotency_key);
      v_line.item_id := v_checked.item_id;
      v_line.location_id := v_checked.location_id;
      v_line.status := v_checked.status;
      v_line.track_lots := v_checked.track_lots;
      v_line.expires_at := v_checked.expires_at;
      if v_line.idempotency_key is not null then
        v_line.key_request := inventory.hold_request(
          pg_catalog.jsonb_build_object('sku', v_line.sku, 'quantity', v_line.quantity, 'order_ref', v_line.order_ref,
                                        'location', v_line.location, 'expires_in', inventory.interval_key(v_line.expires_in)),
          'order', null);
      end if;
      v_results := v_results || null::inventory_api.reserve_many_result;
    exception when others then
      get stacked diagnostics v_sqlstate = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail,
                              v_hint = pg_exception_hint;
      if not exists (select from inventory.error_codes e where e.code = v_hint and e.sqlstate = v_sqlstate) then
        raise;
      end if;
      v_results := v_results || row(v_n, v_line.order_ref, v_line.sku, v_line.location, null, v_line.quantity, null,
                                     false, v_sqlstate, v_hint, v_message, nullif(v_detail, '')::jsonb, null
                                    )::inventory_api.reserve_many_result;
      v_line.item_id := null;
    end;
    v_lines := v_lines || v_line;
  end loop;

  -- 2. Idempotency keys, before any level (reserve_stock's order), claimed in key order.
  select pg_catalog.array_agg(distinct l.idempotency_key order by l.idempotency_key) into v_keys
    from pg_catalog.unnest(v_lines) l where l.item_id is not null and l.idempotency_key is not null;
  if v_keys is not null then
    with claimed as (
      insert into inventory.idempotency_keys as k (idempotency_key, operation, request, response, actor)
      select c.key, 'reserve_stock', c.request, null, v_actor
        from (select distinct on (l.idempotency_key) l.idempotency_key as key, l.key_request as request
                from pg_catalog.unnest(v_lines) l
               where l.item_id is not null and l.idempotency_key is not null
               order by l.idempotency_key, l.ordinal) c
       order by c.key
      on conflict do nothing
      returning k.idempotency_key)
    select coalesce(pg_catalog.array_agg(c.idempotency_key), '{}') into v_new_keys from claimed c;
    select coalesce(pg_catalog.jsonb_object_agg(k.idempotency_key,
             pg_catalog.jsonb_build_object('operation', k.operation, 'request', k.request, 'response', k.response)), '{}')
      into v_stored
      from inventory.idempotency_keys k
     where k.idempotency_key = any (v_keys) and not k.idempotency_key = any (v_new_keys);
  else
    v_new_keys := '{}';
    v_stored := '{}';
  end if;

  -- 3. The levels, locked in (item_id, location_id) order, and what each holds now.
  with wanted as (
    select l.item_id, l.location_id, pg_catalog.dense_rank() over (order by l.item_id, l.location_id)::integer as level_no
      from pg_catalog.unnest(v_lines) l
     where l.item_id is not null and l.status = 'active' and not l.track_lots
       and not (l.idempotency_key is not null and v_stored ? l.idempotency_key))
  select pg_catalog.array_agg(row(l.ordinal, l.order_ref, l.sku, l.location, l.quantity, l.expires_in, l.idempotency_key,
                                  l.item_id, l.location_id, l.status, l.track_lots, l.expires_at, l.key_request,
                                  w.level_no)::inventory.reserve_many_line order by l.ordinal)
    into v_lines
    from pg_catalog.unnest(v_lines) l
    left join (select distinct w.item_id, w.location_id, w.level_no from wanted w) w
      on w.item_id = l.item_id and w.location_id = l.location_id;
  -- A hot level's free units come back to its row (they are dealt out again by the next hold that
  -- finds its buckets empty): the holds of this call are taken from the row, in one UPDATE.
  perform inventory.lock_levels(array(select l.item_id from pg_catalog.unnest(v_lines) l where l.level_no is not null),
                                array(select l.location_id from pg_catalog.unnest(v_lines) l where l.level_no is not null),
                                gather => true);
  select pg_catalog.array_agg(d.item_id order by d.level_no), pg_catalog.array_agg(d.location_id order by d.level_no),
         pg_catalog.array_agg(coalesce(s.on_hand, 0) order by d.level_no),
         pg_catalog.array_agg(coalesce(s.reserved, 0) order by d.level_no),
         pg_catalog.array_agg(case when s.item_id is null then 0
                                   else inventory.overdue_quantity(s.item_id, s.location_id) end order by d.level_no),
         pg_catalog.array_agg(false order by d.level_no)
    into v_lv_item, v_lv_location, v_lv_on_hand, v_lv_reserved, v_lv_overdue, v_lv_expire
    from (select distinct l.item_id, l.location_id, l.level_no from pg_catalog.unnest(v_lines) l
           where l.level_no is not null) d
    left join inventory.stock_levels s on s.item_id = d.item_id and s.location_id = d.location_id;

  -- 4a. The common case set-wise: no key seen before or twice, every request for a live item that
  -- is not lot-tracked, and each level's requests fit together in what it has free. Then sequential
  -- reserve_stock calls would hold every one of them, in array order: so do they here.
  if v_stored = '{}'::jsonb
     and not exists (select from pg_catalog.unnest(v_lines) l
                      where (v_results[l.ordinal]).ordinal is null and (l.status <> 'active' or l.track_lots))
     and (select pg_catalog.count(l.idempotency_key) = pg_catalog.count(distinct l.idempotency_key)
            from pg_catalog.unnest(v_lines) l where (v_results[l.ordinal]).ordinal is null)
     and not exists (select from (select l.level_no, pg_catalog.sum(l.quantity) as quantity
                                    from pg_catalog.unnest(v_lines) l
                                   where (v_results[l.ordinal]).ordinal is null group by l.level_no) t
                      where t.quantity > v_lv_on_hand[t.level_no] - v_lv_reserved[t.level_no]) then
    with held as (  -- reservation ids in array order, as the calls would have drawn them
      select x.ordinal, pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass) as rid, x.line
        from (select l.ordinal, l as line from pg_catalog.unnest(v_lines) l
               where (v_results[l.ordinal]).ordinal is null order by l.ordinal) x
    ), answered as (
      select g.n, h.rid,
             coalesce(v_results[g.n],
                      row(g.n, (h.line).order_ref, (h.line).sku, (h.line).location, h.rid, (h.line).quantity,
                          (h.line).expires_at, true, null, null, null, null,
                          pg_catalog.to_jsonb(row(h.rid, (h.line).order_ref, (h.line).sku, (h.line).location,
                                                  (h.line).quantity, 0, (h.line).quantity, 'ACTIVE',
                                                  (h.line).expires_at, v_actor, pg_catalog.now(), 'order', null
                                                 )::inventory_api.reservation))::inventory_api.reserve_many_result)
               as result,
             (h.line).idempotency_key as key
        from pg_catalog.generate_series(1, v_count) g (n)
        left join held h on h.ordinal = g.n)
    select pg_catalog.array_agg(a.rid order by a.n), pg_catalog.array_agg(a.result order by a.n),
           coalesce(pg_catalog.jsonb_object_agg(a.key, a.n) filter (where a.key is not null and a.rid is not null),
                    '{}'::jsonb)
      into v_rids, v_results, v_owner
      from answered a;
    v_settled := true;
  end if;

  -- 4b. Otherwise the requests in array order, as sequential reserve_stock calls would meet them.
  for v_n in 1 .. case when v_settled then 0 else v_count end loop
    continue when (v_results[v_n]).ordinal is not null;
    v_line := v_lines[v_n];
    if v_line.idempotency_key is not null then
      if v_stored ? v_line.idempotency_key then
        v_key := v_stored -> v_line.idempotency_key;
        if v_key ->> 'operation' <> 'reserve_stock' or v_key -> 'request' <> v_line.key_request then
          v_results[v_n] := inventory.reserve_many_error(v_line, 'IDEMPOTENCY_CONFLICT',
            pg_catalog.format('idempotency key %L was already used for a different %s call', v_line.idempotency_key,
                              v_key ->> 'operation'),
            pg_catalog.jsonb_build_object('idempotency_key', v_line.idempotency_key, 'operation', v_key ->> 'operation'));
        else
          v_results[v_n] := inventory.reserve_many_ok(v_n, v_key -> 'response');
        end if;
        continue;
      end if;
      if v_owner ? v_line.idempotency_key then
        v_k := (v_owner ->> v_line.idempotency_key)::integer;
        if v_lines[v_k].key_request <> v_line.key_request then
          v_results[v_n] := inventory.reserve_many_error(v_line, 'IDEMPOTENCY_CONFLICT',
            pg_catalog.format('idempotency key %L was already used for a different %s call', v_line.idempotency_key,
                              'reserve_stock'),
            pg_catalog.jsonb_build_object('idempotency_key', v_line.idempotency_key, 'operation', 'reserve_stock'));
        else
          v_results[v_n] := inventory.reserve_many_ok(v_n, (v_results[v_k]).reservation);
        end if;
        continue;
      end if;
    end if;
    if v_line.status <> 'active' then
      v_results[v_n] := inventory.reserve_many_error(v_line, 'PRODUCT_UNAVAILABLE',
        pg_catalog.format('item %s is %s and cannot be reserved', v_line.sku, v_line.status),
        pg_catalog.jsonb_build_object('sku', v_line.sku, 'status', v_line.status));
      continue;
    end if;
    if v_line.track_lots then
      v_results[v_n] := inventory.reserve_many_error(v_line, 'INVALID_ARGUMENT',
        pg_catalog.format('requests[%s]: %s is lot-tracked; reserve it with reserve_stock', v_n - 1, v_line.sku),
        pg_catalog.jsonb_build_object('argument', pg_catalog.format('requests[%s].sku', v_n - 1),
                                      'problem', 'lot-tracked item: reserve it with reserve_stock', 'sku', v_line.sku));
      continue;
    end if;
    v_k := v_line.level_no;
    v_raw := v_lv_on_hand[v_k] - v_lv_reserved[v_k];
    if v_raw < v_line.quantity then
      if v_raw + v_lv_overdue[v_k] < v_line.quantity then
        v_results[v_n] := inventory.reserve_many_error(v_line, 'INSUFFICIENT_STOCK',
          pg_catalog.format('insufficient stock for %s at %s', v_line.sku, v_line.location),
          pg_catalog.jsonb_build_object('sku', v_line.sku, 'location', v_line.location, 'requested', v_line.quantity,
                                        'available', v_raw + v_lv_overdue[v_k], 'on_hand', v_lv_on_hand[v_k],
                                        'reserved', v_lv_reserved[v_k]));
        continue;
      end if;
      -- Only the overdue holds stand in the way: hold_units would expire them now.
      v_lv_reserved[v_k] := v_lv_reserved[v_k] - v_lv_overdue[v_k];
      v_lv_overdue[v_k] := 0;
      v_lv_expire[v_k] := true;
    end if;
    v_lv_reserved[v_k] := v_lv_reserved[v_k] + v_line.quantity;
    v_rids[v_n] := pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass);
    v_reservation := row(v_rids[v_n], v_line.order_ref, v_line.sku, v_line.location, v_line.quantity, 0,
                         v_line.quantity, 'ACTIVE', v_line.expires_at, v_actor, pg_catalog.now(), 'order', null
                        )::inventory_api.reservation;
    v_results[v_n] := inventory.reserve_many_ok(v_n, pg_catalog.to_jsonb(v_reservation));
    if v_line.idempotency_key is not null then
      v_owner := v_owner || pg_catalog.jsonb_build_object(v_line.idempotency_key, v_n);
    end if;
  end loop;

  -- 5. Lazy expiry where the walk needed it, then every hold, then one UPDATE of every level.
  perform inventory.expire_overdue_at_level(v_lv_item[x.k], v_lv_location[x.k])
     from pg_catalog.generate_subscripts(v_lv_expire, 1) as x (k)
    where v_lv_expire[x.k]
    order by x.k;

  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, quantity_fulfilled,
                                      status, expires_at, created_by, created_at, closed_at, quantity_returned,
                                      reference_type, notes)
  select v_rids[l.ordinal], l.order_ref, l.item_id, l.location_id, l.quantity, 0, 'ACTIVE', l.expires_at, v_actor,
         pg_catalog.now(), null, 0, 'order', null
    from pg_catalog.unnest(v_lines) l
   where v_rids[l.ordinal] is not null
   order by l.ordinal;

  with held as (
    select l.item_id, l.location_id, pg_catalog.sum(l.quantity) as quantity, pg_catalog.count(*) as holds,
           pg_catalog.array_agg(v_rids[l.ordinal] order by v_rids[l.ordinal]) as reservation_ids,
           pg_catalog.array_agg(l.order_ref order by v_rids[l.ordinal]) as order_refs,
           pg_catalog.array_agg(l.idempotency_key order by v_rids[l.ordinal]) as keys
      from pg_catalog.unnest(v_lines) l
     where v_rids[l.ordinal] is not null
     group by l.item_id, l.location_id)
  update inventory.stock_levels s
     set reserved = s.reserved + h.quantity,
         pending_movement = case
           when h.holds = 1 then
             inventory.describe_movement('RESERVE', 'order hold', h.order_refs[1], h.keys[1],
                                         reservation_id => h.reservation_ids[1])
           else
             inventory.describe_movement('RESERVE', 'order hold',
               case when (select pg_catalog.count(distinct o) from pg_catalog.unnest(h.order_refs) o) = 1
                    then h.order_refs[1] end,
               null,
               metadata => pg_catalog.jsonb_build_object('reservation_ids', pg_catalog.to_jsonb(h.reservation_ids),
                                                         'order_refs', pg_catalog.to_jsonb(h.order_refs))
                           || case when exists (select from pg_catalog.unnest(h.keys) k where k is not null)
                                   then pg_catalog.jsonb_build_object('idempotency_keys', pg_catalog.to_jsonb(h.keys))
                                   else '{}'::jsonb end)
         end
    from held h
   where s.item_id = h.item_id and s.location_id = h.location_id and s.on_hand - s.reserved >= h.quantity;
  get diagnostics v_updated = row_count;
  select pg_catalog.count(distinct (l.item_id, l.location_id)) into v_levels
    from pg_catalog.unnest(v_lines) l where v_rids[l.ordinal] is not null;
  if v_updated <> v_levels then
    raise exception 'reserve_many: % of % levels changed under their locks', v_levels - v_updated, v_levels
      using errcode = 'XX000';
  end if;

  -- 6. Keys kept by a successful request get its request and result; the others were never used.
  update inventory.idempotency_keys k
     set request = v_lines[o.n].key_request, response = (v_results[o.n]).reservation
    from (select e.key, e.value::integer as n from pg_catalog.jsonb_each_text(v_owner) e) o
   where k.idempotency_key = o.key;
  delete from inventory.idempotency_keys k
   where k.idempotency_key = any (v_new_keys) and not v_owner ? k.idempotency_key;

  return query select * from pg_catalog.unnest(v_results) r order by r.ordinal;
end
$$;

comment on function inventory.reserve_many(jsonb) is 'Implements inventory_api.reserve_many.';

-- The fast path of a hold on a hot level: the first bucket, from a per-session starting point so
-- that sessions spread, that nobody has locked and that has the units; when every bucket that has
-- them is busy (more buyers than buckets), the hold queues on one of them, as a plain conditional
-- UPDATE would, instead of pooling the whole level (`wait`). `bucket` names one the caller already
-- holds (after a rebalance). Records the bucket on the hold. Null when none fits. The caller runs
-- each attempt in a subtransaction of its own: SKIP LOCKED can leave a bucket locked whose re-check
-- failed, and waiting for another bucket of the level while holding it deadlocks with a rebalance.
create function inventory.take_from_bucket(item_id bigint, location_id bigint, quantity numeric,
                                           movement inventory.movement, bucket smallint default null,
                                           wait boolean default false)
returns smallint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_bucket smallint := take_from_bucket.bucket;
  v_start smallint := 1 + pg_catalog.pg_backend_pid() % 64;
begin
  if v_bucket is null and not take_from_bucket.wait then
    -- In key order from this session's starting bucket, then from the first: an index scan that
    -- stops at the first free one (sorting every bucket by a computed order cost a full read of them).
    select c.bucket into v_bucket from inventory.hot_buckets c
     where c.item_id = take_from_bucket.item_id and c.location_id = take_from_bucket.location_id
       and c.bucket >= v_start and c.free >= take_from_bucket.quantity
     order by c.bucket limit 1
       for no key update skip locked;
    if v_bucket is null then
      select c.bucket into v_bucket from inventory.hot_buckets c
       where c.item_id = take_from_bucket.item_id and c.location_id = take_from_bucket.location_id
         and c.bucket < v_start and c.free >= take_from_bucket.quantity
       order by c.bucket limit 1
         for no key update skip locked;
    end if;
  elsif v_bucket is null then
    -- Every bucket that has the units is busy: queue on one, as a conditional UPDATE would.
    select c.bucket into v_bucket from inventory.hot_buckets c
     where c.item_id = take_from_bucket.item_id and c.location_id = take_from_bucket.location_id
       and c.free >= take_from_bucket.quantity
     order by c.bucket >= v_start desc, c.bucket limit 1;
  end if;
  if v_bucket is null then
    return null;
  end if;
  update inventory.hot_buckets b
     set held = b.held + take_from_bucket.quantity, pending_movement = take_from_bucket.movement
   where b.item_id = take_from_bucket.item_id and b.location_id = take_from_bucket.location_id
     and b.bucket = v_bucket and b.free >= take_from_bucket.quantity;
  if not found then
    return null;
  end if;
  update inventory.reservations r set bucket = v_bucket
   where r.reservation_id = (take_from_bucket.movement).reservation_id;
  return v_bucket;
end
$$;

comment on function inventory.take_from_bucket(bigint, bigint, numeric, inventory.movement, smallint, boolean) is 'Holds units in a bucket of a hot level that nobody has locked (wait: else queueing on a busy one that has them; or in the given one); returns its number, null when none has them.';

-- Pools every free unit of a level (its own and its buckets') under the level's lock, already
-- held by the caller, and deals them out again: to the level row itself when gathering or when the
-- level is not hot (then returns 0), else evenly over the active buckets, the one with most free
-- units getting `take` more (returns its number), or nothing moves and null is returned when the
-- pool is short of `take`. Every change is a REBALANCE movement; totals do not change.
create function inventory.rebalance_level(item_id bigint, location_id bigint, take numeric, gather boolean)
returns smallint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_buckets smallint[];
  v_free numeric[];
  v_level_free numeric;
  v_active integer;
  v_pool numeric;
  v_share numeric;
  v_chosen smallint;
  v_delta numeric;
  v_movement inventory.movement := inventory.describe_movement('REBALANCE', 'hot mode: free units rebalanced');
begin
  select s.on_hand - s.reserved, case when rebalance_level.gather then 1 else s.hot_buckets end
    into v_level_free, v_active
    from inventory.stock_levels s
   where s.item_id = rebalance_level.item_id and s.location_id = rebalance_level.location_id;
  select pg_catalog.array_agg(b.bucket order by b.bucket), pg_catalog.array_agg(b.free order by b.bucket)
    into v_buckets, v_free
    from (select c.bucket, c.free from inventory.hot_buckets c
           where c.item_id = rebalance_level.item_id and c.location_id = rebalance_level.location_id
           order by c.bucket
             for no key update) b;
  if v_buckets is null then
    return 0;  -- never hot: the caller's conditional UPDATE of the level row decides
  end if;
  v_pool := v_level_free + (select pg_catalog.sum(f) from pg_catalog.unnest(v_free) f);
  if v_active > 1 and v_pool < rebalance_level.take then
    return null;
  end if;
  if v_active > 1 then
    v_share := pg_catalog.floor((v_pool - rebalance_level.take) / v_active);
    select b into v_chosen from rows from (pg_catalog.unnest(v_buckets), pg_catalog.unnest(v_free)) as x (b, f)
     where b <= v_active order by f desc, b limit 1;
  end if;
  -- Each bucket's target: 0 when gathering or inactive; else the share, the chosen one also the
  -- take and what the even split leaves over.
  with target as (
    select x.b, x.f,
           case when v_active = 1 or x.b > v_active then 0
                when x.b = v_chosen then v_pool - v_share * (v_active - 1)
                else v_share end as units
      from rows from (pg_catalog.unnest(v_buckets), pg_catalog.unnest(v_free)) as x (b, f)
  ), moved as (
    update inventory.hot_buckets h
       set parked = h.parked + (t.units - t.f), pending_movement = v_movement
      from target t
     where h.item_id = rebalance_level.item_id and h.location_id = rebalance_level.location_id
       and h.bucket = t.b and t.units <> t.f
    returning t.units - t.f as delta)
  select coalesce(pg_catalog.sum(m.delta), 0) into v_delta from moved m;
  if v_delta <> 0 then
    update inventory.stock_levels s set reserved = s.reserved + v_delta, pending_movement = v_movement
     where s.item_id = rebalance_level.item_id and s.location_id = rebalance_level.location_id;
  end if;
  return case when v_active > 1 then v_chosen else 0 end;
end
$$;

comment on function inventory.rebalance_level(bigint, bigint, numeric, boolean) is 'Under the level''s lock: pools its free units with its buckets'' and deals them out again (to the level row when gathering or not hot: returns 0; else evenly over the buckets, one of them with `take` more: returns it; null when the pool is short).';

-- The one way to lock several stock levels: in (item_id, location_id) order, each hot level's
-- buckets right after it (the lock rule above); gather => also moves the free units parked in
-- them back to the level row, for callers that take units from the row itself. Returns whether
-- any of the levels is lot-tracked.
create function inventory.lock_levels(item_ids bigint[], location_ids bigint[], gather boolean default false)
returns boolean
language plpgsql volatile
set search_path = ''
as $$
declare
  v_lots boolean := false;
  v_level record;
  c_levels refcursor;
begin
  -- The distinct levels asked for. Below, rows are found through the primary key by "= any" on
  -- both columns (index conditions) and then kept only when they are one of the pairs: a join with
  -- the list was planned as a hash join over every stock level.
  select pg_catalog.array_agg(k.item_id order by k.item_id, k.location_id),
         pg_catalog.array_agg(k.location_id order by k.item_id, k.location_id)
    into lock_levels.item_ids, lock_levels.location_ids
    from (select distinct x.item_id, x.location_id
            from rows from (pg_catalog.unnest(lock_levels.item_ids), pg_catalog.unnest(lock_levels.location_ids))
                 as x (item_id, location_id)) k;
  if not exists (select from inventory.stock_levels s
                  where s.item_id = any (lock_levels.item_ids) and s.location_id = any (lock_levels.location_ids)
                    and s.hot_buckets > 1) then
    select coalesce(pg_catalog.bool_or(x.track_lots), false) into v_lots
      from (select s.track_lots from inventory.stock_levels s
             where s.item_id = any (lock_levels.item_ids) and s.location_id = any (lock_levels.location_ids)
               and exists (select from pg_catalog.generate_subscripts(lock_levels.item_ids, 1) n
                            where lock_levels.item_ids[n] = s.item_id and lock_levels.location_ids[n] = s.location_id)
             order by s.item_id, s.location_id
               for update of s) x;
    return v_lots;
  end if;
  -- One level per FETCH (the rows are locked as they leave the sort), so each is locked only after
  -- the previous one's buckets.
  open c_levels for
    select s.item_id, s.location_id, s.hot_buckets, s.track_lots from inventory.stock_levels s
     where s.item_id = any (lock_levels.item_ids) and s.location_id = any (lock_levels.location_ids)
       and exists (select from pg_catalog.generate_subscripts(lock_levels.item_ids, 1) n
                    where lock_levels.item_ids[n] = s.item_id and lock_levels.location_ids[n] = s.location_id)
     order by s.item_id, s.location_id
       for update of s;
  loop
    fetch c_levels into v_level;
    exit when not found;
    v_lots := v_lots or v_level.track_lots;
    if v_level.hot_buckets > 1 then
      if lock_levels.gather then
        perform inventory.rebalance_level(v_level.item_id, v_level.location_id, 0, true);
      else
        perform from inventory.hot_buckets b
         where b.item_id = v_level.item_id and b.location_id = v_level.location_id
         order by b.bucket
           for no key update;
      end if;
    end if;
  end loop;
  close c_levels;
  return v_lots;
end
$$;

comment on function inventory.lock_levels(bigint[], bigint[], boolean) is 'Locks stock levels in key order, each hot level''s buckets right after it (gather: moving their free units back to the level row); returns whether any is lot-tracked.';

-- Holds leave their bucket before they are shipped, released or expired: each moves back to the
-- level row (which already counts its units in reserved), so those movements are the level's own.
-- The callers hold the levels' locks (lock_levels).
create function inventory.unpark_holds(reservation_ids bigint[]) returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  with parked as (
    update inventory.reservations r set bucket = null
      from inventory.reservations o
     where o.reservation_id = r.reservation_id and r.reservation_id = any (unpark_holds.reservation_ids)
       and o.bucket is not null
    returning o.item_id, o.location_id, o.bucket, o.reservation_id, o.quantity - o.quantity_fulfilled as units)
  update inventory.hot_buckets b
     set parked = b.parked - p.units, held = b.held - p.units,
         pending_movement = inventory.describe_movement('REBALANCE', 'hot mode: holds moved to the level',
           reservation_id => case when p.holds = 1 then p.reservation_ids[1] end,
           metadata => pg_catalog.jsonb_build_object('reservation_ids', pg_catalog.to_jsonb(p.reservation_ids)))
    from (select x.item_id, x.location_id, x.bucket, pg_catalog.sum(x.units) as units, pg_catalog.count(*) as holds,
                 pg_catalog.array_agg(x.reservation_id order by x.reservation_id) as reservation_ids
            from parked x group by x.item_id, x.location_id, x.bucket) p
   where b.item_id = p.item_id and b.location_id = p.location_id and b.bucket = p.bucket;
end
$$;

comment on function inventory.unpark_holds(bigint[]) is 'Moves the given holds out of their hot buckets back to their levels (a REBALANCE movement per bucket), before they are shipped, released or expired.';

create function inventory.set_hot_mode(sku text, location text, buckets integer)
returns inventory_api.hot_mode
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
begin
  select * into v_item from inventory.item_for_sku(set_hot_mode.sku);
  v_location_id := inventory.location_for_code(set_hot_mode.location);
  perform inventory.authorize('admin', v_location_id);
  if set_hot_mode.buckets is null or set_hot_mode.buckets not between 1 and 64 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'buckets must be between 1 (hot mode off) and 64',
      pg_catalog.jsonb_build_object('argument', 'buckets', 'problem', 'out of range'));
  end if;
  if v_item.track_lots and set_hot_mode.buckets > 1 then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'lot-tracked items cannot be hot: their holds take units lot by lot under the level''s lock',
      pg_catalog.jsonb_build_object('argument', 'sku', 'problem', 'lot-tracked', 'sku', set_hot_mode.sku));
  end if;
  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_location_id)
  on conflict do nothing;
  -- The unit, as it is now: the level, then its buckets; their free units back on the level row.
  perform inventory.lock_levels(array[v_item.item_id], array[v_location_id]);
  perform inventory.rebalance_level(v_item.item_id, v_location_id, 0, true);
  insert into inventory.hot_buckets (item_id, location_id, bucket)
  select v_item.item_id, v_location_id, n from pg_catalog.generate_series(1, set_hot_mode.buckets) n
   where set_hot_mode.buckets > 1
  on conflict do nothing;
  update inventory.stock_levels s set hot_buckets = set_hot_mode.buckets
   where s.item_id = v_item.item_id and s.location_id = v_location_id and s.hot_buckets <> set_hot_mode.buckets;
  if set_hot_mode.buckets > 1 then
    perform inventory.rebalance_level(v_item.item_id, v_location_id, 0, false);
  end if;
  return (select row(set_hot_mode.sku, set_hot_mode.location, set_hot_mode.buckets, s.on_hand, s.reserved - p.parked,
                     s.available + p.parked,
                     array(select b.free from inventory.hot_buckets b
                            where b.item_id = s.item_id and b.location_id = s.location_id
                              and b.bucket <= set_hot_mode.buckets and set_hot_mode.buckets > 1
                            order by b.bucket))::inventory_api.hot_mode
            from inventory.stock_levels s
           cross join lateral (select inventory.parked_units(s.item_id, s.location_id) as parked) p
           where s.item_id = v_item.item_id and s.location_id = v_location_id);
end
$$;

comment on function inventory.set_hot_mode(text, text, integer) is 'Implements inventory_api.set_hot_mode.';

create or replace view inventory_api.stock_levels with (security_invoker = true) as
  select i.sku, l.code as location, s.on_hand, (s.reserved - o.parked)::numeric(19, 4) as reserved,
         s.available + o.overdue + o.parked - b.blocked as available, o.overdue as expired_unreleased,
         i.status, s.version, s.updated_at, b.blocked, s.hot_buckets
    from inventory.stock_levels s
    join inventory.items i on i.item_id = s.item_id
    join inventory.locations l on l.location_id = s.location_id
    cross join lateral (select inventory.overdue_quantity(s.item_id, s.location_id) as overdue,
                               case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id)
                                    else 0 end as parked) o
    cross join lateral (select case when s.track_lots then inventory.blocked_quantity(s.item_id, s.location_id)
                                    else 0::numeric end as blocked) b
   where i.deleted_at is null;

comment on view inventory_api.stock_levels is 'Stock per item and location. available already counts overdue holds as released (expired_unreleased of them are not swept yet) and leaves out units in lots that may not be sold (blocked: expired, awaiting or failed QC, quarantined), so available = on_hand - reserved + expired_unreleased - blocked.';

create or replace view inventory_api.reorder_alerts with (security_invoker = true) as
  select a.alert_id, i.sku, l.code as location, a.severity, a.status,
         (s.available + case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id) else 0 end
         )::numeric(19, 4) as available, a.available_at_open,
         a.reorder_point, a.safety_stock, a.opened_at, a.escalated_at, a.acknowledged_by, a.acknowledged_at,
         a.closed_by, a.closed_at, a.note
    from inventory.reorder_alerts a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
    left join inventory.stock_levels s on s.item_id = a.item_id and s.location_id = a.location_id;

comment on view inventory_api.reorder_alerts is 'Low-stock alerts (OPEN, ACKNOWLEDGED, RESOLVED, DISMISSED) with the current available quantity.';

create or replace view inventory_api.reorder_recommendations with (security_invoker = true) as
  select i.sku, l.code as location, s.on_hand, s.reserved, s.available, p.reorder_point, p.safety_stock,
         p.reorder_quantity, p.max_stock_level, p.lead_time_days,
         case when s.available <= p.safety_stock then 'CRITICAL'
              when s.available <= p.reorder_point then 'REORDER'
              else 'NORMAL' end as status,
         case when s.available > p.reorder_point then 0::numeric
              when p.reorder_quantity is not null then p.reorder_quantity
              when p.max_stock_level is not null then p.max_stock_level - s.available
         end as suggested_order_quantity,
         a.alert_id, a.status as alert_status, s.last_counted_at, s.last_counted_by
    from inventory.stock_policies p
    join (select x.item_id, x.location_id, x.on_hand, (x.reserved - k.parked)::numeric(19, 4) as reserved,
                 (x.available + k.parked)::numeric(19, 4) as available, x.last_counted_at, x.last_counted_by
            from inventory.stock_levels x
            cross join lateral (select case when x.hot_buckets > 1 then inventory.parked_units(x.item_id, x.location_id)
                                            else 0 end as parked) k) s
      on s.item_id = p.item_id and s.location_id = p.location_id
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id
    left join inventory.reorder_alerts a
      on a.item_id = p.item_id and a.location_id = p.location_id and a.status in ('OPEN', 'ACKNOWLEDGED')
   where i.deleted_at is null;

comment on view inventory_api.reorder_recommendations is 'Every level with a stock policy: CRITICAL (available <= safety stock), REORDER (<= reorder point) or NORMAL, with a suggested order quantity (the reorder quantity, else up to the maximum level; null when the policy gives neither) and the open alert.';

create or replace view inventory_api.movement_summary with (security_invoker = true) as
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
             and g.movement_type::text <> 'REBALANCE'  -- hot mode's internal moves change no total (text: see 0006)
           group by g.item_id, g.location_id) g
    join inventory.items i on i.item_id = g.item_id
    join inventory.locations l on l.location_id = g.location_id;

comment on view inventory_api.movement_summary is 'Movements of the last 90 days per item and location: units received, shipped, returned, adjusted (net, signed), transferred in and out, and the net change of on_hand (received - shipped + returned + adjusted + transferred_in - transferred_out). Levels without a movement in the window are left out.';

create or replace view inventory_api.dashboard with (security_invoker = true) as
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
                 coalesce(pg_catalog.sum(s.reserved - case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id) else 0 end), 0) as units_reserved
            from inventory.stock_levels s) s,
         (select pg_catalog.count(*) as open_alerts,
                 pg_catalog.count(*) filter (where a.severity = 'REORDER') as open_reorder_alerts,
                 pg_catalog.count(*) filter (where a.severity = 'CRITICAL') as open_critical_alerts
            from inventory.reorder_alerts a where a.status in ('OPEN', 'ACKNOWLEDGED')) a,
         (select pg_catalog.count(*) filter (where x.expiry_status <> 'EXPIRED') as expiring_lots,
                 pg_catalog.count(*) filter (where x.expiry_status = 'EXPIRED') as expired_lots
            from inventory_api.expiring_lots x) e;

comment on view inventory_api.dashboard is 'One row of figures over the caller''s locations: items, locations, units on hand and reserved, stock value, open reorder alerts by severity, adjustments waiting for approval, expiring and expired lots, holds lapsing within the hour, low-stock levels (as of the last refresh) and the last maintenance run.';

create function inventory_api.reserve_many(requests jsonb)
returns setof inventory_api.reserve_many_result
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_many(reserve_many.requests);
end;

comment on function inventory_api.reserve_many(jsonb) is
'Hold stock for many independent orders in one call: each request succeeds or fails on its own, exactly as reserve_stock called once per request in array order would.
requests: [{"order_ref": "SO-1", "sku": "A1", "quantity": 2, "location": "main", "expires_in": "2 hours", "idempotency_key": "k1"}] (1 to 10000; location, expires_in and idempotency_key optional). One row per request in array order: ok with reservation_id, expires_at and reservation (reserve_stock''s result as JSON), or sqlstate, error_code, message and detail of the error reserve_stock would raise. Idempotency keys are reserve_stock''s (a retry through either function replays). Lot-tracked items are refused (INVALID_ARGUMENT): reserve them with reserve_stock.';

create function inventory_api.set_hot_mode(sku text, location text default 'main', buckets integer default 8)
returns inventory_api.hot_mode
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_hot_mode(set_hot_mode.sku, set_hot_mode.location, set_hot_mode.buckets);
end;

comment on function inventory_api.set_hot_mode(text, text, integer) is
'Hot mode for a flash sale (admins of the location): spreads the level''s free units over buckets (2-64) so that holds commit side by side instead of queueing on one row; buckets => 1 turns it off. reserve_stock and reserve_order then take a bucket nobody has locked and, when none has the units, pool every free unit under the level''s lock before answering, so a hold is refused only when the level as a whole is short. stock_levels, the ledger (bucket movements carry their bucket; REBALANCE moves change no total), verify_inventory, expiry, returns, adjustments and transfers keep their meaning. Not for lot-tracked items (INVALID_ARGUMENT). Returns the level with the free units of each bucket.';

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
create or replace view inventory_api.inventory_metrics with (security_invoker = true) as
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
      cross join lateral (select s.available + coalesce(o.units, 0) + case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id) else 0 end
                                 - case when s.track_lots then inventory.blocked_quantity(s.item_id, s.location_id)
                                        else 0 end as available) a
  ),
  moves as (
    select coalesce(-(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'SHIP')), 0) as shipped,
           coalesce(pg_catalog.sum(g.on_hand_delta), 0) as net_change
      from inventory.ledger g
     where g.created_at >= pg_catalog.now() - interval '365 days'
       and g.movement_type::text <> 'REBALANCE'  -- hot mode's internal moves change no total (text: see 0006)
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
create or replace view inventory_api.daily_movements with (security_invoker = true) as
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
                  and g.movement_type::text <> 'REBALANCE'  -- hot mode's internal moves change no total (text: see 0006)
                group by 1) g on g.day = d.day
   where (select inventory.has_any_role());

comment on view inventory_api.daily_movements is 'Units moved per day (UTC) over the last 30 days, today included, summed over the caller''s locations: one row per day, zeros on days without movements (the movement chart of pyinv report); no rows for a caller without a business role.';
-- END functions and views generated by tools/schema_diff.py

-- The buckets' triggers (sql/23_hot_buckets.sql).

create trigger hot_buckets_record_change
  before insert or update on inventory.hot_buckets
  for each row execute function inventory.record_hot_bucket_change();

alter table inventory.hot_buckets enable always trigger hot_buckets_record_change;

create trigger hot_buckets_forbid_delete
  before delete on inventory.hot_buckets
  for each row execute function inventory.forbid_ledger_change();

create trigger hot_buckets_forbid_truncate
  before truncate on inventory.hot_buckets
  for each statement execute function inventory.forbid_ledger_change();

alter table inventory.hot_buckets enable always trigger hot_buckets_forbid_delete;

alter table inventory.hot_buckets enable always trigger hot_buckets_forbid_truncate;

-- The recreated dashboard's columns, and the new column of inventory_api.stock_levels.

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

comment on column inventory_api.stock_levels.hot_buckets is 'Hot mode (set_hot_mode): how many buckets share the level''s free units so that holds commit side by side; 1 = off. On a hot level version and updated_at change with the level''s own movements, not with each hold.';
