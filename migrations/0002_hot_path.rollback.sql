-- Reverts 0002_hot_path: the row-level audit triggers and the 0.1.0 function bodies.

set local role inventory_owner;

do $audited$
begin
  drop trigger settings_audit_insert on inventory.settings;
  drop trigger settings_audit_update on inventory.settings;
  drop trigger settings_audit_delete on inventory.settings;
  drop trigger items_audit_insert on inventory.items;
  drop trigger items_audit_update on inventory.items;
  drop trigger items_audit_delete on inventory.items;
  drop trigger locations_audit_insert on inventory.locations;
  drop trigger locations_audit_update on inventory.locations;
  drop trigger locations_audit_delete on inventory.locations;
  drop trigger user_roles_audit_insert on inventory.user_roles;
  drop trigger user_roles_audit_update on inventory.user_roles;
  drop trigger user_roles_audit_delete on inventory.user_roles;
  drop trigger reservations_audit_insert on inventory.reservations;
  drop trigger reservations_audit_update on inventory.reservations;
  drop trigger reservations_audit_delete on inventory.reservations;
  drop trigger returns_audit_insert on inventory.returns;
  drop trigger returns_audit_update on inventory.returns;
  drop trigger returns_audit_delete on inventory.returns;
  drop trigger idempotency_keys_audit_insert on inventory.idempotency_keys;
  drop trigger idempotency_keys_audit_update on inventory.idempotency_keys;
  drop trigger idempotency_keys_audit_delete on inventory.idempotency_keys;
  drop trigger reason_codes_audit_insert on inventory.reason_codes;
  drop trigger reason_codes_audit_update on inventory.reason_codes;
  drop trigger reason_codes_audit_delete on inventory.reason_codes;
  drop trigger cycle_counts_audit_insert on inventory.cycle_counts;
  drop trigger cycle_counts_audit_update on inventory.cycle_counts;
  drop trigger cycle_counts_audit_delete on inventory.cycle_counts;
  drop trigger adjustments_audit_insert on inventory.adjustments;
  drop trigger adjustments_audit_update on inventory.adjustments;
  drop trigger adjustments_audit_delete on inventory.adjustments;
  drop trigger stock_policies_audit_insert on inventory.stock_policies;
  drop trigger stock_policies_audit_update on inventory.stock_policies;
  drop trigger stock_policies_audit_delete on inventory.stock_policies;
  drop trigger reorder_alerts_audit_insert on inventory.reorder_alerts;
  drop trigger reorder_alerts_audit_update on inventory.reorder_alerts;
  drop trigger reorder_alerts_audit_delete on inventory.reorder_alerts;
  drop trigger stock_levels_audit_insert on inventory.stock_levels;
  drop trigger stock_levels_audit_update on inventory.stock_levels;
  drop trigger stock_levels_audit_delete on inventory.stock_levels;
end
$audited$;

drop function inventory.audit_table(text, boolean);

-- Validates a free-text argument (references, order numbers, reasons): present, trimmed, bounded,
-- printable. Returns it unchanged.
create or replace function inventory.check_text(value text, argument text, max_length integer default 200,
                                     required boolean default true)
returns text
language plpgsql stable
set search_path = ''
as $$
begin
  if check_text.value is null then
    if check_text.required then
      perform inventory.raise_error('INVALID_ARGUMENT',
        pg_catalog.format('%s is required', check_text.argument),
        pg_catalog.jsonb_build_object('argument', check_text.argument, 'problem', 'missing'));
    end if;
    return null;
  end if;
  -- Surrounding blanks include Unicode spaces and invisible format characters, so that no two
  -- references differ only by something a person cannot see.
  if pg_catalog.length(check_text.value) not between 1 and check_text.max_length
     or check_text.value ~ '^[\s\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]'
     or check_text.value ~ '[\s\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]$'
     or check_text.value ~ '[[:cntrl:]\u200b-\u200f\u2028\u2029\ufeff]' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('%s must be 1 to %s printable characters without surrounding spaces',
                        check_text.argument, check_text.max_length),
      pg_catalog.jsonb_build_object('argument', check_text.argument, 'problem', 'malformed'));
  end if;
  return check_text.value;
end
$$;
comment on function inventory.check_text(text, text, integer, boolean) is 'Raises INVALID_ARGUMENT unless the text is present (when required), 1..max_length printable characters, trimmed.';

-- Canonical bytes of a movement: independent of TimeZone and DateStyle.
create or replace function inventory.ledger_entry_bytes(entry inventory.ledger) returns bytea
language plpgsql immutable
set search_path = ''
as $$
  -- Fields in a fixed order, separated by a unit separator; texts of numbers, ids and jsonb are
  -- canonical, and the time is an epoch number, so the bytes do not depend on session settings.
begin
  return (
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
             (ledger_entry_bytes.entry).transaction_id), 'UTF8'));
end
$$;
comment on function inventory.ledger_entry_bytes(inventory.ledger) is 'Canonical, session-independent bytes of a movement, hashed by the per-level chain.';

create or replace function inventory.record_audit() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_old jsonb;
  v_new jsonb;
begin
  if tg_op <> 'DELETE' then
    v_new := pg_catalog.to_jsonb(new);
  end if;
  if tg_op = 'UPDATE' then
    -- Only the columns that changed, with their old values: the full old row is the previous
    -- audit row of the same key, and half the bytes keep the write (and its WAL) small.
    select pg_catalog.jsonb_object_agg(o.key, o.value) into v_old
      from pg_catalog.jsonb_each(pg_catalog.to_jsonb(old)) o
     where v_new -> o.key is distinct from o.value;
  elsif tg_op = 'DELETE' then
    v_old := pg_catalog.to_jsonb(old);
  end if;
  insert into inventory.audit_log (table_name, operation, old_row, new_row, actor, db_role, login,
                                   request_path, request_id)
  values (tg_table_name, tg_op::inventory.audit_operation, v_old, v_new,
          inventory.current_actor(), inventory.acting_db_role(), session_user,
          nullif(pg_catalog.current_setting('request.path', true), ''),
          case when inventory.is_gateway_session()
               then nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb ->> 'x-request-id' end);
  return null;
end
$$;
comment on function inventory.record_audit() is 'Trigger: appends the row change to the audit log.';

create or replace function inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text,
                                        expires_in interval, idempotency_key text)
returns inventory_api.reservation
language plpgsql volatile security definer
set search_path = ''
as $$
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
  perform inventory.check_quantity(reserve_stock.quantity);
  perform inventory.check_text(reserve_stock.order_ref, 'order_ref', 200);
  if v_found.location_id is null then
    perform inventory.location_for_code(reserve_stock.location);
  end if;
  perform inventory.authorize('operator', v_found.location_id);
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
$$;
comment on function inventory.reserve_stock(text, numeric, text, text, interval, text) is 'Implements inventory_api.reserve_stock.';

create or replace function inventory.expire_reservations(batch_size integer) returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('scheduler');
  if expire_reservations.batch_size is null or expire_reservations.batch_size not between 1 and 100000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'batch_size must be between 1 and 100000',
      pg_catalog.jsonb_build_object('argument', 'batch_size', 'problem', 'out of range'));
  end if;
  return (
    select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id))
      from (select r.reservation_id from inventory.reservations r
             where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
             order by r.expires_at
             limit expire_reservations.batch_size
               for update skip locked) d);
end
$$;
comment on function inventory.expire_reservations(integer) is 'Implements inventory_api.expire_reservations.';

-- Canonical bytes of an audit row: independent of TimeZone and DateStyle (times as epoch numbers,
-- jsonb rendered by its own canonical output).
create or replace function inventory.audit_row_bytes(entry inventory.audit_log) returns bytea
language plpgsql immutable
set search_path = ''
as $$
begin
  return (
    select pg_catalog.convert_to(pg_catalog.jsonb_build_object(
             'audit_id', (audit_row_bytes.entry).audit_id,
             'table', (audit_row_bytes.entry).table_name,
             'op', (audit_row_bytes.entry).operation,
             'old', (audit_row_bytes.entry).old_row,
             'new', (audit_row_bytes.entry).new_row,
             'actor', (audit_row_bytes.entry).actor,
             'db_role', (audit_row_bytes.entry).db_role,
             'login', (audit_row_bytes.entry).login,
             'request_path', (audit_row_bytes.entry).request_path,
             'request_id', (audit_row_bytes.entry).request_id,
             'txid', (audit_row_bytes.entry).transaction_id::text,
             'at', extract(epoch from (audit_row_bytes.entry).created_at))::text, 'UTF8'));
end
$$;
comment on function inventory.audit_row_bytes(inventory.audit_log) is 'Canonical, session-independent bytes of an audit row, hashed by the chain.';

-- Puts a table under audit: every row change appended to the audit log, also in replica mode.
create function inventory.audit_table(table_name text) returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  execute pg_catalog.format(
    'create trigger %I after insert or update or delete on inventory.%I
       for each row execute function inventory.record_audit()', audit_table.table_name || '_audit',
    audit_table.table_name);
  execute pg_catalog.format('alter table inventory.%I enable always trigger %I', audit_table.table_name,
                            audit_table.table_name || '_audit');
end
$$;
comment on function inventory.audit_table(text) is 'Installs the audit trigger (ENABLE ALWAYS) on a table of the inventory schema (used by the schema scripts).';

do $audited$
begin
  perform inventory.audit_table(t)
     from pg_catalog.unnest(array['settings', 'items', 'locations', 'user_roles', 'reservations', 'returns', 'idempotency_keys', 'reason_codes', 'cycle_counts', 'adjustments', 'stock_policies', 'reorder_alerts', 'stock_levels']) as t;
end
$audited$;

drop function inventory.record_audit_inserts(), inventory.record_audit_deletes(),
  inventory.record_audit_updates(), inventory.audit_context(), inventory.text_is_valid(text, integer);

reset role;
