-- Layer 4, functions by concern: reporting. The materialized view of levels at or below their reorder
-- point (private: a materialized view cannot have row level security, so API roles never read it
-- directly; inventory_api.low_stock_items reads it through low_stock_rows, which keeps only the
-- caller's locations), its refresh, and the stock of a level at a past moment from the ledger.

-- Levels with a stock policy whose available units are at or below the reorder point, as of the last
-- refresh. available is what inventory_api.stock_levels shows (effective_available: overdue holds count
-- as released, units in lots that may not be sold do not count). stock_status, first match wins:
--   OUT_OF_STOCK  available <= 0
--   CRITICAL      available <= safety_stock
--   LOW           available <= reorder_point
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
