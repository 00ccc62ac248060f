-- Layer 4, functions by concern: bulk import of items and stock policies, one batch (a JSON array of up to 10000 rows) per call.
-- Set-based: each batch is validated, its valid rows applied and its rejected rows returned with the
-- reason, in one statement sequence of one transaction, so a batch is never half applied. Rows may
-- carry "row" (the line number in the source file) to name them in the report.

-- The JSON text of a field, trimmed; empty strings are null (CSV has no nulls).
create function inventory.import_field(value jsonb, field text) returns text
language sql immutable parallel safe
set search_path = ''
begin atomic
  select nullif(pg_catalog.btrim(import_field.value ->> import_field.field), '');
end;

comment on function inventory.import_field(jsonb, text) is 'A trimmed text field of an import row; empty means null.';

-- Whether text is a decimal with at most 4 decimals between 0 and 1e12 (checked before any cast).
create function inventory.import_quantity_is_valid(value text, allow_zero boolean) returns boolean
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

create function inventory.check_import_batch(rows jsonb) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if check_import_batch.rows is null or pg_catalog.jsonb_typeof(check_import_batch.rows) <> 'array'
     or pg_catalog.jsonb_array_length(check_import_batch.rows) not between 1 and 10000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'rows must be a JSON array of 1 to 10000 objects',
      pg_catalog.jsonb_build_object('argument', 'rows', 'problem', 'not an array of 1 to 10000 rows'));
  end if;
end
$$;

comment on function inventory.check_import_batch(jsonb) is 'Raises INVALID_ARGUMENT unless the batch is a JSON array of 1 to 10000 rows.';

create function inventory.import_items(rows jsonb) returns jsonb
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

create type inventory.policy_import_row as (
  n bigint, row_number bigint, sku text, location text, item_id bigint, location_id bigint,
  reorder_point numeric, safety_stock numeric, reorder_quantity numeric, max_stock_level numeric,
  lead_time_days integer, problem text, code text);

comment on type inventory.policy_import_row is 'One validated row of a stock policy import batch (problem null when valid).';

create function inventory.import_stock_policies(rows jsonb) returns jsonb
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
