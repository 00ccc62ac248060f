-- Back to the migrating login, which records the migration in inventory_meta.
reset role;
