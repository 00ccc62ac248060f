-- Rolls 0006_hot_mode back to 0005_operations: hot mode (the buckets, their columns and functions) and
-- reserve_many go; every stock row stays as it is. Refused once hot mode has moved stock: the ledger
-- then holds bucket movements, which the books of 0.5.0 would count as the level's own. The movement
-- type REBALANCE stays in the enum (PostgreSQL cannot remove an enum value); nothing of 0.5.0 uses it.
set local role inventory_owner;

do $refuse$
begin
  if exists (select from inventory.ledger g where g.bucket is not null) then
    raise exception 'hot mode has moved stock in this database: its ledger has bucket movements that pyinv 0.5.0 cannot read'
      using errcode = '55000',
            hint = 'stay on pyinv 0.6.0 or later (a ledger is append-only: its movements cannot be rewritten)';
  end if;
end
$refuse$;

-- The buckets' triggers first: the function they call goes below.
drop trigger hot_buckets_record_change on inventory.hot_buckets;
drop trigger hot_buckets_forbid_delete on inventory.hot_buckets;
drop trigger hot_buckets_forbid_truncate on inventory.hot_buckets;

-- The low-stock snapshot of 0.5.0, with what reads it (the dashboard is restored below).
drop materialized view inventory.mv_low_stock_items cascade;

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
drop function if exists inventory_api.set_hot_mode(sku text, location text, buckets integer);

drop function if exists inventory_api.reserve_many(requests jsonb);

drop view inventory_api.daily_movements;

drop view if exists inventory_api.dashboard;  -- dropped with the materialized view above

drop view inventory_api.inventory_metrics;

drop view inventory_api.movement_summary;

drop view inventory_api.reorder_alerts;

drop view inventory_api.reorder_recommendations;

drop view inventory_api.stock_levels;

CREATE OR REPLACE FUNCTION inventory.apply_hold_moves(moves inventory.hold_move[], reference text, reason text, idempotency_key text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.apply_hold_moves(inventory.hold_move[],text,text,text) is 'Ships, releases or expires holds set-wise and records one ledger movement per level and type.';

CREATE OR REPLACE FUNCTION inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric, movement inventory.movement, sku text, location text, lot_id bigint)
 RETURNS inventory.stock_levels
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.apply_on_hand_delta(bigint,bigint,numeric,inventory.movement,text,text,bigint) is 'Applies a delta to on_hand (of one lot, for lot-tracked items) through the ledger and returns the level after it; raises INSUFFICIENT_STOCK when on_hand would fall below reserved.';

CREATE OR REPLACE FUNCTION inventory.effective_available(item_id bigint, location_id bigint)
 RETURNS numeric
 LANGUAGE sql
 STABLE
 SET search_path TO ''
BEGIN ATOMIC
 SELECT
         CASE
             WHEN s.track_lots THEN ( SELECT COALESCE(sum(a.units) FILTER (WHERE (a.reason IS NULL)), (0)::numeric) AS "coalesce"
                FROM inventory.lot_availability(s.item_id, s.location_id, NULL::date) a(reason, units))
             ELSE (s.available + inventory.overdue_quantity(s.item_id, s.location_id))
         END AS "case"
    FROM inventory.stock_levels s
   WHERE ((s.item_id = effective_available.item_id) AND (s.location_id = effective_available.location_id));
END
;
comment on function inventory.effective_available(bigint,bigint) is 'on_hand - reserved + units of overdue holds not yet swept, less units in lots that may not be sold; null when the level does not exist.';

CREATE OR REPLACE FUNCTION inventory.expire_reservations(batch_size integer)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
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
    perform from inventory.stock_levels s
     where (s.item_id, s.location_id) in (
             select l.item_id, l.location_id
               from rows from (pg_catalog.unnest(v_items), pg_catalog.unnest(v_locations)) as l (item_id, location_id))
     order by s.item_id, s.location_id
       for update;
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
$function$
;
comment on function inventory.expire_reservations(integer) is 'Implements inventory_api.expire_reservations.';

CREATE OR REPLACE FUNCTION inventory.hold_units(item_id bigint, location_id bigint, quantity numeric, movement inventory.movement)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  for attempt in 1 .. 2 loop
    update inventory.stock_levels s
       set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
     where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
       and s.on_hand - s.reserved >= hold_units.quantity;
    if found then
      return true;
    end if;
    exit when attempt = 2;
    perform inventory.expire_overdue_at_level(hold_units.item_id, hold_units.location_id);
  end loop;
  return false;
end
$function$
;
comment on function inventory.hold_units(bigint,bigint,numeric,inventory.movement) is 'Conditionally adds units to reserved at one level (expiring overdue holds there if needed); true when they fit.';

CREATE OR REPLACE FUNCTION inventory.inventory_violations()
 RETURNS SETOF inventory_api.invariant_violation
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.inventory_violations() is 'Every broken invariant of the stock books (internal, unfiltered).';

CREATE OR REPLACE FUNCTION inventory.ledger_digests(through_movement bigint)
 RETURNS TABLE(location text, levels bigint, digest text)
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select l.code, pg_catalog.count(*),
         pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.string_agg(
           h.item_id::text || ':' || h.movement_id::text || ':' || pg_catalog.encode(h.hash, 'hex'), ','
           order by h.item_id), 'UTF8')), 'hex')
    from inventory.stock_levels s
    join inventory.locations l on l.location_id = s.location_id
    cross join lateral (
          select g.item_id, g.movement_id, g.hash from inventory.ledger g
           where g.item_id = s.item_id and g.location_id = s.location_id
             and g.movement_id <= ledger_digests.through_movement
           order by g.movement_id desc
           limit 1) h
   group by l.code
$function$
;
comment on function inventory.ledger_digests(bigint) is 'sha256 per location over the ledger chain heads of its levels at a movement id cut.';

CREATE OR REPLACE FUNCTION inventory.ledger_entry_bytes(entry inventory.ledger)
 RETURNS bytea
 LANGUAGE sql
 STABLE PARALLEL SAFE
 SET search_path TO ''
BEGIN ATOMIC
 SELECT convert_to(concat_ws(chr(31), (entry).movement_id, (entry).movement_type, (entry).item_id, (entry).location_id, (entry).on_hand_before, (entry).on_hand_delta, (entry).on_hand_after, (entry).reserved_before, (entry).reserved_delta, (entry).reserved_after, quote_nullable((entry).actor), quote_nullable((entry).reason), quote_nullable((entry).reference), quote_nullable((entry).idempotency_key), COALESCE(((entry).related_movement_id)::text, 'null'::text), COALESCE(((entry).reservation_id)::text, 'null'::text), (entry).metadata, EXTRACT(epoch FROM (entry).created_at), (entry).transaction_id), 'UTF8'::name) AS convert_to;
END
;
comment on function inventory.ledger_entry_bytes(inventory.ledger) is 'Canonical, session-independent bytes of a movement, hashed by the per-level chain.';

CREATE OR REPLACE FUNCTION inventory.lock_order_holds(order_ref text, item_id bigint, sku text)
 RETURNS inventory.hold_move[]
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_moves inventory.hold_move[];
begin
  -- Which levels (a hold never changes level), and may the caller act there; then lock them.
  perform inventory.authorize_locations('operator', array(
    select distinct r.location_id from inventory.reservations r
     where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
       and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id)));
  perform from inventory.stock_levels s
   where (s.item_id, s.location_id) in (
           select r.item_id, r.location_id from inventory.reservations r
            where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
              and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id))
   order by s.item_id, s.location_id
     for update;
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
$function$
;
comment on function inventory.lock_order_holds(text,bigint,text) is 'Locks the stock levels of an order''s active holds, then the holds; authorises their locations and returns them as moves (EXPIRE for overdue ones); raises NO_RESERVATION when none.';

CREATE OR REPLACE FUNCTION inventory.movement_event_type(movement_type inventory.movement_type)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO ''
BEGIN ATOMIC
 SELECT
         CASE movement_type
             WHEN 'RECEIVE'::inventory.movement_type THEN 'stock.received'::text
             WHEN 'RESERVE'::inventory.movement_type THEN 'reservation.created'::text
             WHEN 'RELEASE'::inventory.movement_type THEN 'reservation.released'::text
             WHEN 'EXPIRE'::inventory.movement_type THEN 'reservation.expired'::text
             WHEN 'SHIP'::inventory.movement_type THEN 'stock.shipped'::text
             WHEN 'RETURN'::inventory.movement_type THEN 'stock.returned'::text
             WHEN 'ADJUST'::inventory.movement_type THEN 'stock.adjusted'::text
             WHEN 'TRANSFER_OUT'::inventory.movement_type THEN 'stock.transferred_out'::text
             WHEN 'TRANSFER_IN'::inventory.movement_type THEN 'stock.transferred_in'::text
             ELSE NULL::text
         END AS "case";
END
;
comment on function inventory.movement_event_type(inventory.movement_type) is 'Event type of a ledger movement: RECEIVE stock.received, RESERVE reservation.created, RELEASE reservation.released (cancelled, or no longer sellable), EXPIRE reservation.expired, SHIP stock.shipped, RETURN stock.returned, ADJUST stock.adjusted, TRANSFER_OUT/IN stock.transferred_out/in.';

CREATE OR REPLACE FUNCTION inventory.receive_stock(sku text, quantity numeric, location text, reference text, unit_cost numeric, idempotency_key text, lot_number text, expires_on date, supplier_lot text)
 RETURNS inventory_api.stock_level
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.receive_stock(text,numeric,text,text,numeric,text,text,date,text) is 'Implements inventory_api.receive_stock.';

CREATE OR REPLACE FUNCTION inventory.record_count(sku text, counted_quantity numeric, location text, lot_number text)
 RETURNS inventory_api.stock_count
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.record_count(text,numeric,text,text) is 'Implements inventory_api.record_count.';

CREATE OR REPLACE FUNCTION inventory.record_stock_level_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.record_stock_level_change() is 'Trigger: records every change of a stock level once: quantities as a ledger movement (described by pending_movement, with its event, and re-evaluating the reorder alert), anything else in the audit log.';

CREATE OR REPLACE FUNCTION inventory.refresh_reorder_alerts(item_ids bigint[], location_ids bigint[])
 RETURNS inventory_api.reorder_check
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_result inventory_api.reorder_check;
begin
  -- One statement: its parts touch disjoint alerts (a level is either recovered, or low), so they
  -- may share one snapshot.
  with levels as materialized (
    select s.item_id, s.location_id, s.on_hand - s.reserved as available,
           case when s.on_hand - s.reserved <= p.safety_stock then 'CRITICAL'
                when s.on_hand - s.reserved <= p.reorder_point then 'REORDER' end as severity,
           p.reorder_point, p.safety_stock
      from inventory.stock_policies p
      join inventory.stock_levels s on s.item_id = p.item_id and s.location_id = p.location_id
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
$function$
;
comment on function inventory.refresh_reorder_alerts(bigint[],bigint[]) is 'Set-based re-evaluation of the reorder alerts of many levels (caller holds their locks).';

CREATE OR REPLACE FUNCTION inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text, expires_in interval, idempotency_key text, reference_type text, notes text, min_shelf_life interval)
 RETURNS inventory_api.reservation
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.reserve_stock(text,numeric,text,text,interval,text,text,text,interval) is 'Implements inventory_api.reserve_stock.';

CREATE OR REPLACE FUNCTION inventory.schema_version(OUT version text, OUT migration text)
 RETURNS record
 LANGUAGE sql
 STABLE PARALLEL SAFE
 SET search_path TO ''
BEGIN ATOMIC
 SELECT '0.5.0'::text AS text,
     '0005_operations'::text AS text;
END
;
comment on function inventory.schema_version() is 'The installed schema: pyinv release (version) and the last migration applied (migration).';

CREATE OR REPLACE FUNCTION inventory.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric, reorder_quantity numeric, max_stock_level numeric, lead_time_days integer, expected_version integer)
 RETURNS inventory_api.stock_policy
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
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
  perform inventory.evaluate_reorder_alert(v_item.item_id, v_location_id, v_level.on_hand - v_level.reserved);
  return inventory.stock_policy_result(v_item.item_id, v_location_id);
end
$function$
;
comment on function inventory.set_stock_policy(text,text,numeric,numeric,numeric,numeric,integer,integer) is 'Implements inventory_api.set_stock_policy.';

CREATE OR REPLACE FUNCTION inventory.shortfall(item_id bigint, location_id bigint, sku text, location text, requested numeric, sellable_until date DEFAULT NULL::date)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.shortfall(bigint,bigint,text,text,numeric,date) is 'JSON specifics of a line that does not fit: requested, available (overdue holds counted as released), on hand, reserved, and for lot-tracked items the units blocked by lot state (expired, qc_pending, qc_failed, quarantined, short_shelf_life).';

CREATE OR REPLACE FUNCTION inventory.stock_as_of(sku text, location text, at timestamp with time zone)
 RETURNS inventory_api.stock_snapshot
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.stock_as_of(text,text,timestamp with time zone) is 'Implements inventory_api.stock_as_of.';

CREATE OR REPLACE FUNCTION inventory.transfer_stock(sku text, quantity numeric, from_location text, to_location text, reference text, idempotency_key text, lot_number text)
 RETURNS inventory_api.stock_transfer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
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
$function$
;
comment on function inventory.transfer_stock(text,numeric,text,text,text,text,text) is 'Implements inventory_api.transfer_stock.';

create view inventory_api.daily_movements with (security_invoker=true) as SELECT d.day,
    COALESCE(g.received, (0)::numeric) AS received,
    COALESCE(g.shipped, (0)::numeric) AS shipped,
    COALESCE(g.returned, (0)::numeric) AS returned,
    COALESCE(g.adjusted, (0)::numeric) AS adjusted,
    COALESCE(g.transferred_in, (0)::numeric) AS transferred_in,
    COALESCE(g.transferred_out, (0)::numeric) AS transferred_out,
    COALESCE(g.net_change, (0)::numeric) AS net_change,
    COALESCE(g.movements, (0)::bigint) AS movements
   FROM (( SELECT ((timezone('UTC'::text, now()))::date - n.n) AS day
           FROM generate_series(0, 29) n(n)) d
     LEFT JOIN ( SELECT (timezone('UTC'::text, g_1.created_at))::date AS day,
            sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'RECEIVE'::inventory.movement_type)) AS received,
            (- sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'SHIP'::inventory.movement_type))) AS shipped,
            sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'RETURN'::inventory.movement_type)) AS returned,
            sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'ADJUST'::inventory.movement_type)) AS adjusted,
            sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'TRANSFER_IN'::inventory.movement_type)) AS transferred_in,
            (- sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'TRANSFER_OUT'::inventory.movement_type))) AS transferred_out,
            sum(g_1.on_hand_delta) AS net_change,
            count(*) AS movements
           FROM inventory.ledger g_1
          WHERE (g_1.created_at >= timezone('UTC'::text, (((timezone('UTC'::text, now()))::date - 29))::timestamp with time zone))
          GROUP BY ((timezone('UTC'::text, g_1.created_at))::date)) g ON ((g.day = d.day)))
  WHERE ( SELECT inventory.has_any_role() AS has_any_role);
comment on view inventory_api.daily_movements is 'Units moved per day (UTC) over the last 30 days, today included, summed over the caller''s locations: one row per day, zeros on days without movements (the movement chart of pyinv report); no rows for a caller without a business role.';

create view inventory_api.dashboard with (security_invoker=true) as SELECT ( SELECT count(*) AS count
           FROM inventory.items i
          WHERE (i.deleted_at IS NULL)) AS items,
    ( SELECT count(*) AS count
           FROM inventory.locations l) AS locations,
    s.units_on_hand,
    s.units_reserved,
    ( SELECT sum(v.value) AS sum
           FROM inventory_api.inventory_valuation v) AS inventory_value,
    a.open_alerts,
    a.open_reorder_alerts,
    a.open_critical_alerts,
    ( SELECT count(*) AS count
           FROM inventory.adjustments d
          WHERE (d.status = 'PENDING'::text)) AS pending_approvals,
    e.expiring_lots,
    e.expired_lots,
    ( SELECT count(*) AS count
           FROM inventory.reservations r
          WHERE ((r.status = 'ACTIVE'::text) AND (r.expires_at > now()) AND (r.expires_at <= (now() + '01:00:00'::interval)))) AS holds_expiring_within_hour,
    ( SELECT count(*) AS count
           FROM inventory_api.low_stock_items k) AS low_stock_items,
    ( SELECT max(j.last_finished_at) AS max
           FROM inventory.maintenance_jobs j) AS last_maintenance_at,
    now() AS as_of
   FROM ( SELECT COALESCE(sum(s_1.on_hand), (0)::numeric) AS units_on_hand,
            COALESCE(sum(s_1.reserved), (0)::numeric) AS units_reserved
           FROM inventory.stock_levels s_1) s,
    ( SELECT count(*) AS open_alerts,
            count(*) FILTER (WHERE (a_1.severity = 'REORDER'::text)) AS open_reorder_alerts,
            count(*) FILTER (WHERE (a_1.severity = 'CRITICAL'::text)) AS open_critical_alerts
           FROM inventory.reorder_alerts a_1
          WHERE (a_1.status = ANY (ARRAY['OPEN'::text, 'ACKNOWLEDGED'::text]))) a,
    ( SELECT count(*) FILTER (WHERE (x.expiry_status <> 'EXPIRED'::text)) AS expiring_lots,
            count(*) FILTER (WHERE (x.expiry_status = 'EXPIRED'::text)) AS expired_lots
           FROM inventory_api.expiring_lots x) e;
comment on view inventory_api.dashboard is 'One row of figures over the caller''s locations: items, locations, units on hand and reserved, stock value, open reorder alerts by severity, adjustments waiting for approval, expiring and expired lots, holds lapsing within the hour, low-stock levels (as of the last refresh) and the last maintenance run.';

create view inventory_api.inventory_metrics with (security_invoker=true) as WITH levels AS (
         SELECT count(*) FILTER (WHERE (i.deleted_at IS NULL)) AS levels,
            count(*) FILTER (WHERE ((i.deleted_at IS NULL) AND (a.available <= (0)::numeric))) AS out_of_stock,
            count(*) FILTER (WHERE ((i.deleted_at IS NULL) AND (p.item_id IS NOT NULL) AND (a.available <= p.reorder_point))) AS at_or_below_reorder_point,
            COALESCE(sum(s.on_hand), (0)::numeric) AS on_hand
           FROM ((((inventory.stock_levels s
             JOIN inventory.items i ON ((i.item_id = s.item_id)))
             LEFT JOIN inventory.stock_policies p ON (((p.item_id = s.item_id) AND (p.location_id = s.location_id))))
             LEFT JOIN ( SELECT r.item_id,
                    r.location_id,
                    sum((r.quantity - r.quantity_fulfilled)) AS units
                   FROM inventory.reservations r
                  WHERE ((r.status = 'ACTIVE'::text) AND (r.expires_at <= now()))
                  GROUP BY r.item_id, r.location_id) o ON (((o.item_id = s.item_id) AND (o.location_id = s.location_id))))
             CROSS JOIN LATERAL ( SELECT ((s.available + COALESCE(o.units, (0)::numeric)) -
                        CASE
                            WHEN s.track_lots THEN inventory.blocked_quantity(s.item_id, s.location_id)
                            ELSE (0)::numeric
                        END) AS available) a)
        ), moves AS (
         SELECT COALESCE((- sum(g.on_hand_delta) FILTER (WHERE (g.movement_type = 'SHIP'::inventory.movement_type))), (0)::numeric) AS shipped,
            COALESCE(sum(g.on_hand_delta), (0)::numeric) AS net_change
           FROM inventory.ledger g
          WHERE (g.created_at >= (now() - '365 days'::interval))
        ), waste AS (
         SELECT COALESCE((- sum(COALESCE(lm.on_hand_delta, g.on_hand_delta))), (0)::numeric) AS units,
            COALESCE((- sum((COALESCE(lm.on_hand_delta, g.on_hand_delta) * COALESCE(t.unit_cost, i.unit_cost)))), (0)::numeric) AS value
           FROM (((inventory.ledger g
             JOIN inventory.items i ON ((i.item_id = g.item_id)))
             LEFT JOIN inventory.lot_movements lm ON (((lm.movement_id = g.movement_id) AND (lm.on_hand_delta <> (0)::numeric))))
             LEFT JOIN inventory.lots t ON ((t.lot_id = lm.lot_id)))
          WHERE ((g.movement_type = 'ADJUST'::inventory.movement_type) AND (g.reason = 'expired'::text) AND (g.created_at >= (now() - '30 days'::interval)))
        ), holds AS (
         SELECT sum(r.quantity_fulfilled) FILTER (WHERE r.closed) AS units_shipped,
            sum(r.quantity) FILTER (WHERE r.closed) AS units_held,
            count(*) FILTER (WHERE r.lapsed) AS lapsed
           FROM ( SELECT r_1.quantity,
                    r_1.quantity_fulfilled,
                    ((r_1.status <> 'ACTIVE'::text) AND (r_1.closed_at >= (now() - '30 days'::interval))) AS closed,
                    ((r_1.status = ANY (ARRAY['ACTIVE'::text, 'EXPIRED'::text])) AND (r_1.expires_at <= now()) AND (r_1.expires_at > (now() - '1 day'::interval))) AS lapsed
                   FROM inventory.reservations r_1
                  WHERE ((r_1.closed_at >= (now() - '30 days'::interval)) OR ((r_1.status = 'ACTIVE'::text) AND (r_1.expires_at <= now())))) r
        ), counts AS (
         SELECT count(*) AS counts,
            count(*) FILTER (WHERE (c.counted_quantity = c.on_hand_at_count)) AS exact
           FROM inventory.cycle_counts c
          WHERE (c.counted_at >= (now() - '30 days'::interval))
        ), jobs AS (
         SELECT max(GREATEST(((now() - j.last_started_at) - d.every), '00:00:00'::interval)) FILTER (WHERE (j.last_started_at IS NOT NULL)) AS lag,
            count(*) FILTER (WHERE (j.last_started_at IS NULL)) AS never_run
           FROM (inventory.maintenance_jobs j
             CROSS JOIN LATERAL ( SELECT inventory.maintenance_default_interval(j.job) AS every) d)
          WHERE (d.every IS NOT NULL)
        )
 SELECT m.metric,
    m.value,
    m.unit,
    m.period,
    m.description
   FROM ((((((levels
     CROSS JOIN moves)
     CROSS JOIN waste)
     CROSS JOIN holds)
     CROSS JOIN counts)
     CROSS JOIN jobs)
     CROSS JOIN LATERAL ( VALUES ('stock_out_rate'::text,round(((levels.out_of_stock)::numeric / (NULLIF(levels.levels, 0))::numeric), 6),'ratio'::text,NULL::interval,'Share of stock levels (item and location) with nothing available'::text), ('out_of_stock_levels'::text,(levels.out_of_stock)::numeric,'count'::text,NULL::interval,'Stock levels with nothing available'::text), ('items_at_or_below_reorder_point'::text,(levels.at_or_below_reorder_point)::numeric,'count'::text,NULL::interval,'Stock levels with a stock policy whose available units are at or below the reorder point'::text), ('reservation_fill_rate'::text,round((holds.units_shipped / NULLIF(holds.units_held, (0)::numeric)), 6),'ratio'::text,'30 days'::interval,'Units shipped from the holds closed in the window / units they held'::text), ('inventory_turnover'::text,round((moves.shipped / NULLIF(((((2)::numeric * levels.on_hand) - moves.net_change) / (2)::numeric), (0)::numeric)), 6),'per year'::text,'365 days'::interval,'Units shipped in the window / average units on hand ((now + at the start of the window) / 2)'::text), ('inventory_accuracy'::text,round(((counts.exact)::numeric / (NULLIF(counts.counts, 0))::numeric), 6),'ratio'::text,'30 days'::interval,'Cycle counts in the window that found exactly the on hand recorded / all counts in the window'::text), ('lot_expiration_waste_units'::text,waste.units,'units'::text,'30 days'::interval,'Units written off as expired in the window'::text), ('lot_expiration_waste_value'::text,waste.value,'currency'::text,'30 days'::interval,'Value of the units written off as expired in the window, at the lot''s unit cost (else the item''s)'::text), ('holds_expired_last_day'::text,(holds.lapsed)::numeric,'count'::text,'1 day'::interval,'Holds that lapsed unfulfilled in the window (expired, or overdue and not swept yet)'::text), ('maintenance_lag_seconds'::text,round(EXTRACT(epoch FROM jobs.lag), 3),'seconds'::text,NULL::interval,'How far the most overdue maintenance job is behind its default schedule (0: none is late)'::text), ('maintenance_jobs_never_run'::text,(jobs.never_run)::numeric,'count'::text,NULL::interval,'Maintenance jobs of the default schedule that never ran'::text), ('audit_rows_unsealed'::text,(( SELECT inventory.unsealed_audit_rows() AS unsealed_audit_rows))::numeric,'count'::text,NULL::interval,'Committed audit rows not sealed onto the hash chain yet'::text)) m(metric, value, unit, period, description))
  WHERE ( SELECT inventory.has_any_role() AS has_any_role);
comment on view inventory_api.inventory_metrics is 'Operational metrics, one row each (pyinv metrics; Prometheus gauges pyinv_<metric>). Over the caller''s locations: stock_out_rate and out_of_stock_levels (available <= 0 among the levels of live items), items_at_or_below_reorder_point (levels with a policy, now), reservation_fill_rate (units shipped / units held, holds closed in the last 30 days; refused requests are not recorded anywhere), inventory_turnover (units shipped in 365 days / (on hand now + on hand 365 days ago, from the ledger) / 2), inventory_accuracy (counts of the last 30 days that matched the recorded on hand / all counts), lot_expiration_waste_units and _value (units written off with reason expired in 30 days, at the lot''s else the item''s unit cost), holds_expired_last_day (holds that lapsed in the last 24 hours, swept or not). About the whole database: maintenance_lag_seconds (the most any job that ran is overdue against pyinv maintain''s default interval, 0 when none is), maintenance_jobs_never_run, audit_rows_unsealed. No rows for a caller without a business role.';

create view inventory_api.movement_summary with (security_invoker=true) as SELECT i.sku,
    l.code AS location,
    g.received,
    g.shipped,
    g.returned,
    g.adjusted,
    g.transferred_in,
    g.transferred_out,
    g.net_change,
    g.movements,
    g.first_movement_at,
    g.last_movement_at
   FROM ((( SELECT g_1.item_id,
            g_1.location_id,
            COALESCE(sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'RECEIVE'::inventory.movement_type)), (0)::numeric) AS received,
            COALESCE((- sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'SHIP'::inventory.movement_type))), (0)::numeric) AS shipped,
            COALESCE(sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'RETURN'::inventory.movement_type)), (0)::numeric) AS returned,
            COALESCE(sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'ADJUST'::inventory.movement_type)), (0)::numeric) AS adjusted,
            COALESCE(sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'TRANSFER_IN'::inventory.movement_type)), (0)::numeric) AS transferred_in,
            COALESCE((- sum(g_1.on_hand_delta) FILTER (WHERE (g_1.movement_type = 'TRANSFER_OUT'::inventory.movement_type))), (0)::numeric) AS transferred_out,
            sum(g_1.on_hand_delta) AS net_change,
            count(*) AS movements,
            min(g_1.created_at) AS first_movement_at,
            max(g_1.created_at) AS last_movement_at
           FROM inventory.ledger g_1
          WHERE (g_1.created_at >= (now() - '90 days'::interval))
          GROUP BY g_1.item_id, g_1.location_id) g
     JOIN inventory.items i ON ((i.item_id = g.item_id)))
     JOIN inventory.locations l ON ((l.location_id = g.location_id)));
comment on view inventory_api.movement_summary is 'Movements of the last 90 days per item and location: units received, shipped, returned, adjusted (net, signed), transferred in and out, and the net change of on_hand (received - shipped + returned + adjusted + transferred_in - transferred_out). Levels without a movement in the window are left out.';

create view inventory_api.reorder_alerts with (security_invoker=true) as SELECT a.alert_id,
    i.sku,
    l.code AS location,
    a.severity,
    a.status,
    s.available,
    a.available_at_open,
    a.reorder_point,
    a.safety_stock,
    a.opened_at,
    a.escalated_at,
    a.acknowledged_by,
    a.acknowledged_at,
    a.closed_by,
    a.closed_at,
    a.note
   FROM (((inventory.reorder_alerts a
     JOIN inventory.items i ON ((i.item_id = a.item_id)))
     JOIN inventory.locations l ON ((l.location_id = a.location_id)))
     LEFT JOIN inventory.stock_levels s ON (((s.item_id = a.item_id) AND (s.location_id = a.location_id))));
comment on view inventory_api.reorder_alerts is 'Low-stock alerts (OPEN, ACKNOWLEDGED, RESOLVED, DISMISSED) with the current available quantity.';

create view inventory_api.reorder_recommendations with (security_invoker=true) as SELECT i.sku,
    l.code AS location,
    s.on_hand,
    s.reserved,
    s.available,
    p.reorder_point,
    p.safety_stock,
    p.reorder_quantity,
    p.max_stock_level,
    p.lead_time_days,
        CASE
            WHEN (s.available <= p.safety_stock) THEN 'CRITICAL'::text
            WHEN (s.available <= p.reorder_point) THEN 'REORDER'::text
            ELSE 'NORMAL'::text
        END AS status,
        CASE
            WHEN (s.available > p.reorder_point) THEN (0)::numeric
            WHEN (p.reorder_quantity IS NOT NULL) THEN p.reorder_quantity
            WHEN (p.max_stock_level IS NOT NULL) THEN (p.max_stock_level - s.available)
            ELSE NULL::numeric
        END AS suggested_order_quantity,
    a.alert_id,
    a.status AS alert_status,
    s.last_counted_at,
    s.last_counted_by
   FROM ((((inventory.stock_policies p
     JOIN inventory.stock_levels s ON (((s.item_id = p.item_id) AND (s.location_id = p.location_id))))
     JOIN inventory.items i ON ((i.item_id = p.item_id)))
     JOIN inventory.locations l ON ((l.location_id = p.location_id)))
     LEFT JOIN inventory.reorder_alerts a ON (((a.item_id = p.item_id) AND (a.location_id = p.location_id) AND (a.status = ANY (ARRAY['OPEN'::text, 'ACKNOWLEDGED'::text])))))
  WHERE (i.deleted_at IS NULL);
comment on view inventory_api.reorder_recommendations is 'Every level with a stock policy: CRITICAL (available <= safety stock), REORDER (<= reorder point) or NORMAL, with a suggested order quantity (the reorder quantity, else up to the maximum level; null when the policy gives neither) and the open alert.';

create view inventory_api.stock_levels with (security_invoker=true) as SELECT i.sku,
    l.code AS location,
    s.on_hand,
    s.reserved,
    ((s.available + o.overdue) - b.blocked) AS available,
    o.overdue AS expired_unreleased,
    i.status,
    s.version,
    s.updated_at,
    b.blocked
   FROM ((((inventory.stock_levels s
     JOIN inventory.items i ON ((i.item_id = s.item_id)))
     JOIN inventory.locations l ON ((l.location_id = s.location_id)))
     CROSS JOIN LATERAL ( SELECT inventory.overdue_quantity(s.item_id, s.location_id) AS overdue) o)
     CROSS JOIN LATERAL ( SELECT
                CASE
                    WHEN s.track_lots THEN inventory.blocked_quantity(s.item_id, s.location_id)
                    ELSE (0)::numeric
                END AS blocked) b)
  WHERE (i.deleted_at IS NULL);
comment on view inventory_api.stock_levels is 'Stock per item and location. available already counts overdue holds as released (expired_unreleased of them are not swept yet) and leaves out units in lots that may not be sold (blocked: expired, awaiting or failed QC, quarantined), so available = on_hand - reserved + expired_unreleased - blocked.';

drop function if exists inventory.set_hot_mode(sku text, location text, buckets integer);

drop function if exists inventory.unpark_holds(reservation_ids bigint[]);

drop function if exists inventory.lock_levels(item_ids bigint[], location_ids bigint[], gather boolean);

drop function if exists inventory.rebalance_level(item_id bigint, location_id bigint, take numeric, gather boolean);

drop function if exists inventory.take_from_bucket(item_id bigint, location_id bigint, quantity numeric, movement inventory.movement, bucket smallint, wait boolean);

drop function if exists inventory.reserve_many(requests jsonb);

drop function if exists inventory.reserve_many_ok(ordinal integer, reservation jsonb);

drop function if exists inventory.reserve_many_error(line inventory.reserve_many_line, code text, message text, detail jsonb);

drop function if exists inventory.reserve_many_check(sku text, quantity numeric, order_ref text, location text, expires_in interval, idempotency_key text, OUT item_id bigint, OUT status text, OUT track_lots boolean, OUT location_id bigint, OUT expires_at timestamp with time zone);

drop function if exists inventory.parked_units(item_id bigint, location_id bigint);

drop function if exists inventory.record_hot_bucket_change();
-- END functions and views generated by tools/schema_diff.py

drop table inventory.hot_buckets;
alter table inventory.stock_levels drop column hot_buckets;
alter table inventory.ledger drop column bucket;
alter table inventory.reservations drop column bucket;
drop type inventory_api.hot_mode;
drop type inventory_api.reserve_many_result;
drop type inventory.reserve_many_line;
comment on type inventory.movement_type is 'Kinds of stock movement recorded in the ledger.';

-- The restored views' columns.
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
comment on column inventory_api.stock_levels.sku is 'SKU of the item.';
comment on column inventory_api.stock_levels.location is 'Code of the location.';
comment on column inventory_api.stock_levels.available is 'Units a new hold may take now: on_hand - reserved + expired_unreleased (overdue holds already count as released).';
comment on column inventory_api.stock_levels.expired_unreleased is 'Units of overdue holds not yet released by expire_reservations (they no longer count).';
comment on column inventory_api.reorder_recommendations.status is 'CRITICAL (available <= safety stock), REORDER (available <= reorder point) or NORMAL.';
comment on column inventory_api.reorder_recommendations.suggested_order_quantity is 'Units to order: the reorder quantity, else up to the maximum level; 0 when NORMAL; null when the policy gives neither.';
comment on column inventory_api.reorder_recommendations.alert_status is 'Status of the level''s open (OPEN or ACKNOWLEDGED) reorder alert, if any.';
comment on column inventory_api.stock_levels.blocked is 'Units on hand in lots that may not be sold (expired, awaiting or failed QC, quarantined) and no hold takes: not available.';
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
