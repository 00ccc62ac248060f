-- Rolls 0003_hardening back to 0002_hot_path. The inventory_user role and the conversion of logins
-- narrowed by user_roles rows are kept (roles belong to the cluster), and so is a 'found' reason code
-- that adjustments use. Grants of the restored objects are re-asserted at the end.
set local role inventory_owner;

-- Issue 10 first: the triggers and constraints calling functions that are about to be dropped.
drop trigger stock_levels_record_change on inventory.stock_levels;
drop trigger reservations_audit on inventory.reservations;
drop trigger idempotency_keys_audit on inventory.idempotency_keys;
alter table inventory.stock_levels drop constraint stock_levels_quantities_check;
alter table inventory.ledger drop constraint ledger_arithmetic_check;
alter table inventory.reservations drop constraint reservations_state_check;

alter table inventory.items
  drop constraint items_name_check,
  add constraint items_name_check
    check (pg_catalog.length(name) between 1 and 200 and name = pg_catalog.btrim(name) and name !~ '[[:cntrl:]]');
alter table inventory.locations
  drop constraint locations_name_check,
  add constraint locations_name_check
    check (pg_catalog.length(name) between 1 and 200 and name = pg_catalog.btrim(name) and name !~ '[[:cntrl:]]');

drop function inventory_api.schema_version();

drop function inventory.schema_version();

drop function inventory_api.set_reason_code(code text, requires_approval boolean, approval_threshold numeric, direction text, description text);

drop function inventory_api.audit_anchor(wait_seconds numeric);

drop function inventory_api.verify_audit_chain(anchor jsonb);

drop function inventory_api.verify_inventory(anchor jsonb);

drop function inventory.verify_audit_chain(anchor jsonb);

drop function inventory.verify_inventory(anchor jsonb);

drop view inventory_api.reason_codes;

create view inventory_api.reason_codes with (security_invoker=true) as SELECT reason_code,
    description,
    requires_approval,
    approval_threshold
   FROM inventory.reason_codes r;

comment on view inventory_api.reason_codes is 'Adjustment reasons: an adjustment needs approval when requires_approval and |quantity_delta| > approval_threshold.';

drop view inventory_api.reservations;

create view inventory_api.reservations with (security_invoker=true) as SELECT r.reservation_id,
    r.order_ref,
    i.sku,
    l.code AS location,
    r.quantity,
    r.quantity_fulfilled,
        CASE
            WHEN (r.status = 'ACTIVE'::text) THEN (r.quantity - r.quantity_fulfilled)
            ELSE (0)::numeric
        END AS quantity_open,
    r.status,
    ((r.status = 'ACTIVE'::text) AND (r.expires_at <= now())) AS is_overdue,
    r.expires_at,
    r.created_by,
    r.created_at,
    r.closed_at
   FROM ((inventory.reservations r
     JOIN inventory.items i ON ((i.item_id = r.item_id)))
     JOIN inventory.locations l ON ((l.location_id = r.location_id)));

comment on view inventory_api.reservations is 'Holds of stock for orders. is_overdue: still ACTIVE but past expires_at, so it no longer counts and cannot be fulfilled.';

drop view inventory_api.stock_levels;

create view inventory_api.stock_levels with (security_invoker=true) as SELECT i.sku,
    l.code AS location,
    s.on_hand,
    s.reserved,
    (s.available + COALESCE(o.overdue, (0)::numeric)) AS available,
    COALESCE(o.overdue, (0)::numeric) AS expired_unreleased,
    i.status,
    s.version,
    s.updated_at
   FROM (((inventory.stock_levels s
     JOIN inventory.items i ON ((i.item_id = s.item_id)))
     JOIN inventory.locations l ON ((l.location_id = s.location_id)))
     LEFT JOIN LATERAL ( SELECT sum((r.quantity - r.quantity_fulfilled)) AS overdue
           FROM inventory.reservations r
          WHERE ((r.item_id = s.item_id) AND (r.location_id = s.location_id) AND (r.status = 'ACTIVE'::text) AND (r.expires_at <= now()))) o ON (true))
  WHERE (i.deleted_at IS NULL);

comment on view inventory_api.stock_levels is 'Stock per item and location. available already counts overdue holds as released (expired_unreleased of them are not swept yet), so available = on_hand - reserved + expired_unreleased.';

CREATE OR REPLACE FUNCTION inventory.add_on_hand(item_id bigint, location_id bigint, quantity numeric, movement jsonb)
 RETURNS inventory.stock_levels
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_level inventory.stock_levels;
begin
  -- on_hand is numeric(19, 4): refuse, with a catalogued error, a receipt that would not fit.
  if exists (select from inventory.stock_levels s
              where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id
                and s.on_hand + add_on_hand.quantity >= 1000000000000000) then
    perform inventory.raise_error('INVALID_QUANTITY',
      'on hand would exceed the largest quantity a stock level holds (1e15)',
      pg_catalog.jsonb_build_object('argument', 'quantity', 'value', add_on_hand.quantity::text,
                                    'problem', 'on_hand would overflow'));
  end if;
  update inventory.stock_levels s
     set on_hand = s.on_hand + add_on_hand.quantity, pending_movement = add_on_hand.movement
   where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id
  returning * into v_level;
  if not found then
    insert into inventory.stock_levels (item_id, location_id)
    values (add_on_hand.item_id, add_on_hand.location_id)
    on conflict do nothing;
    update inventory.stock_levels s
       set on_hand = s.on_hand + add_on_hand.quantity, pending_movement = add_on_hand.movement
     where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id
    returning * into v_level;
  end if;
  return v_level;
end
$function$
;

comment on function inventory.add_on_hand(bigint,bigint,numeric,jsonb) is 'Adds units on hand at one level (created empty on first use), recording the described movement.';

CREATE OR REPLACE FUNCTION inventory.apply_hold_moves(moves inventory.hold_move[], reference text, reason text, idempotency_key text)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_type text;
begin
  perform from inventory.stock_levels s
    join (select distinct m.item_id, m.location_id from pg_catalog.unnest(apply_hold_moves.moves) m) l
      on s.item_id = l.item_id and s.location_id = l.location_id
   order by s.item_id, s.location_id
     for update of s;

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

  -- One statement per movement type: a level may get both a SHIP and a RELEASE in one call, and
  -- a row can be updated only once per statement. Each becomes its own ledger movement.
  foreach v_type in array array['SHIP', 'RELEASE', 'EXPIRE'] loop
    update inventory.stock_levels s
       set on_hand = s.on_hand - case when v_type = 'SHIP' then g.quantity else 0 end,
           reserved = s.reserved - g.quantity,
           pending_movement = pg_catalog.jsonb_build_object(
             'type', v_type,
             'reason', coalesce(apply_hold_moves.reason, case v_type
                                  when 'SHIP' then 'order shipped'
                                  when 'RELEASE' then 'reservation cancelled'
                                  else 'reservation expired' end),
             'reference', apply_hold_moves.reference,
             'idempotency_key', apply_hold_moves.idempotency_key,
             'reservation_id', case when pg_catalog.cardinality(g.reservation_ids) = 1 then g.reservation_ids[1] end,
             'metadata', pg_catalog.jsonb_build_object('reservation_ids', pg_catalog.to_jsonb(g.reservation_ids)))
      from (select m.item_id, m.location_id, pg_catalog.sum(m.quantity) as quantity,
                   pg_catalog.array_agg(m.reservation_id order by m.reservation_id) as reservation_ids
              from pg_catalog.unnest(apply_hold_moves.moves) m
             where m.quantity > 0 and m.movement_type = v_type
             group by m.item_id, m.location_id) g
     where s.item_id = g.item_id and s.location_id = g.location_id;
  end loop;
end
$function$
;

comment on function inventory.apply_hold_moves(inventory.hold_move[],text,text,text) is 'Ships, releases or expires holds set-wise and records one ledger movement per level and type.';

CREATE OR REPLACE FUNCTION inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric, movement jsonb, sku text, location text)
 RETURNS inventory.ledger
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_level inventory.stock_levels;
  v_entry inventory.ledger;
begin
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
     and s.on_hand + apply_on_hand_delta.delta >= s.reserved;
  if not found then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('removing %s of %s at %s would leave less on hand than is reserved',
                        -apply_on_hand_delta.delta, apply_on_hand_delta.sku, apply_on_hand_delta.location),
      inventory.shortfall(apply_on_hand_delta.item_id, apply_on_hand_delta.location_id, apply_on_hand_delta.sku,
                          apply_on_hand_delta.location, -apply_on_hand_delta.delta));
  end if;
  select * into v_entry from inventory.ledger g
   where g.movement_id = pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
  return v_entry;
end
$function$
;

comment on function inventory.apply_on_hand_delta(bigint,bigint,numeric,jsonb,text,text) is 'Applies a delta to on_hand through the ledger; raises INSUFFICIENT_STOCK when on_hand would fall below reserved.';

CREATE OR REPLACE FUNCTION inventory.approve_adjustment(adjustment_id bigint, decision text, note text)
 RETURNS inventory_api.adjustment
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_adjustment inventory.adjustments;
  v_actor text := inventory.current_actor();
  v_entry inventory.ledger;
  v_sku text;
  v_location text;
begin
  if approve_adjustment.decision is null or approve_adjustment.decision not in ('approved', 'rejected') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'decision must be approved or rejected',
      pg_catalog.jsonb_build_object('argument', 'decision', 'problem', 'not a decision'));
  end if;
  perform inventory.check_text(approve_adjustment.note, 'note', 500, required => false);
  -- Adjustment rows are locked before stock levels (the global lock order).
  select * into v_adjustment from inventory.adjustments a
   where a.adjustment_id = approve_adjustment.adjustment_id
     for update;
  if not found then
    if not inventory.holds_role_somewhere('admin') then
      perform inventory.authorize('admin');
    end if;
    perform inventory.raise_error('ADJUSTMENT_NOT_FOUND',
      pg_catalog.format('no adjustment with id %s', approve_adjustment.adjustment_id),
      pg_catalog.jsonb_build_object('adjustment_id', approve_adjustment.adjustment_id));
  end if;
  perform inventory.authorize('admin', v_adjustment.location_id);
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
    v_entry := inventory.apply_on_hand_delta(v_adjustment.item_id, v_adjustment.location_id,
      v_adjustment.quantity_delta,
      pg_catalog.jsonb_build_object('type', 'ADJUST', 'reason', v_adjustment.reason_code,
        'reference', 'adjustment:' || v_adjustment.adjustment_id,
        'metadata', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
          'adjustment_id', v_adjustment.adjustment_id, 'adjustment_type', v_adjustment.adjustment_type,
          'description', v_adjustment.description, 'requested_by', v_adjustment.requested_by,
          'approved_by', v_actor, 'count_id', v_adjustment.count_id))),
      v_sku, v_location);
  end if;
  update inventory.adjustments a
     set status = case when approve_adjustment.decision = 'approved' then 'APPROVED' else 'REJECTED' end,
         decided_by = v_actor, decided_at = pg_catalog.now(), decision_note = approve_adjustment.note,
         on_hand_at_apply = v_entry.on_hand_before, movement_id = v_entry.movement_id
   where a.adjustment_id = v_adjustment.adjustment_id;
  return inventory.adjustment_result(v_adjustment.adjustment_id);
end
$function$
;

comment on function inventory.approve_adjustment(bigint,text,text) is 'Implements inventory_api.approve_adjustment.';

CREATE OR REPLACE FUNCTION inventory.audit_chain_breaks()
 RETURNS SETOF inventory_api.chain_break
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select * from (
    select c.seq, c.audit_id,
           case
             when c.seq <> pg_catalog.row_number() over w then 'sequence gap before this link'
             when a.audit_id is null then 'audit row deleted'
             when c.prev_hash is distinct from pg_catalog.lag(c.hash) over w then 'prev_hash does not match the previous link'
             when c.hash <> pg_catalog.sha256(coalesce(c.prev_hash, ''::bytea) || inventory.audit_row_bytes(a))
               then 'audit row changed after sealing'
           end as problem
      from inventory.audit_chain c
      left join inventory.audit_log a on a.audit_id = c.audit_id
    window w as (order by c.seq)
  ) links
   where links.problem is not null
   order by links.seq
   limit 1
$function$
;

comment on function inventory.audit_chain_breaks() is 'The first broken link of the audit chain, if any (internal).';

CREATE OR REPLACE FUNCTION inventory.audit_context(OUT actor text, OUT db_role text, OUT request_path text, OUT request_id text)
 RETURNS record
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  audit_context.actor := inventory.current_actor();
  audit_context.db_role := inventory.acting_db_role();
  audit_context.request_path := nullif(pg_catalog.current_setting('request.path', true), '');
  if inventory.is_gateway_session() then
    audit_context.request_id :=
      nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb ->> 'x-request-id';
  end if;
end
$function$
;

comment on function inventory.audit_context() is 'Acting user, database role, PostgREST request path and x-request-id of the current statement.';

CREATE OR REPLACE FUNCTION inventory.audit_horizon()
 RETURNS xid8
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_snapshot pg_catalog.pg_snapshot := pg_catalog.pg_current_snapshot();
  v_horizon xid8;
begin
  select min(x) into v_horizon
    from pg_catalog.pg_snapshot_xip(v_snapshot) as x
   where pg_catalog.xid(x) not in (
           select l.transactionid
             from pg_catalog.pg_locks l
             join pg_catalog.pg_stat_activity a on a.pid = l.pid
            where l.locktype = 'transactionid' and l.granted and l.transactionid is not null
              and a.datid is distinct from (select d.oid from pg_catalog.pg_database d
                                             where d.datname = pg_catalog.current_database()));
  return coalesce(v_horizon, pg_catalog.pg_snapshot_xmax(v_snapshot));
end
$function$
;

comment on function inventory.audit_horizon() is 'Transaction id below which no audit row can still appear in this database.';

CREATE OR REPLACE FUNCTION inventory.audit_table(table_name text, audit_updates boolean DEFAULT true)
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_key text[];
begin
  select pg_catalog.array_agg(a.attname::text order by k.n) into v_key
    from pg_catalog.pg_index i
    cross join pg_catalog.unnest(i.indkey) with ordinality as k (attnum, n)
    join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = pg_catalog.format('inventory.%I', audit_table.table_name)::regclass and i.indisprimary;
  if coalesce(pg_catalog.cardinality(v_key), 0) not between 1 and 3 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'audited tables need a primary key of 1 to 3 columns',
      pg_catalog.jsonb_build_object('argument', 'table_name', 'value', audit_table.table_name));
  end if;
  execute pg_catalog.format(
    'create trigger %I after insert on inventory.%I referencing new table as new_rows
       for each statement execute function inventory.record_audit_inserts()',
    audit_table.table_name || '_audit_insert', audit_table.table_name);
  execute pg_catalog.format(
    'create trigger %I after delete on inventory.%I referencing old table as old_rows
       for each statement execute function inventory.record_audit_deletes()',
    audit_table.table_name || '_audit_delete', audit_table.table_name);
  execute pg_catalog.format('alter table inventory.%I enable always trigger %I, enable always trigger %I',
                            audit_table.table_name, audit_table.table_name || '_audit_insert',
                            audit_table.table_name || '_audit_delete');
  if audit_table.audit_updates then
    execute pg_catalog.format(
      'create trigger %I after update on inventory.%I referencing old table as old_rows new table as new_rows
         for each statement execute function inventory.record_audit_updates(%L, %L, %L)',
      audit_table.table_name || '_audit_update', audit_table.table_name,
      v_key[1], coalesce(v_key[2], ''), coalesce(v_key[3], ''));
    execute pg_catalog.format('alter table inventory.%I enable always trigger %I', audit_table.table_name,
                              audit_table.table_name || '_audit_update');
  end if;
end
$function$
;

comment on function inventory.audit_table(text,boolean) is 'Installs the audit triggers (ENABLE ALWAYS) on a table of the inventory schema; audit_updates false leaves UPDATEs to the caller (used by the schema scripts).';

CREATE OR REPLACE FUNCTION inventory.check_reorder_points()
 RETURNS inventory_api.reorder_check
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  perform inventory.authorize('scheduler');
  -- One pass at a time; levels with a policy are share-locked in the global order so no movement
  -- changes them while their alerts are re-evaluated.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('inventory.check_reorder_points'));
  perform from inventory.stock_levels s
   where s.has_stock_policy
   order by s.item_id, s.location_id
     for share;
  return inventory.refresh_reorder_alerts(null, null);
end
$function$
;

comment on function inventory.check_reorder_points() is 'Implements inventory_api.check_reorder_points.';

CREATE OR REPLACE FUNCTION inventory.check_text(value text, argument text, max_length integer DEFAULT 200, required boolean DEFAULT true)
 RETURNS text
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  if check_text.value is null then
    if check_text.required then
      perform inventory.raise_error('INVALID_ARGUMENT',
        pg_catalog.format('%s is required', check_text.argument),
        pg_catalog.jsonb_build_object('argument', check_text.argument, 'problem', 'missing'));
    end if;
    return null;
  end if;
  if not inventory.text_is_valid(check_text.value, check_text.max_length) then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('%s must be 1 to %s printable characters without surrounding spaces',
                        check_text.argument, check_text.max_length),
      pg_catalog.jsonb_build_object('argument', check_text.argument, 'problem', 'malformed'));
  end if;
  return check_text.value;
end
$function$
;

comment on function inventory.check_text(text,text,integer,boolean) is 'Raises INVALID_ARGUMENT unless the text is present (when required), 1..max_length printable characters, trimmed.';

CREATE OR REPLACE FUNCTION inventory.create_adjustment(sku text, quantity_delta numeric, adjustment_type text, reason_code text, location text, description text, idempotency_key text)
 RETURNS inventory_api.adjustment
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_item record;
  v_location_id bigint;
  v_reason inventory.reason_codes;
  v_needs_approval boolean;
  v_adjustment_id bigint;
  v_on_hand numeric;
  v_entry inventory.ledger;
  v_actor text := inventory.current_actor();
  v_replay jsonb;
  v_result inventory_api.adjustment;
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
  perform inventory.check_text(create_adjustment.description, 'description', 500, required => false);
  if create_adjustment.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(create_adjustment.idempotency_key, 'create_adjustment',
      pg_catalog.jsonb_build_object('sku', create_adjustment.sku, 'quantity_delta', create_adjustment.quantity_delta,
        'adjustment_type', create_adjustment.adjustment_type, 'reason_code', create_adjustment.reason_code,
        'location', create_adjustment.location, 'description', create_adjustment.description));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.adjustment, v_replay);
    end if;
  end if;

  v_needs_approval := v_reason.requires_approval
                      and pg_catalog.abs(create_adjustment.quantity_delta) > v_reason.approval_threshold;
  v_adjustment_id := pg_catalog.nextval('inventory.adjustments_adjustment_id_seq'::regclass);
  select s.on_hand into v_on_hand from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id;
  if not v_needs_approval then
    v_entry := inventory.apply_on_hand_delta(v_item.item_id, v_location_id, create_adjustment.quantity_delta,
      pg_catalog.jsonb_build_object('type', 'ADJUST', 'reason', create_adjustment.reason_code,
        'reference', 'adjustment:' || v_adjustment_id, 'idempotency_key', create_adjustment.idempotency_key,
        'metadata', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
          'adjustment_id', v_adjustment_id, 'adjustment_type', create_adjustment.adjustment_type,
          'description', create_adjustment.description))),
      create_adjustment.sku, create_adjustment.location);
    v_on_hand := v_entry.on_hand_before;
  end if;
  insert into inventory.adjustments (adjustment_id, item_id, location_id, quantity_delta, adjustment_type,
                                     reason_code, description, status, requires_approval, on_hand_at_request,
                                     requested_by, decided_by, decided_at, on_hand_at_apply, movement_id,
                                     idempotency_key)
  values (v_adjustment_id, v_item.item_id, v_location_id, create_adjustment.quantity_delta,
          create_adjustment.adjustment_type, create_adjustment.reason_code, create_adjustment.description,
          case when v_needs_approval then 'PENDING' else 'APPLIED' end, v_needs_approval, coalesce(v_on_hand, 0),
          v_actor,
          case when v_needs_approval then null else v_actor end,
          case when v_needs_approval then null else pg_catalog.now() end,
          v_entry.on_hand_before, v_entry.movement_id, create_adjustment.idempotency_key);
  v_result := inventory.adjustment_result(v_adjustment_id);
  if create_adjustment.idempotency_key is not null then
    perform inventory.complete_idempotency_key(create_adjustment.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$function$
;

comment on function inventory.create_adjustment(text,numeric,text,text,text,text,text) is 'Implements inventory_api.create_adjustment.';

CREATE OR REPLACE FUNCTION inventory.current_grants()
 RETURNS TABLE(role text, location_id bigint)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_db_role text := inventory.acting_db_role();
  v_user text := inventory.current_actor();
begin
  if inventory.is_gateway_session() then
    if v_db_role = 'service_role' then
      return query select 'admin'::text, null::bigint;
    elsif v_db_role <> 'anon' and pg_catalog.current_setting('request.jwt.claims', true) <> '' then
      return query select u.role, u.location_id from inventory.user_roles u where u.user_id = v_user;
    end if;
    return;
  end if;
  if exists (select from inventory.user_roles u where u.user_id = v_user) then
    return query
      select u.role, u.location_id from inventory.user_roles u
       where u.user_id = v_user
         and pg_catalog.pg_has_role(v_db_role, 'inventory_' || u.role, 'USAGE');
    return;
  end if;
  return query
    select g.role, null::bigint
      from pg_catalog.unnest(array['viewer', 'operator', 'admin', 'scheduler']) as g (role)
     where pg_catalog.pg_has_role(v_db_role, 'inventory_' || g.role, 'USAGE');
end
$function$
;

comment on function inventory.current_grants() is 'Business roles of the caller with their location scope (null = all locations).';

CREATE OR REPLACE FUNCTION inventory.effective_available(item_id bigint, location_id bigint)
 RETURNS numeric
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  return (
    select s.available + coalesce((
             select pg_catalog.sum(r.quantity - r.quantity_fulfilled) from inventory.reservations r
              where r.item_id = s.item_id and r.location_id = s.location_id
                and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()), 0)
      from inventory.stock_levels s
     where s.item_id = effective_available.item_id and s.location_id = effective_available.location_id);
end
$function$
;

comment on function inventory.effective_available(bigint,bigint) is 'on_hand - reserved + units of overdue holds not yet swept; null when the level does not exist.';

CREATE OR REPLACE FUNCTION inventory.evaluate_reorder_alert(item_id bigint, location_id bigint, available numeric)
 RETURNS text
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_policy inventory.stock_policies;
  v_alert inventory.reorder_alerts;
  v_severity text;
  v_alert_id bigint;
begin
  select * into v_policy from inventory.stock_policies p
   where p.item_id = evaluate_reorder_alert.item_id and p.location_id = evaluate_reorder_alert.location_id;
  if not found then
    return null;
  end if;
  v_severity := case when evaluate_reorder_alert.available <= v_policy.safety_stock then 'CRITICAL'
                     when evaluate_reorder_alert.available <= v_policy.reorder_point then 'REORDER' end;
  select * into v_alert from inventory.reorder_alerts a
   where a.item_id = evaluate_reorder_alert.item_id and a.location_id = evaluate_reorder_alert.location_id
     and a.recovered_at is null;
  if v_severity is null then
    if v_alert.alert_id is null then
      return null;
    end if;
    update inventory.reorder_alerts a
       set recovered_at = pg_catalog.now(),
           status = case when a.status in ('OPEN', 'ACKNOWLEDGED') then 'RESOLVED' else a.status end,
           closed_at = coalesce(a.closed_at, pg_catalog.now()),
           closed_by = coalesce(a.closed_by, inventory.current_actor()),
           note = coalesce(a.note, 'stock recovered')
     where a.alert_id = v_alert.alert_id;
    return case when v_alert.status in ('OPEN', 'ACKNOWLEDGED') then 'RESOLVED' end;
  end if;
  if v_alert.alert_id is null then
    insert into inventory.reorder_alerts (item_id, location_id, severity, available_at_open, reorder_point,
                                          safety_stock)
    values (evaluate_reorder_alert.item_id, evaluate_reorder_alert.location_id, v_severity,
            evaluate_reorder_alert.available, v_policy.reorder_point, v_policy.safety_stock)
    on conflict do nothing
    returning alert_id into v_alert_id;
    if v_alert_id is not null then
      perform pg_catalog.pg_notify('inventory_alerts', pg_catalog.jsonb_build_object(
        'event', 'opened', 'alert_id', v_alert_id, 'severity', v_severity,
        'sku', (select i.sku from inventory.items i where i.item_id = evaluate_reorder_alert.item_id),
        'location', (select l.code from inventory.locations l where l.location_id = evaluate_reorder_alert.location_id),
        'available', evaluate_reorder_alert.available)::text);
      return 'OPENED';
    end if;
    return null;
  end if;
  if v_severity = 'CRITICAL' and v_alert.severity = 'REORDER' and v_alert.status in ('OPEN', 'ACKNOWLEDGED') then
    update inventory.reorder_alerts a set severity = 'CRITICAL', escalated_at = pg_catalog.now()
     where a.alert_id = v_alert.alert_id;
    perform pg_catalog.pg_notify('inventory_alerts', pg_catalog.jsonb_build_object(
      'event', 'escalated', 'alert_id', v_alert.alert_id, 'severity', 'CRITICAL',
      'available', evaluate_reorder_alert.available)::text);
    return 'ESCALATED';
  end if;
  return null;
end
$function$
;

comment on function inventory.evaluate_reorder_alert(bigint,bigint,numeric) is 'Opens, raises or resolves the reorder alert of one level for its available quantity (caller holds the level lock).';

CREATE OR REPLACE FUNCTION inventory.expire_overdue_at_level(item_id bigint, location_id bigint)
 RETURNS integer
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  return (select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id))
    from (select r.reservation_id from inventory.reservations r
           where r.item_id = expire_overdue_at_level.item_id
             and r.location_id = expire_overdue_at_level.location_id
             and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
             for update skip locked) d);
end
$function$
;

comment on function inventory.expire_overdue_at_level(bigint,bigint) is 'Expires the overdue holds of one stock level; returns how many.';

CREATE OR REPLACE FUNCTION inventory.expire_reservations(batch_size integer)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_expired integer;
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
    -- other sweepers): take the oldest overdue holds anyway and wait for their levels, so that 0
    -- keeps meaning that nothing is overdue (apart from holds other sweepers are expiring).
    select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id)) into v_expired
      from (select r.reservation_id from inventory.reservations r
             where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
             order by r.expires_at
             limit expire_reservations.batch_size
               for update skip locked) d;
  end if;
  return v_expired;
end
$function$
;

comment on function inventory.expire_reservations(integer) is 'Implements inventory_api.expire_reservations.';

CREATE OR REPLACE FUNCTION inventory.hold_expiry(expires_in interval)
 RETURNS timestamp with time zone
 LANGUAGE plpgsql
 STABLE
 SET search_path TO ''
AS $function$
begin
  if hold_expiry.expires_in is null then
    return pg_catalog.now() + (select s.default_reservation_ttl from inventory.settings s);
  end if;
  if hold_expiry.expires_in <= interval '0' or hold_expiry.expires_in > interval '366 days' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'expires_in must be greater than 0 and at most 366 days',
      pg_catalog.jsonb_build_object('argument', 'expires_in', 'problem', 'out of range',
                                    'value', hold_expiry.expires_in::text));
  end if;
  return pg_catalog.now() + hold_expiry.expires_in;
end
$function$
;

comment on function inventory.hold_expiry(interval) is 'Expiry time of a hold made now; the configured default TTL when expires_in is null.';

CREATE OR REPLACE FUNCTION inventory.hold_units(item_id bigint, location_id bigint, quantity numeric, movement jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
begin
  update inventory.stock_levels s
     set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
   where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
     and s.on_hand - s.reserved >= hold_units.quantity;
  if found then
    return true;
  end if;
  if inventory.expire_overdue_at_level(hold_units.item_id, hold_units.location_id) = 0 then
    return false;
  end if;
  update inventory.stock_levels s
     set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
   where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
     and s.on_hand - s.reserved >= hold_units.quantity;
  return found;
end
$function$
;

comment on function inventory.hold_units(bigint,bigint,numeric,jsonb) is 'Conditionally adds units to reserved at one level (expiring overdue holds there if needed); true when they fit.';

CREATE OR REPLACE FUNCTION inventory.import_items(rows jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_actor text := inventory.current_actor();
  v_result jsonb;
begin
  perform inventory.authorize('admin');
  perform inventory.check_import_batch(import_items.rows);
  with input as (
    select e.n, e.v,
           coalesce(case when pg_catalog.jsonb_typeof(e.v -> 'row') = 'number' then (e.v ->> 'row')::numeric::bigint end,
                    e.n) as row_number,
           case when pg_catalog.jsonb_typeof(e.v) = 'object' then inventory.import_field(e.v, 'sku') end as sku,
           case when pg_catalog.jsonb_typeof(e.v) = 'object' then inventory.import_field(e.v, 'name') end as name,
           case when pg_catalog.jsonb_typeof(e.v) = 'object'
                then coalesce(inventory.import_field(e.v, 'unit_of_measure'), 'each') end as uom,
           case when pg_catalog.jsonb_typeof(e.v) = 'object' then inventory.import_field(e.v, 'unit_cost') end as cost,
           case when pg_catalog.jsonb_typeof(e.v) = 'object'
                then pg_catalog.lower(inventory.import_field(e.v, 'track_lots')) end as lots,
           case when pg_catalog.jsonb_typeof(e.v) = 'object'
                then coalesce(inventory.import_field(e.v, 'status'), 'active') end as status
      from pg_catalog.jsonb_array_elements(import_items.rows) with ordinality as e (v, n)
  ), checked as (
    select i.*,
           case
             when pg_catalog.jsonb_typeof(i.v) <> 'object' then 'row is not an object'
             when i.sku is null then 'sku is required'
             when i.sku !~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$'
               then 'sku must be 1-64 letters, digits or . _ : / # + - (starting with a letter or digit)'
             when i.name is null then 'name is required'
             when pg_catalog.length(i.name) > 200 or i.name ~ '[[:cntrl:]]'
               then 'name must be 1 to 200 printable characters'
             when i.uom !~ '^[a-z][a-z0-9_]{0,19}$' then 'unit_of_measure must be lower-case letters, digits or _'
             when i.cost is not null and not inventory.import_quantity_is_valid(i.cost, true)
               then 'unit_cost must be a number between 0 and 1e12 with at most 4 decimals'
             when i.lots is not null and i.lots not in ('true', 'false', 't', 'f', 'yes', 'no', '1', '0')
               then 'track_lots must be true or false'
             when i.status not in ('active', 'on_hold', 'discontinued')
               then 'status must be active, on_hold or discontinued'
             when pg_catalog.count(*) over (partition by i.sku) > 1
                  and pg_catalog.row_number() over (partition by i.sku order by i.n) > 1
               then 'duplicate sku in the batch'
           end as problem
      from input i
  ), typed as (
    select c.n, c.row_number, c.sku, c.name, c.uom, c.cost::numeric(19, 4) as cost,
           coalesce(c.lots in ('true', 't', 'yes', '1'), false) as lots, c.status
      from checked c where c.problem is null
  ), existing as (
    select t.n,
           case when it.deleted_at is not null then 'sku belongs to a deleted item'
                when (it.name, it.unit_of_measure, it.unit_cost, it.status, it.track_lots)
                     is distinct from (t.name, t.uom, coalesce(t.cost, it.unit_cost), t.status, t.lots)
                  then 'an item with this sku exists with other attributes' end as problem
      from typed t join inventory.items it on it.sku = t.sku
  ), inserted as (
    insert into inventory.items (sku, name, unit_of_measure, unit_cost, status, track_lots, created_by)
    select t.sku, t.name, t.uom, t.cost, t.status, t.lots, v_actor
      from typed t
     where not exists (select from existing x where x.n = t.n)
     order by t.sku
    on conflict (sku) do nothing
    returning sku
  ), rejected as (
    select c.row_number, c.sku, 'INVALID_ARGUMENT' as code, c.problem as reason from checked c where c.problem is not null
    union all
    select t.row_number, t.sku, 'ALREADY_EXISTS', x.problem from existing x join typed t on t.n = x.n
     where x.problem is not null
    union all
    select t.row_number, t.sku, 'ALREADY_EXISTS', 'an item with this sku was created concurrently'
      from typed t
     where not exists (select from existing x where x.n = t.n)
       and not exists (select from inserted d where d.sku = t.sku)
  )
  select pg_catalog.jsonb_build_object(
           'received', pg_catalog.jsonb_array_length(import_items.rows),
           'inserted', (select pg_catalog.count(*) from inserted),
           'unchanged', (select pg_catalog.count(*) from existing x where x.problem is null),
           'updated', 0,
           'rejected', coalesce((select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                          'row', r.row_number, 'key', r.sku, 'code', r.code, 'reason', r.reason)
                                        order by r.row_number)
                                   from rejected r), '[]'::jsonb))
    into v_result;
  return v_result;
end
$function$
;

comment on function inventory.import_items(jsonb) is 'Implements inventory_api.import_items.';

CREATE OR REPLACE FUNCTION inventory.import_stock_policies(rows jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_actor text := inventory.current_actor();
  v_result jsonb;
  v_check inventory_api.reorder_check;
  v_rows inventory.policy_import_row[];
begin
  if not inventory.holds_role_somewhere('admin') then
    perform inventory.authorize('admin');
  end if;
  perform inventory.check_import_batch(import_stock_policies.rows);

  with input as (
    select e.n, e.v,
           coalesce(case when pg_catalog.jsonb_typeof(e.v -> 'row') = 'number' then (e.v ->> 'row')::numeric::bigint end,
                    e.n) as row_number,
           pg_catalog.jsonb_typeof(e.v) = 'object' as is_object
      from pg_catalog.jsonb_array_elements(import_stock_policies.rows) with ordinality as e (v, n)
  ), fields as (
    select i.n, i.row_number, i.is_object,
           case when i.is_object then inventory.import_field(i.v, 'sku') end as sku,
           case when i.is_object then coalesce(inventory.import_field(i.v, 'location'), 'main') end as location,
           case when i.is_object then inventory.import_field(i.v, 'reorder_point') end as reorder_point,
           case when i.is_object then inventory.import_field(i.v, 'safety_stock') end as safety_stock,
           case when i.is_object then inventory.import_field(i.v, 'reorder_quantity') end as reorder_quantity,
           case when i.is_object then inventory.import_field(i.v, 'max_stock_level') end as max_stock_level,
           case when i.is_object then inventory.import_field(i.v, 'lead_time_days') end as lead_time_days
      from input i
  ), resolved as (
    select f.*, it.item_id, l.location_id
      from fields f
      left join inventory.items it on it.sku = f.sku and it.deleted_at is null
      left join inventory.locations l on l.code = f.location
  ), allowed as materialized (
    select d.location_id, inventory.is_allowed('admin', d.location_id) as allowed
      from (select distinct r.location_id from resolved r where r.location_id is not null) d
  ), checked as (
    select r.*,
           case
             when not r.is_object then 'row is not an object'
             when r.sku is null then 'sku is required'
             when r.item_id is null then 'no item with this sku'
             when r.location_id is null then 'no location with this code'
             when not a.allowed then 'permission denied: needs the admin role for this location'
             when r.reorder_point is null or not inventory.import_quantity_is_valid(r.reorder_point, true)
               then 'reorder_point must be a number between 0 and 1e12 with at most 4 decimals'
             when r.safety_stock is null or not inventory.import_quantity_is_valid(r.safety_stock, true)
               then 'safety_stock must be a number between 0 and 1e12 with at most 4 decimals'
             when r.reorder_quantity is not null and not inventory.import_quantity_is_valid(r.reorder_quantity, false)
               then 'reorder_quantity must be a number greater than 0 and at most 1e12 with at most 4 decimals'
             when r.max_stock_level is not null and not inventory.import_quantity_is_valid(r.max_stock_level, false)
               then 'max_stock_level must be a number greater than 0 and at most 1e12 with at most 4 decimals'
             when r.lead_time_days is not null and r.lead_time_days !~ '^[0-9]{1,4}$'
               then 'lead_time_days must be a whole number between 0 and 3650'
           end as problem,
           case
             when r.is_object and r.sku is not null and r.item_id is null then 'PRODUCT_NOT_FOUND'
             when r.is_object and r.sku is not null and r.location_id is null then 'LOCATION_NOT_FOUND'
             when r.is_object and r.sku is not null and not a.allowed then 'PERMISSION_DENIED'
           end as code
      from resolved r left join allowed a on a.location_id = r.location_id
  ), typed as (
    select c.n, c.row_number, c.sku, c.location, c.item_id, c.location_id,
           case when c.problem is null then c.reorder_point::numeric end as reorder_point,
           case when c.problem is null then c.safety_stock::numeric end as safety_stock,
           case when c.problem is null then c.reorder_quantity::numeric end as reorder_quantity,
           case when c.problem is null then c.max_stock_level::numeric end as max_stock_level,
           case when c.problem is null then c.lead_time_days::integer end as lead_time_days,
           c.problem, coalesce(c.code, case when c.problem is not null then 'INVALID_ARGUMENT' end) as code
      from checked c
  ), final as (
    select t.n, t.row_number, t.sku, t.location, t.item_id, t.location_id, t.reorder_point, t.safety_stock,
           t.reorder_quantity, t.max_stock_level, t.lead_time_days,
           coalesce(t.problem, case
             when t.safety_stock > t.reorder_point then 'safety_stock must not exceed reorder_point'
             when t.max_stock_level < t.reorder_point then 'max_stock_level must not be below reorder_point'
             when t.lead_time_days > 3650 then 'lead_time_days must be a whole number between 0 and 3650'
             when pg_catalog.row_number() over (partition by t.item_id, t.location_id, t.problem is null
                                                order by t.n) > 1
               then 'duplicate sku and location in the batch' end) as problem,
           t.code
      from typed t
  )
  select pg_catalog.array_agg(row(f.n, f.row_number, f.sku, f.location, f.item_id, f.location_id, f.reorder_point,
                                  f.safety_stock, f.reorder_quantity, f.max_stock_level, f.lead_time_days, f.problem,
                                  case when f.problem is not null then coalesce(f.code, 'INVALID_ARGUMENT') end
                                 )::inventory.policy_import_row order by f.n)
    into v_rows
    from final f;

  -- Levels first, in the global lock order, then policies, then alerts.
  insert into inventory.stock_levels (item_id, location_id, has_stock_policy)
  select distinct s.item_id, s.location_id, true from pg_catalog.unnest(v_rows) s where s.problem is null
  order by 1, 2
  on conflict do nothing;
  perform from inventory.stock_levels l
    join pg_catalog.unnest(v_rows) s on s.item_id = l.item_id and s.location_id = l.location_id
   where s.problem is null
   order by l.item_id, l.location_id
     for update of l;

  insert into inventory.stock_policies as p (item_id, location_id, reorder_point, safety_stock, reorder_quantity,
                                             max_stock_level, lead_time_days, updated_by)
  select s.item_id, s.location_id, s.reorder_point, s.safety_stock, s.reorder_quantity, s.max_stock_level,
         s.lead_time_days, v_actor
    from pg_catalog.unnest(v_rows) s
   where s.problem is null
   order by s.item_id, s.location_id
  on conflict (item_id, location_id) do update
     set reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock,
         reorder_quantity = excluded.reorder_quantity, max_stock_level = excluded.max_stock_level,
         lead_time_days = excluded.lead_time_days, updated_by = excluded.updated_by, updated_at = pg_catalog.now()
   where (p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level, p.lead_time_days)
         is distinct from (excluded.reorder_point, excluded.safety_stock, excluded.reorder_quantity,
                           excluded.max_stock_level, excluded.lead_time_days);
  update inventory.stock_levels l set has_stock_policy = true
    from pg_catalog.unnest(v_rows) s
   where s.problem is null and s.item_id = l.item_id and s.location_id = l.location_id and not l.has_stock_policy;
  v_check := inventory.refresh_reorder_alerts(
    array(select s.item_id from pg_catalog.unnest(v_rows) s where s.problem is null order by s.n),
    array(select s.location_id from pg_catalog.unnest(v_rows) s where s.problem is null order by s.n));

  select pg_catalog.jsonb_build_object(
           'received', pg_catalog.jsonb_array_length(import_stock_policies.rows),
           'applied', (select pg_catalog.count(*) from pg_catalog.unnest(v_rows) s where s.problem is null),
           'alerts_opened', v_check.opened,
           'rejected', coalesce((select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                          'row', s.row_number, 'key', s.sku || '@' || s.location, 'code', s.code,
                                          'reason', s.problem) order by s.row_number)
                                   from pg_catalog.unnest(v_rows) s where s.problem is not null), '[]'::jsonb))
    into v_result;
  return v_result;
end
$function$
;

comment on function inventory.import_stock_policies(jsonb) is 'Implements inventory_api.import_stock_policies.';

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
  ), shipped as (
    select r.order_ref, r.item_id, pg_catalog.sum(r.quantity_fulfilled) as quantity
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
  select 'returns_within_shipped', i.sku, null, s.quantity, t.quantity,
         pg_catalog.format('order %s returned more than it shipped', t.order_ref)
    from returned t
    left join shipped s using (order_ref, item_id)
    join inventory.items i on i.item_id = t.item_id
   where t.quantity > coalesce(s.quantity, 0)
$function$
;

comment on function inventory.inventory_violations() is 'Every broken invariant of the stock books (internal, unfiltered).';

CREATE OR REPLACE FUNCTION inventory.is_allowed(required text, location_id bigint DEFAULT NULL::bigint)
 RETURNS boolean
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_db_role text := inventory.acting_db_role();
begin
  if not inventory.is_gateway_session()
     and not exists (select from inventory.user_roles u where u.user_id = session_user::text) then
    return pg_catalog.pg_has_role(v_db_role, 'inventory_' || is_allowed.required, 'USAGE')
        or (is_allowed.required = 'scheduler' and pg_catalog.pg_has_role(v_db_role, 'inventory_admin', 'USAGE'));
  end if;
  return exists (
    select from inventory.current_grants() g
     where (g.location_id is null or g.location_id = is_allowed.location_id)
       and case when is_allowed.required = 'scheduler'
                then g.role = 'scheduler' or (g.role = 'admin' and g.location_id is null)
                else inventory.role_rank(g.role) >= inventory.role_rank(is_allowed.required) end);
end
$function$
;

comment on function inventory.is_allowed(text,bigint) is 'Whether the caller holds the role (or a higher one) for the location; null location needs an unscoped grant.';

CREATE OR REPLACE FUNCTION inventory.lock_order_holds(order_ref text, item_id bigint, sku text)
 RETURNS inventory.hold_move[]
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_moves inventory.hold_move[];
begin
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

comment on function inventory.lock_order_holds(text,bigint,text) is 'Locks an order''s active holds, authorises their locations and returns them as moves (EXPIRE for overdue ones); raises NO_RESERVATION when none.';

CREATE OR REPLACE FUNCTION inventory.parse_order_lines(lines jsonb)
 RETURNS inventory.order_line[]
 LANGUAGE plpgsql
 SET search_path TO ''
AS $function$
declare
  v_bad record;
  v_lines inventory.order_line[];
  v_missing jsonb;
begin
  if parse_order_lines.lines is null or pg_catalog.jsonb_typeof(parse_order_lines.lines) <> 'array'
     or pg_catalog.jsonb_array_length(parse_order_lines.lines) not between 1 and 1000 then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'lines must be a JSON array of 1 to 1000 objects {"sku", "quantity", "location"?}',
      pg_catalog.jsonb_build_object('argument', 'lines', 'problem', 'not an array of 1 to 1000 lines'));
  end if;
  select e.n, e.line into v_bad
    from pg_catalog.jsonb_array_elements(parse_order_lines.lines) with ordinality as e (line, n)
   where case when pg_catalog.jsonb_typeof(e.line) <> 'object' then true
              else pg_catalog.jsonb_typeof(e.line -> 'sku') is distinct from 'string'
                or pg_catalog.jsonb_typeof(e.line -> 'location') not in ('string', 'null')
                or exists (select from pg_catalog.jsonb_object_keys(e.line) k
                            where k not in ('sku', 'quantity', 'location'))
         end
   order by e.n limit 1;
  if found then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('lines[%s] must be an object with a string "sku", a "quantity" and an optional string "location"',
                        v_bad.n - 1),
      pg_catalog.jsonb_build_object('argument', pg_catalog.format('lines[%s]', v_bad.n - 1), 'problem', 'malformed'));
  end if;
  select e.n, e.line into v_bad
    from pg_catalog.jsonb_array_elements(parse_order_lines.lines) with ordinality as e (line, n)
   where case when pg_catalog.jsonb_typeof(e.line -> 'quantity') is distinct from 'number' then true
              else not inventory.quantity_is_valid((e.line ->> 'quantity')::numeric)
         end
   order by e.n limit 1;
  if found then
    perform inventory.raise_error('INVALID_QUANTITY',
      pg_catalog.format('lines[%s].quantity must be a number greater than 0 and at most 1e12 with at most 4 decimals',
                        v_bad.n - 1),
      pg_catalog.jsonb_build_object('argument', pg_catalog.format('lines[%s].quantity', v_bad.n - 1),
                                    'value', v_bad.line -> 'quantity'));
  end if;

  with merged as (
    select e.line ->> 'sku' as sku, coalesce(e.line ->> 'location', 'main') as location,
           pg_catalog.sum((e.line ->> 'quantity')::numeric) as quantity
      from pg_catalog.jsonb_array_elements(parse_order_lines.lines) as e (line)
     group by 1, 2)
  select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('sku', m.sku, 'location', m.location)
                              order by m.sku, m.location)
           filter (where i.item_id is null or l.location_id is null),
         pg_catalog.array_agg(row(i.item_id, l.location_id, m.sku, m.location, m.quantity,
                                  pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass)
                                 )::inventory.order_line
                              order by i.item_id, l.location_id)
           filter (where i.item_id is not null and l.location_id is not null)
    into v_missing, v_lines
    from merged m
    left join inventory.items i on i.sku = m.sku and i.deleted_at is null
    left join inventory.locations l on l.code = m.location;
  if v_missing is not null then
    if exists (select from pg_catalog.jsonb_array_elements(v_missing) x
                where not exists (select from inventory.items i where i.sku = x ->> 'sku' and i.deleted_at is null)) then
      perform inventory.raise_error('PRODUCT_NOT_FOUND', 'order lines name unknown SKUs',
        pg_catalog.jsonb_build_object('unknown', v_missing));
    end if;
    perform inventory.raise_error('LOCATION_NOT_FOUND', 'order lines name unknown locations',
      pg_catalog.jsonb_build_object('unknown', v_missing));
  end if;
  if exists (select from pg_catalog.unnest(v_lines) l where not inventory.quantity_is_valid(l.quantity)) then
    perform inventory.raise_error('INVALID_QUANTITY', 'merged lines for one SKU and location exceed 1e12',
      pg_catalog.jsonb_build_object('argument', 'lines', 'problem', 'merged quantity too large'));
  end if;
  return v_lines;
end
$function$
;

comment on function inventory.parse_order_lines(jsonb) is 'Validates reserve_order lines, merges duplicates per (SKU, location) and returns them in lock order.';

CREATE OR REPLACE FUNCTION inventory.process_return(order_ref text, sku text, quantity numeric, reason text, restock boolean, location text, idempotency_key text)
 RETURNS inventory_api.stock_return
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_item_id bigint;
  v_location_id bigint;
  v_holds bigint;
  v_shipped numeric;
  v_returned numeric;
  v_movement_id bigint;
  v_return inventory.returns;
  v_result inventory_api.stock_return;
  v_replay jsonb;
begin
  perform inventory.check_text(process_return.order_ref, 'order_ref', 200);
  v_item_id := (inventory.item_for_sku(process_return.sku)).item_id;
  perform inventory.check_quantity(process_return.quantity);
  perform inventory.check_text(process_return.reason, 'reason', 500);
  if process_return.restock is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'restock must be true or false',
      pg_catalog.jsonb_build_object('argument', 'restock', 'problem', 'missing'));
  end if;
  v_location_id := inventory.location_for_code(process_return.location);
  perform inventory.authorize('operator', v_location_id);
  if process_return.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(process_return.idempotency_key, 'process_return',
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku,
        'quantity', process_return.quantity, 'reason', process_return.reason,
        'restock', process_return.restock, 'location', process_return.location));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_return, v_replay);
    end if;
  end if;

  -- Locking the order's holds of this item serialises concurrent returns against one shipped total.
  select pg_catalog.count(*), coalesce(pg_catalog.sum(h.quantity_fulfilled), 0) into v_holds, v_shipped
    from (select r.quantity_fulfilled from inventory.reservations r
           where r.order_ref = process_return.order_ref and r.item_id = v_item_id
             for update) h;
  if v_holds = 0 then
    perform inventory.raise_error('NO_RESERVATION',
      pg_catalog.format('order %s never held %s', process_return.order_ref, process_return.sku),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku));
  end if;
  select coalesce(pg_catalog.sum(t.quantity), 0) into v_returned
    from inventory.returns t where t.order_ref = process_return.order_ref and t.item_id = v_item_id;
  if process_return.quantity > v_shipped - v_returned then
    perform inventory.raise_error('QUANTITY_MISMATCH',
      pg_catalog.format('order %s shipped %s and returned %s of %s; cannot return %s more',
                        process_return.order_ref, v_shipped, v_returned, process_return.sku, process_return.quantity),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku,
        'requested', process_return.quantity, 'shipped', v_shipped, 'returned', v_returned));
  end if;

  if process_return.restock then
    perform inventory.add_on_hand(v_item_id, v_location_id, process_return.quantity,
      pg_catalog.jsonb_build_object('type', 'RETURN', 'reason', process_return.reason,
        'reference', process_return.order_ref, 'idempotency_key', process_return.idempotency_key));
    v_movement_id := pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
  end if;
  insert into inventory.returns (order_ref, item_id, location_id, quantity, reason, restocked, movement_id,
                                 created_by)
  values (process_return.order_ref, v_item_id, v_location_id, process_return.quantity, process_return.reason,
          process_return.restock, v_movement_id, inventory.current_actor())
  returning * into v_return;
  v_result := row(v_return.return_id, v_return.order_ref, process_return.sku, process_return.location,
                  v_return.quantity, v_return.reason, v_return.restocked, v_return.movement_id,
                  v_return.created_at)::inventory_api.stock_return;
  if process_return.idempotency_key is not null then
    perform inventory.complete_idempotency_key(process_return.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$function$
;

comment on function inventory.process_return(text,text,numeric,text,boolean,text,text) is 'Implements inventory_api.process_return.';

CREATE OR REPLACE FUNCTION inventory.receive_stock(sku text, quantity numeric, location text, reference text, unit_cost numeric, idempotency_key text)
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
begin
  v_item := inventory.item_for_sku(receive_stock.sku);
  perform inventory.check_quantity(receive_stock.quantity);
  v_location_id := inventory.location_for_code(receive_stock.location);
  perform inventory.authorize('operator', v_location_id);
  perform inventory.check_text(receive_stock.reference, 'reference', 200, required => false);
  perform inventory.check_unit_cost(receive_stock.unit_cost);
  if receive_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(receive_stock.idempotency_key, 'receive_stock',
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'quantity', receive_stock.quantity,
        'location', receive_stock.location, 'reference', receive_stock.reference,
        'unit_cost', receive_stock.unit_cost));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_level, v_replay);
    end if;
  end if;

  if v_item.status = 'discontinued' then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE',
      pg_catalog.format('item %s is discontinued and cannot be received', receive_stock.sku),
      pg_catalog.jsonb_build_object('sku', receive_stock.sku, 'status', v_item.status));
  end if;

  v_level := inventory.add_on_hand(v_item.item_id, v_location_id, receive_stock.quantity,
    pg_catalog.jsonb_build_object('type', 'RECEIVE', 'reason', 'receipt',
      'reference', receive_stock.reference, 'idempotency_key', receive_stock.idempotency_key,
      'metadata', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('unit_cost', receive_stock.unit_cost))));

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

comment on function inventory.receive_stock(text,numeric,text,text,numeric,text) is 'Implements inventory_api.receive_stock.';

CREATE OR REPLACE FUNCTION inventory.record_audit()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_new jsonb := pg_catalog.to_jsonb(new);
begin
  insert into inventory.audit_log (table_name, operation, old_row, new_row, actor, db_role, login, request_path,
                                   request_id)
  select tg_table_name, 'UPDATE',
         (select pg_catalog.jsonb_object_agg(e.key, e.value) from pg_catalog.jsonb_each(pg_catalog.to_jsonb(old)) e
           where v_new -> e.key is distinct from e.value),
         v_new, c.actor, c.db_role, session_user, c.request_path, c.request_id
    from inventory.audit_context() c;
  return null;
end
$function$
;

comment on function inventory.record_audit() is 'Row trigger: appends one updated row to the audit log (used where UPDATEs are audited under a WHEN condition).';

CREATE OR REPLACE FUNCTION inventory.record_count(sku text, counted_quantity numeric, location text)
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
  v_entry inventory.ledger;
begin
  v_item := inventory.item_for_sku(record_count.sku);
  v_location_id := inventory.location_for_code(record_count.location);
  perform inventory.authorize('operator', v_location_id);
  if record_count.counted_quantity is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'counted_quantity is required',
      pg_catalog.jsonb_build_object('argument', 'counted_quantity', 'value', null));
  end if;
  perform inventory.check_level_quantity(record_count.counted_quantity, 'counted_quantity');

  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_location_id)
  on conflict do nothing;
  -- Lock order: pending adjustments of the level, then the level. Under the level's lock on_hand
  -- cannot move, so the difference is exact for this instant.
  perform from inventory.adjustments a
   where a.item_id = v_item.item_id and a.location_id = v_location_id and a.status = 'PENDING'
     and a.adjustment_type = 'physical_count'
   order by a.adjustment_id
     for update;
  select * into v_level from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id
     for update;
  v_difference := record_count.counted_quantity - v_level.on_hand;
  v_count_id := pg_catalog.nextval('inventory.cycle_counts_count_id_seq'::regclass);
  insert into inventory.cycle_counts (count_id, item_id, location_id, counted_quantity, on_hand_at_count,
                                      reserved_at_count, counted_by)
  values (v_count_id, v_item.item_id, v_location_id, record_count.counted_quantity, v_level.on_hand,
          v_level.reserved, v_actor);
  -- This count measures the whole discrepancy again: older pending count differences are void.
  update inventory.adjustments a
     set status = 'SUPERSEDED', decided_by = v_actor, decided_at = pg_catalog.now(),
         decision_note = pg_catalog.format('superseded by count %s', v_count_id)
   where a.item_id = v_item.item_id and a.location_id = v_location_id and a.status = 'PENDING'
     and a.adjustment_type = 'physical_count';

  if v_difference = 0 then
    update inventory.stock_levels s set last_counted_at = pg_catalog.now(), last_counted_by = v_actor
     where s.item_id = v_item.item_id and s.location_id = v_location_id;
  else
    select * into v_reason from inventory.reason_codes r where r.reason_code = 'cycle_count';
    -- Applied at once when small enough and it keeps reserved <= on_hand; else left for an admin.
    v_apply := not (v_reason.requires_approval and pg_catalog.abs(v_difference) > v_reason.approval_threshold)
               and record_count.counted_quantity >= v_level.reserved;
    v_adjustment_id := pg_catalog.nextval('inventory.adjustments_adjustment_id_seq'::regclass);
    update inventory.stock_levels s
       set last_counted_at = pg_catalog.now(), last_counted_by = v_actor,
           on_hand = case when v_apply then record_count.counted_quantity else s.on_hand end,
           pending_movement = case when v_apply then pg_catalog.jsonb_build_object(
             'type', 'ADJUST', 'reason', 'cycle_count', 'reference', 'adjustment:' || v_adjustment_id,
             'metadata', pg_catalog.jsonb_build_object('adjustment_id', v_adjustment_id,
                                                       'adjustment_type', 'physical_count', 'count_id', v_count_id,
                                                       'counted_quantity', record_count.counted_quantity)) end
     where s.item_id = v_item.item_id and s.location_id = v_location_id;
    if v_apply then
      select * into v_entry from inventory.ledger g
       where g.movement_id = pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
    end if;
    insert into inventory.adjustments (adjustment_id, item_id, location_id, quantity_delta, adjustment_type,
                                       reason_code, description, status, requires_approval, on_hand_at_request,
                                       count_id, requested_by, decided_by, decided_at, on_hand_at_apply, movement_id)
    values (v_adjustment_id, v_item.item_id, v_location_id, v_difference, 'physical_count', 'cycle_count',
            pg_catalog.format('cycle count %s: counted %s, on hand %s', v_count_id,
                              record_count.counted_quantity, v_level.on_hand),
            case when v_apply then 'APPLIED' else 'PENDING' end, not v_apply, v_level.on_hand, v_count_id, v_actor,
            case when v_apply then v_actor end, case when v_apply then pg_catalog.now() end,
            v_entry.on_hand_before, v_entry.movement_id);
  end if;
  return (select row(c.count_id, record_count.sku, record_count.location, c.counted_quantity, c.on_hand_at_count,
                     c.reserved_at_count, c.difference, a.adjustment_id, a.status, c.counted_by,
                     c.counted_at)::inventory_api.stock_count
            from inventory.cycle_counts c
            left join inventory.adjustments a on a.adjustment_id = v_adjustment_id
           where c.count_id = v_count_id);
end
$function$
;

comment on function inventory.record_count(text,numeric,text) is 'Implements inventory_api.record_count.';

CREATE OR REPLACE FUNCTION inventory.record_stock_movement()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_movement jsonb := coalesce(new.pending_movement, '{}'::jsonb);
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
    return new;
  end if;
  new.version := old.version + 1;
  new.ledger_hash := old.ledger_hash;
  if new.on_hand = old.on_hand and new.reserved = old.reserved then
    return new;
  end if;
  new.updated_at := pg_catalog.now();
  v_entry := row(
    pg_catalog.nextval('inventory.ledger_movement_id_seq'::regclass),
    coalesce(v_movement ->> 'type', 'ADJUST')::inventory.movement_type,
    new.item_id, new.location_id,
    new.on_hand - old.on_hand, new.reserved - old.reserved,
    old.on_hand, new.on_hand, old.reserved, new.reserved,
    inventory.current_actor(),
    case when v_movement = '{}'::jsonb then 'direct change of inventory.stock_levels' else v_movement ->> 'reason' end,
    v_movement ->> 'reference',
    v_movement ->> 'idempotency_key',
    (v_movement ->> 'related_movement_id')::bigint,
    (v_movement ->> 'reservation_id')::bigint,
    coalesce(v_movement -> 'metadata', '{}'::jsonb),
    pg_catalog.now(), pg_catalog.pg_current_xact_id(),
    old.ledger_hash, null)::inventory.ledger;
  v_entry.hash := pg_catalog.sha256(coalesce(old.ledger_hash, ''::bytea) || inventory.ledger_entry_bytes(v_entry));
  insert into inventory.ledger overriding system value select v_entry.*;
  new.ledger_hash := v_entry.hash;
  return new;
end
$function$
;

comment on function inventory.record_stock_movement() is 'Trigger: appends every change of a stock level to the ledger, described by pending_movement.';

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
    perform pg_catalog.pg_notify('inventory_alerts', pg_catalog.jsonb_build_object(
      'event', 'refreshed', 'opened', v_result.opened, 'escalated', v_result.escalated)::text);
  end if;
  return v_result;
end
$function$
;

comment on function inventory.refresh_reorder_alerts(bigint[],bigint[]) is 'Set-based re-evaluation of the reorder alerts of many levels (caller holds their locks).';

CREATE OR REPLACE FUNCTION inventory.reorder_alert_trigger()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  if not new.has_stock_policy then
    return null;
  end if;
  perform inventory.evaluate_reorder_alert(new.item_id, new.location_id, new.on_hand - new.reserved);
  return null;
end
$function$
;

comment on function inventory.reorder_alert_trigger() is 'Trigger: re-evaluates the reorder alert of a level with a stock policy when its available quantity changes.';

CREATE OR REPLACE FUNCTION inventory.replay_reservation_changes(response jsonb)
 RETURNS SETOF inventory_api.reservation_change
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select * from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation_change,
                                                    replay_reservation_changes.response)
$function$
;

comment on function inventory.replay_reservation_changes(jsonb) is 'Rebuilds the stored result of a fulfil or cancel call for an idempotent replay.';

CREATE OR REPLACE FUNCTION inventory.reserve_order(order_ref text, lines jsonb, expires_in interval, idempotency_key text)
 RETURNS SETOF inventory_api.reservation
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_lines inventory.order_line[];
  v_line inventory.order_line;
  v_unavailable jsonb;
  v_short jsonb := '[]'::jsonb;
  v_expires_at timestamptz;
  v_actor text := inventory.current_actor();
  v_result inventory_api.reservation[];
  v_replay jsonb;
begin
  perform inventory.check_text(reserve_order.order_ref, 'order_ref', 200);
  v_lines := inventory.parse_order_lines(reserve_order.lines);
  perform inventory.authorize_locations('operator', array(select l.location_id from pg_catalog.unnest(v_lines) l));
  v_expires_at := inventory.hold_expiry(reserve_order.expires_in);
  select pg_catalog.array_agg(row(l.reservation_id, reserve_order.order_ref, l.sku, l.location, l.quantity, 0,
                                  l.quantity, 'ACTIVE', v_expires_at, v_actor,
                                  pg_catalog.now())::inventory_api.reservation order by l.reservation_id)
    into v_result
    from pg_catalog.unnest(v_lines) l;
  if reserve_order.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_order.idempotency_key, 'reserve_order',
      pg_catalog.jsonb_build_object('order_ref', reserve_order.order_ref, 'lines', reserve_order.lines,
                                    'expires_in', reserve_order.expires_in::text),
      pg_catalog.to_jsonb(v_result));
    if v_replay is not null then
      return query select * from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation, v_replay);
      return;
    end if;
  end if;

  select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('sku', i.sku, 'status', i.status) order by i.sku)
    into v_unavailable
    from inventory.items i
   where i.item_id in (select l.item_id from pg_catalog.unnest(v_lines) l) and i.status <> 'active';
  if v_unavailable is not null then
    perform inventory.raise_error('PRODUCT_UNAVAILABLE', 'order lines name items that cannot be reserved',
      pg_catalog.jsonb_build_object('unavailable', v_unavailable));
  end if;

  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, expires_at,
                                      created_by, created_at)
  select l.reservation_id, reserve_order.order_ref, l.item_id, l.location_id, l.quantity, v_expires_at,
         v_actor, pg_catalog.now()
    from pg_catalog.unnest(v_lines) l;

  -- v_lines is in (item_id, location_id) order, so concurrent orders lock levels in one global
  -- order and cannot deadlock. Every line is tried so that the error lists every short line.
  foreach v_line in array v_lines loop
    if not inventory.hold_units(v_line.item_id, v_line.location_id, v_line.quantity,
             pg_catalog.jsonb_build_object('type', 'RESERVE', 'reason', 'order hold',
               'reference', reserve_order.order_ref, 'reservation_id', v_line.reservation_id,
               'idempotency_key', reserve_order.idempotency_key)) then
      v_short := v_short || inventory.shortfall(v_line.item_id, v_line.location_id, v_line.sku,
                                                v_line.location, v_line.quantity);
    end if;
  end loop;
  if pg_catalog.jsonb_array_length(v_short) > 0 then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s of %s lines of order %s',
                        pg_catalog.jsonb_array_length(v_short), pg_catalog.cardinality(v_lines),
                        reserve_order.order_ref),
      pg_catalog.jsonb_build_object('order_ref', reserve_order.order_ref, 'short_lines', v_short));
  end if;
  return query select * from pg_catalog.unnest(v_result);
end
$function$
;

comment on function inventory.reserve_order(text,jsonb,interval,text) is 'Implements inventory_api.reserve_order.';

CREATE OR REPLACE FUNCTION inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text, expires_in interval, idempotency_key text)
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
begin
  -- The hottest path in pyinv: one query resolves the item, the location, the level's current
  -- availability and the default hold lifetime; the helpers run only to raise their errors.
  select i.item_id, i.status, l.location_id, s.available, t.default_reservation_ttl
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
  -- A retry with the key replays the original result even if stock or status changed since.
  v_reservation_id := pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass);
  v_result := row(v_reservation_id, reserve_stock.order_ref, reserve_stock.sku, reserve_stock.location,
                  reserve_stock.quantity, 0, reserve_stock.quantity, 'ACTIVE',
                  case when reserve_stock.expires_in is null then pg_catalog.now() + v_found.default_reservation_ttl
                       else inventory.hold_expiry(reserve_stock.expires_in) end,
                  inventory.current_actor(), pg_catalog.now())::inventory_api.reservation;
  if reserve_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_stock.idempotency_key, 'reserve_stock',
      pg_catalog.jsonb_build_object('sku', reserve_stock.sku, 'quantity', reserve_stock.quantity,
        'order_ref', reserve_stock.order_ref, 'location', reserve_stock.location,
        'expires_in', reserve_stock.expires_in::text),
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
  if coalesce(v_found.available, 0) < reserve_stock.quantity
     and coalesce(inventory.effective_available(v_found.item_id, v_found.location_id), 0) < reserve_stock.quantity then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s at %s', reserve_stock.sku, reserve_stock.location),
      inventory.shortfall(v_found.item_id, v_found.location_id, reserve_stock.sku, reserve_stock.location,
                          reserve_stock.quantity));
  end if;

  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, expires_at,
                                      created_by, created_at)
  values (v_reservation_id, reserve_stock.order_ref, v_found.item_id, v_found.location_id, reserve_stock.quantity,
          v_result.expires_at, v_result.created_by, v_result.created_at);

  -- The one statement that locks the level; only the ledger row and the commit follow it.
  update inventory.stock_levels s
     set reserved = s.reserved + reserve_stock.quantity,
         pending_movement = pg_catalog.jsonb_build_object('type', 'RESERVE', 'reason', 'order hold',
           'reference', reserve_stock.order_ref, 'reservation_id', v_reservation_id,
           'idempotency_key', reserve_stock.idempotency_key)
   where s.item_id = v_found.item_id and s.location_id = v_found.location_id
     and s.on_hand - s.reserved >= reserve_stock.quantity;
  if not found and not inventory.hold_units(v_found.item_id, v_found.location_id, reserve_stock.quantity,
           pg_catalog.jsonb_build_object('type', 'RESERVE', 'reason', 'order hold',
             'reference', reserve_stock.order_ref, 'reservation_id', v_reservation_id,
             'idempotency_key', reserve_stock.idempotency_key)) then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s at %s', reserve_stock.sku, reserve_stock.location),
      inventory.shortfall(v_found.item_id, v_found.location_id, reserve_stock.sku, reserve_stock.location,
                          reserve_stock.quantity));
  end if;
  return v_result;
end
$function$
;

comment on function inventory.reserve_stock(text,numeric,text,text,interval,text) is 'Implements inventory_api.reserve_stock.';

CREATE OR REPLACE FUNCTION inventory.seal_audit_log(batch_size integer)
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO ''
AS $function$
declare
  v_last inventory.audit_chain;
  v_horizon xid8 := inventory.audit_horizon();
  v_entry inventory.audit_log;
  v_seq bigint;
  v_prev bytea;
  v_hash bytea;
  v_count integer := 0;
begin
  perform inventory.authorize('scheduler');
  if seal_audit_log.batch_size is null or seal_audit_log.batch_size not between 1 and 1000000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'batch_size must be between 1 and 1000000',
      pg_catalog.jsonb_build_object('argument', 'batch_size', 'problem', 'out of range'));
  end if;
  if not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('inventory.seal_audit_log')) then
    return 0;
  end if;
  select * into v_last from inventory.audit_chain c order by c.seq desc limit 1;
  v_seq := coalesce(v_last.seq, 0);
  v_prev := v_last.hash;
  for v_entry in
    select a.* from inventory.audit_log a
     where a.transaction_id < v_horizon
       and (v_last.seq is null or (a.transaction_id, a.audit_id) > (v_last.transaction_id, v_last.audit_id))
     order by a.transaction_id, a.audit_id
     limit seal_audit_log.batch_size
  loop
    v_seq := v_seq + 1;
    v_hash := pg_catalog.sha256(coalesce(v_prev, ''::bytea) || inventory.audit_row_bytes(v_entry));
    insert into inventory.audit_chain (seq, audit_id, transaction_id, prev_hash, hash)
    values (v_seq, v_entry.audit_id, v_entry.transaction_id, v_prev, v_hash);
    v_prev := v_hash;
    v_count := v_count + 1;
  end loop;
  return v_count;
end
$function$
;

comment on function inventory.seal_audit_log(integer) is 'Implements inventory_api.seal_audit_log.';

CREATE OR REPLACE FUNCTION inventory.shortfall(item_id bigint, location_id bigint, sku text, location text, requested numeric)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
 SET search_path TO ''
AS $function$
  select pg_catalog.jsonb_build_object(
           'sku', shortfall.sku, 'location', shortfall.location, 'requested', shortfall.requested,
           'available', coalesce(s.available, 0), 'on_hand', coalesce(s.on_hand, 0),
           'reserved', coalesce(s.reserved, 0))
    from (select) dummy
    left join inventory.stock_levels s
      on s.item_id = shortfall.item_id and s.location_id = shortfall.location_id
$function$
;

comment on function inventory.shortfall(bigint,bigint,text,text,numeric) is 'JSON specifics of a line that does not fit: requested, available, on hand, reserved.';

CREATE OR REPLACE FUNCTION inventory.text_is_valid(value text, max_length integer)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
 SELECT COALESCE((((length(value) >= 1) AND (length(value) <= max_length)) AND (value !~ '^[\s\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]'::text) AND (value !~ '[\s\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]$'::text) AND (value !~ '[[:cntrl:]\u200b-\u200f\u2028\u2029\ufeff]'::text)), false) AS "coalesce";
END
;

comment on function inventory.text_is_valid(text,integer) is 'Whether a text is 1..max_length printable characters without surrounding (Unicode) blanks.';

CREATE OR REPLACE FUNCTION inventory.transfer_stock(sku text, quantity numeric, from_location text, to_location text, reference text, idempotency_key text)
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
  v_out bigint;
  v_in bigint;
  v_available numeric;
  v_replay jsonb;
  v_result inventory_api.stock_transfer;
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
  if transfer_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(transfer_stock.idempotency_key, 'transfer_stock',
      pg_catalog.jsonb_build_object('sku', transfer_stock.sku, 'quantity', transfer_stock.quantity,
        'from_location', transfer_stock.from_location, 'to_location', transfer_stock.to_location,
        'reference', transfer_stock.reference));
    if v_replay is not null then
      return pg_catalog.jsonb_populate_record(null::inventory_api.stock_transfer, v_replay);
    end if;
  end if;

  -- Overdue holds in the way are expired before any level is locked (holds before levels).
  select s.available into v_available from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_from_id;
  if coalesce(v_available, 0) < transfer_stock.quantity
     and coalesce(inventory.effective_available(v_item.item_id, v_from_id), 0) >= transfer_stock.quantity then
    perform inventory.expire_overdue_at_level(v_item.item_id, v_from_id);
  end if;
  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_to_id)
  on conflict do nothing;
  -- Both levels in (item_id, location_id) order: opposite transfers cannot deadlock.
  perform from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id in (v_from_id, v_to_id)
   order by s.item_id, s.location_id
     for update;
  update inventory.stock_levels s
     set on_hand = s.on_hand - transfer_stock.quantity,
         pending_movement = pg_catalog.jsonb_build_object('type', 'TRANSFER_OUT', 'reason', 'transfer',
           'reference', transfer_stock.reference, 'idempotency_key', transfer_stock.idempotency_key,
           'metadata', pg_catalog.jsonb_build_object('to_location', transfer_stock.to_location))
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
  v_out := pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
  update inventory.stock_levels s
     set on_hand = s.on_hand + transfer_stock.quantity,
         pending_movement = pg_catalog.jsonb_build_object('type', 'TRANSFER_IN', 'reason', 'transfer',
           'reference', transfer_stock.reference, 'idempotency_key', transfer_stock.idempotency_key,
           'related_movement_id', v_out,
           'metadata', pg_catalog.jsonb_build_object('from_location', transfer_stock.from_location))
   where s.item_id = v_item.item_id and s.location_id = v_to_id
  returning * into v_to;
  v_in := pg_catalog.currval('inventory.ledger_movement_id_seq'::regclass);
  v_result := row(transfer_stock.sku, transfer_stock.quantity, transfer_stock.from_location,
                  transfer_stock.to_location, transfer_stock.reference, v_out, v_in, v_from.on_hand,
                  v_from.available, v_to.on_hand, v_to.available)::inventory_api.stock_transfer;
  if transfer_stock.idempotency_key is not null then
    perform inventory.complete_idempotency_key(transfer_stock.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$function$
;

comment on function inventory.transfer_stock(text,numeric,text,text,text,text) is 'Implements inventory_api.transfer_stock.';

CREATE OR REPLACE FUNCTION inventory_api.seal_audit_log(batch_size integer DEFAULT 10000)
 RETURNS integer
 LANGUAGE sql
 SET search_path TO ''
BEGIN ATOMIC
 SELECT inventory.seal_audit_log(batch_size) AS seal_audit_log;
END
;

comment on function inventory_api.seal_audit_log(integer) is 'Append up to batch_size committed audit rows to the hash chain; returns how many.
Self-locking: a concurrent call returns 0 at once. Call it until it returns less than batch_size.';

CREATE OR REPLACE FUNCTION inventory.verify_audit_chain()
 RETURNS SETOF inventory_api.chain_break
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  perform inventory.authorize('admin');
  return query select * from inventory.audit_chain_breaks();
end
$function$
;

comment on function inventory.verify_audit_chain() is 'Implements inventory_api.verify_audit_chain.';

CREATE OR REPLACE FUNCTION inventory.verify_inventory()
 RETURNS SETOF inventory_api.invariant_violation
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO ''
AS $function$
begin
  perform inventory.authorize('viewer');
  return query select * from inventory.inventory_violations();
end
$function$
;

comment on function inventory.verify_inventory() is 'Implements inventory_api.verify_inventory.';

CREATE OR REPLACE FUNCTION inventory_api.verify_audit_chain()
 RETURNS SETOF inventory_api.chain_break
 LANGUAGE sql
 STABLE
 SET search_path TO ''
BEGIN ATOMIC
 SELECT verify_audit_chain.seq,
     verify_audit_chain.audit_id,
     verify_audit_chain.problem
    FROM inventory.verify_audit_chain() verify_audit_chain(seq, audit_id, problem);
END
;

comment on function inventory_api.verify_audit_chain() is 'Report the first broken link of the audit hash chain; no rows means the chain is intact.';

CREATE OR REPLACE FUNCTION inventory_api.verify_inventory()
 RETURNS SETOF inventory_api.invariant_violation
 LANGUAGE sql
 STABLE
 SET search_path TO ''
BEGIN ATOMIC
 SELECT verify_inventory.invariant,
     verify_inventory.sku,
     verify_inventory.location,
     verify_inventory.expected,
     verify_inventory.actual,
     verify_inventory.detail
    FROM inventory.verify_inventory() verify_inventory(invariant, sku, location, expected, actual, detail);
END
;

comment on function inventory_api.verify_inventory() is 'List every broken invariant; no rows means the books balance.
Checks: stock levels equal their ledger sums, the ledger is continuous, reserved equals active holds, nothing negative or oversold, returns within shipped.';

drop function inventory.finish_job(job text, rows_touched bigint);

drop function inventory.take_anchor(wait_seconds numeric);

drop function inventory.overdue_quantity(item_id bigint, location_id bigint);

drop function inventory.anchor_problems(anchor jsonb, part text);

drop function inventory.import_row_number(value jsonb, ordinal bigint);

drop function inventory.text_problem(value text, max_length integer);

drop function inventory.set_reason_code(code text, requires_approval boolean, approval_threshold numeric, direction text, description text);

drop function inventory.grant_api_access(grantee text, maintenance boolean);

drop function inventory.interval_key(value interval);

drop function inventory.notify_alert(event text, alert_id bigint);

drop function inventory.audit_row_change(table_name text, operation inventory.audit_operation, old_row jsonb, new_row jsonb);

drop function inventory.ledger_digests(through_movement bigint);

drop function inventory.record_stock_level_change();

drop function inventory.describe_movement(movement_type inventory.movement_type, reason text, reference text, idempotency_key text, reservation_id bigint, related_movement_id bigint, metadata jsonb);

drop function inventory.hold_state_is_valid(quantity numeric, quantity_fulfilled numeric, quantity_returned numeric, status text, closed_at timestamp with time zone);

drop function inventory.lock_job(job text, wait boolean);

drop function inventory.cut_is_clean(waiting_for xid8[]);

drop function inventory.adjustment_needs_approval(reason inventory.reason_codes, quantity_delta numeric);

drop function inventory.import_row_problem(value jsonb);

drop function inventory.running_transactions();

drop function inventory.level_quantities_are_valid(on_hand numeric, reserved numeric, movement_cleared boolean);

drop function inventory.movement_adds_up(on_hand_before numeric, on_hand_delta numeric, on_hand_after numeric, reserved_before numeric, reserved_delta numeric, reserved_after numeric);

drop function inventory.add_on_hand(item_id bigint, location_id bigint, quantity numeric, movement inventory.movement);

drop function inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric, movement inventory.movement, sku text, location text);

drop function inventory.audit_table(table_name text, audit_updates boolean, recorded_by_ledger boolean);

drop function inventory.hold_units(item_id bigint, location_id bigint, quantity numeric, movement inventory.movement);

-- Issue 10: the JSON movement description, the separate checks and the three stock level triggers.
alter table inventory.stock_levels
  drop column last_movement_id,
  alter column pending_movement type jsonb using null,
  add constraint stock_levels_on_hand_check check (on_hand >= 0 and on_hand <> 'NaN'::numeric),
  add constraint stock_levels_reserved_check check (reserved >= 0 and reserved <> 'NaN'::numeric),
  add constraint stock_levels_reserved_within_on_hand_check check (reserved <= on_hand),
  add constraint stock_levels_pending_movement_check check (pending_movement is null);
drop type inventory.movement;
comment on column inventory.stock_levels.pending_movement is 'Transient description of the movement being written (type, reason, reference...); consumed and cleared by the ledger trigger, never stored.';
comment on column inventory.stock_levels.available is 'on_hand - reserved (generated).';
comment on column inventory.ledger.metadata is 'Free-form details (reservation ids of aggregated movements, unit cost, ...).';
alter table inventory.ledger
  add constraint ledger_arithmetic_check check (on_hand_after = on_hand_before + on_hand_delta
                                                and reserved_after = reserved_before + reserved_delta
                                                and (on_hand_delta <> 0 or reserved_delta <> 0));
alter table inventory.reservations
  add constraint reservations_quantity_check check (quantity > 0 and quantity <> 'NaN'::numeric),
  add constraint reservations_quantity_fulfilled_check check (quantity_fulfilled >= 0 and quantity_fulfilled <= quantity),
  add constraint reservations_status_check check (status in ('ACTIVE', 'FULFILLED', 'CANCELLED', 'EXPIRED')),
  add constraint reservations_closed_at_check check ((status = 'ACTIVE') = (closed_at is null)),
  add constraint reservations_fulfilled_check check (status <> 'FULFILLED' or quantity_fulfilled = quantity);
create trigger stock_levels_record_movement
  before insert or update on inventory.stock_levels
  for each row execute function inventory.record_stock_movement();
alter table inventory.stock_levels enable always trigger stock_levels_record_movement;
create trigger stock_levels_audit_update after update on inventory.stock_levels
  for each row when (old.on_hand = new.on_hand and old.reserved = new.reserved)
  execute function inventory.record_audit();
alter table inventory.stock_levels enable always trigger stock_levels_audit_update;
create trigger stock_levels_reorder_alert
  after update on inventory.stock_levels
  for each row
  when (new.has_stock_policy and (new.on_hand - new.reserved) is distinct from (old.on_hand - old.reserved))
  execute function inventory.reorder_alert_trigger();
do $audited$
begin
  perform inventory.audit_table(t) from pg_catalog.unnest(array['reservations', 'idempotency_keys']) as t;
end
$audited$;

drop table inventory.maintenance_jobs, inventory.audit_seal_state, inventory.audit_seal_cuts;
create index audit_log_seal_order_idx on inventory.audit_log (transaction_id, audit_id);
comment on column inventory.audit_log.audit_id is 'Insertion order (not commit order).';
comment on column inventory.audit_log.created_at is 'Transaction time of the change.';
comment on column inventory.audit_chain.transaction_id is 'Its transaction (the sealer''s watermark).';

delete from inventory.error_codes where code = 'BUSY';
alter table inventory.settings
  drop column audit_seal_max_lag,
  drop constraint settings_default_reservation_ttl_check,
  add constraint settings_default_reservation_ttl_check
    check (default_reservation_ttl is null
           or (default_reservation_ttl > interval '0' and default_reservation_ttl <= interval '366 days'));

alter table inventory.reservations drop column quantity_returned;

delete from inventory.reason_codes r
 where r.reason_code = 'found' and not exists (select from inventory.adjustments a where a.reason_code = 'found');
alter table inventory.reason_codes
  drop column direction,
  drop column updated_by,
  drop column updated_at,
  drop constraint reason_codes_approval_threshold_check,
  add constraint reason_codes_approval_threshold_check
    check (approval_threshold >= 0 and approval_threshold <> 'NaN'::numeric);
comment on table inventory.reason_codes is 'Why stock is adjusted, and whether (above which absolute quantity) an adjustment with this reason needs an admin''s approval.';
comment on column inventory.reason_codes.requires_approval is 'Whether adjustments with this reason may need approval at all.';
comment on column inventory.reason_codes.approval_threshold is 'Approval is needed when requires_approval and |quantity_delta| > approval_threshold (0: always).';

revoke all on inventory_api.reason_codes, inventory_api.reservations from public;
grant select on inventory_api.reason_codes, inventory_api.reservations to inventory_viewer;
revoke all on function inventory.audit_horizon(), inventory.verify_inventory(), inventory_api.verify_inventory(),
  inventory.verify_audit_chain(), inventory_api.verify_audit_chain() from public;
grant execute on function inventory.verify_inventory(), inventory_api.verify_inventory() to inventory_viewer;
grant execute on function inventory.verify_audit_chain(), inventory_api.verify_audit_chain() to inventory_admin;
do $supabase$
begin
  if exists (select from pg_catalog.pg_roles r where r.rolname = 'authenticated') then
    grant select on inventory_api.reason_codes, inventory_api.reservations to authenticated;
    grant execute on function inventory.verify_inventory(), inventory_api.verify_inventory(),
      inventory.verify_audit_chain(), inventory_api.verify_audit_chain() to authenticated;
  end if;
end
$supabase$;

reset role;
