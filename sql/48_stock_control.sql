-- Stock control: reason codes, adjustments with approval, cycle counts, transfers between
-- locations, stock policies and real-time reorder alerts.
--
-- Lock order (extends the rule of 43_holds.sql): holds, then stock levels by (item_id, location_id),
-- then adjustment rows, then reorder alerts; holds are never waited for while a level is held (lazy
-- expiry skips locked holds). Every function below follows it, so none of them can deadlock
-- with each other or with the order lifecycle.
--
-- Cycle counts racing with stock movement: a count is compared with on_hand while the level's row
-- is locked, so the difference is exact for that instant. A difference that needs approval is
-- stored as a PENDING adjustment holding the DELTA (counted - on_hand at count time) and the on_hand
-- it was compared with; approval applies that delta to whatever on_hand is then (movements in
-- between were real and are in both the shelf and the books), re-checking on_hand + delta >= reserved.
-- A newer count of the same level supersedes older pending count adjustments (status SUPERSEDED),
-- because it measures the whole discrepancy again; a difference is therefore never applied twice.

insert into inventory.error_codes (code, sqlstate, description) values
  ('SELF_APPROVAL_FORBIDDEN', 'PT409', 'An adjustment cannot be approved by the user who requested it; another admin must decide.'),
  ('INVALID_STATE', 'PT409', 'The object is not in a state that allows this (e.g. the adjustment was already decided, the alert is closed).'),
  ('ADJUSTMENT_NOT_FOUND', 'PT404', 'No stock adjustment with this id.'),
  ('ALERT_NOT_FOUND', 'PT404', 'No reorder alert with this id.');

-- -- tables -------------------------------------------------------------------------------------------

create table inventory.reason_codes (
  reason_code text primary key,
  description text not null,
  requires_approval boolean not null,
  approval_threshold numeric(19, 4) not null default 0,
  direction text not null,
  updated_by text not null default 'pyinv',
  updated_at timestamptz not null default pg_catalog.now(),
  constraint reason_codes_code_format_check check (reason_code ~ '^[a-z][a-z0-9_]{0,39}$'),
  constraint reason_codes_direction_check check (direction in ('add', 'remove', 'both')),
  constraint reason_codes_approval_threshold_check
    check (approval_threshold >= 0 and approval_threshold <= 1000000000000 and approval_threshold <> 'NaN'::numeric)
);
comment on table inventory.reason_codes is 'Why stock is adjusted, which way a reason may move it, and above which absolute quantity an adjustment with it needs an admin''s approval.';
comment on column inventory.reason_codes.reason_code is 'Machine-readable reason (received, damaged, theft, ...).';
comment on column inventory.reason_codes.description is 'What the reason means.';
comment on column inventory.reason_codes.direction is 'add (only increases on_hand), remove (only decreases it) or both.';
comment on column inventory.reason_codes.requires_approval is 'Whether additions with this reason above the threshold need approval; removals above the threshold always do.';
comment on column inventory.reason_codes.approval_threshold is 'Approval is needed when |quantity_delta| > approval_threshold and the adjustment removes stock or requires_approval is set (0: always).';
comment on column inventory.reason_codes.updated_by is 'Admin who last set the reason (set_reason_code), or pyinv for the seeded ones.';
comment on column inventory.reason_codes.updated_at is 'When the reason was last set.';

insert into inventory.reason_codes (reason_code, description, direction, requires_approval, approval_threshold) values
  ('received', 'Stock received outside a purchase order', 'add', false, 0),
  ('restock', 'Put back on the shelf', 'add', false, 0),
  ('found', 'Units found that the books did not know of', 'add', true, 10),
  ('correction', 'Correction of a booking error', 'both', true, 10),
  ('cycle_count', 'Difference found by a cycle count', 'both', true, 10),
  ('damaged', 'Damaged goods', 'remove', true, 5),
  ('shrinkage', 'Unexplained loss', 'remove', true, 0),
  ('theft', 'Stolen goods', 'remove', true, 0),
  ('expired', 'Past its expiry date', 'remove', true, 20),
  ('promotion', 'Given away in a promotion', 'remove', true, 10),
  ('quality_control', 'Removed or returned by quality control', 'both', true, 10),
  ('other', 'Anything else (describe it)', 'both', true, 0);

-- The approval rule, in one place: an adjustment needs an admin's approval when it moves more than
-- the reason's threshold and it removes stock (whatever the reason) or the reason asks for approval.
create function inventory.adjustment_needs_approval(reason inventory.reason_codes, quantity_delta numeric)
returns boolean
language sql immutable parallel safe
begin atomic
  select pg_catalog.abs(adjustment_needs_approval.quantity_delta) > (adjustment_needs_approval.reason).approval_threshold
         and (adjustment_needs_approval.quantity_delta < 0 or (adjustment_needs_approval.reason).requires_approval);
end;
comment on function inventory.adjustment_needs_approval(inventory.reason_codes, numeric) is 'Whether an adjustment of quantity_delta with this reason needs approval: above the threshold, every removal and additions of reasons that require approval.';

-- Who last counted a level, and when (set by record_count).
alter table inventory.stock_levels
  add column has_stock_policy boolean not null default false,
  add column last_counted_at timestamptz,
  add column last_counted_by text;
comment on column inventory.stock_levels.has_stock_policy is 'Whether a stock policy exists for the level: the reorder alert trigger fires only then (a trigger WHEN clause, so levels without a policy pay nothing).';
comment on column inventory.stock_levels.last_counted_at is 'When the level was last physically counted (record_count).';
comment on column inventory.stock_levels.last_counted_by is 'Acting user of the last count.';

create table inventory.cycle_counts (
  count_id bigint generated by default as identity primary key,
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  counted_quantity numeric(19, 4) not null,
  on_hand_at_count numeric(19, 4) not null,
  reserved_at_count numeric(19, 4) not null,
  difference numeric(19, 4) generated always as (counted_quantity - on_hand_at_count) stored,
  counted_by text not null,
  counted_at timestamptz not null default pg_catalog.now(),
  constraint cycle_counts_counted_quantity_check check (counted_quantity >= 0 and counted_quantity <> 'NaN'::numeric)
);
create index cycle_counts_level_idx on inventory.cycle_counts (item_id, location_id, count_id);
create index cycle_counts_location_id_idx on inventory.cycle_counts (location_id);
comment on table inventory.cycle_counts is 'Physical counts of stock levels, with the on_hand they were compared with.';
comment on column inventory.cycle_counts.count_id is 'Surrogate key.';
comment on column inventory.cycle_counts.item_id is 'The item counted.';
comment on column inventory.cycle_counts.location_id is 'Where it was counted.';
comment on column inventory.cycle_counts.counted_quantity is 'Units found on the shelf.';
comment on column inventory.cycle_counts.on_hand_at_count is 'on_hand of the level at the instant of the count (read under its row lock).';
comment on column inventory.cycle_counts.reserved_at_count is 'reserved of the level at the instant of the count.';
comment on column inventory.cycle_counts.difference is 'counted_quantity - on_hand_at_count: the delta of the physical_count adjustment (none when 0).';
comment on column inventory.cycle_counts.counted_by is 'Acting user who counted.';
comment on column inventory.cycle_counts.counted_at is 'When the count was recorded.';

create table inventory.adjustments (
  adjustment_id bigint generated by default as identity primary key,
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  quantity_delta numeric(19, 4) not null,
  adjustment_type text not null,
  reason_code text not null references inventory.reason_codes (reason_code),
  description text,
  status text not null,
  requires_approval boolean not null,
  on_hand_at_request numeric(19, 4) not null,
  count_id bigint references inventory.cycle_counts (count_id),
  requested_by text not null,
  requested_at timestamptz not null default pg_catalog.now(),
  decided_by text,
  decided_at timestamptz,
  decision_note text,
  on_hand_at_apply numeric(19, 4),
  movement_id bigint,
  idempotency_key text,
  constraint adjustments_quantity_delta_check check (quantity_delta <> 0 and quantity_delta <> 'NaN'::numeric),
  constraint adjustments_type_check
    check (adjustment_type in ('physical_count', 'damage', 'correction', 'write_off', 'found')),
  constraint adjustments_status_check check (status in ('PENDING', 'APPLIED', 'APPROVED', 'REJECTED', 'SUPERSEDED')),
  constraint adjustments_applied_check check ((status in ('APPLIED', 'APPROVED')) = (movement_id is not null)),
  constraint adjustments_decided_check check ((status = 'PENDING') = (decided_at is null)),
  constraint adjustments_approval_check check (status <> 'APPLIED' or not requires_approval)
);
create index adjustments_pending_level_idx on inventory.adjustments (item_id, location_id) where status = 'PENDING';
create index adjustments_location_id_idx on inventory.adjustments (location_id, adjustment_id);
create index adjustments_count_id_idx on inventory.adjustments (count_id);
comment on table inventory.adjustments is 'Requests to change on_hand outside the order lifecycle; PENDING until an admin other than the requester approves or rejects them, or APPLIED at once when the reason needs no approval.';
comment on column inventory.adjustments.adjustment_id is 'Surrogate key.';
comment on column inventory.adjustments.item_id is 'The item adjusted.';
comment on column inventory.adjustments.location_id is 'Where it is adjusted.';
comment on column inventory.adjustments.quantity_delta is 'Change of on_hand (negative removes units); applied as a delta, whatever on_hand is at approval.';
comment on column inventory.adjustments.adjustment_type is 'physical_count, damage, correction, write_off or found.';
comment on column inventory.adjustments.reason_code is 'Reason from inventory.reason_codes.';
comment on column inventory.adjustments.description is 'Free text from the requester.';
comment on column inventory.adjustments.status is 'PENDING, APPLIED (no approval needed), APPROVED (and applied), REJECTED or SUPERSEDED (by a newer count).';
comment on column inventory.adjustments.requires_approval is 'Whether the reason and size needed approval (or a count could not be applied at once).';
comment on column inventory.adjustments.on_hand_at_request is 'on_hand when the request was made (for counts: the on_hand the count was compared with).';
comment on column inventory.adjustments.count_id is 'The cycle count that produced this adjustment, if any.';
comment on column inventory.adjustments.requested_by is 'Acting user who requested it.';
comment on column inventory.adjustments.requested_at is 'When it was requested.';
comment on column inventory.adjustments.decided_by is 'Admin who approved or rejected it (the requester for APPLIED, the counter for SUPERSEDED).';
comment on column inventory.adjustments.decided_at is 'When it left PENDING.';
comment on column inventory.adjustments.decision_note is 'Note of the decision.';
comment on column inventory.adjustments.on_hand_at_apply is 'on_hand just before the delta was applied.';
comment on column inventory.adjustments.movement_id is 'The ADJUST ledger movement that applied it.';
comment on column inventory.adjustments.idempotency_key is 'Idempotency key of the create_adjustment call.';

create table inventory.stock_policies (
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  reorder_point numeric(19, 4) not null,
  safety_stock numeric(19, 4) not null,
  reorder_quantity numeric(19, 4),
  max_stock_level numeric(19, 4),
  lead_time_days integer,
  updated_by text not null,
  updated_at timestamptz not null default pg_catalog.now(),
  primary key (item_id, location_id),
  constraint stock_policies_reorder_point_check check (reorder_point >= 0 and reorder_point <> 'NaN'::numeric),
  constraint stock_policies_safety_stock_check
    check (safety_stock >= 0 and safety_stock <> 'NaN'::numeric and safety_stock <= reorder_point),
  constraint stock_policies_reorder_quantity_check check (reorder_quantity > 0 and reorder_quantity <> 'NaN'::numeric),
  constraint stock_policies_max_stock_level_check
    check (max_stock_level > 0 and max_stock_level <> 'NaN'::numeric and max_stock_level >= reorder_point),
  constraint stock_policies_lead_time_days_check check (lead_time_days between 0 and 3650)
);
create index stock_policies_location_id_idx on inventory.stock_policies (location_id);
comment on table inventory.stock_policies is 'Replenishment policy of an item at a location: reorder point, safety stock, order quantity, maximum, lead time.';
comment on column inventory.stock_policies.item_id is 'The item.';
comment on column inventory.stock_policies.location_id is 'The location.';
comment on column inventory.stock_policies.reorder_point is 'Reorder when available falls to or below this.';
comment on column inventory.stock_policies.safety_stock is 'Critical when available falls to or below this (<= reorder_point).';
comment on column inventory.stock_policies.reorder_quantity is 'Fixed quantity to order, if any.';
comment on column inventory.stock_policies.max_stock_level is 'Order up to this level, if no reorder_quantity is set.';
comment on column inventory.stock_policies.lead_time_days is 'Days a replenishment takes to arrive.';
comment on column inventory.stock_policies.updated_by is 'Acting user who last set the policy.';
comment on column inventory.stock_policies.updated_at is 'When the policy was last set.';

create table inventory.reorder_alerts (
  alert_id bigint generated always as identity primary key,
  item_id bigint not null references inventory.items (item_id),
  location_id bigint not null references inventory.locations (location_id),
  severity text not null,
  status text not null default 'OPEN',
  available_at_open numeric(19, 4) not null,
  reorder_point numeric(19, 4) not null,
  safety_stock numeric(19, 4) not null,
  opened_at timestamptz not null default pg_catalog.now(),
  escalated_at timestamptz,
  acknowledged_by text,
  acknowledged_at timestamptz,
  closed_by text,
  closed_at timestamptz,
  note text,
  recovered_at timestamptz,
  constraint reorder_alerts_severity_check check (severity in ('REORDER', 'CRITICAL')),
  constraint reorder_alerts_status_check check (status in ('OPEN', 'ACKNOWLEDGED', 'RESOLVED', 'DISMISSED')),
  constraint reorder_alerts_closed_check check ((status in ('RESOLVED', 'DISMISSED')) = (closed_at is not null)),
  constraint reorder_alerts_recovered_check check (recovered_at is null or status in ('RESOLVED', 'DISMISSED'))
);
-- At most one open (OPEN or ACKNOWLEDGED) alert per level; and at most one alert per low-stock
-- episode (an alert closed by hand keeps the episode until stock recovers, so it is not reopened
-- by the next sale).
create unique index reorder_alerts_one_open_key on inventory.reorder_alerts (item_id, location_id)
  where status in ('OPEN', 'ACKNOWLEDGED');
create unique index reorder_alerts_one_episode_key on inventory.reorder_alerts (item_id, location_id)
  where recovered_at is null;
create index reorder_alerts_location_id_idx on inventory.reorder_alerts (location_id, alert_id);
comment on table inventory.reorder_alerts is 'Low-stock alerts: opened when available falls to or below the reorder point, CRITICAL at or below safety stock, resolved automatically when stock recovers.';
comment on column inventory.reorder_alerts.alert_id is 'Surrogate key.';
comment on column inventory.reorder_alerts.item_id is 'The item.';
comment on column inventory.reorder_alerts.location_id is 'The location.';
comment on column inventory.reorder_alerts.severity is 'REORDER, or CRITICAL at or below safety stock; only ever raised while the alert is open.';
comment on column inventory.reorder_alerts.status is 'OPEN, ACKNOWLEDGED, RESOLVED (by hand, or automatically when stock recovers) or DISMISSED.';
comment on column inventory.reorder_alerts.available_at_open is 'Available units when the alert opened.';
comment on column inventory.reorder_alerts.reorder_point is 'The policy''s reorder point when the alert opened.';
comment on column inventory.reorder_alerts.safety_stock is 'The policy''s safety stock when the alert opened.';
comment on column inventory.reorder_alerts.opened_at is 'When the alert opened.';
comment on column inventory.reorder_alerts.escalated_at is 'When the severity was raised to CRITICAL.';
comment on column inventory.reorder_alerts.acknowledged_by is 'User who acknowledged it.';
comment on column inventory.reorder_alerts.acknowledged_at is 'When it was acknowledged.';
comment on column inventory.reorder_alerts.closed_by is 'User who resolved or dismissed it (the user whose movement recovered the stock, for automatic resolution).';
comment on column inventory.reorder_alerts.closed_at is 'When it was resolved or dismissed.';
comment on column inventory.reorder_alerts.note is 'Note given when it was acknowledged, resolved or dismissed.';
comment on column inventory.reorder_alerts.recovered_at is 'When available rose above the reorder point again, ending the low-stock episode.';

-- -- result types ------------------------------------------------------------------------------------

create type inventory_api.adjustment as (
  adjustment_id bigint, sku text, location text, quantity_delta numeric, adjustment_type text, reason_code text,
  description text, status text, requires_approval boolean, on_hand_at_request numeric, count_id bigint,
  requested_by text, requested_at timestamptz, decided_by text, decided_at timestamptz, decision_note text,
  on_hand_at_apply numeric, movement_id bigint);
comment on type inventory_api.adjustment is 'A stock adjustment request and its outcome.';

create type inventory_api.stock_count as (
  count_id bigint, sku text, location text, counted_quantity numeric, on_hand_at_count numeric,
  reserved_at_count numeric, difference numeric, adjustment_id bigint, adjustment_status text,
  counted_by text, counted_at timestamptz);
comment on type inventory_api.stock_count is 'A recorded cycle count and the adjustment it produced (none when it matched).';

create type inventory_api.stock_transfer as (
  sku text, quantity numeric, from_location text, to_location text, reference text,
  out_movement_id bigint, in_movement_id bigint, from_on_hand numeric, from_available numeric,
  to_on_hand numeric, to_available numeric);
comment on type inventory_api.stock_transfer is 'A transfer between two locations: the linked TRANSFER_OUT and TRANSFER_IN movements and both levels after it.';

create type inventory_api.stock_policy as (
  sku text, location text, reorder_point numeric, safety_stock numeric, reorder_quantity numeric,
  max_stock_level numeric, lead_time_days integer, updated_by text, updated_at timestamptz);
comment on type inventory_api.stock_policy is 'Replenishment policy of an item at a location.';

create type inventory_api.reorder_alert as (
  alert_id bigint, sku text, location text, severity text, status text, available numeric,
  available_at_open numeric, reorder_point numeric, safety_stock numeric, opened_at timestamptz,
  escalated_at timestamptz, acknowledged_by text, acknowledged_at timestamptz, closed_by text,
  closed_at timestamptz, note text);
comment on type inventory_api.reorder_alert is 'A low-stock alert, with the level''s current available quantity.';

create type inventory_api.reorder_check as (levels_checked integer, opened integer, escalated integer, resolved integer);
comment on type inventory_api.reorder_check is 'What check_reorder_points did: levels with a policy checked, alerts opened, raised to CRITICAL and resolved.';

-- -- helpers -----------------------------------------------------------------------------------------

-- Whether the caller holds `required` (or higher) for at least one location: decides between
-- PERMISSION_DENIED and a not-found error for ids the caller cannot see.
create function inventory.holds_role_somewhere(required text) returns boolean
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return exists (select from inventory.current_grants() g
                  where inventory.role_rank(g.role) >= inventory.role_rank(holds_role_somewhere.required));
end
$$;
comment on function inventory.holds_role_somewhere(text) is 'Whether the caller holds the role (or a higher one) for some location.';

-- A quantity that may be 0 (counts, policy levels): finite, 0..1e12, at most 4 decimals.
create function inventory.check_level_quantity(quantity numeric, argument text) returns numeric
language plpgsql stable
set search_path = ''
as $$
begin
  if check_level_quantity.quantity is distinct from 0 then
    perform inventory.check_quantity(check_level_quantity.quantity, check_level_quantity.argument);
  end if;
  return check_level_quantity.quantity;
end
$$;
comment on function inventory.check_level_quantity(numeric, text) is 'Raises INVALID_QUANTITY unless the quantity is 0 or valid (> 0, <= 1e12, at most 4 decimals).';

create function inventory.adjustment_result(adjustment_id bigint) returns inventory_api.adjustment
language sql stable
set search_path = ''
as $$
  select row(a.adjustment_id, i.sku, l.code, a.quantity_delta, a.adjustment_type, a.reason_code, a.description,
             a.status, a.requires_approval, a.on_hand_at_request, a.count_id, a.requested_by, a.requested_at,
             a.decided_by, a.decided_at, a.decision_note, a.on_hand_at_apply, a.movement_id)::inventory_api.adjustment
    from inventory.adjustments a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
   where a.adjustment_id = adjustment_result.adjustment_id
$$;
comment on function inventory.adjustment_result(bigint) is 'The public view of one adjustment.';

-- Applies a delta to on_hand of one level through the ledger (an ADJUST movement described by
-- `movement`); returns the ledger row. Raises INSUFFICIENT_STOCK when on_hand would fall below
-- reserved (or below 0). The level is created empty when missing and the delta is positive.
-- Overdue holds standing in the way are expired first, before the level is locked (holds first).
create function inventory.apply_on_hand_delta(item_id bigint, location_id bigint, delta numeric, movement jsonb,
                                              sku text, location text)
returns inventory.ledger
language plpgsql volatile
set search_path = ''
as $$
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
$$;
comment on function inventory.apply_on_hand_delta(bigint, bigint, numeric, jsonb, text, text) is 'Applies a delta to on_hand through the ledger; raises INSUFFICIENT_STOCK when on_hand would fall below reserved.';

-- -- adjustments -------------------------------------------------------------------------------------

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
$$;
comment on function inventory.create_adjustment(text, numeric, text, text, text, text, text) is 'Implements inventory_api.create_adjustment.';

create function inventory.approve_adjustment(adjustment_id bigint, decision text, note text)
returns inventory_api.adjustment
language plpgsql volatile security definer
set search_path = ''
as $$
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
$$;
comment on function inventory.approve_adjustment(bigint, text, text) is 'Implements inventory_api.approve_adjustment.';

-- -- cycle counts ------------------------------------------------------------------------------------

create function inventory.record_count(sku text, counted_quantity numeric, location text)
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
$$;
comment on function inventory.record_count(text, numeric, text) is 'Implements inventory_api.record_count.';

-- -- transfers ---------------------------------------------------------------------------------------

create function inventory.transfer_stock(sku text, quantity numeric, from_location text, to_location text,
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
$$;
comment on function inventory.transfer_stock(text, numeric, text, text, text, text) is 'Implements inventory_api.transfer_stock.';

-- -- reorder alerts ----------------------------------------------------------------------------------

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
create function inventory.evaluate_reorder_alert(item_id bigint, location_id bigint, available numeric)
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

create function inventory.reorder_alert_trigger() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not new.has_stock_policy then
    return null;
  end if;
  perform inventory.evaluate_reorder_alert(new.item_id, new.location_id, new.on_hand - new.reserved);
  return null;
end
$$;
comment on function inventory.reorder_alert_trigger() is 'Trigger: re-evaluates the reorder alert of a level with a stock policy when its available quantity changes.';

-- The WHEN clause is evaluated without calling any function: levels without a policy (and changes
-- that leave available unchanged) cost nothing on the reserve path.
create trigger stock_levels_reorder_alert
  after update on inventory.stock_levels
  for each row
  when (new.has_stock_policy and (new.on_hand - new.reserved) is distinct from (old.on_hand - old.reserved))
  execute function inventory.reorder_alert_trigger();

create function inventory.reorder_alert_result(alert_id bigint) returns inventory_api.reorder_alert
language sql stable
set search_path = ''
as $$
  select row(a.alert_id, i.sku, l.code, a.severity, a.status, s.available, a.available_at_open, a.reorder_point,
             a.safety_stock, a.opened_at, a.escalated_at, a.acknowledged_by, a.acknowledged_at, a.closed_by,
             a.closed_at, a.note)::inventory_api.reorder_alert
    from inventory.reorder_alerts a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
    left join inventory.stock_levels s on s.item_id = a.item_id and s.location_id = a.location_id
   where a.alert_id = reorder_alert_result.alert_id
$$;
comment on function inventory.reorder_alert_result(bigint) is 'The public view of one reorder alert.';

create function inventory.update_reorder_alert(alert_id bigint, status text, note text)
returns inventory_api.reorder_alert
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_alert inventory.reorder_alerts;
  v_actor text := inventory.current_actor();
begin
  if update_reorder_alert.status is null
     or update_reorder_alert.status not in ('ACKNOWLEDGED', 'RESOLVED', 'DISMISSED') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'status must be ACKNOWLEDGED, RESOLVED or DISMISSED',
      pg_catalog.jsonb_build_object('argument', 'status', 'problem', 'not a status'));
  end if;
  perform inventory.check_text(update_reorder_alert.note, 'note', 500, required => false);
  select * into v_alert from inventory.reorder_alerts a where a.alert_id = update_reorder_alert.alert_id
     for update;
  if not found then
    if not inventory.holds_role_somewhere('operator') then
      perform inventory.authorize('operator');
    end if;
    perform inventory.raise_error('ALERT_NOT_FOUND',
      pg_catalog.format('no reorder alert with id %s', update_reorder_alert.alert_id),
      pg_catalog.jsonb_build_object('alert_id', update_reorder_alert.alert_id));
  end if;
  perform inventory.authorize('operator', v_alert.location_id);
  if v_alert.status not in ('OPEN', 'ACKNOWLEDGED')
     or (v_alert.status = 'ACKNOWLEDGED' and update_reorder_alert.status = 'ACKNOWLEDGED') then
    perform inventory.raise_error('INVALID_STATE',
      pg_catalog.format('alert %s is %s and cannot become %s', v_alert.alert_id, v_alert.status,
                        update_reorder_alert.status),
      pg_catalog.jsonb_build_object('alert_id', v_alert.alert_id, 'status', v_alert.status));
  end if;
  update inventory.reorder_alerts a
     set status = update_reorder_alert.status,
         acknowledged_by = case when update_reorder_alert.status = 'ACKNOWLEDGED' then v_actor else a.acknowledged_by end,
         acknowledged_at = case when update_reorder_alert.status = 'ACKNOWLEDGED' then pg_catalog.now()
                                else a.acknowledged_at end,
         closed_by = case when update_reorder_alert.status = 'ACKNOWLEDGED' then null else v_actor end,
         closed_at = case when update_reorder_alert.status = 'ACKNOWLEDGED' then null else pg_catalog.now() end,
         note = coalesce(update_reorder_alert.note, a.note)
   where a.alert_id = v_alert.alert_id;
  return inventory.reorder_alert_result(v_alert.alert_id);
end
$$;
comment on function inventory.update_reorder_alert(bigint, text, text) is 'Implements inventory_api.update_reorder_alert.';

-- Re-evaluates the alerts of the given levels (all levels with a policy when item_ids is null) in one
-- pass; the caller holds the levels' row locks. Set-based: used by bulk policy imports and
-- check_reorder_points. Returns (levels checked, opened, escalated, resolved).
create function inventory.refresh_reorder_alerts(item_ids bigint[], location_ids bigint[])
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

create function inventory.check_reorder_points() returns inventory_api.reorder_check
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

-- -- stock policies ----------------------------------------------------------------------------------

create function inventory.stock_policy_result(item_id bigint, location_id bigint) returns inventory_api.stock_policy
language sql stable
set search_path = ''
as $$
  select row(i.sku, l.code, p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level,
             p.lead_time_days, p.updated_by, p.updated_at)::inventory_api.stock_policy
    from inventory.stock_policies p
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id
   where p.item_id = stock_policy_result.item_id and p.location_id = stock_policy_result.location_id
$$;
comment on function inventory.stock_policy_result(bigint, bigint) is 'The public view of one stock policy.';

create function inventory.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric,
                                           reorder_quantity numeric, max_stock_level numeric,
                                           lead_time_days integer)
returns inventory_api.stock_policy
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
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
comment on function inventory.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer) is 'Implements inventory_api.set_stock_policy.';

-- -- row level security and the audit log on the new tables ------------------------------------------

do $stock_control$
declare
  v_table text;
begin
  foreach v_table in array array['reason_codes', 'cycle_counts', 'adjustments', 'stock_policies',
                                 'reorder_alerts'] loop
    execute pg_catalog.format('alter table inventory.%I enable row level security', v_table);
    perform inventory.audit_table(v_table);
  end loop;
end
$stock_control$;

create policy reason_codes_viewer_select on inventory.reason_codes for select to inventory_viewer
  using ((select inventory.has_any_role()));
create policy cycle_counts_viewer_select on inventory.cycle_counts for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy adjustments_viewer_select on inventory.adjustments for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy stock_policies_viewer_select on inventory.stock_policies for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
create policy reorder_alerts_viewer_select on inventory.reorder_alerts for select to inventory_viewer
  using (location_id = any ((select inventory.visible_location_ids())::bigint[]));
comment on policy reason_codes_viewer_select on inventory.reason_codes is 'Reason codes are visible to anyone holding a business role.';
comment on policy cycle_counts_viewer_select on inventory.cycle_counts is 'Only counts at the locations the caller may see.';
comment on policy adjustments_viewer_select on inventory.adjustments is 'Only adjustments at the locations the caller may see.';
comment on policy stock_policies_viewer_select on inventory.stock_policies is 'Only policies at the locations the caller may see.';
comment on policy reorder_alerts_viewer_select on inventory.reorder_alerts is 'Only alerts at the locations the caller may see.';
