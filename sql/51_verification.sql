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
