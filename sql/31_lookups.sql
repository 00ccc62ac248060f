-- Layer 3, shared functions: lookups that raise the catalogued not-found errors.

-- Lookups that raise the catalogued not-found errors.
create function inventory.item_for_sku(sku text, out item_id bigint, out status text, out track_lots boolean,
                                       out requires_qc boolean)
language plpgsql stable
set search_path = ''
as $$
begin
  perform inventory.check_text(item_for_sku.sku, 'sku', 64);
  select i.item_id, i.status, i.track_lots, i.requires_qc
    into item_for_sku.item_id, item_for_sku.status, item_for_sku.track_lots, item_for_sku.requires_qc
    from inventory.items i
   where i.sku = item_for_sku.sku and i.deleted_at is null;
  if not found then
    perform inventory.raise_error('PRODUCT_NOT_FOUND',
      pg_catalog.format('no item with SKU %L', item_for_sku.sku),
      pg_catalog.jsonb_build_object('sku', item_for_sku.sku));
  end if;
end
$$;

comment on function inventory.item_for_sku(text) is 'item_id, status and lot tracking of a live item; raises PRODUCT_NOT_FOUND.';

create function inventory.location_for_code(code text) returns bigint
language plpgsql stable
set search_path = ''
as $$
declare
  v_location_id bigint;
begin
  perform inventory.check_text(location_for_code.code, 'location', 64);
  select l.location_id into v_location_id from inventory.locations l where l.code = location_for_code.code;
  if not found then
    perform inventory.raise_error('LOCATION_NOT_FOUND',
      pg_catalog.format('no location with code %L', location_for_code.code),
      pg_catalog.jsonb_build_object('location', location_for_code.code));
  end if;
  return v_location_id;
end
$$;

comment on function inventory.location_for_code(text) is 'location_id of a location code; raises LOCATION_NOT_FOUND.';
