-- Removes pyinv's schemas and everything in them. Roles are cluster-wide and may serve other
-- databases, so they are left in place.
drop schema if exists inventory_api cascade;
drop schema if exists inventory cascade;
