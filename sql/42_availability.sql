-- Layer 4, functions by concern: what "available" means at a stock level, its one home. The level
-- row's on_hand - reserved, plus the units of overdue holds not swept yet (expiry is lazy: they count
-- as released), plus the free units parked in a hot level's buckets (the row counts them as
-- reserved), less, for a lot-tracked item, the units in lots that may not be sold.

-- Units of overdue holds at a level that the sweeper has not released yet: they no longer count
-- (expiry is lazy), so "available" everywhere means on_hand - reserved + these. The one home of
-- that meaning: effective_available, shortfall and the inventory_api.stock_levels view use it.
create function inventory.overdue_quantity(item_id bigint, location_id bigint) returns numeric
language sql stable parallel safe
set search_path = ''
begin atomic
  select coalesce(pg_catalog.sum(r.quantity - r.quantity_fulfilled), 0) from inventory.reservations r
   where r.item_id = overdue_quantity.item_id and r.location_id = overdue_quantity.location_id
     and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now();
end;
comment on function inventory.overdue_quantity(bigint, bigint) is 'Open units of a level''s overdue holds not yet swept (they count as released).';

-- Free units parked in a level's buckets: the correction from the level row's reserved (which
-- counts them) to the truth, used wherever "available" is computed.
create function inventory.parked_units(item_id bigint, location_id bigint) returns numeric
language sql stable parallel safe
set search_path = ''
begin atomic
  select coalesce(pg_catalog.sum(b.free), 0) from inventory.hot_buckets b
   where b.item_id = parked_units.item_id and b.location_id = parked_units.location_id;
end;
comment on function inventory.parked_units(bigint, bigint) is 'Free units parked in a hot level''s buckets (counted in the level row''s reserved, available in truth).';

-- Available units at a level, counting overdue holds as released (they are, lazily).
create function inventory.effective_available(item_id bigint, location_id bigint) returns numeric
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
create function inventory.shortfall(item_id bigint, location_id bigint, sku text, location text,
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
