-- Layer 4, functions by concern: the catalogue (items, locations) and business roles of users.
-- Items and locations are idempotent by their natural key: creating an object that exists with the
-- same attributes returns it; with other attributes it is ALREADY_EXISTS.

create function inventory.grant_user_role(user_id text, role text, location text)
returns inventory_api.user_role
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_location_id bigint;
begin
  perform inventory.authorize('admin');
  perform inventory.check_text(grant_user_role.user_id, 'user_id', 200);
  if grant_user_role.role is null or grant_user_role.role not in ('viewer', 'operator', 'admin', 'scheduler') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'role must be viewer, operator, admin or scheduler',
      pg_catalog.jsonb_build_object('argument', 'role', 'problem', 'not a role'));
  end if;
  if grant_user_role.location is not null then
    v_location_id := inventory.location_for_code(grant_user_role.location);
  end if;
  insert into inventory.user_roles (user_id, role, location_id, granted_by)
  values (grant_user_role.user_id, grant_user_role.role, v_location_id, inventory.current_actor())
  on conflict do nothing;
  return (select row(u.user_id, u.role, grant_user_role.location, u.granted_by, u.granted_at)::inventory_api.user_role
            from inventory.user_roles u
           where u.user_id = grant_user_role.user_id and u.role = grant_user_role.role
             and u.location_id is not distinct from v_location_id);
end
$$;

comment on function inventory.grant_user_role(text, text, text) is 'Implements inventory_api.grant_user_role.';

create function inventory.revoke_user_role(user_id text, role text, location text)
returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_location_id bigint;
  v_count integer;
begin
  perform inventory.authorize('admin');
  if revoke_user_role.location is not null then
    v_location_id := inventory.location_for_code(revoke_user_role.location);
  end if;
  delete from inventory.user_roles u
   where u.user_id = revoke_user_role.user_id and u.role = revoke_user_role.role
     and u.location_id is not distinct from v_location_id;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

comment on function inventory.revoke_user_role(text, text, text) is 'Implements inventory_api.revoke_user_role.';

-- Catalogue: items and locations. These are idempotent by their natural key: creating an object that
-- exists with the same attributes returns it; with other attributes it is ALREADY_EXISTS.
create function inventory.item_result(item_id bigint) returns inventory_api.item
language sql stable
set search_path = ''
as $$
  select row(i.sku, i.name, i.unit_of_measure, i.unit_cost, i.status, i.track_lots, i.created_at,
             i.updated_at, i.version, i.deleted_at, i.deleted_by, i.requires_qc)::inventory_api.item
    from inventory.items i where i.item_id = item_result.item_id
$$;

comment on function inventory.item_result(bigint) is 'Public view of one item.';

create function inventory.create_item(sku text, name text, unit_of_measure text, unit_cost numeric,
                                      track_lots boolean, requires_qc boolean)
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
  if create_item.requires_qc is null or (create_item.requires_qc and not create_item.track_lots) then
    perform inventory.raise_error('INVALID_ARGUMENT', 'requires_qc must be true or false, and true only with track_lots',
      pg_catalog.jsonb_build_object('argument', 'requires_qc',
                                    'problem', case when create_item.requires_qc is null then 'missing'
                                                    else 'needs track_lots' end));
  end if;

  insert into inventory.items (sku, name, unit_of_measure, unit_cost, track_lots, requires_qc, created_by)
  values (create_item.sku, create_item.name, create_item.unit_of_measure, create_item.unit_cost,
          create_item.track_lots, create_item.requires_qc, inventory.current_actor())
  on conflict on constraint items_sku_key do nothing
  returning item_id into v_item_id;
  if v_item_id is null then
    select * into v_existing from inventory.items i where i.sku = create_item.sku;
    if v_existing.deleted_at is not null
       or v_existing.name <> create_item.name
       or v_existing.unit_of_measure <> create_item.unit_of_measure
       or v_existing.unit_cost is distinct from create_item.unit_cost
       or v_existing.track_lots <> create_item.track_lots
       or v_existing.requires_qc <> create_item.requires_qc then
      perform inventory.raise_error('ALREADY_EXISTS',
        pg_catalog.format('an item with SKU %L already exists with other attributes', create_item.sku),
        pg_catalog.jsonb_build_object('sku', create_item.sku));
    end if;
    v_item_id := v_existing.item_id;
  end if;
  return inventory.item_result(v_item_id);
end
$$;

comment on function inventory.create_item(text, text, text, numeric, boolean, boolean) is 'Implements inventory_api.create_item.';

create function inventory.set_item_status(sku text, status text)
returns inventory_api.item
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
begin
  perform inventory.authorize('admin');
  if set_item_status.status is null or set_item_status.status not in ('active', 'on_hold', 'discontinued') then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'status must be active, on_hold or discontinued',
      pg_catalog.jsonb_build_object('argument', 'status', 'problem', 'not one of active, on_hold, discontinued'));
  end if;
  v_item := inventory.item_for_sku(set_item_status.sku);
  update inventory.items i set status = set_item_status.status, updated_at = pg_catalog.now()
   where i.item_id = v_item.item_id and i.status <> set_item_status.status;
  return inventory.item_result(v_item.item_id);
end
$$;

comment on function inventory.set_item_status(text, text) is 'Implements inventory_api.set_item_status.';

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

create function inventory.create_location(code text, name text)
returns inventory_api.location
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_location inventory.locations;
begin
  perform inventory.authorize('admin');
  perform inventory.check_text(create_location.code, 'code', 64);
  if create_location.code !~ '^[A-Za-z0-9][A-Za-z0-9._:/#+-]{0,63}$' then
    perform inventory.raise_error('INVALID_ARGUMENT',
      'code must start with a letter or digit and use only letters, digits and . _ : / # + -',
      pg_catalog.jsonb_build_object('argument', 'code', 'problem', 'malformed'));
  end if;
  perform inventory.check_text(create_location.name, 'name', 200);
  insert into inventory.locations (code, name, created_by)
  values (create_location.code, create_location.name, inventory.current_actor())
  on conflict on constraint locations_code_key do nothing
  returning * into v_location;
  if v_location.location_id is null then
    select * into v_location from inventory.locations l where l.code = create_location.code;
    if v_location.name <> create_location.name then
      perform inventory.raise_error('ALREADY_EXISTS',
        pg_catalog.format('a location with code %L already exists with another name', create_location.code),
        pg_catalog.jsonb_build_object('location', create_location.code));
    end if;
  end if;
  return row(v_location.code, v_location.name, v_location.created_at)::inventory_api.location;
end
$$;

comment on function inventory.create_location(text, text) is 'Implements inventory_api.create_location.';
