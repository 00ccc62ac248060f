-- Layer 3, shared functions: idempotency keys, claimed in the transaction of their effect.

-- Claims an idempotency key for this transaction. Returns null when the key is new (the caller
-- performs the effect), or the stored response when the same request was already made (the caller
-- returns it and moves nothing). A concurrent call with the same key waits on the unique index
-- until the first commits, then replays. A rejected call rolls back with its key: the key is not
-- burned, so the client may retry it once the cause is fixed.
create function inventory.claim_idempotency_key(idempotency_key text, operation text, request jsonb,
                                                response jsonb default null)
returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_stored inventory.idempotency_keys;
begin
  perform inventory.check_text(claim_idempotency_key.idempotency_key, 'idempotency_key', 200);
  insert into inventory.idempotency_keys as k (idempotency_key, operation, request, response, actor)
  values (claim_idempotency_key.idempotency_key, claim_idempotency_key.operation,
          claim_idempotency_key.request, claim_idempotency_key.response, inventory.current_actor())
  on conflict do nothing;
  if found then
    return null;
  end if;
  select * into v_stored from inventory.idempotency_keys k
   where k.idempotency_key = claim_idempotency_key.idempotency_key;
  if v_stored.operation <> claim_idempotency_key.operation or v_stored.request <> claim_idempotency_key.request then
    perform inventory.raise_error('IDEMPOTENCY_CONFLICT',
      pg_catalog.format('idempotency key %L was already used for a different %s call',
                        claim_idempotency_key.idempotency_key, v_stored.operation),
      pg_catalog.jsonb_build_object('idempotency_key', claim_idempotency_key.idempotency_key,
                                    'operation', v_stored.operation));
  end if;
  return v_stored.response;
end
$$;

comment on function inventory.claim_idempotency_key(text, text, jsonb, jsonb) is 'Claims a key: null when new, the stored response on a matching replay; raises IDEMPOTENCY_CONFLICT when the arguments differ.';

create function inventory.complete_idempotency_key(idempotency_key text, response jsonb)
returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  update inventory.idempotency_keys k set response = complete_idempotency_key.response
   where k.idempotency_key = complete_idempotency_key.idempotency_key;
end
$$;

comment on function inventory.complete_idempotency_key(text, jsonb) is 'Stores the response of a call that claimed the key, for later replays.';
