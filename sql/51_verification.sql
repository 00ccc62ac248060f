-- Layer 4, functions by concern: read-only checks. Can this be reserved now, and do the books balance.

create function inventory.validate_stock(sku text, quantity numeric, location text)
returns inventory_api.stock_check
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_item_id bigint;
  v_status text;
  v_location_id bigint;
  v_available numeric;
begin
  select l.location_id into v_location_id from inventory.locations l where l.code = validate_stock.location;
  if v_location_id is null then
    return row(false, null, 'LOCATION_NOT_FOUND')::inventory_api.stock_check;
  end if;
  perform inventory.authorize('viewer', v_location_id);
  if not inventory.quantity_is_valid(validate_stock.quantity) then
    return row(false, null, 'INVALID_QUANTITY')::inventory_api.stock_check;
  end if;
  select i.item_id, i.status into v_item_id, v_status
    from inventory.items i where i.sku = validate_stock.sku and i.deleted_at is null;
  if v_item_id is null then
    return row(false, null, 'PRODUCT_NOT_FOUND')::inventory_api.stock_check;
  end if;
  v_available := coalesce(inventory.effective_available(v_item_id, v_location_id), 0);
  if v_status <> 'active' then
    return row(false, v_available, 'PRODUCT_UNAVAILABLE')::inventory_api.stock_check;
  end if;
  if v_available < validate_stock.quantity then
    return row(false, v_available, 'INSUFFICIENT_STOCK')::inventory_api.stock_check;
  end if;
  return row(true, v_available, null)::inventory_api.stock_check;
end
$$;

comment on function inventory.validate_stock(text, numeric, text) is 'Implements inventory_api.validate_stock.';

-- Every broken invariant, unfiltered (no authorization: internal).
create function inventory.inventory_violations()
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

create function inventory.verify_inventory(anchor jsonb)
returns setof inventory_api.invariant_violation
language plpgsql stable security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('viewer');
  return query
    select * from inventory.inventory_violations()
    union all
    select 'ledger_matches_anchor', null::text, p.location, null::numeric, null::numeric, p.problem
      from inventory.anchor_problems(verify_inventory.anchor, 'ledger') p;
end
$$;

comment on function inventory.verify_inventory(jsonb) is 'Implements inventory_api.verify_inventory.';
