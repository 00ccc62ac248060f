-- Layer 7, the public API: functions in inventory_api are SECURITY INVOKER, thin SQL wrappers over
-- their SECURITY DEFINER implementations in the private schema, so PostgREST and linters see no
-- definer code in the exposed schema. Parameter names and defaults here are the public contract
-- (PostgREST calls them with named arguments). This file: the catalogue and users' roles.

create function inventory_api.create_item(sku text, name text, unit_of_measure text default 'each',
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
