-- Layer 1, foundation: the error catalogue. Every error pyinv raises on purpose carries one of these
-- tokens in its HINT and the matching SQLSTATE. PostgREST maps PTxyz to HTTP xyz and 22023 to 400.
-- pyinv/errors.py mirrors this table and a test checks that the two agree.

create table inventory.error_codes (
  code text primary key,
  sqlstate text not null,
  description text not null,
  constraint error_codes_code_format_check check (code ~ '^[A-Z][A-Z_]+$'),
  constraint error_codes_sqlstate_format_check check (sqlstate ~ '^[0-9A-Z]{5}$')
);

comment on table inventory.error_codes is 'Error catalogue: hint token, SQLSTATE and meaning of every error pyinv raises.';

comment on column inventory.error_codes.code is 'Machine-readable token carried in the HINT of the error.';

comment on column inventory.error_codes.sqlstate is 'SQLSTATE of the error; PTxyz becomes HTTP xyz under PostgREST.';

comment on column inventory.error_codes.description is 'What the error means and what the caller should do.';

insert into inventory.error_codes (code, sqlstate, description) values
  ('PRODUCT_NOT_FOUND', 'PT404', 'No item with this SKU exists (or it was deleted). Create it first.'),
  ('LOCATION_NOT_FOUND', 'PT404', 'No location with this code exists. Create it first.'),
  ('NO_RESERVATION', 'PT404', 'The order has no active reservation (for this SKU).'),
  ('INSUFFICIENT_STOCK', 'PT409', 'Not enough available stock; DETAIL lists every short line.'),
  ('PRODUCT_UNAVAILABLE', 'PT409', 'The item is on hold or discontinued and cannot be reserved or received.'),
  ('QUANTITY_MISMATCH', 'PT409', 'The quantity exceeds what is held (fulfil) or what was shipped and not yet returned (return).'),
  ('RESERVATION_EXPIRED', 'PT409', 'The hold expired; it can no longer be fulfilled. Reserve again.'),
  ('IDEMPOTENCY_CONFLICT', 'PT409', 'The idempotency key was already used with different arguments. Use a new key.'),
  ('ALREADY_EXISTS', 'PT409', 'An object with this natural key exists with different attributes.'),
  ('INVALID_QUANTITY', '22023', 'Quantities must be finite, greater than zero, at most 1e12, with at most 4 decimals.'),
  ('INVALID_ARGUMENT', '22023', 'An argument is missing, malformed or out of range; DETAIL names it.'),
  ('APPEND_ONLY', '42501', 'The ledger and audit log are append-only: rows cannot be updated, deleted or truncated.'),
  ('PERMISSION_DENIED', '42501', 'The acting user lacks the business role (or location scope) this needs.'),
  ('SELF_APPROVAL_FORBIDDEN', 'PT409', 'An adjustment cannot be approved by the user who requested it; another admin must decide.'),
  ('INVALID_STATE', 'PT409', 'The object is not in a state that allows this (e.g. the adjustment was already decided, the alert is closed).'),
  ('ADJUSTMENT_NOT_FOUND', 'PT404', 'No stock adjustment with this id.'),
  ('ALERT_NOT_FOUND', 'PT404', 'No reorder alert with this id.'),
  ('LOT_NOT_FOUND', 'PT404', 'No lot with this number for the item.'),
  ('BUSY', '55P03', 'Other transactions kept what this needs busy for longer than it may wait; retry later.'),
  ('VERSION_CONFLICT', 'PT409', 'The object changed since the version given as expected_version was read; re-read it and decide again.');

-- Raises the catalogued error `code`. DETAIL is a JSON object of specifics for programs.
create function inventory.raise_error(code text, message text, detail jsonb default null)
returns void
language plpgsql stable
set search_path = ''
as $$
declare
  v_sqlstate text;
begin
  select e.sqlstate into v_sqlstate from inventory.error_codes e where e.code = raise_error.code;
  if v_sqlstate is null then
    raise exception 'unknown pyinv error code %', raise_error.code using errcode = 'XX000';
  end if;
  raise exception using
    errcode = v_sqlstate,
    message = raise_error.message,
    detail = coalesce(raise_error.detail, '{}'::jsonb)::text,
    hint = raise_error.code;
end
$$;

comment on function inventory.raise_error(text, text, jsonb) is 'Raises a catalogued pyinv error: SQLSTATE from inventory.error_codes, HINT = code, DETAIL = JSON specifics.';
