-- Back to the migrating login, which records the migration in inventory_meta; tell PostgREST to
-- reload its schema cache (harmless without PostgREST). The migrating login then gives up the
-- owner role it used to create everything: a login that stays a member of inventory_owner could
-- disable the append-only triggers, rewrite the ledger or truncate the audit log. (pyinv migrate
-- grants it again for the next run and revokes it at the end.)
reset role;
notify pgrst, 'reload schema';
do $finish$
begin
  if pg_catalog.pg_has_role(current_user, 'inventory_owner', 'MEMBER')
     and exists (select from pg_catalog.pg_auth_members m
                  where m.roleid = 'inventory_owner'::regrole and m.member = current_user::regrole) then
    execute pg_catalog.format('revoke inventory_owner from %I', current_user);
  end if;
end
$finish$;
