-- pyinv 0.2.0: a cheaper hot path and sweeper (see docs/benchmarks.md).
-- Set-based statement-level audit triggers; stock-level quantity changes audited by their ledger
-- movement only; the ledger hash computed without a query; inlinable argument checks on
-- reserve_stock; expiry batches taken level by level.
-- depends: 0001_core

set local role inventory_owner;

-- Whether a free-text argument is 1..max_length printable characters without surrounding blanks.
-- Blanks include Unicode spaces and invisible format characters, so that no two references differ
-- only by something a person cannot see. A SQL-standard body, so callers on hot paths inline it.
create or replace function inventory.text_is_valid(value text, max_length integer) returns boolean
language sql immutable parallel safe
begin atomic
  select coalesce(pg_catalog.length(text_is_valid.value) between 1 and text_is_valid.max_length
                  and text_is_valid.value !~ '^[\s\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]'
                  and text_is_valid.value !~ '[\s\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]$'
                  and text_is_valid.value !~ '[[:cntrl:]\u200b-\u200f\u2028\u2029\ufeff]', false);
end;
comment on function inventory.text_is_valid(text, integer) is 'Whether a text is 1..max_length printable characters without surrounding (Unicode) blanks.';

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
  if not inventory.text_is_valid(check_text.value, check_text.max_length) then
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
language sql stable parallel safe
-- Fields in a fixed order, separated by a unit separator; texts of numbers, ids and jsonb are
-- canonical, and the time is an epoch number, so the bytes do not depend on session settings.
-- A SQL-standard body: the ledger trigger inlines it under the stock level's row lock.
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
           (ledger_entry_bytes.entry).transaction_id), 'UTF8');
end;
comment on function inventory.ledger_entry_bytes(inventory.ledger) is 'Canonical, session-independent bytes of a movement, hashed by the per-level chain.';

-- Who is changing rows, once per statement: the acting user, the database role, and under
-- PostgREST the request path and x-request-id.
create or replace function inventory.audit_context(out actor text, out db_role text, out request_path text,
                                        out request_id text)
language plpgsql stable security definer
set search_path = ''
as $$
begin
  audit_context.actor := inventory.current_actor();
  audit_context.db_role := inventory.acting_db_role();
  audit_context.request_path := nullif(pg_catalog.current_setting('request.path', true), '');
  if inventory.is_gateway_session() then
    audit_context.request_id :=
      nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb ->> 'x-request-id';
  end if;
end
$$;
comment on function inventory.audit_context() is 'Acting user, database role, PostgREST request path and x-request-id of the current statement.';

-- The audit triggers are statement-level and set-based: one INSERT ... SELECT over the statement's
-- transition table, so that a sweep expiring a thousand holds writes its thousand audit rows in
-- one statement instead of a thousand trigger calls.
create or replace function inventory.record_audit_inserts() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into inventory.audit_log (table_name, operation, new_row, actor, db_role, login, request_path,
                                   request_id)
  select tg_table_name, 'INSERT', pg_catalog.to_jsonb(n), c.actor, c.db_role, session_user, c.request_path,
         c.request_id
    from inventory.audit_context() c, new_rows n;
  return null;
end
$$;
comment on function inventory.record_audit_inserts() is 'Statement trigger: appends the inserted rows (transition table new_rows) to the audit log.';

create or replace function inventory.record_audit_deletes() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into inventory.audit_log (table_name, operation, old_row, actor, db_role, login, request_path,
                                   request_id)
  select tg_table_name, 'DELETE', pg_catalog.to_jsonb(o), c.actor, c.db_role, session_user, c.request_path,
         c.request_id
    from inventory.audit_context() c, old_rows o;
  return null;
end
$$;
comment on function inventory.record_audit_deletes() is 'Statement trigger: appends the deleted rows (transition table old_rows) to the audit log.';

-- Old and new versions are paired by the primary key, whose (up to three) column names are the
-- trigger's arguments, padded with '' (no such key); a full join keeps a row whose key was changed (as two half-rows) rather than lose it.
-- old_row holds only the changed columns' old values: the full old row is the previous audit row
-- of the same key, and half the bytes keep the write (and its WAL) small.
create or replace function inventory.record_audit_updates() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into inventory.audit_log (table_name, operation, old_row, new_row, actor, db_role, login, request_path,
                                   request_id)
  select tg_table_name, 'UPDATE',
         (select pg_catalog.jsonb_object_agg(e.key, e.value) from pg_catalog.jsonb_each(o.j) e
           where n.j -> e.key is distinct from e.value),
         n.j, c.actor, c.db_role, session_user, c.request_path, c.request_id
    from inventory.audit_context() c,
         -- offset 0 computes each row's jsonb once, not once per reference
         (select pg_catalog.to_jsonb(o) as j from old_rows o offset 0) o
         full join (select pg_catalog.to_jsonb(n) as j from new_rows n offset 0) n
           on pg_catalog.jsonb_build_array(o.j -> tg_argv[0], o.j -> tg_argv[1], o.j -> tg_argv[2])
            = pg_catalog.jsonb_build_array(n.j -> tg_argv[0], n.j -> tg_argv[1], n.j -> tg_argv[2]);
  return null;
end
$$;
comment on function inventory.record_audit_updates() is 'Statement trigger: appends the updated rows (transition tables old_rows, new_rows, paired by the key columns given as arguments) to the audit log.';

-- Row-level variant, for tables whose UPDATEs are audited only under a WHEN condition.
create or replace function inventory.record_audit() returns trigger
language plpgsql security definer
set search_path = ''
as $$
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
$$;
comment on function inventory.record_audit() is 'Row trigger: appends one updated row to the audit log (used where UPDATEs are audited under a WHEN condition).';

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
$$;
comment on function inventory.reserve_stock(text, numeric, text, text, interval, text) is 'Implements inventory_api.reserve_stock.';

create or replace function inventory.expire_reservations(batch_size integer) returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
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
$$;
comment on function inventory.expire_reservations(integer) is 'Implements inventory_api.expire_reservations.';

-- Canonical bytes of an audit row: independent of TimeZone and DateStyle (times as epoch numbers,
-- jsonb rendered by its own canonical output).
create or replace function inventory.audit_row_bytes(entry inventory.audit_log) returns bytea
language sql stable parallel safe
begin atomic
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
           'at', extract(epoch from (audit_row_bytes.entry).created_at))::text, 'UTF8');
end;
comment on function inventory.audit_row_bytes(inventory.audit_log) is 'Canonical, session-independent bytes of an audit row, hashed by the chain.';

drop function inventory.audit_table(text);

-- Puts a table under audit: every INSERT, UPDATE and DELETE appended to the audit log, also in
-- replica mode. With audit_updates false the caller installs its own UPDATE trigger (stock levels,
-- whose quantity changes are recorded, hash-chained, by the ledger and not twice).
create function inventory.audit_table(table_name text, audit_updates boolean default true) returns void
language plpgsql volatile
set search_path = ''
as $$
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
$$;
comment on function inventory.audit_table(text, boolean) is 'Installs the audit triggers (ENABLE ALWAYS) on a table of the inventory schema; audit_updates false leaves UPDATEs to the caller (used by the schema scripts).';

do $audited$
begin
  drop trigger settings_audit on inventory.settings;
  drop trigger items_audit on inventory.items;
  drop trigger locations_audit on inventory.locations;
  drop trigger user_roles_audit on inventory.user_roles;
  drop trigger reservations_audit on inventory.reservations;
  drop trigger returns_audit on inventory.returns;
  drop trigger idempotency_keys_audit on inventory.idempotency_keys;
  drop trigger reason_codes_audit on inventory.reason_codes;
  drop trigger cycle_counts_audit on inventory.cycle_counts;
  drop trigger adjustments_audit on inventory.adjustments;
  drop trigger stock_policies_audit on inventory.stock_policies;
  drop trigger reorder_alerts_audit on inventory.reorder_alerts;
  drop trigger stock_levels_audit on inventory.stock_levels;
  perform inventory.audit_table(t)
     from pg_catalog.unnest(array['settings', 'items', 'locations', 'user_roles', 'reservations', 'returns', 'idempotency_keys', 'reason_codes', 'cycle_counts', 'adjustments', 'stock_policies', 'reorder_alerts']) as t;
  perform inventory.audit_table('stock_levels', audit_updates => false);
end
$audited$;
create trigger stock_levels_audit_update after update on inventory.stock_levels
  for each row when (old.on_hand = new.on_hand and old.reserved = new.reserved)
  execute function inventory.record_audit();
alter table inventory.stock_levels enable always trigger stock_levels_audit_update;

reset role;
