-- Layer 7, the public API: functions in inventory_api are SECURITY INVOKER, thin SQL wrappers over
-- their SECURITY DEFINER implementations in the private schema, so PostgREST and linters see no
-- definer code in the exposed schema. Parameter names and defaults here are the public contract
-- (PostgREST calls them with named arguments). This file: the catalogue and users' roles.

create function inventory_api.create_item(sku text, name text, unit_of_measure text default 'each',
                                          unit_cost numeric default null, track_lots boolean default false,
                                          requires_qc boolean default false)
returns inventory_api.item
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_item(create_item.sku, create_item.name, create_item.unit_of_measure,
                                      create_item.unit_cost, create_item.track_lots, create_item.requires_qc);
end;

comment on function inventory_api.create_item(text, text, text, numeric, boolean, boolean) is
'Create an item.
Idempotent by SKU: the same attributes again return the item; other attributes raise ALREADY_EXISTS (PT409). track_lots: receipts name the lot and holds take the first-expiring sellable lots (FEFO); requires_qc (lot-tracked items only): new lots wait for inspection (set_lot_status) before they may be sold.';

create function inventory_api.set_item_status(sku text, status text)
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

create function inventory_api.create_location(code text, name text)
returns inventory_api.location
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.create_location(create_location.code, create_location.name);
end;

comment on function inventory_api.create_location(text, text) is
'Create a stock location.
Idempotent by code: the same name again returns it; another name raises ALREADY_EXISTS (PT409).';

create function inventory_api.grant_user_role(user_id text, role text, location text default null)
returns inventory_api.user_role
language sql volatile
set search_path = ''
begin atomic
  select * from inventory.grant_user_role(grant_user_role.user_id, grant_user_role.role, grant_user_role.location);
end;

comment on function inventory_api.grant_user_role(text, text, text) is
'Give a user (JWT sub, or a login name) a business role: viewer, operator, admin or scheduler.
location limits the role to one location; null means every location. Admins only.';

create function inventory_api.revoke_user_role(user_id text, role text, location text default null)
returns integer
language sql volatile
set search_path = ''
begin atomic
  select inventory.revoke_user_role(revoke_user_role.user_id, revoke_user_role.role, revoke_user_role.location);
end;

comment on function inventory_api.revoke_user_role(text, text, text) is
'Take a business role away from a user; returns how many grants were removed. Admins only.';
