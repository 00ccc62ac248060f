-- Layer 1, foundation: argument checks shared by every function and by the tables' own constraints
-- (so they come before the tables). Each check is a predicate with a SQL-standard body (bound to
-- the objects it names when it is created) and a raising wrapper that names the argument. Every
-- function pins search_path, inlinable helpers too: Supabase's linter (function_search_path_mutable)
-- flags any that does not, and the inlining given up costs a few microseconds per call (measured in
-- docs/benchmarks.md).

-- Largest quantity accepted in one call (numeric(19,4) holds 1e15; add_on_hand refuses totals past it).
create function inventory.max_quantity() returns numeric
language sql immutable parallel safe
set search_path = ''
begin atomic
  select 1000000000000::numeric;
end;

comment on function inventory.max_quantity() is 'Largest quantity accepted by one call (1e12).';

-- Inlined into callers (SQL-standard body, no SET clause): on every call's path.
create function inventory.quantity_is_valid(quantity numeric) returns boolean
language sql immutable parallel safe
set search_path = ''
begin atomic
  -- NaN and Infinity sort above every number, so the upper bound excludes them; null stays null.
  select coalesce(quantity_is_valid.quantity > 0
                  and quantity_is_valid.quantity <= inventory.max_quantity()
                  and quantity_is_valid.quantity = pg_catalog.round(quantity_is_valid.quantity, 4), false);
end;

comment on function inventory.quantity_is_valid(numeric) is 'Whether a quantity is finite, > 0, <= 1e12 and has at most 4 decimals.';

-- Validates a quantity argument; returns it unchanged so it can be used inline.
create function inventory.check_quantity(quantity numeric, argument text default 'quantity')
returns numeric
language plpgsql stable
set search_path = ''
as $$
begin
  if not inventory.quantity_is_valid(check_quantity.quantity) then
    perform inventory.raise_error('INVALID_QUANTITY',
      pg_catalog.format('%s must be greater than 0 and at most 1e12 with at most 4 decimals, got %s',
                        check_quantity.argument, coalesce(check_quantity.quantity::text, 'null')),
      pg_catalog.jsonb_build_object('argument', check_quantity.argument,
                                    'value', check_quantity.quantity::text));
  end if;
  return check_quantity.quantity;
end
$$;

comment on function inventory.check_quantity(numeric, text) is 'Raises INVALID_QUANTITY unless the quantity is finite, > 0, <= 1e12 and has at most 4 decimals.';

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

create function inventory.text_is_valid(value text, max_length integer) returns boolean
language sql immutable parallel safe
set search_path = ''
begin atomic
  select inventory.text_problem(text_is_valid.value, text_is_valid.max_length) is null;
end;

comment on function inventory.text_is_valid(text, integer) is 'Whether a text is 1..max_length characters in NFC, with no control or invisible characters and no surrounding blanks.';

-- Validates a free-text argument (references, order numbers, reasons): present (when required),
-- bounded, visible, NFC. Returns it unchanged.
create function inventory.check_text(value text, argument text, max_length integer default 200,
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

create function inventory.check_unit_cost(unit_cost numeric) returns numeric
language plpgsql stable
set search_path = ''
as $$
begin
  if check_unit_cost.unit_cost is not null
     and (check_unit_cost.unit_cost = 'NaN'::numeric or check_unit_cost.unit_cost < 0
          or check_unit_cost.unit_cost > inventory.max_quantity()
          or check_unit_cost.unit_cost <> pg_catalog.round(check_unit_cost.unit_cost, 4)) then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'unit_cost must be between 0 and 1e12 with at most 4 decimals',
      pg_catalog.jsonb_build_object('argument', 'unit_cost', 'problem', 'out of range'));
  end if;
  return check_unit_cost.unit_cost;
end
$$;

comment on function inventory.check_unit_cost(numeric) is 'Raises INVALID_ARGUMENT unless the cost is null or between 0 and 1e12 with at most 4 decimals.';

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
