-- Layer 4, functions by concern: reserve_many, many independent orders' holds in one call.
--
-- Contract. reserve_many(requests) gives each request exactly the outcome reserve_stock would have
-- given (the same reservation, or the same SQLSTATE, HINT code, message and DETAIL) had the requests
-- been reserve_stock calls made one after another, in array order, each in its own transaction, on
-- the database as it is once this call holds its locks. A request that fails changes nothing; the
-- others go on. This is what lets a coalescer gather concurrent reserve_stock callers into one call.
--
-- Design decisions (and why):
--  1. Validation mirrors reserve_stock step by step (reserve_many_check: SKU, quantity, order_ref,
--     location, authorisation, lot sellability date, expiry, idempotency key text) and raises through
--     the same helpers; reserve_many catches each request's error in its own subtransaction (read-only,
--     so it takes no transaction id) and keeps it as that request's outcome. Errors that are not in the
--     catalogue (a bug, a cancelled statement) abort the whole call.
--  2. Lock order: idempotency keys first, claimed in key order (every keyed pyinv call claims its one key
--     before it locks any level; reserve_many is the only call that claims several, hence the order),
--     then stock levels in (item_id, location_id) order, then (lazy expiry) their holds with SKIP LOCKED,
--     then the holds' inserts and the levels' UPDATE (reorder alerts last, from the trigger). So two
--     reserve_many calls, or reserve_many and any other pyinv call, cannot deadlock
--     (tests/test_lock_order.py, tests/test_reserve_many.py).
--  3. Keys: every distinct new key of a valid request is claimed up front (INSERT ... ON CONFLICT DO
--     NOTHING, which waits for a concurrent claimant like claim_idempotency_key does). A key stored
--     before the call replays (or raises IDEMPOTENCY_CONFLICT) exactly as claim_idempotency_key does,
--     with operation 'reserve_stock' and reserve_stock's request JSON, so reserve_stock and
--     reserve_many retries are interchangeable. Within the call, a key belongs to the first request
--     using it that succeeds: later requests with it replay that result (or conflict); a request that
--     fails does not keep the key (reserve_stock would have rolled it back), so the next one using it
--     is new. At the end, kept keys get their request and response; keys no request kept are deleted
--     (rows this transaction inserted: as if they had never been claimed).
--  4. Stock: after locking, each level's on_hand, reserved and overdue units (holds past expiry not yet
--     swept) are read once, and its requests are walked in array order as reserve_stock would see them:
--     accepted while on_hand - reserved covers them; when only the overdue units would cover one, the
--     level's overdue holds are expired (once, as hold_units does) and it is accepted; otherwise
--     INSUFFICIENT_STOCK with the DETAIL shortfall() would give at that point (available = on_hand -
--     reserved + overdue). No false out-of-stock, no oversell.
--  5. Writes: lazy expiry where the walk needed it (expire_overdue_at_level, its own EXPIRE movement),
--     one INSERT of every hold, then ONE UPDATE statement touching each level once, with a condition
--     that cannot fail under the locks (it raises an internal error rather than oversell if it does).
--  6. Ledger: one RESERVE movement per level per call (the stock_levels trigger writes it). A level
--     that gets one hold is described exactly as reserve_stock describes it (reference = order_ref,
--     idempotency_key, reservation_id). A level that gets several holds names them in metadata:
--     {"reservation_ids": [...], "order_refs": [...], "idempotency_keys": [...]} (aligned, ascending
--     reservation id), reference = the order_ref when they all share it, reservation_id and
--     idempotency_key null - as apply_hold_moves does for SHIP/RELEASE/EXPIRE of several holds. So each
--     hold and key is still named by the ledger row that recorded it, and every verify_inventory check
--     (reserved = ledger sums = open quantity of active holds, chain continuity) holds.
--  7. Lot-tracked items are refused per request (INVALID_ARGUMENT, argument requests[i].sku, problem
--     'lot-tracked item: reserve it with reserve_stock'), after the key check so that a retry of a
--     reserve_stock key still replays. FEFO allocation locks lots before levels (35_lots.sql), which
--     does not fit this call's lock order; a coalescer must send lot-tracked items to reserve_stock.
--  8. Requests carry order_ref, sku, quantity, location (default 'main'), expires_in (interval text,
--     default the configured TTL) and idempotency_key; reference_type is 'order' and notes and
--     min_shelf_life are null (a coalescer sends calls using them to reserve_stock). Any other key, a
--     value of the wrong JSON type or an expires_in that is not an interval is that request's
--     INVALID_ARGUMENT (argument requests[i] / requests[i].expires_in).
--     Cost: one read-only subtransaction per request for its checks (no transaction id, so no subxid
--     overflow). Measured on the shared 2-core dev machine: 1,000 one-unit requests over two levels
--     take ~0.14 s in one call against ~1 s for 1,000 reserve_stock round trips; 10,000 take ~1.9 s.
--  9. The batch itself: requests must be a JSON array of 1 to 10000 elements; otherwise the whole call
--     raises INVALID_ARGUMENT and changes nothing.
-- 10. A caller who holds the operator role for no location at all gets PERMISSION_DENIED for the whole
--     call (before the requests are looked at), instead of one PERMISSION_DENIED or not-found per request.
--     Everyone else is authorised per request, per location, exactly as reserve_stock.
--     A coalescer may only batch requests of one acting user (one session identity): the actor of every
--     hold and key is the caller's.

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
