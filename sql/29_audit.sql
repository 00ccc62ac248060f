-- Layer 2, tables: the audit log. Every INSERT, UPDATE and DELETE on every table, by whom, as which role, in which
-- transaction, with the row before and after. Append-only (also in replica mode), and hash-chained.
-- Exceptions, so that each fact is recorded once: a change of a stock level's quantities is
-- recorded by its ledger movement (actor, transaction, before and after, chained per level), and
-- so are the holds and idempotency keys pyinv's own functions write (the movement names the hold
-- and the key); changes to them by anyone else are audited here.
--
-- The chain is sealed after commit by seal_audit_log(), not inline: a chain head locked by every
-- writing transaction would serialise the whole system on one row. Rows are sealed in audit_id
-- order, but only up to a "cut": an audit_id below which every row is final (its transaction has
-- committed or aborted), so no row can later appear before the sealed end of the chain. A cut is the
-- audit_id sequence's value together with the transactions running in this database when it was
-- read; it is clean once they have all ended. Nothing here depends on the cluster's transaction
-- counter staying where it was: after pg_dump/pg_restore into another cluster the sealer notices
-- that its pending cuts name transactions from the future, drops them and starts again.
create type inventory.audit_operation as enum ('INSERT', 'UPDATE', 'DELETE');

comment on type inventory.audit_operation is 'Row operations recorded in the audit log.';

create table inventory.audit_log (
  audit_id bigint generated always as identity primary key,
  table_name text not null,
  operation inventory.audit_operation not null,
  old_row jsonb,
  new_row jsonb,
  actor text not null,
  db_role text not null,
  login text not null,
  request_path text,
  request_id text,
  transaction_id xid8 not null default pg_catalog.pg_current_xact_id(),
  created_at timestamptz not null default pg_catalog.now()
);

-- Reading the log by time (inventory_api.audit_log) scans only the block ranges of that period: rows
-- arrive in time order, and a BRIN index costs next to nothing on insert.
create index audit_log_created_at_idx on inventory.audit_log using brin (created_at);

comment on table inventory.audit_log is 'Append-only record of every row change in every pyinv table.';

comment on column inventory.audit_log.audit_id is 'Insertion order (not commit order); the chain seals rows in this order, up to clean cuts.';

comment on column inventory.audit_log.table_name is 'Table changed.';

comment on column inventory.audit_log.operation is 'INSERT, UPDATE or DELETE.';

comment on column inventory.audit_log.old_row is 'Before the change: the whole row for DELETE, the changed columns'' old values for UPDATE.';

comment on column inventory.audit_log.new_row is 'Row after the change (INSERT, UPDATE).';

comment on column inventory.audit_log.actor is 'Acting user: JWT sub under the gateway, else the login.';

comment on column inventory.audit_log.db_role is 'Database role in effect (SET ROLE / PostgREST request role).';

comment on column inventory.audit_log.login is 'session_user: the login that connected.';

comment on column inventory.audit_log.request_path is 'PostgREST request.path, when called through PostgREST.';

comment on column inventory.audit_log.request_id is 'x-request-id header, when called through PostgREST.';

comment on column inventory.audit_log.transaction_id is 'Writing transaction.';

comment on column inventory.audit_log.created_at is 'Transaction time of the change (the start of the writing transaction).';

create table inventory.audit_chain (
  seq bigint primary key,
  audit_id bigint not null constraint audit_chain_audit_id_key unique,
  transaction_id xid8 not null,
  prev_hash bytea,
  hash bytea not null,
  sealed_at timestamptz not null default pg_catalog.now(),
  constraint audit_chain_seq_check check (seq >= 1),
  constraint audit_chain_prev_hash_check check ((seq = 1) = (prev_hash is null))
);

comment on table inventory.audit_chain is 'Hash chain over the audit log in seal order: hash = sha256(prev_hash || canonical audit row).';

comment on column inventory.audit_chain.seq is 'Position in the chain, contiguous from 1.';

comment on column inventory.audit_chain.audit_id is 'The audit row sealed.';

comment on column inventory.audit_chain.transaction_id is 'Transaction that wrote the audit row (data only: sealing never compares transaction ids across clusters).';

comment on column inventory.audit_chain.prev_hash is 'Hash of the previous link (null for the first).';

comment on column inventory.audit_chain.hash is 'sha256(prev_hash || canonical bytes of the audit row).';

comment on column inventory.audit_chain.sealed_at is 'When the link was sealed.';

-- Canonical bytes of an audit row: independent of TimeZone and DateStyle (times as epoch numbers,
-- jsonb rendered by its own canonical output).
create function inventory.audit_row_bytes(entry inventory.audit_log) returns bytea
language sql stable parallel safe
set search_path = ''
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

-- Who is changing rows, once per statement: the acting user, the database role, and under
-- PostgREST the request path and x-request-id. Request context is taken only from the trusted
-- gateway: any login can set_config('request.path', ...), and a forged path in the audit log would
-- be worse than none.
create function inventory.audit_context(out actor text, out db_role text, out request_path text,
                                        out request_id text)
language plpgsql stable security definer
set search_path = ''
as $$
begin
  audit_context.actor := inventory.current_actor();
  audit_context.db_role := inventory.acting_db_role();
  if inventory.is_gateway_session() then
    audit_context.request_path := nullif(pg_catalog.current_setting('request.path', true), '');
    audit_context.request_id :=
      nullif(pg_catalog.current_setting('request.headers', true), '')::jsonb ->> 'x-request-id';
  end if;
end
$$;

comment on function inventory.audit_context() is 'Acting user, database role, PostgREST request path and x-request-id of the current statement.';

-- The audit triggers are statement-level and set-based: one INSERT ... SELECT over the statement's
-- transition table, so that a sweep expiring a thousand holds writes its thousand audit rows in
-- one statement instead of a thousand trigger calls.
create function inventory.record_audit_inserts() returns trigger
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

create function inventory.record_audit_deletes() returns trigger
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
create function inventory.record_audit_updates() returns trigger
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

-- Appends one row change to the audit log: the one place a single row's change is written there
-- (the row trigger below, and the stock levels' trigger for changes that are not movements).
create function inventory.audit_row_change(table_name text, operation inventory.audit_operation, old_row jsonb,
                                           new_row jsonb)
returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  insert into inventory.audit_log (table_name, operation, old_row, new_row, actor, db_role, login, request_path,
                                   request_id)
  select audit_row_change.table_name, audit_row_change.operation,
         case when audit_row_change.operation = 'UPDATE'
              then (select pg_catalog.jsonb_object_agg(e.key, e.value)
                      from pg_catalog.jsonb_each(audit_row_change.old_row) e
                     where audit_row_change.new_row -> e.key is distinct from e.value)
              else audit_row_change.old_row end,
         audit_row_change.new_row, c.actor, c.db_role, session_user, c.request_path, c.request_id
    from inventory.audit_context() c;
end
$$;
comment on function inventory.audit_row_change(text, inventory.audit_operation, jsonb, jsonb) is 'Appends one row''s change to the audit log (for UPDATE, old_row keeps the changed columns'' old values).';

-- Row-level variant, for tables audited only under a WHEN condition: a statement trigger with a
-- transition table captures every row even when its WHEN condition then skips it, a row trigger
-- whose WHEN is false costs nothing.
create function inventory.record_audit() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  perform inventory.audit_row_change(tg_table_name, tg_op::inventory.audit_operation,
    case when tg_op in ('UPDATE', 'DELETE') then pg_catalog.to_jsonb(old) end,
    case when tg_op in ('INSERT', 'UPDATE') then pg_catalog.to_jsonb(new) end);
  return null;
end
$$;
comment on function inventory.record_audit() is 'Row trigger: appends one inserted, updated or deleted row to the audit log (used where changes are audited under a WHEN condition).';

-- Puts a table under audit: every INSERT, UPDATE and DELETE appended to the audit log, also in
-- replica mode. With audit_updates false the caller installs its own UPDATE trigger (stock levels,
-- whose quantity changes are recorded, hash-chained, by the ledger and not twice). With
-- recorded_by_ledger, changes made by pyinv's own functions (which run as inventory_owner, a role
-- no login holds once migrated) are left to the ledger, which records them as movements (holds,
-- idempotency keys); changes anyone else makes are audited as everywhere else.
create function inventory.audit_table(table_name text, audit_updates boolean default true,
                                      recorded_by_ledger boolean default false) returns void
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
  if audit_table.recorded_by_ledger then
    execute pg_catalog.format(
      'create trigger %I after insert or update or delete on inventory.%I
         for each row when (current_user <> ''inventory_owner'') execute function inventory.record_audit()',
      audit_table.table_name || '_audit', audit_table.table_name);
    execute pg_catalog.format('alter table inventory.%I enable always trigger %I', audit_table.table_name,
                              audit_table.table_name || '_audit');
    return;
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

comment on function inventory.audit_table(text, boolean, boolean) is 'Installs the audit triggers (ENABLE ALWAYS) on a table of the inventory schema; audit_updates false leaves UPDATEs to the caller, recorded_by_ledger leaves changes by pyinv''s own functions to the ledger (used by the schema scripts).';

do $audited$
begin
  perform inventory.audit_table(t)
     from pg_catalog.unnest(array['settings', 'items', 'locations', 'user_roles', 'returns', 'reason_codes',
                                  'cycle_counts', 'adjustments', 'stock_policies', 'reorder_alerts', 'lots']) as t;
  -- Holds are made, shipped, released and expired only with a ledger movement naming them, and an
  -- idempotency key is stored only with its effect's movements: one record of each fact.
  perform inventory.audit_table(t, recorded_by_ledger => true)
     from pg_catalog.unnest(array['reservations', 'idempotency_keys', 'lot_levels', 'lot_allocations']) as t;
  perform inventory.audit_table('stock_levels', audit_updates => false);
  -- Not audited: events (inventory.events) are derived from changes recorded above or in the
  -- ledger, like the ledger itself, and purged after their retention; a consumer's position
  -- (inventory.event_consumers) moves with every batch it reads (26_events.sql).
end
$audited$;

create trigger audit_log_forbid_change
  before update or delete on inventory.audit_log
  for each row execute function inventory.forbid_ledger_change();

create trigger audit_log_forbid_truncate
  before truncate on inventory.audit_log
  for each statement execute function inventory.forbid_ledger_change();

create trigger audit_chain_forbid_change
  before update or delete on inventory.audit_chain
  for each row execute function inventory.forbid_ledger_change();

create trigger audit_chain_forbid_truncate
  before truncate on inventory.audit_chain
  for each statement execute function inventory.forbid_ledger_change();

alter table inventory.audit_log enable always trigger audit_log_forbid_change;

alter table inventory.audit_log enable always trigger audit_log_forbid_truncate;

alter table inventory.audit_chain enable always trigger audit_chain_forbid_change;

alter table inventory.audit_chain enable always trigger audit_chain_forbid_truncate;

create table inventory.audit_seal_state (
  singleton boolean primary key default true,
  sealed_through bigint not null default 0,
  constraint audit_seal_state_singleton_check check (singleton)
);

comment on table inventory.audit_seal_state is 'Where sealing stands (one row).';

comment on column inventory.audit_seal_state.singleton is 'Always true: the table holds exactly one row.';

comment on column inventory.audit_seal_state.sealed_through is 'Every audit row with audit_id up to this one is on the chain (or was rolled back and never existed).';

insert into inventory.audit_seal_state default values;

create table inventory.audit_seal_cuts (
  sealable_through bigint primary key,
  waiting_for xid8[] not null,
  taken_at timestamptz not null default pg_catalog.now()
);

comment on table inventory.audit_seal_cuts is 'Cuts recorded by the sealer that were not clean yet: once every transaction in waiting_for has ended, every audit row up to sealable_through is final.';

comment on column inventory.audit_seal_cuts.sealable_through is 'Value of the audit_id sequence when the cut was taken.';

comment on column inventory.audit_seal_cuts.waiting_for is 'Transactions of this database that were running then (they may still add rows below the cut).';

comment on column inventory.audit_seal_cuts.taken_at is 'When the cut was taken.';
