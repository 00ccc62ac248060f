-- Layer 4, functions by concern: adjustments with approval, and cycle counts.
--
-- Cycle counts racing with stock movement: a count is compared with on_hand while the level's row
-- is locked, so the difference is exact for that instant. A difference that needs approval is
-- stored as a PENDING adjustment holding the DELTA (counted - on_hand at count time) and the on_hand
-- it was compared with; approval applies that delta to whatever on_hand is then (movements in
-- between were real and are in both the shelf and the books), re-checking on_hand + delta >= reserved.
-- A newer count of the same level supersedes older pending count adjustments (status SUPERSEDED),
-- because it measures the whole discrepancy again; a difference is therefore never applied twice.
-- Lock order (43_holds.sql): the level, then its adjustment rows.

-- The approval rule, in one place: an adjustment needs an admin's approval when it moves more than
-- the reason's threshold and it removes stock (whatever the reason) or the reason asks for approval.
create function inventory.adjustment_needs_approval(reason inventory.reason_codes, quantity_delta numeric)
returns boolean
language sql immutable parallel safe
set search_path = ''
begin atomic
  select pg_catalog.abs(adjustment_needs_approval.quantity_delta) > (adjustment_needs_approval.reason).approval_threshold
         and (adjustment_needs_approval.quantity_delta < 0 or (adjustment_needs_approval.reason).requires_approval);
end;

comment on function inventory.adjustment_needs_approval(inventory.reason_codes, numeric) is 'Whether an adjustment of quantity_delta with this reason needs approval: above the threshold, every removal and additions of reasons that require approval.';

create function inventory.adjustment_result(adjustment_id bigint) returns inventory_api.adjustment
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

-- Creates or changes a reason code (unscoped admins). Every change is audited (reason_codes is an
-- audited table). Returns the code.
create function inventory.set_reason_code(code text, requires_approval boolean, approval_threshold numeric,
                                          direction text, description text)
returns text
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_existing inventory.reason_codes;
begin
  perform inventory.authorize('admin');
  if set_reason_code.code is null or set_reason_code.code !~ '^[a-z][a-z0-9_]{0,39}$' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'code must be 1-40 lower-case letters, digits or _, starting with a letter',
      pg_catalog.jsonb_build_object('argument', 'code', 'problem', 'malformed'));
  end if;
  if set_reason_code.requires_approval is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'requires_approval must be true or false',
      pg_catalog.jsonb_build_object('argument', 'requires_approval', 'problem', 'missing'));
  end if;
  if set_reason_code.approval_threshold is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'approval_threshold is required',
      pg_catalog.jsonb_build_object('argument', 'approval_threshold', 'value', null));
  end if;
  perform inventory.check_level_quantity(set_reason_code.approval_threshold, 'approval_threshold');
  if set_reason_code.direction is not null and set_reason_code.direction not in ('add', 'remove', 'both') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'direction must be add, remove or both',
      pg_catalog.jsonb_build_object('argument', 'direction', 'problem', 'not a direction'));
  end if;
  perform inventory.check_text(set_reason_code.description, 'description', 200, required => false);
  select * into v_existing from inventory.reason_codes r where r.reason_code = set_reason_code.code for update;
  if not found then
    if set_reason_code.direction is null or set_reason_code.description is null then
      perform inventory.raise_error('INVALID_ARGUMENT', 'a new reason code needs a direction and a description',
        pg_catalog.jsonb_build_object('argument', case when set_reason_code.direction is null then 'direction'
                                                       else 'description' end, 'problem', 'missing'));
    end if;
    insert into inventory.reason_codes (reason_code, description, direction, requires_approval, approval_threshold,
                                        updated_by)
    values (set_reason_code.code, set_reason_code.description, set_reason_code.direction,
            set_reason_code.requires_approval, set_reason_code.approval_threshold, inventory.current_actor())
    on conflict do nothing;
    if not found then
      perform inventory.raise_error('ALREADY_EXISTS', pg_catalog.format('reason code %s was created concurrently',
                                                                        set_reason_code.code),
        pg_catalog.jsonb_build_object('code', set_reason_code.code));
    end if;
  elsif (v_existing.requires_approval, v_existing.approval_threshold, v_existing.direction, v_existing.description)
        is distinct from (set_reason_code.requires_approval, set_reason_code.approval_threshold,
                          coalesce(set_reason_code.direction, v_existing.direction),
                          coalesce(set_reason_code.description, v_existing.description)) then
    update inventory.reason_codes r
       set requires_approval = set_reason_code.requires_approval,
           approval_threshold = set_reason_code.approval_threshold,
           direction = coalesce(set_reason_code.direction, r.direction),
           description = coalesce(set_reason_code.description, r.description),
           updated_by = inventory.current_actor(), updated_at = pg_catalog.now()
     where r.reason_code = set_reason_code.code;
  end if;
  return set_reason_code.code;
end
$$;

comment on function inventory.set_reason_code(text, boolean, numeric, text, text) is 'Implements inventory_api.set_reason_code.';

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

create function inventory.approve_adjustment(adjustment_id bigint, decision text, note text)
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
