-- pyinv 0.3.0: hardening (issue 9). Returns counted on the holds they come back to, so concurrent
-- returns conflict at every isolation level; lock order kept by lazy expiry and by counts and
-- approvals; access as the union of group membership and user_roles rows (inventory_user for logins
-- limited to some locations); reason codes with a direction and an approval rule for removals;
-- maintenance locks only pyinv can take; sealing in audit_id order up to clean cuts, independent of
-- the cluster's transaction counter; anchors; request context only from the gateway; canonical
-- idempotency arguments; hold lifetimes checked on the resulting time; invisible and non-NFC text
-- refused everywhere. Reshaped for speed (issue 10): a typed movement description, one trigger per
-- stock level change, invariants as named CHECKs calling compiled predicates, holds and keys
-- recorded once (by the movement that names them). Fitted to its users (issue 11): Supabase's
-- NOINHERIT roles, search_path pinned on every function, items updated, soft-deleted and restored
-- with optimistic locking (version), policies with expected_version, what a hold is for
-- (reference_type, notes), the audit log and users' roles readable through the API.
-- depends: 0002_hot_path

-- Roles first, as the migrating login (creating roles needs its CREATEROLE, not the owner's).
do $roles$
begin
  if not exists (select from pg_catalog.pg_roles r where r.rolname = 'inventory_user') then
    create role inventory_user nologin;
  end if;
end
$roles$;
comment on role inventory_user is 'pyinv: may call the API and read its views, with only the business roles its user_roles rows give it (a login limited to some locations).';

-- Until now a login with user_roles rows had only those rows (within its group memberships), and
-- fell back to its memberships when the rows were revoked. Access is now the union of both; so that
-- no login gains access by this upgrade, a login narrowed by rows gives up its group memberships
-- and becomes an inventory_user, which keeps exactly the rights its rows gave it.
do $narrowed$
declare
  v_login text;
  v_group text;
begin
  for v_login in
    select distinct u.user_id from inventory.user_roles u
      join pg_catalog.pg_roles r on r.rolname = u.user_id
     where r.rolname not in ('anon', 'authenticated', 'service_role', 'authenticator')
       and not r.rolname = any ((select s.gateway_roles from inventory.settings s)::text[])
  loop
    for v_group in
      select m.roleid::regrole::text from pg_catalog.pg_auth_members m
       where m.member = v_login::regrole
         and m.roleid::regrole::text in ('inventory_viewer', 'inventory_operator', 'inventory_admin',
                                         'inventory_scheduler')
    loop
      execute pg_catalog.format('revoke %I from %I', v_group, v_login);
      raise notice 'pyinv: % is limited by user_roles rows: revoked its membership of %', v_login, v_group;
    end loop;
    if exists (select from pg_catalog.unnest(array['viewer', 'operator', 'admin', 'scheduler']) g
                where pg_catalog.pg_has_role(v_login, 'inventory_' || g, 'USAGE')) then
      raise exception 'pyinv: login % has user_roles rows and is still a member of an inventory_* group role through another role', v_login
        using hint = 'Revoke that membership (the login should act only where its user_roles rows say), then migrate again.';
    end if;
    execute pg_catalog.format('grant inventory_user to %I', v_login);
  end loop;
end
$narrowed$;

set local role inventory_owner;

-- Sealing now goes in audit_id order up to clean cuts. Where the old sealer (which went in
-- transaction id order) stands: every row below the first unsealed one is sealed. Writers of the
-- audit log are waited for, so that no row is still in flight below that point.
lock table inventory.audit_log in share mode;
create table inventory.audit_seal_state (
  singleton boolean primary key default true,
  sealed_through bigint not null default 0,
  constraint audit_seal_state_singleton_check check (singleton)
);
comment on table inventory.audit_seal_state is 'Where sealing stands (one row).';
comment on column inventory.audit_seal_state.singleton is 'Always true: the table holds exactly one row.';
comment on column inventory.audit_seal_state.sealed_through is 'Every audit row with audit_id up to this one is on the chain (or was rolled back and never existed).';
insert into inventory.audit_seal_state (sealed_through)
select coalesce((select pg_catalog.min(a.audit_id) - 1 from inventory.audit_log a
                  where not exists (select from inventory.audit_chain c where c.audit_id = a.audit_id)),
                (select pg_catalog.max(a.audit_id) from inventory.audit_log a), 0);

create table inventory.audit_seal_cuts (
  sealable_through bigint primary key,
  waiting_for xid8[] not null,
  taken_at timestamptz not null default pg_catalog.now()
);
comment on table inventory.audit_seal_cuts is 'Cuts recorded by the sealer that were not clean yet: once every transaction in waiting_for has ended, every audit row up to sealable_through is final.';
comment on column inventory.audit_seal_cuts.sealable_through is 'Value of the audit_id sequence when the cut was taken.';
comment on column inventory.audit_seal_cuts.waiting_for is 'Transactions of this database that were running then (they may still add rows below the cut).';
comment on column inventory.audit_seal_cuts.taken_at is 'When the cut was taken.';

drop index inventory.audit_log_seal_order_idx;
comment on column inventory.audit_log.audit_id is 'Insertion order (not commit order); the chain seals rows in this order, up to clean cuts.';
comment on column inventory.audit_log.created_at is 'Transaction time of the change (the start of the writing transaction).';
comment on column inventory.audit_chain.transaction_id is 'Transaction that wrote the audit row (data only: sealing never compares transaction ids across clusters).';
drop function inventory.audit_horizon();

create table inventory.maintenance_jobs (
  job text primary key,
  description text not null,
  last_started_at timestamptz,
  last_finished_at timestamptz,
  last_rows bigint,
  constraint maintenance_jobs_job_format_check check (job ~ '^[a-z][a-z0-9_]{0,39}$')
);
comment on table inventory.maintenance_jobs is 'Maintenance jobs: a job locks its row while it runs (a lock no other login can take) and records its last run here.';
comment on column inventory.maintenance_jobs.job is 'Name of the job (the function it runs).';
comment on column inventory.maintenance_jobs.description is 'What the job does.';
comment on column inventory.maintenance_jobs.last_started_at is 'When its last run started (the run''s transaction time).';
comment on column inventory.maintenance_jobs.last_finished_at is 'When its last run finished.';
comment on column inventory.maintenance_jobs.last_rows is 'Rows the last run touched.';
insert into inventory.maintenance_jobs (job, description) values
  ('seal_audit_log', 'Append committed audit rows to the hash chain.'),
  ('check_reorder_points', 'Re-evaluate every reorder alert in one pass.');
alter table inventory.audit_seal_state enable row level security;
alter table inventory.audit_seal_cuts enable row level security;
alter table inventory.maintenance_jobs enable row level security;

insert into inventory.error_codes (code, sqlstate, description) values
  ('BUSY', '55P03', 'Other transactions kept what this needs busy for longer than it may wait; retry later.');

alter table inventory.settings
  add column audit_seal_max_lag interval not null default interval '1 hour',
  add constraint settings_audit_seal_max_lag_check check (audit_seal_max_lag > interval '0'),
  drop constraint settings_default_reservation_ttl_check,
  add constraint settings_default_reservation_ttl_check
    check (default_reservation_ttl is null
           or (default_reservation_ttl > interval '0' and default_reservation_ttl <= interval '366 days'
               and extract(year from default_reservation_ttl) = 0 and extract(month from default_reservation_ttl) = 0
               and extract(day from default_reservation_ttl) >= 0
               and default_reservation_ttl - pg_catalog.make_interval(days => extract(day from default_reservation_ttl)::integer)
                   >= interval '0'));
comment on column inventory.settings.audit_seal_max_lag is 'verify_audit_chain reports committed audit rows older than this that are not sealed yet (a sealer that is not running).';

-- Returns are counted on the holds whose shipment they come back to, first shipped first returned.
alter table inventory.reservations
  add column quantity_returned numeric(19, 4) not null default 0,
  add constraint reservations_quantity_returned_check
    check (quantity_returned >= 0 and quantity_returned <= quantity_fulfilled) not valid;
comment on column inventory.reservations.quantity_returned is 'Units of this hold''s shipment that came back (process_return). Kept on the hold, which every return updates, so two concurrent returns of one shipment conflict at any isolation level.';
update inventory.reservations r set quantity_returned = b.returned
  from (select h.reservation_id,
               least(h.quantity_fulfilled,
                     greatest(t.quantity - coalesce(pg_catalog.sum(h.quantity_fulfilled) over (
                                partition by h.order_ref, h.item_id order by h.reservation_id
                                rows between unbounded preceding and 1 preceding), 0), 0)) as returned
          from inventory.reservations h
          join (select x.order_ref, x.item_id, pg_catalog.sum(x.quantity) as quantity
                  from inventory.returns x group by x.order_ref, x.item_id) t
            on t.order_ref = h.order_ref and t.item_id = h.item_id) b
 where r.reservation_id = b.reservation_id and b.returned > 0;
alter table inventory.reservations validate constraint reservations_quantity_returned_check;

-- Reason codes get a direction; removals above the threshold need approval whatever the reason.
alter table inventory.reason_codes
  add column direction text,
  add column updated_by text not null default 'pyinv',
  add column updated_at timestamptz not null default pg_catalog.now(),
  drop constraint reason_codes_approval_threshold_check,
  add constraint reason_codes_approval_threshold_check
    check (approval_threshold >= 0 and approval_threshold <= 1000000000000 and approval_threshold <> 'NaN'::numeric);
update inventory.reason_codes r
   set direction = case when r.reason_code in ('received', 'restock', 'found') then 'add'
                        when r.reason_code in ('damaged', 'shrinkage', 'theft', 'expired', 'promotion') then 'remove'
                        else 'both' end;
alter table inventory.reason_codes
  alter column direction set not null,
  add constraint reason_codes_direction_check check (direction in ('add', 'remove', 'both'));
insert into inventory.reason_codes (reason_code, description, direction, requires_approval, approval_threshold)
values ('found', 'Units found that the books did not know of', 'add', true, 10)
on conflict do nothing;
comment on table inventory.reason_codes is 'Why stock is adjusted, which way a reason may move it, and above which absolute quantity an adjustment with it needs an admin''s approval.';
comment on column inventory.reason_codes.direction is 'add (only increases on_hand), remove (only decreases it) or both.';
comment on column inventory.reason_codes.requires_approval is 'Whether additions with this reason above the threshold need approval; removals above the threshold always do.';
comment on column inventory.reason_codes.approval_threshold is 'Approval is needed when |quantity_delta| > approval_threshold and the adjustment removes stock or requires_approval is set (0: always).';
comment on column inventory.reason_codes.updated_by is 'Admin who last set the reason (set_reason_code), or pyinv for the seeded ones.';
comment on column inventory.reason_codes.updated_at is 'When the reason was last set.';

-- A movement is described by a typed value instead of a JSON literal (issue 10), and the level
-- remembers the id of its latest movement, which callers read back with UPDATE ... RETURNING.
create type inventory.movement as (
  movement_type inventory.movement_type,
  reason text,
  reference text,
  idempotency_key text,
  reservation_id bigint,
  related_movement_id bigint,
  metadata jsonb
);
comment on type inventory.movement is 'Description of a stock movement, set in stock_levels.pending_movement by the function that moves stock and written to the ledger by its trigger.';
alter table inventory.stock_levels
  drop constraint stock_levels_pending_movement_check,
  alter column pending_movement type inventory.movement using null,
  add column last_movement_id bigint;
comment on column inventory.stock_levels.pending_movement is 'Transient description of the movement being written; consumed and cleared by the ledger trigger, never stored.';
comment on column inventory.stock_levels.last_movement_id is 'Id of the level''s latest ledger movement, set by the ledger trigger: the one way to learn the id of the movement just written (UPDATE ... RETURNING last_movement_id).';
comment on column inventory.stock_levels.available is 'on_hand - reserved (generated): what a new hold may take once overdue holds in the way are expired; inventory_api.stock_levels shows available with overdue holds already counted as released.';
comment on column inventory.ledger.metadata is 'Free-form details (reservation ids of aggregated movements, unit cost, ...) and, for calls through PostgREST, request_path and request_id.';

-- Issue 11: versions for optimistic locking, who deleted an item, what a hold is for.
create type inventory.reference_type as enum ('order', 'work_order', 'transfer', 'production', 'sample', 'other');
comment on type inventory.reference_type is 'What a hold is for: a sales order, a work order, a transfer, production, a sample or something else.';
alter table inventory.items
  add column deleted_by text,
  add column version integer not null default 1;
comment on column inventory.items.deleted_by is 'Acting user who deleted the item (null while it is live).';
comment on column inventory.items.version is 'Incremented by every change of the row: pass it as expected_version to update_item or delete_item.';
alter table inventory.stock_policies add column version integer not null default 1;
comment on column inventory.stock_policies.version is 'Incremented by every change of the policy: pass it as expected_version to set_stock_policy.';
alter table inventory.stock_levels add column item_deleted boolean not null default false;
comment on column inventory.stock_levels.item_deleted is 'Whether the item is deleted: set by delete_item under the level''s lock (and for new levels by the trigger); the trigger then refuses any increase, so no call that looked the item up before it was deleted can put stock under it.';
alter table inventory.reservations
  add column reference_type inventory.reference_type not null default 'order',
  add column notes text;
comment on column inventory.reservations.reference_type is 'What order_ref refers to: order (default), work_order, transfer, production, sample or other.';
comment on column inventory.reservations.notes is 'Free text given with the hold (1-1000 characters), or null.';
create index audit_log_created_at_idx on inventory.audit_log using brin (created_at);
alter type inventory_api.item
  add attribute version integer, add attribute deleted_at timestamptz, add attribute deleted_by text;
alter type inventory_api.reservation add attribute reference_type text, add attribute notes text;
alter type inventory_api.stock_policy add attribute version integer;
insert into inventory.error_codes (code, sqlstate, description)
values ('VERSION_CONFLICT', 'PT409', 'The object changed since the version given as expected_version was read; re-read it and decide again.');

-- BEGIN functions and views generated by tools/schema_diff.py
drop function inventory_api.reserve_stock(sku text, quantity numeric, order_ref text, location text, expires_in interval, idempotency_key text);

drop function inventory_api.reserve_order(order_ref text, lines jsonb, expires_in interval, idempotency_key text);

drop function inventory_api.verify_inventory();

drop function inventory_api.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric, reorder_quantity numeric, max_stock_level numeric, lead_time_days integer);

drop function inventory_api.verify_audit_chain();

drop function inventory.audit_table(table_name text, audit_updates boolean);

drop function inventory.add_on_hand(item_id bigint, location_id bigint, quantity numeric, movement jsonb);

drop function inventory.hold_units(item_id bigint, location_id bigint, quantity numeric, movement jsonb);

drop function inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text, expires_in interval, idempotency_key text);

drop function inventory.reserve_order(order_ref text, lines jsonb, expires_in interval, idempotency_key text);

drop function inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric, movement jsonb, sku text, location text);

drop function inventory.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric, reorder_quantity numeric, max_stock_level numeric, lead_time_days integer);

drop function inventory.verify_inventory();

drop function inventory.verify_audit_chain();

-- Largest quantity accepted in one call (numeric(19,4) holds 1e15; add_on_hand refuses totals past it).
create or replace function inventory.max_quantity() returns numeric
language sql immutable parallel safe
set search_path = ''
begin atomic
  select 1000000000000::numeric;
end;

comment on function inventory.max_quantity() is 'Largest quantity accepted by one call (1e12).';

-- Inlined into callers (SQL-standard body, no SET clause): on every call's path.
create or replace function inventory.quantity_is_valid(quantity numeric) returns boolean
language sql immutable parallel safe
set search_path = ''
begin atomic
  -- NaN and Infinity sort above every number, so the upper bound excludes them; null stays null.
  select coalesce(quantity_is_valid.quantity > 0
                  and quantity_is_valid.quantity <= inventory.max_quantity()
                  and quantity_is_valid.quantity = pg_catalog.round(quantity_is_valid.quantity, 4), false);
end;

comment on function inventory.quantity_is_valid(numeric) is 'Whether a quantity is finite, > 0, <= 1e12 and has at most 4 decimals.';

-- What is wrong with a free-text argument, or null when nothing is: it must be 1..max_length
-- characters, in Unicode NFC, without control or invisible characters anywhere and without blanks
-- around it, so that no two references (or names) differ only by something a person cannot see.
-- Invisible: the format category (Cf: soft hyphen, zero-width and bidi controls, word joiner and
-- invisible operators, tags...), the Hangul fillers and the other default-ignorable code points
-- (combining grapheme joiner, variation selectors).
create function inventory.text_problem(value text, max_length integer) returns text
language sql immutable parallel safe
set search_path = ''
begin atomic
  select case
    when text_problem.value is null then 'missing'
    when pg_catalog.length(text_problem.value) not between 1 and text_problem.max_length then 'length'
    when text_problem.value ~ '[[:cntrl:]\u00ad\u034f\u061c\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]'
      then 'invisible characters'
    when text_problem.value ~ '^[\s\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]'
      or text_problem.value ~ '[\s\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]$' then 'surrounding blanks'
    when not (text_problem.value is nfc normalized) then 'not NFC'
  end;
end;

comment on function inventory.text_problem(text, integer) is 'Why a free-text value is refused (missing, length, invisible characters, surrounding blanks, not NFC), or null.';

create or replace function inventory.text_is_valid(value text, max_length integer) returns boolean
language sql immutable parallel safe
set search_path = ''
begin atomic
  select inventory.text_problem(text_is_valid.value, text_is_valid.max_length) is null;
end;

comment on function inventory.text_is_valid(text, integer) is 'Whether a text is 1..max_length characters in NFC, with no control or invisible characters and no surrounding blanks.';

-- Validates a free-text argument (references, order numbers, reasons): present (when required),
-- bounded, visible, NFC. Returns it unchanged.
create or replace function inventory.check_text(value text, argument text, max_length integer default 200,
                                     required boolean default true)
returns text
language plpgsql stable
set search_path = ''
as $$
declare
  v_problem text := inventory.text_problem(check_text.value, check_text.max_length);
begin
  if v_problem is null or (v_problem = 'missing' and not check_text.required) then
    return check_text.value;
  end if;
  perform inventory.raise_error('INVALID_ARGUMENT',
    case v_problem
      when 'missing' then pg_catalog.format('%s is required', check_text.argument)
      when 'not NFC' then pg_catalog.format('%s must be in Unicode normalization form NFC', check_text.argument)
      else pg_catalog.format('%s must be 1 to %s visible characters without surrounding spaces',
                             check_text.argument, check_text.max_length) end,
    pg_catalog.jsonb_build_object('argument', check_text.argument,
                                  'problem', case v_problem when 'missing' then 'missing' else 'malformed' end,
                                  'reason', v_problem));
  return null;
end
$$;

comment on function inventory.check_text(text, text, integer, boolean) is 'Raises INVALID_ARGUMENT unless the text is present (when required), 1..max_length visible characters in NFC, trimmed.';

-- The same interval in the same words whatever the session's IntervalStyle: idempotency keys compare
-- the arguments of a retry with these, so a retry from a differently configured connection matches.
create function inventory.interval_key(value interval) returns text
language sql immutable parallel safe
set search_path = ''
begin atomic
  select pg_catalog.format('%s months %s days %s seconds',
           extract(year from interval_key.value) * 12 + extract(month from interval_key.value),
           extract(day from interval_key.value),
           extract(hour from interval_key.value) * 3600 + extract(minute from interval_key.value) * 60
             + extract(second from interval_key.value));
end;

comment on function inventory.interval_key(interval) is 'Canonical text of an interval (months, days, seconds), independent of IntervalStyle.';

-- Optimistic locking: the caller read `expected` and the row (locked by the caller) is now at
-- `current`; anything else is a lost update prevented.
create function inventory.check_version(current_version integer, expected_version integer, subject jsonb)
returns void
language plpgsql stable
set search_path = ''
as $$
begin
  if check_version.expected_version is not null and check_version.expected_version is distinct from check_version.current_version then
    perform inventory.raise_error('VERSION_CONFLICT',
      pg_catalog.format('expected version %s but it is at version %s', check_version.expected_version,
                        coalesce(check_version.current_version::text, 'none')),
      check_version.subject || pg_catalog.jsonb_build_object('expected_version', check_version.expected_version,
                                                            'version', check_version.current_version));
  end if;
end
$$;

comment on function inventory.check_version(integer, integer, jsonb) is 'Raises VERSION_CONFLICT when expected_version is given and differs from the current version.';

create function inventory.check_unit_of_measure(value text) returns void
language plpgsql stable
set search_path = ''
as $$
begin
  if check_unit_of_measure.value is null or check_unit_of_measure.value !~ '^[a-z][a-z0-9_]{0,19}$' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'unit_of_measure must be 1-20 lower-case letters, digits or _, starting with a letter',
      pg_catalog.jsonb_build_object('argument', 'unit_of_measure', 'problem', 'malformed'));
  end if;
end
$$;

comment on function inventory.check_unit_of_measure(text) is 'Validates a unit of measure (1-20 lower-case letters, digits or _, starting with a letter).';

-- Counts every change of a row (the API's, a DBA's): callers pass the version they read as
-- expected_version, and a change made since is a VERSION_CONFLICT instead of a lost update.
create function inventory.count_version() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.version := old.version + 1;
  return new;
end
$$;

comment on function inventory.count_version() is 'Trigger: increments the version of a changed row (optimistic locking with expected_version).';

create function inventory.describe_movement(movement_type inventory.movement_type, reason text,
                                            reference text default null, idempotency_key text default null,
                                            reservation_id bigint default null,
                                            related_movement_id bigint default null,
                                            metadata jsonb default '{}')
returns inventory.movement
language sql immutable parallel safe
set search_path = ''
begin atomic
  select row(describe_movement.movement_type, describe_movement.reason, describe_movement.reference,
             describe_movement.idempotency_key, describe_movement.reservation_id,
             describe_movement.related_movement_id, coalesce(describe_movement.metadata, '{}'))::inventory.movement;
end;

comment on function inventory.describe_movement(inventory.movement_type, text, text, text, bigint, bigint, jsonb) is 'A movement description, by named arguments.';

-- The invariants of the hot tables are named CHECK constraints calling an immutable PL/pgSQL
-- predicate: PostgreSQL re-reads and re-plans a CHECK expression for every INSERT or UPDATE
-- statement, and a predicate compiled once per session costs a fifth of the same expression
-- written out (5 against 25 microseconds per statement, measured).
create function inventory.level_quantities_are_valid(on_hand numeric, reserved numeric, movement_cleared boolean)
returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  -- NaN sorts above every number: reserved <= on_hand < 1e15 excludes it from both.
  return level_quantities_are_valid.reserved >= 0 and level_quantities_are_valid.reserved <= level_quantities_are_valid.on_hand
         and level_quantities_are_valid.on_hand < 1000000000000000 and level_quantities_are_valid.movement_cleared;
end
$$;

comment on function inventory.level_quantities_are_valid(numeric, numeric, boolean) is 'Invariant of a stock level: 0 <= reserved <= on_hand, no NaN, no movement description left behind.';

create function inventory.movement_adds_up(on_hand_before numeric, on_hand_delta numeric, on_hand_after numeric,
                                          reserved_before numeric, reserved_delta numeric, reserved_after numeric)
returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return movement_adds_up.on_hand_after = movement_adds_up.on_hand_before + movement_adds_up.on_hand_delta
         and movement_adds_up.reserved_after = movement_adds_up.reserved_before + movement_adds_up.reserved_delta
         and (movement_adds_up.on_hand_delta <> 0 or movement_adds_up.reserved_delta <> 0);
end
$$;

comment on function inventory.movement_adds_up(numeric, numeric, numeric, numeric, numeric, numeric) is 'Invariant of a ledger movement: after = before + delta for on_hand and reserved, and something moved.';

-- Canonical bytes of a movement: independent of TimeZone and DateStyle.
create or replace function inventory.ledger_entry_bytes(entry inventory.ledger) returns bytea
language sql stable parallel safe
set search_path = ''
-- Fields in a fixed order, separated by a unit separator; texts of numbers, ids and jsonb are
-- canonical, and the time is an epoch number, so the bytes do not depend on session settings.
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

-- The one trigger every change of a stock level passes through, so that each change is recorded
-- once: a change of on_hand or reserved becomes a ledger movement (described by pending_movement)
-- and re-evaluates the level's reorder alert when it has a stock policy; any other change (a count's
-- timestamp, the policy flag, a DBA's UPDATE of another column) goes to the audit log. One BEFORE
-- row trigger without a WHEN clause: a WHEN clause and AFTER triggers are re-prepared per statement,
-- a branch in this function costs nothing.
create function inventory.record_stock_level_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_movement inventory.movement := new.pending_movement;
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
    new.last_movement_id := null;
    -- A locking read waits for a delete_item in progress and sees its outcome (see item_deleted).
    select i.deleted_at is not null into new.item_deleted
      from inventory.items i where i.item_id = new.item_id
       for key share;
    new.item_deleted := coalesce(new.item_deleted, false);  -- no such item: the foreign key says so
    return new;
  end if;
  new.version := old.version + 1;
  new.ledger_hash := old.ledger_hash;
  new.last_movement_id := old.last_movement_id;
  if new.on_hand = old.on_hand and new.reserved = old.reserved then
    perform inventory.audit_row_change('stock_levels', 'UPDATE', pg_catalog.to_jsonb(old), pg_catalog.to_jsonb(new));
    return new;
  end if;
  new.updated_at := pg_catalog.now();
  if new.item_deleted and (new.on_hand > old.on_hand or new.reserved > old.reserved) then
    perform inventory.raise_error('PRODUCT_NOT_FOUND', 'the item was deleted; restore it (restore_item) first',
      pg_catalog.jsonb_build_object('item_id', new.item_id, 'deleted', true));
  end if;
  if v_movement is null then  -- not described: a direct change (a DBA's UPDATE)
    v_movement := inventory.describe_movement('ADJUST', 'direct change of inventory.stock_levels');
  end if;
  if pg_catalog.current_setting('request.jwt.claims', true) <> '' then
    -- Under PostgREST the movement keeps the request that made it (the gateway's only, never a
    -- login's own settings: see audit_context); a direct session pays nothing for this.
    select coalesce(v_movement.metadata, '{}'::jsonb)
             || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('request_path', c.request_path,
                                                                           'request_id', c.request_id))
      into v_movement.metadata
      from inventory.audit_context() c;
  end if;
  v_entry := row(
    pg_catalog.nextval('inventory.ledger_movement_id_seq'::regclass),
    v_movement.movement_type, new.item_id, new.location_id,
    new.on_hand - old.on_hand, new.reserved - old.reserved,
    old.on_hand, new.on_hand, old.reserved, new.reserved,
    inventory.current_actor(), v_movement.reason, v_movement.reference, v_movement.idempotency_key,
    v_movement.related_movement_id, v_movement.reservation_id, coalesce(v_movement.metadata, '{}'::jsonb),
    pg_catalog.now(), pg_catalog.pg_current_xact_id(),
    old.ledger_hash, null)::inventory.ledger;
  v_entry.hash := pg_catalog.sha256(coalesce(old.ledger_hash, ''::bytea) || inventory.ledger_entry_bytes(v_entry));
  insert into inventory.ledger overriding system value select v_entry.*;
  new.ledger_hash := v_entry.hash;
  new.last_movement_id := v_entry.movement_id;
  if new.has_stock_policy and new.on_hand - new.reserved <> old.on_hand - old.reserved then
    perform inventory.evaluate_reorder_alert(new.item_id, new.location_id, new.on_hand - new.reserved);
  end if;
  return new;
end
$$;

comment on function inventory.record_stock_level_change() is 'Trigger: records every change of a stock level once: quantities as a ledger movement (described by pending_movement, and re-evaluating the reorder alert), anything else in the audit log.';

create function inventory.hold_state_is_valid(quantity numeric, quantity_fulfilled numeric, quantity_returned numeric,
                                              status text, closed_at timestamptz, notes text)
returns boolean
language plpgsql immutable parallel safe
set search_path = ''
as $$
begin
  return hold_state_is_valid.quantity > 0 and hold_state_is_valid.quantity < 1000000000000000
         and hold_state_is_valid.quantity_fulfilled >= 0 and hold_state_is_valid.quantity_fulfilled <= hold_state_is_valid.quantity
         and hold_state_is_valid.quantity_returned >= 0
         and hold_state_is_valid.quantity_returned <= hold_state_is_valid.quantity_fulfilled
         and hold_state_is_valid.status in ('ACTIVE', 'FULFILLED', 'CANCELLED', 'EXPIRED')
         and (hold_state_is_valid.status = 'ACTIVE') = (hold_state_is_valid.closed_at is null)
         and (hold_state_is_valid.status <> 'FULFILLED' or hold_state_is_valid.quantity_fulfilled = hold_state_is_valid.quantity)
         and (hold_state_is_valid.notes is null or inventory.text_is_valid(hold_state_is_valid.notes, 1000));
end
$$;

comment on function inventory.hold_state_is_valid(numeric, numeric, numeric, text, timestamptz, text) is 'Invariant of a hold: quantity > 0; 0 <= returned <= fulfilled <= quantity; a known status; closed exactly when not ACTIVE; FULFILLED means all of it; notes, when given, 1-1000 visible NFC characters.';

-- Canonical bytes of an audit row: independent of TimeZone and DateStyle (times as epoch numbers,
-- jsonb rendered by its own canonical output).
create or replace function inventory.audit_row_bytes(entry inventory.audit_log) returns bytea
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
create or replace function inventory.audit_context(out actor text, out db_role text, out request_path text,
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
create or replace function inventory.record_audit() returns trigger
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

-- The database role the caller acts as: the role set with SET ROLE (PostgREST's per-request role),
-- else the login. Inside SECURITY DEFINER code current_user is the owner, so it is not used.
create or replace function inventory.acting_db_role() returns text
language sql stable
set search_path = ''
begin atomic
  select case when pg_catalog.current_setting('role') = 'none' then session_user::text
              else pg_catalog.current_setting('role') end;
end;

comment on function inventory.acting_db_role() is 'Role set by SET ROLE (PostgREST request role), else the login.';

-- Every (role, location_id) the caller holds; location_id null means every location.
create or replace function inventory.current_grants()
returns table (role text, location_id bigint)
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_db_role text := inventory.acting_db_role();
begin
  if inventory.is_gateway_session() then
    if v_db_role = 'service_role' then
      return query select 'admin'::text, null::bigint;
    elsif v_db_role <> 'anon' then
      return query select u.role, u.location_id from inventory.user_roles u where u.user_id = inventory.current_actor();
    end if;
    return;
  end if;
  return query
    select g.role, null::bigint
      from pg_catalog.unnest(array['viewer', 'operator', 'admin', 'scheduler']) as g (role)
     where pg_catalog.pg_has_role(v_db_role, 'inventory_' || g.role, 'USAGE')
    union all
    select u.role, u.location_id from inventory.user_roles u where u.user_id = session_user::text;
end
$$;

comment on function inventory.current_grants() is 'Business roles of the caller with their location scope (null = all locations): group memberships (unscoped) plus user_roles rows.';

create or replace function inventory.role_rank(role text) returns integer
language sql immutable parallel safe
set search_path = ''
begin atomic
  select case role_rank.role when 'viewer' then 1 when 'operator' then 2 when 'admin' then 3 else 0 end;
end;

comment on function inventory.role_rank(text) is 'viewer 1 < operator 2 < admin 3; scheduler 0 (it ranks beside, not above).';

-- Whether the caller holds `required` (or a higher role) for the location (null = for every location,
-- which only an unscoped grant satisfies). scheduler work is also allowed to unscoped admins.
-- This is on every call's path, so the common case (a direct login that is a member of the group
-- role) is answered by pg_has_role() alone: admin is a member of operator, operator of viewer.
create or replace function inventory.is_allowed(required text, location_id bigint default null) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_db_role text;
begin
  if not inventory.is_gateway_session() then
    v_db_role := inventory.acting_db_role();
    if pg_catalog.pg_has_role(v_db_role, 'inventory_' || is_allowed.required, 'USAGE')
       or (is_allowed.required = 'scheduler' and pg_catalog.pg_has_role(v_db_role, 'inventory_admin', 'USAGE')) then
      return true;
    end if;
  end if;
  return exists (
    select from inventory.current_grants() g
     where (g.location_id is null or g.location_id = is_allowed.location_id)
       and case when is_allowed.required = 'scheduler'
                then g.role = 'scheduler' or (g.role = 'admin' and g.location_id is null)
                else inventory.role_rank(g.role) >= inventory.role_rank(is_allowed.required) end);
end
$$;

comment on function inventory.is_allowed(text, bigint) is 'Whether the caller holds the role (or a higher one) for the location; null location needs an unscoped grant.';

-- Gives a database role the privileges to use the API without giving it a business role: USAGE on
-- both schemas, SELECT on what viewers may read (the tables under row level security and the API
-- views), EXECUTE on every function an admin may execute (maintenance too, when asked), and a place
-- in every read policy. What the role's users may then do comes from inventory.current_grants().
-- Run by the schema scripts as the owner, for inventory_user and, where they exist, PostgREST's roles
-- (directly, since Supabase creates them NOINHERIT); re-run after every migration.
create function inventory.grant_api_access(grantee text, maintenance boolean default false) returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_relation regclass;
  v_function regprocedure;
  v_policy record;
begin
  execute pg_catalog.format('grant usage on schema inventory, inventory_api to %I', grant_api_access.grantee);
  for v_relation in
    select c.oid::regclass from pg_catalog.pg_class c
     where c.relnamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
       and c.relkind in ('r', 'v', 'm', 'p') and pg_catalog.has_table_privilege('inventory_viewer', c.oid, 'SELECT')
  loop
    execute pg_catalog.format('grant select on %s to %I', v_relation, grant_api_access.grantee);
  end loop;
  for v_function in
    select p.oid::regprocedure from pg_catalog.pg_proc p
     where p.pronamespace in ('inventory'::regnamespace, 'inventory_api'::regnamespace)
       and (pg_catalog.has_function_privilege('inventory_admin', p.oid, 'EXECUTE')
            or pg_catalog.has_function_privilege('inventory_viewer', p.oid, 'EXECUTE'))
       and (grant_api_access.maintenance
            or not pg_catalog.has_function_privilege('inventory_scheduler', p.oid, 'EXECUTE'))
  loop
    execute pg_catalog.format('grant execute on function %s to %I', v_function, grant_api_access.grantee);
  end loop;
  for v_policy in
    select p.policyname, p.tablename, p.roles from pg_catalog.pg_policies p
     where p.schemaname = 'inventory' and 'inventory_viewer' = any (p.roles)
       and not grant_api_access.grantee = any (p.roles::text[])
  loop
    execute pg_catalog.format('alter policy %I on inventory.%I to %s', v_policy.policyname, v_policy.tablename,
      (select pg_catalog.string_agg(pg_catalog.quote_ident(r), ', ')
         from pg_catalog.unnest(v_policy.roles::text[] || grant_api_access.grantee) r));
  end loop;
end
$$;

comment on function inventory.grant_api_access(text, boolean) is 'Grants a role the privileges to use the API (schemas, readable tables and views, API functions, read policies) without a business role; used by the schema scripts.';

-- Locks the row of a job for this transaction: waiting for a run in progress, or (with wait false)
-- returning false at once when one holds it. Records the start of this run.
create function inventory.lock_job(job text, wait boolean) returns boolean
language plpgsql volatile
set search_path = ''
as $$
begin
  if lock_job.wait then
    perform from inventory.maintenance_jobs j where j.job = lock_job.job for update;
  else
    perform from inventory.maintenance_jobs j where j.job = lock_job.job for update skip locked;
  end if;
  if not found then
    if not exists (select from inventory.maintenance_jobs j where j.job = lock_job.job) then
      raise exception 'unknown maintenance job %', lock_job.job using errcode = 'XX000';
    end if;
    return false;
  end if;
  -- Updating the row makes a concurrent run at REPEATABLE READ or SERIALIZABLE fail with 40001
  -- rather than work from a snapshot that misses this run.
  update inventory.maintenance_jobs j set last_started_at = pg_catalog.now() where j.job = lock_job.job;
  return true;
end
$$;

comment on function inventory.lock_job(text, boolean) is 'Locks a maintenance job''s row for this transaction (waiting, or false when busy and wait is false).';

create function inventory.finish_job(job text, rows_touched bigint) returns void
language sql volatile
set search_path = ''
as $$
  update inventory.maintenance_jobs j
     set last_finished_at = pg_catalog.clock_timestamp(), last_rows = finish_job.rows_touched
   where j.job = finish_job.job
$$;

comment on function inventory.finish_job(text, bigint) is 'Records the end of a maintenance job''s run (in the same transaction as its work).';

-- What is installed, read from the schema itself: pyinv's release and the migration that brings a
-- database to it. Every migration replaces it with its own values (tests/test_install.py checks
-- them against the newest file in migrations/), so that a database whose install was recorded
-- nowhere (a dump restored without inventory_meta) still tells `pyinv migrate` and
-- `pyinv sql upgrade` where it stands.
create function inventory.schema_version(out version text, out migration text)
language sql stable parallel safe
set search_path = ''
begin atomic
  select '0.3.0'::text, '0003_hardening'::text;
end;

comment on function inventory.schema_version() is 'The installed schema: pyinv release (version) and the last migration applied (migration).';

create function inventory_api.schema_version(out version text, out migration text)
language sql stable parallel safe
set search_path = ''
begin atomic
  select v.version, v.migration from inventory.schema_version() v;
end;

comment on function inventory_api.schema_version() is
'The installed pyinv schema: its release (version, e.g. 0.3.0) and the last migration applied (migration, e.g. 0003_hardening).
Upgrade with `pyinv migrate`, or print the script with `pyinv sql upgrade --from <version>`.';

-- Catalogue: items and locations. These are idempotent by their natural key: creating an object that
-- exists with the same attributes returns it; with other attributes it is ALREADY_EXISTS.
create or replace function inventory.item_result(item_id bigint) returns inventory_api.item
language sql stable
set search_path = ''
as $$
  select row(i.sku, i.name, i.unit_of_measure, i.unit_cost, i.status, i.track_lots, i.created_at,
             i.updated_at, i.version, i.deleted_at, i.deleted_by)::inventory_api.item
    from inventory.items i where i.item_id = item_result.item_id
$$;

comment on function inventory.item_result(bigint) is 'Public view of one item.';

create or replace function inventory.create_item(sku text, name text, unit_of_measure text, unit_cost numeric,
                                      track_lots boolean)
returns inventory_api.item
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_existing inventory.items;
  v_item_id bigint;
begin
  perform inventory.authorize('admin');
  perform inventory.check_text(create_item.sku, 'sku', 64);
  if create_item.sku !~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'sku must start with a letter or digit and use only letters, digits and . _ : / # + -',
      pg_catalog.jsonb_build_object('argument', 'sku', 'problem', 'malformed'));
  end if;
  perform inventory.check_text(create_item.name, 'name', 200);
  perform inventory.check_unit_of_measure(create_item.unit_of_measure);
  perform inventory.check_unit_cost(create_item.unit_cost);
  if create_item.track_lots is null then
    perform inventory.raise_error('INVALID_ARGUMENT', 'track_lots is required',
      pg_catalog.jsonb_build_object('argument', 'track_lots', 'problem', 'missing'));
  end if;

  insert into inventory.items (sku, name, unit_of_measure, unit_cost, track_lots, created_by)
  values (create_item.sku, create_item.name, create_item.unit_of_measure, create_item.unit_cost,
          create_item.track_lots, inventory.current_actor())
  on conflict on constraint items_sku_key do nothing
  returning item_id into v_item_id;
  if v_item_id is null then
    select * into v_existing from inventory.items i where i.sku = create_item.sku;
    if v_existing.deleted_at is not null
       or v_existing.name <> create_item.name
       or v_existing.unit_of_measure <> create_item.unit_of_measure
       or v_existing.unit_cost is distinct from create_item.unit_cost
       or v_existing.track_lots <> create_item.track_lots then
      perform inventory.raise_error('ALREADY_EXISTS',
        pg_catalog.format('an item with SKU %L already exists with other attributes', create_item.sku),
        pg_catalog.jsonb_build_object('sku', create_item.sku));
    end if;
    v_item_id := v_existing.item_id;
  end if;
  return inventory.item_result(v_item_id);
end
$$;

comment on function inventory.create_item(text, text, text, numeric, boolean) is 'Implements inventory_api.create_item.';

-- Locks every stock level of an item, in the global lock order, and lists those holding stock (null
-- when none does): what must be empty before an item is deleted or its unit of measure changes.
create function inventory.lock_item_levels(item_id bigint) returns jsonb
language sql volatile
set search_path = ''
begin atomic
  select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('location', l.code, 'on_hand', s.on_hand,
                                                            'reserved', s.reserved) order by l.code)
           filter (where s.on_hand <> 0 or s.reserved <> 0)
    from (select s.location_id, s.on_hand, s.reserved from inventory.stock_levels s
           where s.item_id = lock_item_levels.item_id
           order by s.item_id, s.location_id
             for update) s
    join inventory.locations l on l.location_id = s.location_id;
end;

comment on function inventory.lock_item_levels(bigint) is 'Locks all stock levels of an item in lock order; returns those holding stock (or null).';

-- The item row, locked after its levels (global lock order), and checked against expected_version.
create function inventory.lock_item(sku text, expected_version integer, deleted boolean default false)
returns inventory.items
language plpgsql volatile
set search_path = ''
as $$
declare
  v_item inventory.items;
begin
  select * into v_item from inventory.items i
   where i.sku = lock_item.sku and (i.deleted_at is not null) = lock_item.deleted
     for update;
  if not found then
    perform inventory.raise_error('PRODUCT_NOT_FOUND',
      pg_catalog.format(case when lock_item.deleted then 'no deleted item with SKU %L' else 'no item with SKU %L' end,
                        lock_item.sku),
      pg_catalog.jsonb_build_object('sku', lock_item.sku));
  end if;
  perform inventory.check_version(v_item.version, lock_item.expected_version,
                                  pg_catalog.jsonb_build_object('sku', lock_item.sku));
  return v_item;
end
$$;

comment on function inventory.lock_item(text, integer, boolean) is 'Locks a live (or deleted) item by SKU, raising PRODUCT_NOT_FOUND or VERSION_CONFLICT.';

create function inventory.update_item(sku text, name text, unit_of_measure text, unit_cost numeric,
                                      expected_version integer)
returns inventory_api.item
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_found record;
  v_item inventory.items;
  v_stocked jsonb;
begin
  perform inventory.authorize('admin');
  if update_item.name is not null then
    perform inventory.check_text(update_item.name, 'name', 200);
  end if;
  if update_item.unit_of_measure is not null then
    perform inventory.check_unit_of_measure(update_item.unit_of_measure);
  end if;
  perform inventory.check_unit_cost(update_item.unit_cost);
  v_found := inventory.item_for_sku(update_item.sku);
  -- Quantities are counted in the unit of measure: it changes only while nothing is in stock.
  if update_item.unit_of_measure is not null then
    v_stocked := inventory.lock_item_levels(v_found.item_id);
  end if;
  v_item := inventory.lock_item(update_item.sku, update_item.expected_version);
  if v_stocked is not null and update_item.unit_of_measure <> v_item.unit_of_measure then
    perform inventory.raise_error('INVALID_STATE',
      pg_catalog.format('item %s has stock; its unit of measure can change only while nothing is on hand or held',
                        update_item.sku),
      pg_catalog.jsonb_build_object('sku', update_item.sku, 'stock', v_stocked));
  end if;
  update inventory.items i
     set name = coalesce(update_item.name, i.name),
         unit_of_measure = coalesce(update_item.unit_of_measure, i.unit_of_measure),
         unit_cost = coalesce(update_item.unit_cost, i.unit_cost),
         updated_at = pg_catalog.now()
   where i.item_id = v_item.item_id
     and (i.name, i.unit_of_measure, i.unit_cost) is distinct from
         (coalesce(update_item.name, i.name), coalesce(update_item.unit_of_measure, i.unit_of_measure),
          coalesce(update_item.unit_cost, i.unit_cost));
  return inventory.item_result(v_item.item_id);
end
$$;

comment on function inventory.update_item(text, text, text, numeric, integer) is 'Implements inventory_api.update_item.';

create function inventory.delete_item(sku text, expected_version integer)
returns inventory_api.item
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_found record;
  v_item inventory.items;
  v_stocked jsonb;
begin
  perform inventory.authorize('admin');
  -- A level created by a transaction this snapshot cannot see would escape the check below.
  if pg_catalog.current_setting('transaction_isolation') = 'repeatable read' then
    perform inventory.raise_error('INVALID_STATE',
      'delete_item runs at READ COMMITTED or SERIALIZABLE: at REPEATABLE READ it cannot see stock received since the transaction began',
      pg_catalog.jsonb_build_object('sku', delete_item.sku, 'isolation', 'repeatable read'));
  end if;
  v_found := inventory.item_for_sku(delete_item.sku);
  v_stocked := inventory.lock_item_levels(v_found.item_id);
  v_item := inventory.lock_item(delete_item.sku, delete_item.expected_version);
  if v_stocked is not null then
    perform inventory.raise_error('INVALID_STATE',
      pg_catalog.format('item %s still has stock on hand or held; move, ship or write it off first', delete_item.sku),
      pg_catalog.jsonb_build_object('sku', delete_item.sku, 'stock', v_stocked));
  end if;
  -- Under the levels' locks: the ledger trigger refuses to add stock at a level marked here, and a
  -- level created from now on is marked by the same trigger.
  update inventory.stock_levels s set item_deleted = true where s.item_id = v_item.item_id;
  update inventory.items i set deleted_at = pg_catalog.now(), deleted_by = inventory.current_actor(),
                               updated_at = pg_catalog.now()
   where i.item_id = v_item.item_id;
  return inventory.item_result(v_item.item_id);
end
$$;

comment on function inventory.delete_item(text, integer) is 'Implements inventory_api.delete_item.';

create function inventory.restore_item(sku text)
returns inventory_api.item
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item inventory.items;
begin
  perform inventory.authorize('admin');
  perform inventory.check_text(restore_item.sku, 'sku', 64);
  select * into v_item from inventory.items i where i.sku = restore_item.sku and i.deleted_at is not null;
  if found then
    perform inventory.lock_item_levels(v_item.item_id);
  end if;
  v_item := inventory.lock_item(restore_item.sku, null, deleted => true);
  update inventory.stock_levels s set item_deleted = false where s.item_id = v_item.item_id;
  update inventory.items i set deleted_at = null, deleted_by = null, updated_at = pg_catalog.now()
   where i.item_id = v_item.item_id;
  return inventory.item_result(v_item.item_id);
end
$$;

comment on function inventory.restore_item(text) is 'Implements inventory_api.restore_item.';

-- Adds to on_hand of one level, creating the level (empty) on first use; the ledger trigger records
-- the movement described by `movement`. on_hand is numeric(19, 4): the bound is part of the
-- conditional UPDATE, so concurrent receipts cannot together overflow it between a check and the write.
create function inventory.add_on_hand(item_id bigint, location_id bigint, quantity numeric, movement inventory.movement)
returns inventory.stock_levels
language plpgsql volatile
set search_path = ''
as $$
declare
  v_level inventory.stock_levels;
begin
  for attempt in 1 .. 2 loop
    update inventory.stock_levels s
       set on_hand = s.on_hand + add_on_hand.quantity, pending_movement = add_on_hand.movement
     where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id
       and s.on_hand + add_on_hand.quantity < 1000000000000000
    returning * into v_level;
    if found then
      return v_level;
    end if;
    exit when attempt = 2 or exists (select from inventory.stock_levels s
                                      where s.item_id = add_on_hand.item_id and s.location_id = add_on_hand.location_id);
    insert into inventory.stock_levels (item_id, location_id)
    values (add_on_hand.item_id, add_on_hand.location_id)
    on conflict do nothing;
  end loop;
  perform inventory.raise_error('INVALID_QUANTITY',
    'on hand would exceed the largest quantity a stock level holds (1e15)',
    pg_catalog.jsonb_build_object('argument', 'quantity', 'value', add_on_hand.quantity::text,
                                  'problem', 'on_hand would overflow'));
  return null;
end
$$;

comment on function inventory.add_on_hand(bigint, bigint, numeric, inventory.movement) is 'Adds units on hand at one level (created empty on first use), recording the described movement; INVALID_QUANTITY when on_hand would pass 1e15.';

create or replace function inventory.receive_stock(sku text, quantity numeric, location text, reference text,
                                        unit_cost numeric, idempotency_key text)
returns inventory_api.stock_level
language plpgsql volatile security definer
set search_path = ''
as $$
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
    inventory.describe_movement('RECEIVE', 'receipt', receive_stock.reference, receive_stock.idempotency_key,
      metadata => pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('unit_cost', receive_stock.unit_cost))));

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
$$;

comment on function inventory.receive_stock(text, numeric, text, text, numeric, text) is 'Implements inventory_api.receive_stock.';

-- When a hold made now with `expires_in` lapses (the configured default when null). The limits apply
-- to the resulting time, not to the interval: '1 mon -29 days -23 hours' compares as positive but
-- lands in the past in February, and '12 mons 6 days' compares as 366 days but is 371.
create or replace function inventory.hold_expiry(expires_in interval) returns timestamptz
language plpgsql stable
set search_path = ''
as $$
declare
  v_expires_at timestamptz;
begin
  if hold_expiry.expires_in is null then
    return pg_catalog.now() + (select s.default_reservation_ttl from inventory.settings s);
  end if;
  -- A nominal bound first, so that the addition below cannot overflow.
  if hold_expiry.expires_in between interval '-400 days' and interval '400 days' then
    v_expires_at := pg_catalog.now() + hold_expiry.expires_in;
  end if;
  if v_expires_at is null or v_expires_at <= pg_catalog.now()
     or v_expires_at > pg_catalog.now() + interval '366 days' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'expires_in must make the hold lapse after now and at most 366 days from now',
      pg_catalog.jsonb_build_object('argument', 'expires_in', 'problem', 'out of range',
                                    'value', hold_expiry.expires_in::text));
  end if;
  return v_expires_at;
end
$$;

comment on function inventory.hold_expiry(interval) is 'Expiry time of a hold made now: after now and at most 366 days later (INVALID_ARGUMENT otherwise); the configured default TTL when expires_in is null.';

-- Applies hold moves set-wise: updates the holds, then every affected stock level once per
-- movement type, locking the levels in the global order first. The ledger gets one row per level
-- and type, listing the reservations it covers.
create or replace function inventory.apply_hold_moves(moves inventory.hold_move[], reference text, reason text,
                                           idempotency_key text)
returns void
language plpgsql volatile
set search_path = ''
as $$
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
           pending_movement = inventory.describe_movement(v_type::inventory.movement_type,
             coalesce(apply_hold_moves.reason, case v_type
                        when 'SHIP' then 'order shipped'
                        when 'RELEASE' then 'reservation cancelled'
                        else 'reservation expired' end),
             apply_hold_moves.reference, apply_hold_moves.idempotency_key,
             reservation_id => case when pg_catalog.cardinality(g.reservation_ids) = 1 then g.reservation_ids[1] end,
             metadata => pg_catalog.jsonb_build_object('reservation_ids', pg_catalog.to_jsonb(g.reservation_ids)))
      from (select m.item_id, m.location_id, pg_catalog.sum(m.quantity) as quantity,
                   pg_catalog.array_agg(m.reservation_id order by m.reservation_id) as reservation_ids
              from pg_catalog.unnest(apply_hold_moves.moves) m
             where m.quantity > 0 and m.movement_type = v_type
             group by m.item_id, m.location_id) g
     where s.item_id = g.item_id and s.location_id = g.location_id;
  end loop;
end
$$;

comment on function inventory.apply_hold_moves(inventory.hold_move[], text, text, text) is 'Ships, releases or expires holds set-wise and records one ledger movement per level and type.';

-- Locks the active holds of an order (optionally of one item), after their stock levels (the global
-- lock order), checks that the caller may act at their locations, and describes them as moves of
-- their whole open quantity: EXPIRE for overdue holds, movement_type null for live ones. Raises
-- NO_RESERVATION when there are none.
create or replace function inventory.lock_order_holds(order_ref text, item_id bigint, sku text)
returns inventory.hold_move[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_moves inventory.hold_move[];
begin
  -- Which levels (a hold never changes level), and may the caller act there; then lock them.
  perform inventory.authorize_locations('operator', array(
    select distinct r.location_id from inventory.reservations r
     where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
       and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id)));
  perform from inventory.stock_levels s
   where (s.item_id, s.location_id) in (
           select r.item_id, r.location_id from inventory.reservations r
            where r.order_ref = lock_order_holds.order_ref and r.status = 'ACTIVE'
              and (lock_order_holds.item_id is null or r.item_id = lock_order_holds.item_id))
   order by s.item_id, s.location_id
     for update;
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
  -- Holds made after the check above, at other locations, are authorised too.
  perform inventory.authorize_locations('operator', array(select m.location_id from pg_catalog.unnest(v_moves) m));
  if v_moves is null then
    perform inventory.raise_error('NO_RESERVATION',
      pg_catalog.format('order %s has no active reservation%s', lock_order_holds.order_ref,
                        coalesce(' for ' || lock_order_holds.sku, '')),
      pg_catalog.jsonb_build_object('order_ref', lock_order_holds.order_ref, 'sku', lock_order_holds.sku));
  end if;
  return v_moves;
end
$$;

comment on function inventory.lock_order_holds(text, bigint, text) is 'Locks the stock levels of an order''s active holds, then the holds; authorises their locations and returns them as moves (EXPIRE for overdue ones); raises NO_RESERVATION when none.';

-- Lazy expiry for one level: called when a hold does not fit, so overdue holds never cause
-- INSUFFICIENT_STOCK even before the sweeper has run. The level is locked first (in key order, like
-- every level): a second caller expiring the same level waits here and then finds the first one's
-- result, instead of skipping the holds the first has locked and wrongly reporting the units
-- unavailable. Holds are then taken with SKIP LOCKED: never wait for a hold while holding a level.
create or replace function inventory.expire_overdue_at_level(item_id bigint, location_id bigint) returns integer
language plpgsql volatile
set search_path = ''
as $$
begin
  perform from inventory.stock_levels s
   where s.item_id = expire_overdue_at_level.item_id and s.location_id = expire_overdue_at_level.location_id
     for update;
  return (select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id))
    from (select r.reservation_id from inventory.reservations r
           where r.item_id = expire_overdue_at_level.item_id
             and r.location_id = expire_overdue_at_level.location_id
             and r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
             for update skip locked) d);
end
$$;

comment on function inventory.expire_overdue_at_level(bigint, bigint) is 'Locks one stock level, then expires its overdue holds that no other call has locked; returns how many.';

create or replace function inventory.expire_reservations(batch_size integer) returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_expired integer;
  v_items bigint[];
  v_locations bigint[];
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
    -- other sweepers): wait for the levels of the oldest overdue holds (in key order, like every
    -- level), then take their holds, so that 0 keeps meaning that nothing is overdue (apart from
    -- holds other sweepers are expiring).
    select pg_catalog.array_agg(o.item_id), pg_catalog.array_agg(o.location_id) into v_items, v_locations
      from (select distinct r.item_id, r.location_id
              from (select h.item_id, h.location_id from inventory.reservations h
                     where h.status = 'ACTIVE' and h.expires_at <= pg_catalog.now()
                     order by h.expires_at
                     limit expire_reservations.batch_size) r) o;
    perform from inventory.stock_levels s
     where (s.item_id, s.location_id) in (
             select l.item_id, l.location_id
               from rows from (pg_catalog.unnest(v_items), pg_catalog.unnest(v_locations)) as l (item_id, location_id))
     order by s.item_id, s.location_id
       for update;
    select inventory.expire_holds(pg_catalog.array_agg(d.reservation_id)) into v_expired
      from (select r.reservation_id from inventory.reservations r
             where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
               and (r.item_id, r.location_id) in (
                     select l.item_id, l.location_id
                       from rows from (pg_catalog.unnest(v_items), pg_catalog.unnest(v_locations)) as l (item_id, location_id))
             order by r.expires_at
             limit expire_reservations.batch_size
               for update skip locked) d;
  end if;
  return v_expired;
end
$$;

comment on function inventory.expire_reservations(integer) is 'Implements inventory_api.expire_reservations.';

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

-- Available units at a level, counting overdue holds as released (they are, lazily).
create or replace function inventory.effective_available(item_id bigint, location_id bigint) returns numeric
language sql stable parallel safe
set search_path = ''
begin atomic
  select s.available + inventory.overdue_quantity(s.item_id, s.location_id)
    from inventory.stock_levels s
   where s.item_id = effective_available.item_id and s.location_id = effective_available.location_id;
end;

comment on function inventory.effective_available(bigint, bigint) is 'on_hand - reserved + units of overdue holds not yet swept; null when the level does not exist.';

-- Describes why a line does not fit, for the DETAIL of INSUFFICIENT_STOCK, with available meaning
-- what inventory_api.stock_levels shows.
create or replace function inventory.shortfall(item_id bigint, location_id bigint, sku text, location text,
                                    requested numeric)
returns jsonb
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
           'sku', shortfall.sku, 'location', shortfall.location, 'requested', shortfall.requested,
           'available', coalesce(s.available + o.overdue, 0), 'on_hand', coalesce(s.on_hand, 0),
           'reserved', coalesce(s.reserved, 0))
    from (select) dummy
    left join inventory.stock_levels s
      on s.item_id = shortfall.item_id and s.location_id = shortfall.location_id
    left join lateral (select inventory.overdue_quantity(s.item_id, s.location_id) as overdue) o on true
$$;

comment on function inventory.shortfall(bigint, bigint, text, text, numeric) is 'JSON specifics of a line that does not fit: requested, available (overdue holds counted as released), on hand, reserved.';

-- Takes `quantity` more units of one level into holds, if they fit: the conditional UPDATE that
-- locks the level. Overdue holds at the level are expired when they are what stands in the way,
-- and the UPDATE is tried once more under the level's lock, after any other call that was expiring
-- or moving units there has ended. Returns whether the units were held.
create function inventory.hold_units(item_id bigint, location_id bigint, quantity numeric,
                                     movement inventory.movement)
returns boolean
language plpgsql volatile
set search_path = ''
as $$
begin
  for attempt in 1 .. 2 loop
    update inventory.stock_levels s
       set reserved = s.reserved + hold_units.quantity, pending_movement = hold_units.movement
     where s.item_id = hold_units.item_id and s.location_id = hold_units.location_id
       and s.on_hand - s.reserved >= hold_units.quantity;
    if found then
      return true;
    end if;
    exit when attempt = 2;
    perform inventory.expire_overdue_at_level(hold_units.item_id, hold_units.location_id);
  end loop;
  return false;
end
$$;

comment on function inventory.hold_units(bigint, bigint, numeric, inventory.movement) is 'Conditionally adds units to reserved at one level (expiring overdue holds there if needed); true when they fit.';

-- Checks what a hold says it is for: a known reference type and, when given, notes of 1-1000
-- visible characters. Called only when either differs from the default (an order, no notes).
create function inventory.check_hold_description(reference_type text, notes text) returns void
language plpgsql stable
set search_path = ''
as $$
begin
  if check_hold_description.reference_type is null
     or not check_hold_description.reference_type = any (pg_catalog.enum_range(null::inventory.reference_type)::text[]) then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('reference_type must be one of %s',
                        pg_catalog.array_to_string(pg_catalog.enum_range(null::inventory.reference_type)::text[], ', ')),
      pg_catalog.jsonb_build_object('argument', 'reference_type', 'problem', 'unknown'));
  end if;
  if check_hold_description.notes is not null then
    perform inventory.check_text(check_hold_description.notes, 'notes', 1000);
  end if;
end
$$;

comment on function inventory.check_hold_description(text, text) is 'Validates reference_type and notes of a hold.';

-- The idempotency request of a hold: the arguments that identify it. reference_type and notes join
-- it only when they differ from the default, so keys stored before they existed still match.
create function inventory.hold_request(arguments jsonb, reference_type text, notes text) returns jsonb
language sql immutable
set search_path = ''
begin atomic
  select case when hold_request.reference_type = 'order' and hold_request.notes is null then hold_request.arguments
              else hold_request.arguments || pg_catalog.jsonb_build_object('reference_type', hold_request.reference_type,
                                                                           'notes', hold_request.notes) end;
end;

comment on function inventory.hold_request(jsonb, text, text) is 'Idempotency request of reserve_stock / reserve_order, with reference_type and notes when not the default.';

create function inventory.reserve_stock(sku text, quantity numeric, order_ref text, location text,
                                        expires_in interval, idempotency_key text, reference_type text,
                                        notes text)
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
  if reserve_stock.reference_type is distinct from 'order' or reserve_stock.notes is not null then
    perform inventory.check_hold_description(reserve_stock.reference_type, reserve_stock.notes);
  end if;
  -- A retry with the key replays the original result even if stock or status changed since.
  v_reservation_id := pg_catalog.nextval('inventory.reservations_reservation_id_seq'::regclass);
  v_result := row(v_reservation_id, reserve_stock.order_ref, reserve_stock.sku, reserve_stock.location,
                  reserve_stock.quantity, 0, reserve_stock.quantity, 'ACTIVE',
                  case when reserve_stock.expires_in is null then pg_catalog.now() + v_found.default_reservation_ttl
                       else inventory.hold_expiry(reserve_stock.expires_in) end,
                  inventory.current_actor(), pg_catalog.now(), reserve_stock.reference_type,
                  reserve_stock.notes)::inventory_api.reservation;
  if reserve_stock.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_stock.idempotency_key, 'reserve_stock',
      inventory.hold_request(
        pg_catalog.jsonb_build_object('sku', reserve_stock.sku, 'quantity', reserve_stock.quantity,
          'order_ref', reserve_stock.order_ref, 'location', reserve_stock.location,
          'expires_in', inventory.interval_key(reserve_stock.expires_in)),
        reserve_stock.reference_type, reserve_stock.notes),
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

  -- Every column given: a column left to its default costs a re-parsed default expression per statement.
  insert into inventory.reservations (reservation_id, order_ref, item_id, location_id, quantity, quantity_fulfilled,
                                      status, expires_at, created_by, created_at, closed_at, quantity_returned,
                                      reference_type, notes)
  values (v_reservation_id, reserve_stock.order_ref, v_found.item_id, v_found.location_id, reserve_stock.quantity,
          0, 'ACTIVE', v_result.expires_at, v_result.created_by, v_result.created_at, null, 0,
          reserve_stock.reference_type::inventory.reference_type, reserve_stock.notes);

  -- hold_units' conditional UPDATE is the one statement that locks the level; only the ledger row
  -- and the commit follow it.
  if not inventory.hold_units(v_found.item_id, v_found.location_id, reserve_stock.quantity,
           inventory.describe_movement('RESERVE', 'order hold', reserve_stock.order_ref,
                                       reserve_stock.idempotency_key, reservation_id => v_reservation_id)) then
    perform inventory.raise_error('INSUFFICIENT_STOCK',
      pg_catalog.format('insufficient stock for %s at %s', reserve_stock.sku, reserve_stock.location),
      inventory.shortfall(v_found.item_id, v_found.location_id, reserve_stock.sku, reserve_stock.location,
                          reserve_stock.quantity));
  end if;
  return v_result;
end
$$;

comment on function inventory.reserve_stock(text, numeric, text, text, interval, text, text, text) is 'Implements inventory_api.reserve_stock.';

-- Parses and checks the lines of reserve_order; returns them merged per (item, location), in lock
-- order, with a reservation id each. Raises on the first malformed line, and lists every unknown SKU.
create or replace function inventory.parse_order_lines(lines jsonb) returns inventory.order_line[]
language plpgsql volatile
set search_path = ''
as $$
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
                or inventory.text_problem(e.line ->> 'sku', 64) is not null
                or inventory.text_problem(coalesce(e.line ->> 'location', 'main'), 64) is not null
                or exists (select from pg_catalog.jsonb_object_keys(e.line) k
                            where k not in ('sku', 'quantity', 'location'))
         end
   order by e.n limit 1;
  if found then
    perform inventory.raise_error('INVALID_ARGUMENT',
      pg_catalog.format('lines[%s] must be an object with a string "sku", a "quantity" and an optional string "location" (visible characters, NFC)',
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
$$;

comment on function inventory.parse_order_lines(jsonb) is 'Validates reserve_order lines, merges duplicates per (SKU, location) and returns them in lock order.';

create function inventory.reserve_order(order_ref text, lines jsonb, expires_in interval, idempotency_key text,
                                        reference_type text, notes text)
returns setof inventory_api.reservation
language plpgsql volatile security definer
set search_path = ''
as $$
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
  perform inventory.check_hold_description(reserve_order.reference_type, reserve_order.notes);
  v_lines := inventory.parse_order_lines(reserve_order.lines);
  perform inventory.authorize_locations('operator', array(select l.location_id from pg_catalog.unnest(v_lines) l));
  v_expires_at := inventory.hold_expiry(reserve_order.expires_in);
  select pg_catalog.array_agg(row(l.reservation_id, reserve_order.order_ref, l.sku, l.location, l.quantity, 0,
                                  l.quantity, 'ACTIVE', v_expires_at, v_actor, pg_catalog.now(),
                                  reserve_order.reference_type, reserve_order.notes
                                 )::inventory_api.reservation order by l.reservation_id)
    into v_result
    from pg_catalog.unnest(v_lines) l;
  if reserve_order.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(reserve_order.idempotency_key, 'reserve_order',
      inventory.hold_request(
        pg_catalog.jsonb_build_object('order_ref', reserve_order.order_ref, 'lines', reserve_order.lines,
                                      'expires_in', inventory.interval_key(reserve_order.expires_in)),
        reserve_order.reference_type, reserve_order.notes),
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
                                      created_by, created_at, reference_type, notes)
  select l.reservation_id, reserve_order.order_ref, l.item_id, l.location_id, l.quantity, v_expires_at,
         v_actor, pg_catalog.now(), reserve_order.reference_type::inventory.reference_type, reserve_order.notes
    from pg_catalog.unnest(v_lines) l;

  -- v_lines is in (item_id, location_id) order, so concurrent orders lock levels in one global
  -- order and cannot deadlock. Every line is tried so that the error lists every short line.
  foreach v_line in array v_lines loop
    if not inventory.hold_units(v_line.item_id, v_line.location_id, v_line.quantity,
             inventory.describe_movement('RESERVE', 'order hold', reserve_order.order_ref,
                                         reserve_order.idempotency_key, reservation_id => v_line.reservation_id)) then
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
$$;

comment on function inventory.reserve_order(text, jsonb, interval, text, text, text) is 'Implements inventory_api.reserve_order.';

-- Rebuilds the stored result of a fulfil or cancel call for an idempotent replay, after checking that
-- the caller may act at every location the original call touched: a replay must not hand another
-- location's result to a user scoped elsewhere.
create or replace function inventory.replay_reservation_changes(response jsonb)
returns setof inventory_api.reservation_change
language plpgsql stable
set search_path = ''
as $$
begin
  perform inventory.authorize_locations('operator', array(
    select l.location_id
      from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation_change,
                                               replay_reservation_changes.response) c
      join inventory.locations l on l.code = c.location));
  return query select * from pg_catalog.jsonb_populate_recordset(null::inventory_api.reservation_change,
                                                                 replay_reservation_changes.response);
end
$$;

comment on function inventory.replay_reservation_changes(jsonb) is 'Authorises the caller at the locations of a stored fulfil or cancel result, then rebuilds it for an idempotent replay.';

create or replace function inventory.process_return(order_ref text, sku text, quantity numeric, reason text,
                                         restock boolean, location text, idempotency_key text)
returns inventory_api.stock_return
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item_id bigint;
  v_location_id bigint;
  v_holds bigint[];
  v_shipped_from bigint[];
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

  -- The return is counted on the order's holds of this item, which it locks and updates: under
  -- READ COMMITTED a concurrent return of the same shipment is re-read after it commits, under
  -- REPEATABLE READ and SERIALIZABLE it is a serialization failure (40001, retry). The caller must
  -- operate where the units were shipped from as well: a return consumes that shipment. Locks in the
  -- global order: the levels the units were shipped from and the one they come back to, then the holds.
  select pg_catalog.array_agg(distinct r.location_id) into v_shipped_from
    from inventory.reservations r where r.order_ref = process_return.order_ref and r.item_id = v_item_id;
  if v_shipped_from is null then
    perform inventory.raise_error('NO_RESERVATION',
      pg_catalog.format('order %s never held %s', process_return.order_ref, process_return.sku),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku));
  end if;
  perform inventory.authorize_locations('operator', v_shipped_from);
  if process_return.restock then
    insert into inventory.stock_levels (item_id, location_id) values (v_item_id, v_location_id)
    on conflict do nothing;
  end if;
  perform from inventory.stock_levels s
   where s.item_id = v_item_id and s.location_id = any (v_shipped_from || v_location_id)
   order by s.item_id, s.location_id
     for update;
  select pg_catalog.array_agg(r.reservation_id order by r.reservation_id),
         coalesce(pg_catalog.sum(r.quantity_fulfilled), 0), coalesce(pg_catalog.sum(r.quantity_returned), 0)
    into v_holds, v_shipped, v_returned
    from (select h.reservation_id, h.quantity_fulfilled, h.quantity_returned
            from inventory.reservations h
           where h.order_ref = process_return.order_ref and h.item_id = v_item_id
           order by h.reservation_id
             for update) r;
  if process_return.quantity > v_shipped - v_returned then
    perform inventory.raise_error('QUANTITY_MISMATCH',
      pg_catalog.format('order %s shipped %s and returned %s of %s; cannot return %s more',
                        process_return.order_ref, v_shipped, v_returned, process_return.sku, process_return.quantity),
      pg_catalog.jsonb_build_object('order_ref', process_return.order_ref, 'sku', process_return.sku,
        'requested', process_return.quantity, 'shipped', v_shipped, 'returned', v_returned));
  end if;
  -- First shipped, first returned.
  update inventory.reservations r
     set quantity_returned = r.quantity_returned + t.take
    from (select h.reservation_id,
                 least(h.quantity_fulfilled - h.quantity_returned,
                       greatest(process_return.quantity - coalesce(pg_catalog.sum(h.quantity_fulfilled - h.quantity_returned)
                                  over (order by h.reservation_id rows between unbounded preceding and 1 preceding), 0),
                                0)) as take
            from inventory.reservations h
           where h.reservation_id = any (v_holds)) t
   where r.reservation_id = t.reservation_id and t.take > 0;

  if process_return.restock then
    v_movement_id := (inventory.add_on_hand(v_item_id, v_location_id, process_return.quantity,
      inventory.describe_movement('RETURN', process_return.reason, process_return.order_ref,
                                  process_return.idempotency_key))).last_movement_id;
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
$$;

comment on function inventory.process_return(text, text, numeric, text, boolean, text, text) is 'Implements inventory_api.process_return.';

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

-- Applies a delta to on_hand of one level through the ledger (an ADJUST movement described by
-- `movement`); returns the level after it (its last_movement_id is the movement's). Raises
-- INSUFFICIENT_STOCK when on_hand would fall below reserved (or below 0). The level is created empty
-- when missing and the delta is positive. Overdue holds standing in the way are expired first.
create function inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric,
                                              movement inventory.movement, sku text, location text)
returns inventory.stock_levels
language plpgsql volatile
set search_path = ''
as $$
declare
  v_level inventory.stock_levels;
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

comment on function inventory.apply_on_hand_delta(bigint, bigint, numeric, inventory.movement, text, text) is 'Applies a delta to on_hand through the ledger and returns the level after it; raises INSUFFICIENT_STOCK when on_hand would fall below reserved.';

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

create or replace function inventory.create_adjustment(sku text, quantity_delta numeric, adjustment_type text,
                                            reason_code text, location text, description text,
                                            idempotency_key text)
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
  if create_adjustment.idempotency_key is not null then
    v_replay := inventory.claim_idempotency_key(create_adjustment.idempotency_key, 'create_adjustment',
      pg_catalog.jsonb_build_object('sku', create_adjustment.sku, 'quantity_delta', create_adjustment.quantity_delta,
        'adjustment_type', create_adjustment.adjustment_type, 'reason_code', create_adjustment.reason_code,
        'location', create_adjustment.location, 'description', create_adjustment.description));
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
      create_adjustment.sku, create_adjustment.location);
    v_on_hand := v_level.on_hand - create_adjustment.quantity_delta;
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
          case when v_level.item_id is not null then v_on_hand end, v_level.last_movement_id,
          create_adjustment.idempotency_key);
  v_result := inventory.adjustment_result(v_adjustment_id);
  if create_adjustment.idempotency_key is not null then
    perform inventory.complete_idempotency_key(create_adjustment.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.create_adjustment(text, numeric, text, text, text, text, text) is 'Implements inventory_api.create_adjustment.';

create or replace function inventory.approve_adjustment(adjustment_id bigint, decision text, note text)
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
      v_sku, v_location);
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

create or replace function inventory.record_count(sku text, counted_quantity numeric, location text)
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
  -- Lock order: the level, then its pending count adjustments. Under the level's lock on_hand cannot
  -- move, so the difference is exact for this instant; and every pending count of the level was
  -- committed by a count that held this lock before, so the next statement sees them all.
  select * into v_level from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id
     for update;
  perform from inventory.adjustments a
   where a.item_id = v_item.item_id and a.location_id = v_location_id and a.status = 'PENDING'
     and a.adjustment_type = 'physical_count'
   order by a.adjustment_id
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
    v_apply := not inventory.adjustment_needs_approval(v_reason, v_difference)
               and record_count.counted_quantity >= v_level.reserved;
    v_adjustment_id := pg_catalog.nextval('inventory.adjustments_adjustment_id_seq'::regclass);
    update inventory.stock_levels s
       set last_counted_at = pg_catalog.now(), last_counted_by = v_actor,
           on_hand = case when v_apply then record_count.counted_quantity else s.on_hand end,
           pending_movement = case when v_apply then inventory.describe_movement('ADJUST', 'cycle_count',
             'adjustment:' || v_adjustment_id,
             metadata => pg_catalog.jsonb_build_object('adjustment_id', v_adjustment_id,
                                                       'adjustment_type', 'physical_count', 'count_id', v_count_id,
                                                       'counted_quantity', record_count.counted_quantity)) end
     where s.item_id = v_item.item_id and s.location_id = v_location_id
    returning s.last_movement_id into v_movement_id;
    insert into inventory.adjustments (adjustment_id, item_id, location_id, quantity_delta, adjustment_type,
                                       reason_code, description, status, requires_approval, on_hand_at_request,
                                       count_id, requested_by, decided_by, decided_at, on_hand_at_apply, movement_id)
    values (v_adjustment_id, v_item.item_id, v_location_id, v_difference, 'physical_count', 'cycle_count',
            pg_catalog.format('cycle count %s: counted %s, on hand %s', v_count_id,
                              record_count.counted_quantity, v_level.on_hand),
            case when v_apply then 'APPLIED' else 'PENDING' end, not v_apply, v_level.on_hand, v_count_id, v_actor,
            case when v_apply then v_actor end, case when v_apply then pg_catalog.now() end,
            case when v_apply then v_level.on_hand end, case when v_apply then v_movement_id end);
  end if;
  return (select row(c.count_id, record_count.sku, record_count.location, c.counted_quantity, c.on_hand_at_count,
                     c.reserved_at_count, c.difference, a.adjustment_id, a.status, c.counted_by,
                     c.counted_at)::inventory_api.stock_count
            from inventory.cycle_counts c
            left join inventory.adjustments a on a.adjustment_id = v_adjustment_id
           where c.count_id = v_count_id);
end
$$;

comment on function inventory.record_count(text, numeric, text) is 'Implements inventory_api.record_count.';

create or replace function inventory.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
                                         reference text, idempotency_key text)
returns inventory_api.stock_transfer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_from_id bigint;
  v_to_id bigint;
  v_from inventory.stock_levels;
  v_to inventory.stock_levels;
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

  insert into inventory.stock_levels (item_id, location_id) values (v_item.item_id, v_to_id)
  on conflict do nothing;
  -- Both levels in (item_id, location_id) order, before anything else at them: opposite transfers
  -- cannot deadlock. Overdue holds in the way are expired only then; expiry skips holds that are
  -- locked, so it never waits while these levels are held.
  perform from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id in (v_from_id, v_to_id)
   order by s.item_id, s.location_id
     for update;
  select s.on_hand - s.reserved into v_available
    from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_from_id;
  if coalesce(v_available, 0) < transfer_stock.quantity
     and coalesce(inventory.effective_available(v_item.item_id, v_from_id), 0) >= transfer_stock.quantity then
    perform inventory.expire_overdue_at_level(v_item.item_id, v_from_id);
  end if;
  update inventory.stock_levels s
     set on_hand = s.on_hand - transfer_stock.quantity,
         pending_movement = inventory.describe_movement('TRANSFER_OUT', 'transfer', transfer_stock.reference,
           transfer_stock.idempotency_key,
           metadata => pg_catalog.jsonb_build_object('to_location', transfer_stock.to_location))
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
  update inventory.stock_levels s
     set on_hand = s.on_hand + transfer_stock.quantity,
         pending_movement = inventory.describe_movement('TRANSFER_IN', 'transfer', transfer_stock.reference,
           transfer_stock.idempotency_key, related_movement_id => v_from.last_movement_id,
           metadata => pg_catalog.jsonb_build_object('from_location', transfer_stock.from_location))
   where s.item_id = v_item.item_id and s.location_id = v_to_id
  returning * into v_to;
  v_result := row(transfer_stock.sku, transfer_stock.quantity, transfer_stock.from_location,
                  transfer_stock.to_location, transfer_stock.reference, v_from.last_movement_id,
                  v_to.last_movement_id, v_from.on_hand,
                  v_from.available, v_to.on_hand, v_to.available)::inventory_api.stock_transfer;
  if transfer_stock.idempotency_key is not null then
    perform inventory.complete_idempotency_key(transfer_stock.idempotency_key, pg_catalog.to_jsonb(v_result));
  end if;
  return v_result;
end
$$;

comment on function inventory.transfer_stock(text, numeric, text, text, text, text) is 'Implements inventory_api.transfer_stock.';

-- Announces an alert change on the inventory_alerts channel. Any login may LISTEN to (or NOTIFY)
-- any channel, so the payload carries only the event and the alert id: a consumer re-reads the
-- alert through inventory_api.reorder_alerts, where row level security decides what it may see,
-- and a forged notification makes it re-read nothing it could not read anyway.
create function inventory.notify_alert(event text, alert_id bigint) returns void
language sql volatile
set search_path = ''
as $$
  select pg_catalog.pg_notify('inventory_alerts', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'event', notify_alert.event, 'alert_id', notify_alert.alert_id))::text)
$$;

comment on function inventory.notify_alert(text, bigint) is 'NOTIFY inventory_alerts with the event and alert id only (consumers re-read under row level security).';

-- Re-evaluates the alert of one level whose available quantity is `available`. The caller holds the
-- level's row lock (the UPDATE that fired the trigger, or an explicit lock), so evaluations of one
-- level never run at once. Returns what it did: OPENED, ESCALATED, RESOLVED or null.
create or replace function inventory.evaluate_reorder_alert(item_id bigint, location_id bigint, available numeric)
returns text
language plpgsql volatile
set search_path = ''
as $$
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
      perform inventory.notify_alert('opened', v_alert_id);
      return 'OPENED';
    end if;
    return null;
  end if;
  if v_severity = 'CRITICAL' and v_alert.severity = 'REORDER' and v_alert.status in ('OPEN', 'ACKNOWLEDGED') then
    update inventory.reorder_alerts a set severity = 'CRITICAL', escalated_at = pg_catalog.now()
     where a.alert_id = v_alert.alert_id;
    perform inventory.notify_alert('escalated', v_alert.alert_id);
    return 'ESCALATED';
  end if;
  return null;
end
$$;

comment on function inventory.evaluate_reorder_alert(bigint, bigint, numeric) is 'Opens, raises or resolves the reorder alert of one level for its available quantity (caller holds the level lock).';

-- Re-evaluates the alerts of the given levels (all levels with a policy when item_ids is null) in one
-- pass; the caller holds the levels' row locks. Set-based: used by bulk policy imports and
-- check_reorder_points. Returns (levels checked, opened, escalated, resolved).
create or replace function inventory.refresh_reorder_alerts(item_ids bigint[], location_ids bigint[])
returns inventory_api.reorder_check
language plpgsql volatile
set search_path = ''
as $$
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
    perform inventory.notify_alert('refreshed', null);
  end if;
  return v_result;
end
$$;

comment on function inventory.refresh_reorder_alerts(bigint[], bigint[]) is 'Set-based re-evaluation of the reorder alerts of many levels (caller holds their locks).';

create or replace function inventory.check_reorder_points() returns inventory_api.reorder_check
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_result inventory_api.reorder_check;
begin
  perform inventory.authorize('scheduler');
  -- One pass at a time (a second waits for the first: both re-evaluate from scratch); levels with a
  -- policy are share-locked in the global order so no movement changes them meanwhile.
  perform inventory.lock_job('check_reorder_points', wait => true);
  perform from inventory.stock_levels s
   where s.has_stock_policy
   order by s.item_id, s.location_id
     for share;
  v_result := inventory.refresh_reorder_alerts(null, null);
  perform inventory.finish_job('check_reorder_points', v_result.levels_checked);
  return v_result;
end
$$;

comment on function inventory.check_reorder_points() is 'Implements inventory_api.check_reorder_points.';

create or replace function inventory.stock_policy_result(item_id bigint, location_id bigint) returns inventory_api.stock_policy
language sql stable
set search_path = ''
as $$
  select row(i.sku, l.code, p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level,
             p.lead_time_days, p.updated_by, p.updated_at, p.version)::inventory_api.stock_policy
    from inventory.stock_policies p
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id
   where p.item_id = stock_policy_result.item_id and p.location_id = stock_policy_result.location_id
$$;

comment on function inventory.stock_policy_result(bigint, bigint) is 'The public view of one stock policy.';

create function inventory.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric,
                                           reorder_quantity numeric, max_stock_level numeric,
                                           lead_time_days integer, expected_version integer)
returns inventory_api.stock_policy
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
  v_version integer;
begin
  v_item := inventory.item_for_sku(set_stock_policy.sku);
  v_location_id := inventory.location_for_code(set_stock_policy.location);
  perform inventory.authorize('admin', v_location_id);
  if set_stock_policy.reorder_point is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'reorder_point is required',
      pg_catalog.jsonb_build_object('argument', 'reorder_point', 'value', null));
  end if;
  perform inventory.check_level_quantity(set_stock_policy.reorder_point, 'reorder_point');
  if set_stock_policy.safety_stock is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'safety_stock is required',
      pg_catalog.jsonb_build_object('argument', 'safety_stock', 'value', null));
  end if;
  perform inventory.check_level_quantity(set_stock_policy.safety_stock, 'safety_stock');
  if set_stock_policy.safety_stock > set_stock_policy.reorder_point then
    perform inventory.raise_error('INVALID_ARGUMENT', 'safety_stock must not exceed reorder_point',
      pg_catalog.jsonb_build_object('argument', 'safety_stock', 'problem', 'above reorder_point'));
  end if;
  if set_stock_policy.reorder_quantity is not null then
    perform inventory.check_quantity(set_stock_policy.reorder_quantity, 'reorder_quantity');
  end if;
  if set_stock_policy.max_stock_level is not null then
    perform inventory.check_quantity(set_stock_policy.max_stock_level, 'max_stock_level');
    if set_stock_policy.max_stock_level < set_stock_policy.reorder_point then
      perform inventory.raise_error('INVALID_ARGUMENT', 'max_stock_level must not be below reorder_point',
        pg_catalog.jsonb_build_object('argument', 'max_stock_level', 'problem', 'below reorder_point'));
    end if;
  end if;
  if set_stock_policy.lead_time_days is not null and set_stock_policy.lead_time_days not between 0 and 3650 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'lead_time_days must be between 0 and 3650',
      pg_catalog.jsonb_build_object('argument', 'lead_time_days', 'problem', 'out of range'));
  end if;

  -- The level first (global lock order), then the policy, then its alert.
  insert into inventory.stock_levels (item_id, location_id, has_stock_policy)
  values (v_item.item_id, v_location_id, true)
  on conflict do nothing;
  select * into v_level from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id
     for update;
  if set_stock_policy.expected_version is not null then
    -- A level's policy is changed only under the level's lock, so the version read here stays.
    select p.version into v_version from inventory.stock_policies p
     where p.item_id = v_item.item_id and p.location_id = v_location_id;
    perform inventory.check_version(coalesce(v_version, 0), set_stock_policy.expected_version,
      pg_catalog.jsonb_build_object('sku', set_stock_policy.sku, 'location', set_stock_policy.location));
  end if;
  insert into inventory.stock_policies as p (item_id, location_id, reorder_point, safety_stock, reorder_quantity,
                                             max_stock_level, lead_time_days, updated_by)
  values (v_item.item_id, v_location_id, set_stock_policy.reorder_point, set_stock_policy.safety_stock,
          set_stock_policy.reorder_quantity, set_stock_policy.max_stock_level, set_stock_policy.lead_time_days,
          inventory.current_actor())
  on conflict (item_id, location_id) do update
     set reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock,
         reorder_quantity = excluded.reorder_quantity, max_stock_level = excluded.max_stock_level,
         lead_time_days = excluded.lead_time_days, updated_by = excluded.updated_by, updated_at = pg_catalog.now()
   where (p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level, p.lead_time_days)
         is distinct from (excluded.reorder_point, excluded.safety_stock, excluded.reorder_quantity,
                           excluded.max_stock_level, excluded.lead_time_days);
  if not v_level.has_stock_policy then
    update inventory.stock_levels s set has_stock_policy = true
     where s.item_id = v_item.item_id and s.location_id = v_location_id;
  end if;
  perform inventory.evaluate_reorder_alert(v_item.item_id, v_location_id, v_level.on_hand - v_level.reserved);
  return inventory.stock_policy_result(v_item.item_id, v_location_id);
end
$$;

comment on function inventory.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer, integer) is 'Implements inventory_api.set_stock_policy.';

-- The JSON text of a field, trimmed; empty strings are null (CSV has no nulls).
create or replace function inventory.import_field(value jsonb, field text) returns text
language sql immutable parallel safe
set search_path = ''
begin atomic
  select nullif(pg_catalog.btrim(import_field.value ->> import_field.field), '');
end;

comment on function inventory.import_field(jsonb, text) is 'A trimmed text field of an import row; empty means null.';

-- Whether text is a decimal with at most 4 decimals between 0 and 1e12 (checked before any cast).
create or replace function inventory.import_quantity_is_valid(value text, allow_zero boolean) returns boolean
language sql immutable parallel safe
set search_path = ''
begin atomic
  select import_quantity_is_valid.value ~ '^[0-9]{1,13}(\.[0-9]{1,4})?$'
         and case when import_quantity_is_valid.value ~ '^[0-9]{1,13}(\.[0-9]{1,4})?$'
                  then import_quantity_is_valid.value::numeric <= 1000000000000
                       and (import_quantity_is_valid.allow_zero or import_quantity_is_valid.value::numeric > 0)
                  else false end;
end;

comment on function inventory.import_quantity_is_valid(text, boolean) is 'Whether an import field is a quantity: 0 (when allowed) or > 0, at most 1e12, at most 4 decimals.';

-- The source line of an import row: its "row" field when that is a whole number (1 to 15 digits),
-- else its position in the batch. import_row_problem says when "row" is present but unusable.
create function inventory.import_row_number(value jsonb, ordinal bigint) returns bigint
language sql immutable parallel safe
set search_path = ''
begin atomic
  select case when pg_catalog.jsonb_typeof(import_row_number.value -> 'row') = 'number'
                   and (import_row_number.value ->> 'row') ~ '^[0-9]{1,15}$'
              then (import_row_number.value ->> 'row')::bigint
              else import_row_number.ordinal end;
end;

comment on function inventory.import_row_number(jsonb, bigint) is 'Source line of an import row ("row" when a whole number), else its position.';

create function inventory.import_row_problem(value jsonb) returns text
language sql immutable parallel safe
set search_path = ''
begin atomic
  select case
    when pg_catalog.jsonb_typeof(import_row_problem.value) <> 'object' then 'row is not an object'
    when import_row_problem.value -> 'row' <> 'null'::jsonb
         and not (pg_catalog.jsonb_typeof(import_row_problem.value -> 'row') = 'number'
                  and (import_row_problem.value ->> 'row') ~ '^[0-9]{1,15}$')
      then 'row must be a whole number of at most 15 digits'
  end;
end;

comment on function inventory.import_row_problem(jsonb) is 'Why an import row is refused before its fields are read (not an object, unusable "row"), or null.';

create or replace function inventory.import_items(rows jsonb) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_actor text := inventory.current_actor();
  v_result jsonb;
begin
  perform inventory.authorize('admin');
  perform inventory.check_import_batch(import_items.rows);
  with input as (
    select e.n, e.v, inventory.import_row_number(e.v, e.n) as row_number,
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
             when inventory.import_row_problem(i.v) is not null then inventory.import_row_problem(i.v)
             when i.sku is null then 'sku is required'
             when i.sku !~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$'
               then 'sku must be 1-64 letters, digits or . _ : / # + - (starting with a letter or digit)'
             when i.name is null then 'name is required'
             when inventory.text_problem(i.name, 200) is not null
               then 'name must be 1 to 200 visible characters in Unicode NFC (' || inventory.text_problem(i.name, 200) || ')'
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
$$;

comment on function inventory.import_items(jsonb) is 'Implements inventory_api.import_items.';

create or replace function inventory.import_stock_policies(rows jsonb) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
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
    select e.n, e.v, inventory.import_row_number(e.v, e.n) as row_number,
           inventory.import_row_problem(e.v) as row_problem,
           pg_catalog.jsonb_typeof(e.v) = 'object' as is_object
      from pg_catalog.jsonb_array_elements(import_stock_policies.rows) with ordinality as e (v, n)
  ), fields as (
    select i.n, i.row_number, i.is_object, i.row_problem,
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
             when r.row_problem is not null then r.row_problem
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
             when r.row_problem is null and r.sku is not null and r.item_id is null then 'PRODUCT_NOT_FOUND'
             when r.row_problem is null and r.sku is not null and r.location_id is null then 'LOCATION_NOT_FOUND'
             when r.row_problem is null and r.sku is not null and not a.allowed then 'PERMISSION_DENIED'
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
$$;

comment on function inventory.import_stock_policies(jsonb) is 'Implements inventory_api.import_stock_policies.';

-- Every broken invariant, unfiltered (no authorization: internal).
create or replace function inventory.inventory_violations()
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

-- Transactions running in this database now, other than the caller's. Read from the lock table,
-- which is live: every transaction holds a lock on its own id until it ends (a snapshot would not
-- list the newest ones, those at or above its xmax). Transactions of other databases cannot write
-- this audit log, so a long one there never holds sealing back; one whose database cannot be told
-- (a prepared transaction, a backend the statistics do not show yet) is kept, on the safe side.
-- The lock table shows 32-bit ids: each becomes the full id nearest below a point safely past
-- every running transaction.
create function inventory.running_transactions() returns xid8[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_reference numeric := pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::numeric + 1000000000;
begin
  perform pg_catalog.pg_stat_clear_snapshot();
  return (
    select coalesce(pg_catalog.array_agg(distinct
             (v_reference - pg_catalog.mod(v_reference - l.transactionid::text::numeric, 4294967296))::text::xid8), '{}')
      from pg_catalog.pg_locks l
      left join pg_catalog.pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'transactionid' and l.mode = 'ExclusiveLock' and l.granted
       and l.pid is distinct from pg_catalog.pg_backend_pid()
       and (a.datid is null
            or a.datid = (select d.oid from pg_catalog.pg_database d where d.datname = pg_catalog.current_database())));
end
$$;

comment on function inventory.running_transactions() is 'Transactions running in this database (other than the caller''s), from the live lock table.';

-- Whether every transaction of a cut has ended, and its commit is visible to the current snapshot
-- (so that the rows it wrote can be read and sealed now, at any isolation level).
create function inventory.cut_is_clean(waiting_for xid8[]) returns boolean
language sql volatile
set search_path = ''
as $$
  select coalesce(pg_catalog.bool_and(case pg_catalog.pg_xact_status(x)
                                        when 'in progress' then false
                                        when 'committed' then pg_catalog.pg_visible_in_snapshot(x, pg_catalog.pg_current_snapshot())
                                        else true end), true)
    from pg_catalog.unnest(cut_is_clean.waiting_for) x
$$;

comment on function inventory.cut_is_clean(xid8[]) is 'Whether all transactions of a seal cut have ended and are visible to the current snapshot.';

-- Seals up to batch_size audit rows onto the chain; returns how many, or null when another sealer
-- is running (busy, as distinct from 0: nothing to seal). Self-locking through its job row.
create or replace function inventory.seal_audit_log(batch_size integer) returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_sealed_through bigint;
  v_sealable bigint;
  v_last inventory.audit_chain;
  v_entry inventory.audit_log;
  v_seq bigint;
  v_prev bytea;
  v_hash bytea;
  v_count integer := 0;
  v_waited integer := 0;
begin
  perform inventory.authorize('scheduler');
  if seal_audit_log.batch_size is null or seal_audit_log.batch_size not between 1 and 1000000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'batch_size must be between 1 and 1000000',
      pg_catalog.jsonb_build_object('argument', 'batch_size', 'problem', 'out of range'));
  end if;
  if not inventory.lock_job('seal_audit_log', wait => false) then
    return null;
  end if;
  select s.sealed_through into v_sealed_through from inventory.audit_seal_state s;

  -- Cuts naming transactions this cluster has not reached were taken in another cluster (the
  -- database was dumped and restored): what was restored is committed, so they are void.
  if exists (select from inventory.audit_seal_cuts c, pg_catalog.unnest(c.waiting_for) x
              where x >= pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())) then
    delete from inventory.audit_seal_cuts;
  end if;
  -- A new cut: the sequence first, then (in a later statement, so a later snapshot) the transactions
  -- that may still hold ids below it. Only at READ COMMITTED, where that snapshot is fresh; at other
  -- levels the sealer uses the cuts earlier runs took.
  if pg_catalog.current_setting('transaction_isolation') = 'read committed' then
    select case when q.is_called then q.last_value else 0 end into v_sealable
      from inventory.audit_log_audit_id_seq q;
    if v_sealable > v_sealed_through then
      insert into inventory.audit_seal_cuts (sealable_through, waiting_for)
      values (v_sealable, inventory.running_transactions())
      on conflict (sealable_through) do nothing;
      -- Writers are short: wait a moment for them rather than a whole sealing interval.
      while v_waited < 20 and not inventory.cut_is_clean(
              (select c.waiting_for from inventory.audit_seal_cuts c where c.sealable_through = v_sealable)) loop
        perform pg_catalog.pg_sleep(0.005);
        v_waited := v_waited + 1;
      end loop;
    end if;
  end if;
  select pg_catalog.max(c.sealable_through) into v_sealable
    from inventory.audit_seal_cuts c
   where c.sealable_through > v_sealed_through and inventory.cut_is_clean(c.waiting_for);

  if v_sealable is not null then
    select * into v_last from inventory.audit_chain c order by c.seq desc limit 1;
    v_seq := coalesce(v_last.seq, 0);
    v_prev := v_last.hash;
    for v_entry in
      select a.* from inventory.audit_log a
       where a.audit_id > v_sealed_through and a.audit_id <= v_sealable
         and not exists (select from inventory.audit_chain c where c.audit_id = a.audit_id)
       order by a.audit_id
       limit seal_audit_log.batch_size
    loop
      v_seq := v_seq + 1;
      v_hash := pg_catalog.sha256(coalesce(v_prev, ''::bytea) || inventory.audit_row_bytes(v_entry));
      insert into inventory.audit_chain (seq, audit_id, transaction_id, prev_hash, hash)
      values (v_seq, v_entry.audit_id, v_entry.transaction_id, v_prev, v_hash);
      v_prev := v_hash;
      v_count := v_count + 1;
    end loop;
    v_sealed_through := case when v_count = seal_audit_log.batch_size then v_entry.audit_id else v_sealable end;
    update inventory.audit_seal_state s set sealed_through = v_sealed_through;
    delete from inventory.audit_seal_cuts c where c.sealable_through <= v_sealed_through;
  end if;
  -- A transaction open for very long keeps its cut unclean; keep the pending list short.
  delete from inventory.audit_seal_cuts c
   where c.sealable_through in (select d.sealable_through from inventory.audit_seal_cuts d
                                 order by d.sealable_through desc offset 100);
  perform inventory.finish_job('seal_audit_log', v_count);
  return v_count;
end
$$;

comment on function inventory.seal_audit_log(integer) is 'Implements inventory_api.seal_audit_log.';

create or replace function inventory.audit_chain_breaks() returns setof inventory_api.chain_break
language sql stable
set search_path = ''
as $$
  (select * from (
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
    limit 1)
  union all
  (select null::bigint, a.audit_id, 'audit row missing from the chain although sealing passed it'
     from inventory.audit_log a, inventory.audit_seal_state s
    where a.audit_id <= s.sealed_through
      and not exists (select from inventory.audit_chain c where c.audit_id = a.audit_id)
    order by a.audit_id
    limit 1)
  union all
  (select null::bigint, a.audit_id,
          pg_catalog.format('committed more than %s ago and not sealed: is seal_audit_log scheduled?',
                            t.audit_seal_max_lag)
     from inventory.audit_log a, inventory.audit_seal_state s, inventory.settings t
    where a.audit_id > s.sealed_through and a.created_at < pg_catalog.now() - t.audit_seal_max_lag
      and not exists (select from inventory.audit_chain c where c.audit_id = a.audit_id)
    order by a.audit_id
    limit 1)
$$;

comment on function inventory.audit_chain_breaks() is 'The first broken link of the audit chain, the first row sealing skipped, and the first committed row left unsealed beyond settings.audit_seal_max_lag (internal).';

create function inventory.verify_audit_chain(anchor jsonb) returns setof inventory_api.chain_break
language plpgsql stable security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('admin');
  return query
    select * from inventory.audit_chain_breaks()
    union all
    select null::bigint, null::bigint, p.problem from inventory.anchor_problems(verify_audit_chain.anchor, 'audit') p;
end
$$;

comment on function inventory.verify_audit_chain(jsonb) is 'Implements inventory_api.verify_audit_chain.';

-- Per-location digests of the ledger chain heads at a cut: for each level with movements at or
-- below the cut, its latest such movement's id and hash.
create function inventory.ledger_digests(through_movement bigint)
returns table (location text, levels bigint, digest text)
language sql stable
set search_path = ''
as $$
  select l.code, pg_catalog.count(*),
         pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.string_agg(
           h.item_id::text || ':' || h.movement_id::text || ':' || pg_catalog.encode(h.hash, 'hex'), ','
           order by h.item_id), 'UTF8')), 'hex')
    from inventory.stock_levels s
    join inventory.locations l on l.location_id = s.location_id
    cross join lateral (
          select g.item_id, g.movement_id, g.hash from inventory.ledger g
           where g.item_id = s.item_id and g.location_id = s.location_id
             and g.movement_id <= ledger_digests.through_movement
           order by g.movement_id desc
           limit 1) h
   group by l.code
$$;

comment on function inventory.ledger_digests(bigint) is 'sha256 per location over the ledger chain heads of its levels at a movement id cut.';

create function inventory.take_anchor(wait_seconds numeric) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_cut bigint;
  v_waiting xid8[];
  v_deadline timestamptz;
  v_audit inventory.audit_chain;
  v_locations jsonb;
begin
  perform inventory.authorize('scheduler');
  if take_anchor.wait_seconds is null or not (take_anchor.wait_seconds between 0 and 3600) then
    perform inventory.raise_error('INVALID_ARGUMENT', 'wait_seconds must be between 0 and 3600',
      pg_catalog.jsonb_build_object('argument', 'wait_seconds', 'problem', 'out of range'));
  end if;
  -- Waiting for other transactions to end only helps if later statements see their commits.
  if pg_catalog.current_setting('transaction_isolation') <> 'read committed' then
    perform inventory.raise_error('INVALID_STATE',
      'an anchor must be taken at READ COMMITTED (in a transaction of its own)',
      pg_catalog.jsonb_build_object('transaction_isolation', pg_catalog.current_setting('transaction_isolation')));
  end if;
  -- The sequence first, then the transactions that may still hold movement ids below it.
  select case when q.is_called then q.last_value else 0 end into v_cut from inventory.ledger_movement_id_seq q;
  v_waiting := inventory.running_transactions();
  v_deadline := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => take_anchor.wait_seconds::double precision);
  while not inventory.cut_is_clean(v_waiting) loop
    if pg_catalog.clock_timestamp() >= v_deadline then
      perform inventory.raise_error('BUSY',
        pg_catalog.format('transactions still running after %s seconds keep the ledger cut open; retry later',
                          take_anchor.wait_seconds),
        pg_catalog.jsonb_build_object('waiting_for', (
          select pg_catalog.count(*) from pg_catalog.unnest(v_waiting) x
           where pg_catalog.pg_xact_status(x) = 'in progress')));
    end if;
    perform pg_catalog.pg_sleep(0.01);
  end loop;
  select * into v_audit from inventory.audit_chain c order by c.seq desc limit 1;
  select coalesce(pg_catalog.jsonb_object_agg(d.location,
                    pg_catalog.jsonb_build_object('levels', d.levels, 'digest', d.digest)), '{}'::jsonb)
    into v_locations
    from inventory.ledger_digests(v_cut) d;
  return pg_catalog.jsonb_build_object(
    'format', 'pyinv-anchor/1',
    'database', pg_catalog.current_database(),
    'taken_at', pg_catalog.to_char(pg_catalog.clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'audit', pg_catalog.jsonb_build_object('seq', coalesce(v_audit.seq, 0),
                                           'hash', pg_catalog.encode(v_audit.hash, 'hex')),
    'ledger', pg_catalog.jsonb_build_object('through_movement', v_cut, 'locations', v_locations));
end
$$;

comment on function inventory.take_anchor(numeric) is 'Implements inventory_api.audit_anchor.';

-- What no longer matches an anchor: the audit part (its chain link must still be there with the
-- same hash) or the ledger part (every location's digest at the cut must be the same).
create function inventory.anchor_problems(anchor jsonb, part text)
returns table (location text, problem text)
language plpgsql stable
set search_path = ''
as $$
declare
  v_seq bigint;
  v_hash bytea;
  v_cut bigint;
begin
  if anchor_problems.anchor is null then
    return;
  end if;
  if not coalesce(pg_catalog.jsonb_typeof(anchor_problems.anchor) = 'object'
                  and anchor_problems.anchor ->> 'format' = 'pyinv-anchor/1'
                  and (anchor_problems.anchor #>> '{audit,seq}') ~ '^[0-9]{1,18}$'
                  and ((anchor_problems.anchor #>> '{audit,seq}') = '0'
                       or (anchor_problems.anchor #>> '{audit,hash}') ~ '^[0-9a-f]{64}$')
                  and (anchor_problems.anchor #>> '{ledger,through_movement}') ~ '^[0-9]{1,18}$'
                  and pg_catalog.jsonb_typeof(anchor_problems.anchor #> '{ledger,locations}') = 'object'
                  and not exists (
                        select from pg_catalog.jsonb_each(anchor_problems.anchor #> '{ledger,locations}') e
                         where not coalesce((e.value ->> 'levels') ~ '^[0-9]{1,18}$'
                                            and (e.value ->> 'digest') ~ '^[0-9a-f]{64}$', false)), false) then
    perform inventory.raise_error('INVALID_ARGUMENT', 'anchor is not a pyinv anchor (format pyinv-anchor/1)',
      pg_catalog.jsonb_build_object('argument', 'anchor', 'problem', 'malformed'));
  end if;
  if anchor_problems.part = 'audit' then
    v_seq := (anchor_problems.anchor #>> '{audit,seq}')::bigint;
    v_hash := pg_catalog.decode(anchor_problems.anchor #>> '{audit,hash}', 'hex');
    if v_seq > 0 and not exists (select from inventory.audit_chain c where c.seq = v_seq) then
      return query select null::text, pg_catalog.format(
        'anchor: the audit chain no longer reaches link %s (truncated since the anchor was taken)', v_seq);
    elsif v_seq > 0 and not exists (select from inventory.audit_chain c where c.seq = v_seq and c.hash = v_hash) then
      return query select null::text, pg_catalog.format(
        'anchor: audit chain link %s differs from the anchor (rewritten at or before it)', v_seq);
    end if;
    return;
  end if;
  v_cut := (anchor_problems.anchor #>> '{ledger,through_movement}')::bigint;
  return query
    select coalesce(a.key, d.location),
           case when d.location is null then 'anchor: no movements at or before the cut any more (ledger deleted)'
                when a.key is null then 'anchor: movements at or before the cut that the anchor did not cover'
                when (a.value ->> 'levels')::bigint <> d.levels
                  then pg_catalog.format('anchor: %s levels had movements at or before the cut, %s now',
                                         a.value ->> 'levels', d.levels)
                else pg_catalog.format('anchor: ledger rewritten at or before movement %s', v_cut) end
      from pg_catalog.jsonb_each(anchor_problems.anchor #> '{ledger,locations}') a
      full join inventory.ledger_digests(v_cut) d on d.location = a.key
     where d.location is null or a.key is null or (a.value ->> 'digest') is distinct from d.digest
        or (a.value ->> 'levels')::bigint <> d.levels;
end
$$;

comment on function inventory.anchor_problems(jsonb, text) is 'Differences between the database and an anchor: part audit (chain link) or ledger (per-location digests); raises INVALID_ARGUMENT for a malformed anchor.';

create or replace view inventory_api.items with (security_invoker = true) as
  select i.sku, i.name, i.unit_of_measure, i.unit_cost, i.status, i.track_lots, i.created_at, i.updated_at,
         i.version, i.deleted_at, i.deleted_by
    from inventory.items i;

comment on view inventory_api.items is 'The catalogue, deleted items included (deleted_at is set; filter deleted_at=is.null for the live ones).';

create or replace view inventory_api.stock_levels with (security_invoker = true) as
  select i.sku, l.code as location, s.on_hand, s.reserved,
         s.available + o.overdue as available, o.overdue as expired_unreleased,
         i.status, s.version, s.updated_at
    from inventory.stock_levels s
    join inventory.items i on i.item_id = s.item_id
    join inventory.locations l on l.location_id = s.location_id
    cross join lateral (select inventory.overdue_quantity(s.item_id, s.location_id) as overdue) o
   where i.deleted_at is null;

comment on view inventory_api.stock_levels is 'Stock per item and location. available already counts overdue holds as released (expired_unreleased of them are not swept yet), so available = on_hand - reserved + expired_unreleased.';

create or replace view inventory_api.reservations with (security_invoker = true) as
  select r.reservation_id, r.order_ref, i.sku, l.code as location, r.quantity, r.quantity_fulfilled,
         case when r.status = 'ACTIVE' then r.quantity - r.quantity_fulfilled else 0 end as quantity_open,
         r.status, r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now() as is_overdue,
         r.expires_at, r.created_by, r.created_at, r.closed_at, r.quantity_returned,
         r.reference_type::text as reference_type, r.notes
    from inventory.reservations r
    join inventory.items i on i.item_id = r.item_id
    join inventory.locations l on l.location_id = r.location_id;

comment on view inventory_api.reservations is 'Holds of stock for orders. is_overdue: still ACTIVE but past expires_at, so it no longer counts and cannot be fulfilled. quantity_returned: units of its shipment that came back.';

-- Stock control.
create or replace view inventory_api.reason_codes with (security_invoker = true) as
  select r.reason_code, r.description, r.requires_approval, r.approval_threshold, r.direction, r.updated_by,
         r.updated_at
    from inventory.reason_codes r;

comment on view inventory_api.reason_codes is 'Adjustment reasons: direction (add, remove, both) says which way a reason may move stock; an adjustment needs approval when |quantity_delta| > approval_threshold and it removes stock or requires_approval is set.';

create or replace view inventory_api.stock_policies with (security_invoker = true) as
  select i.sku, l.code as location, p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level,
         p.lead_time_days, p.updated_by, p.updated_at, p.version
    from inventory.stock_policies p
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id;

comment on view inventory_api.stock_policies is 'Replenishment policies per item and location.';

create view inventory_api.user_roles with (security_invoker = true) as
  select u.user_role_id, u.user_id, u.role, l.code as location, u.granted_by, u.granted_at
    from inventory.user_roles u
    left join inventory.locations l on l.location_id = u.location_id;

comment on view inventory_api.user_roles is 'Business roles granted to users (grant_user_role): admins see every grant, other users their own.';

create view inventory_api.audit_log with (security_invoker = true) as
  select a.audit_id, a.table_name, a.operation::text as operation, a.actor, a.db_role, a.login, a.request_path,
         a.request_id, a.old_row, a.new_row, a.created_at, c.seq is not null as sealed, c.seq as chain_seq
    from inventory.audit_log a
    left join inventory.audit_chain c on c.audit_id = a.audit_id;

comment on view inventory_api.audit_log is 'Row changes outside the ledger (catalogue, access, policies, changes made outside the API), for admins; sealed rows are in the hash chain (verify_audit_chain).';

create or replace function inventory_api.create_item(sku text, name text, unit_of_measure text default 'each',
                                          unit_cost numeric default null, track_lots boolean default false)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_item(create_item.sku, create_item.name, create_item.unit_of_measure,
                                      create_item.unit_cost, create_item.track_lots);
end;

comment on function inventory_api.create_item(text, text, text, numeric, boolean) is
'Create an item.
Idempotent by SKU: the same attributes again return the item; other attributes raise ALREADY_EXISTS (PT409).';

create or replace function inventory_api.set_item_status(sku text, status text)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_item_status(set_item_status.sku, set_item_status.status);
end;

comment on function inventory_api.set_item_status(text, text) is
'Set an item''s status: active, on_hold or discontinued.
on_hold and discontinued items cannot be reserved; discontinued items cannot be received.';

create function inventory_api.update_item(sku text, name text default null, unit_of_measure text default null,
                                          unit_cost numeric default null, expected_version integer default null)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.update_item(update_item.sku, update_item.name, update_item.unit_of_measure,
                                      update_item.unit_cost, update_item.expected_version);
end;

comment on function inventory_api.update_item(text, text, text, numeric, integer) is
'Change an item''s name, unit of measure or unit cost (null arguments leave them as they are).
expected_version (from the items view) guards against lost updates: VERSION_CONFLICT (PT409) when the item changed since. The unit of measure changes only while nothing is on hand or held (INVALID_STATE).';

create function inventory_api.delete_item(sku text, expected_version integer default null)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.delete_item(delete_item.sku, delete_item.expected_version);
end;

comment on function inventory_api.delete_item(text, integer) is
'Soft-delete an item: it then behaves as unknown (PRODUCT_NOT_FOUND) everywhere but stays in the ledger and the items view (deleted_at, deleted_by).
Refused with INVALID_STATE while stock is on hand or held anywhere; VERSION_CONFLICT when expected_version is stale. restore_item undoes it.';

create function inventory_api.restore_item(sku text)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.restore_item(restore_item.sku);
end;

comment on function inventory_api.restore_item(text) is
'Undo delete_item: the item is live again with its history.';

create function inventory_api.reserve_stock(sku text, quantity numeric, order_ref text,
                                            location text default 'main', expires_in interval default null,
                                            idempotency_key text default null, reference_type text default 'order',
                                            notes text default null)
returns inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_stock(reserve_stock.sku, reserve_stock.quantity, reserve_stock.order_ref,
                                        reserve_stock.location, reserve_stock.expires_in,
                                        reserve_stock.idempotency_key, reserve_stock.reference_type,
                                        reserve_stock.notes);
end;

comment on function inventory_api.reserve_stock(text, numeric, text, text, interval, text, text, text) is
'Hold stock for an order, atomically: never more than is available.
expires_in defaults to the configured TTL (24 hours). reference_type says what order_ref is (order, work_order, transfer, production, sample, other); notes is free text. Raises INSUFFICIENT_STOCK (PT409) with the available quantity in DETAIL.';

create function inventory_api.reserve_order(order_ref text, lines jsonb, expires_in interval default null,
                                            idempotency_key text default null, reference_type text default 'order',
                                            notes text default null)
returns setof inventory_api.reservation
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.reserve_order(reserve_order.order_ref, reserve_order.lines,
                                        reserve_order.expires_in, reserve_order.idempotency_key,
                                        reserve_order.reference_type, reserve_order.notes);
end;

comment on function inventory_api.reserve_order(text, jsonb, interval, text, text, text) is
'Hold every line of an order, or none.
lines: [{"sku": "A1", "quantity": 2, "location": "main"}]. Duplicate lines are merged; rows are locked in a fixed order so concurrent orders never deadlock; INSUFFICIENT_STOCK lists every short line.';

create function inventory_api.verify_inventory(anchor jsonb default null)
returns setof inventory_api.invariant_violation
language sql stable
set search_path = ''
begin atomic
  select * from inventory.verify_inventory(verify_inventory.anchor);
end;

comment on function inventory_api.verify_inventory(jsonb) is
'List every broken invariant; no rows means the books balance.
Checks: stock levels equal their ledger sums, the ledger is continuous and its hash chains intact, reserved equals active holds, nothing negative or oversold, returns equal what the holds record as returned. With an anchor (from audit_anchor), also that no ledger movement it covers was rewritten or deleted.';

create function inventory_api.set_reason_code(code text, requires_approval boolean, approval_threshold numeric,
                                              direction text default null, description text default null)
returns setof inventory_api.reason_codes
language sql volatile
set search_path = ''
begin atomic
  select inventory.set_reason_code(set_reason_code.code, set_reason_code.requires_approval,
                                   set_reason_code.approval_threshold, set_reason_code.direction,
                                   set_reason_code.description);
  select * from inventory_api.reason_codes r where r.reason_code = set_reason_code.code;
end;

comment on function inventory_api.set_reason_code(text, boolean, numeric, text, text) is
'Create or change an adjustment reason (unscoped admins; audited).
direction (add, remove or both) and description are required for a new code and kept when omitted. Removals above approval_threshold always need approval; additions only when requires_approval.';

create function inventory_api.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric,
                                               reorder_quantity numeric default null,
                                               max_stock_level numeric default null,
                                               lead_time_days integer default null,
                                               expected_version integer default null)
returns inventory_api.stock_policy
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.set_stock_policy(set_stock_policy.sku, set_stock_policy.location,
                                           set_stock_policy.reorder_point, set_stock_policy.safety_stock,
                                           set_stock_policy.reorder_quantity, set_stock_policy.max_stock_level,
                                           set_stock_policy.lead_time_days, set_stock_policy.expected_version);
end;

comment on function inventory_api.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer, integer) is
'Set the replenishment policy of an item at a location (admins). From then on a reorder alert opens whenever available falls to or below reorder_point (CRITICAL at or below safety_stock) and resolves when it recovers.';

create or replace function inventory_api.seal_audit_log(batch_size integer default 10000)
returns integer
language sql volatile
set search_path = ''
begin atomic
  select inventory.seal_audit_log(seal_audit_log.batch_size);
end;

comment on function inventory_api.seal_audit_log(integer) is
'Append up to batch_size committed audit rows to the hash chain; returns how many (0: nothing to seal), or null when another sealer is running.
Self-locking through a lock only pyinv can take. Call it until it returns less than batch_size. Rows of transactions still running are sealed by a later call.';

create function inventory_api.verify_audit_chain(anchor jsonb default null)
returns setof inventory_api.chain_break
language sql stable
set search_path = ''
begin atomic
  select * from inventory.verify_audit_chain(verify_audit_chain.anchor);
end;

comment on function inventory_api.verify_audit_chain(jsonb) is
'Report the first broken link of the audit hash chain, rows sealing skipped, and committed rows left unsealed longer than settings.audit_seal_max_lag; no rows means the chain is intact.
With an anchor (from audit_anchor), also report a chain truncated or rewritten since it was taken.';

create function inventory_api.audit_anchor(wait_seconds numeric default 10)
returns jsonb
language sql volatile
set search_path = ''
begin atomic
  select inventory.take_anchor(audit_anchor.wait_seconds);
end;

comment on function inventory_api.audit_anchor(numeric) is
'Export the heads of the audit chain and of every stock level''s ledger chain, to keep where the database cannot write (maintenance: admins and the scheduler).
Pass the result to verify_audit_chain(anchor) and verify_inventory(anchor) later. Must run at READ COMMITTED; waits up to wait_seconds for transactions that could still write below its ledger cut (BUSY when they do not end).';
-- END functions and views generated by tools/schema_diff.py

-- One trigger for every change of a stock level (ledger movement, reorder alert or audit row),
-- instead of a BEFORE trigger and two AFTER triggers whose WHEN clauses were re-prepared for every
-- statement.
drop trigger stock_levels_record_movement on inventory.stock_levels;
drop trigger stock_levels_audit_update on inventory.stock_levels;
drop trigger stock_levels_reorder_alert on inventory.stock_levels;
drop function inventory.record_stock_movement();
drop function inventory.reorder_alert_trigger();
-- The latest movement of each level (and whether its item is deleted), written before the trigger
-- (which keeps these columns) exists: deriving a column is not a change to record.
update inventory.stock_levels s
   set last_movement_id = g.movement_id
  from (select g.item_id, g.location_id, pg_catalog.max(g.movement_id) as movement_id
          from inventory.ledger g group by g.item_id, g.location_id) g
 where g.item_id = s.item_id and g.location_id = s.location_id;
update inventory.stock_levels s set item_deleted = true
  from inventory.items i where i.item_id = s.item_id and i.deleted_at is not null;
create trigger stock_levels_record_change
  before insert or update on inventory.stock_levels
  for each row execute function inventory.record_stock_level_change();
alter table inventory.stock_levels enable always trigger stock_levels_record_change;

-- Holds and idempotency keys written by pyinv's own functions are recorded by the ledger movement
-- that names them (and returns by their returns row); anyone else's changes are audited row by row.
drop trigger reservations_audit_insert on inventory.reservations;
drop trigger reservations_audit_update on inventory.reservations;
drop trigger reservations_audit_delete on inventory.reservations;
drop trigger idempotency_keys_audit_insert on inventory.idempotency_keys;
drop trigger idempotency_keys_audit_update on inventory.idempotency_keys;
drop trigger idempotency_keys_audit_delete on inventory.idempotency_keys;
do $audited$
begin
  perform inventory.audit_table(t, recorded_by_ledger => true)
     from pg_catalog.unnest(array['reservations', 'idempotency_keys']) as t;
end
$audited$;

-- Invariants of the hot tables as one named CHECK each, calling a predicate compiled once per
-- session (see level_quantities_are_valid).
alter table inventory.stock_levels
  drop constraint stock_levels_on_hand_check,
  drop constraint stock_levels_reserved_check,
  drop constraint stock_levels_reserved_within_on_hand_check,
  add constraint stock_levels_quantities_check
    check (inventory.level_quantities_are_valid(on_hand, reserved, pending_movement is null));
alter table inventory.ledger
  drop constraint ledger_arithmetic_check,
  add constraint ledger_arithmetic_check
    check (inventory.movement_adds_up(on_hand_before, on_hand_delta, on_hand_after,
                                      reserved_before, reserved_delta, reserved_after));
alter table inventory.reservations
  drop constraint reservations_closed_at_check,
  drop constraint reservations_fulfilled_check,
  drop constraint reservations_quantity_check,
  drop constraint reservations_quantity_fulfilled_check,
  drop constraint reservations_status_check,
  drop constraint reservations_quantity_returned_check,
  add constraint reservations_state_check
    check (inventory.hold_state_is_valid(quantity, quantity_fulfilled, quantity_returned, status, closed_at, notes));

-- Names must be visible text in NFC, in the tables too (the last line of defence).
alter table inventory.items
  drop constraint items_name_check,
  add constraint items_name_check check (inventory.text_is_valid(name, 200));
alter table inventory.locations
  drop constraint locations_name_check,
  add constraint locations_name_check check (inventory.text_is_valid(name, 200));

-- Issue 11: versions count every change; the audit log and users' roles readable by admins through
-- the API; every column of the API views described (PostgREST's OpenAPI shows these).
create trigger items_count_version before update on inventory.items
  for each row execute function inventory.count_version();
create trigger stock_policies_count_version before update on inventory.stock_policies
  for each row execute function inventory.count_version();
create policy user_roles_viewer_select on inventory.user_roles for select to inventory_viewer
  using (user_id = (select inventory.current_actor()) or (select inventory.is_allowed('admin')));
create policy audit_log_viewer_select on inventory.audit_log for select to inventory_viewer
  using ((select inventory.is_allowed('admin')));
create policy audit_chain_viewer_select on inventory.audit_chain for select to inventory_viewer
  using ((select inventory.is_allowed('admin')));
comment on policy user_roles_viewer_select on inventory.user_roles is 'Admins (unscoped) see every grant; other users their own.';
comment on policy audit_log_viewer_select on inventory.audit_log is 'Only unscoped admins read the audit log.';
comment on policy audit_chain_viewer_select on inventory.audit_chain is 'Only unscoped admins read the audit chain.';
-- Columns computed or renamed by the views, described here; every other column of a view carries
-- the comment of the table column it shows (copied below), so each column is described once.
comment on column inventory_api.stock_levels.sku is 'SKU of the item.';
comment on column inventory_api.stock_levels.location is 'Code of the location.';
comment on column inventory_api.stock_levels.available is 'Units a new hold may take now: on_hand - reserved + expired_unreleased (overdue holds already count as released).';
comment on column inventory_api.stock_levels.expired_unreleased is 'Units of overdue holds not yet released by expire_reservations (they no longer count).';
comment on column inventory_api.reservations.sku is 'SKU of the item held.';
comment on column inventory_api.reservations.location is 'Code of the location it is held at.';
comment on column inventory_api.reservations.quantity_open is 'Units still held: quantity - quantity_fulfilled while ACTIVE, else 0.';
comment on column inventory_api.reservations.is_overdue is 'ACTIVE but past expires_at: no longer counts and cannot be fulfilled.';
comment on column inventory_api.user_roles.location is 'Code of the location the role is limited to; null = every location.';
comment on column inventory_api.audit_log.sealed is 'Whether the row is in the audit hash chain yet (seal_audit_log).';
comment on column inventory_api.audit_log.chain_seq is 'Its position in the audit hash chain, once sealed.';
comment on column inventory_api.reorder_recommendations.status is 'CRITICAL (available <= safety stock), REORDER (available <= reorder point) or NORMAL.';
comment on column inventory_api.reorder_recommendations.suggested_order_quantity is 'Units to order: the reorder quantity, else up to the maximum level; 0 when NORMAL; null when the policy gives neither.';
comment on column inventory_api.reorder_recommendations.alert_status is 'Status of the level''s open (OPEN or ACKNOWLEDGED) reorder alert, if any.';
comment on column inventory_api.cycle_counts.adjustment_status is 'Status of the adjustment the count produced (see inventory_api.adjustments).';

do $view_column_comments$
declare
  v_column record;
begin
  for v_column in
    select v.oid::regclass as view_name, a.attname,
           (select d.description
              from pg_catalog.pg_depend dep
              join pg_catalog.pg_rewrite rw on rw.oid = dep.objid and rw.ev_class = v.oid
              join pg_catalog.pg_attribute ta on ta.attrelid = dep.refobjid and ta.attnum = dep.refobjsubid
              join pg_catalog.pg_class t on t.oid = dep.refobjid and t.relkind in ('r', 'p')
              join pg_catalog.pg_description d on d.objoid = t.oid and d.classoid = 'pg_catalog.pg_class'::regclass
                                              and d.objsubid = ta.attnum
             where dep.classid = 'pg_catalog.pg_rewrite'::regclass and ta.attname = a.attname
             -- the table the view is named after first (items for inventory_api.items), then any
             order by (t.relname = v.relname) desc, t.relname
             limit 1) as description
      from pg_catalog.pg_class v
      join pg_catalog.pg_attribute a on a.attrelid = v.oid and a.attnum > 0 and not a.attisdropped
     where v.relnamespace = 'inventory_api'::regnamespace and v.relkind = 'v'
       and not exists (select from pg_catalog.pg_description d
                        where d.objoid = v.oid and d.classoid = 'pg_catalog.pg_class'::regclass
                          and d.objsubid = a.attnum)
  loop
    if v_column.description is not null or v_column.attname = 'location' then
      execute pg_catalog.format('comment on column %s.%I is %L', v_column.view_name, v_column.attname,
                                coalesce(v_column.description, 'Code of the location.'));
    end if;
  end loop;
end
$view_column_comments$;

-- Stored idempotency requests compare interval arguments in canonical words from now on.
update inventory.idempotency_keys k
   set request = pg_catalog.jsonb_set(k.request, '{expires_in}',
                   pg_catalog.to_jsonb(inventory.interval_key((k.request ->> 'expires_in')::interval)))
 where k.operation in ('reserve_stock', 'reserve_order')
   and pg_catalog.jsonb_typeof(k.request -> 'expires_in') = 'string';

reset role;
notify pgrst, 'reload schema';
