-- Back to the migrating login, which records the migration in inventory_meta; tell PostgREST to
-- reload its schema cache (harmless without PostgREST).
reset role;
notify pgrst, 'reload schema';
