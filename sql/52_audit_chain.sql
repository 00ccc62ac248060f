-- Layer 4, functions by concern: sealing and verifying the audit chain (see 29_audit.sql).

-- Transactions running in this database now, other than the caller's. Read from the lock table,
-- which is live: every transaction holds a lock on its own id until it ends (a snapshot would not
-- list the newest ones, those at or above its xmax). Transactions of other databases cannot write
-- this audit log, so a long one there never holds sealing back; one whose database cannot be told
-- (a prepared transaction, a backend the statistics do not show yet) is kept, on the safe side.
-- The lock table shows 32-bit ids: each becomes the full id nearest below a point safely past
-- every running transaction.
create function inventory.running_transactions() returns xid8[]
language plpgsql volatile
set search_path = ''
as $$
declare
  v_reference numeric := pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::numeric + 1000000000;
begin
  perform pg_catalog.pg_stat_clear_snapshot();
  return (
    select coalesce(pg_catalog.array_agg(distinct
             (v_reference - pg_catalog.mod(v_reference - l.transactionid::text::numeric, 4294967296))::text::xid8), '{}')
      from pg_catalog.pg_locks l
      left join pg_catalog.pg_stat_activity a on a.pid = l.pid
     where l.locktype = 'transactionid' and l.mode = 'ExclusiveLock' and l.granted
       and l.pid is distinct from pg_catalog.pg_backend_pid()
       and (a.datid is null
            or a.datid = (select d.oid from pg_catalog.pg_database d where d.datname = pg_catalog.current_database())));
end
$$;

comment on function inventory.running_transactions() is 'Transactions running in this database (other than the caller''s), from the live lock table.';

-- Whether every transaction of a cut has ended, and its commit is visible to the current snapshot
-- (so that the rows it wrote can be read and sealed now, at any isolation level).
create function inventory.cut_is_clean(waiting_for xid8[]) returns boolean
language sql volatile
set search_path = ''
as $$
  select coalesce(pg_catalog.bool_and(case pg_catalog.pg_xact_status(x)
                                        when 'in progress' then false
                                        when 'committed' then pg_catalog.pg_visible_in_snapshot(x, pg_catalog.pg_current_snapshot())
                                        else true end), true)
    from pg_catalog.unnest(cut_is_clean.waiting_for) x
$$;

comment on function inventory.cut_is_clean(xid8[]) is 'Whether all transactions of a seal cut have ended and are visible to the current snapshot.';

-- Seals up to batch_size audit rows onto the chain; returns how many, or null when another sealer
-- is running (busy, as distinct from 0: nothing to seal). Self-locking through its job row.
create function inventory.seal_audit_log(batch_size integer) returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_sealed_through bigint;
  v_sealable bigint;
  v_last inventory.audit_chain;
  v_entry inventory.audit_log;
  v_seq bigint;
  v_prev bytea;
  v_hash bytea;
  v_count integer := 0;
  v_waited integer := 0;
begin
  perform inventory.authorize('scheduler');
  if seal_audit_log.batch_size is null or seal_audit_log.batch_size not between 1 and 1000000 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'batch_size must be between 1 and 1000000',
      pg_catalog.jsonb_build_object('argument', 'batch_size', 'problem', 'out of range'));
  end if;
  if not inventory.lock_job('seal_audit_log', wait => false) then
    return null;
  end if;
  select s.sealed_through into v_sealed_through from inventory.audit_seal_state s;

  -- Cuts naming transactions this cluster has not reached were taken in another cluster (the
  -- database was dumped and restored): what was restored is committed, so they are void.
  if exists (select from inventory.audit_seal_cuts c, pg_catalog.unnest(c.waiting_for) x
              where x >= pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())) then
    delete from inventory.audit_seal_cuts;
  end if;
  -- A new cut: the sequence first, then (in a later statement, so a later snapshot) the transactions
  -- that may still hold ids below it. Only at READ COMMITTED, where that snapshot is fresh; at other
  -- levels the sealer uses the cuts earlier runs took.
  if pg_catalog.current_setting('transaction_isolation') = 'read committed' then
    select case when q.is_called then q.last_value else 0 end into v_sealable
      from inventory.audit_log_audit_id_seq q;
    if v_sealable > v_sealed_through then
      insert into inventory.audit_seal_cuts (sealable_through, waiting_for)
      values (v_sealable, inventory.running_transactions())
      on conflict (sealable_through) do nothing;
      -- Writers are short: wait a moment for them rather than a whole sealing interval.
      while v_waited < 20 and not inventory.cut_is_clean(
              (select c.waiting_for from inventory.audit_seal_cuts c where c.sealable_through = v_sealable)) loop
        perform pg_catalog.pg_sleep(0.005);
        v_waited := v_waited + 1;
      end loop;
    end if;
  end if;
  select pg_catalog.max(c.sealable_through) into v_sealable
    from inventory.audit_seal_cuts c
   where c.sealable_through > v_sealed_through and inventory.cut_is_clean(c.waiting_for);

  if v_sealable is not null then
    select * into v_last from inventory.audit_chain c order by c.seq desc limit 1;
    v_seq := coalesce(v_last.seq, 0);
    v_prev := v_last.hash;
    for v_entry in
      select a.* from inventory.audit_log a
       where a.audit_id > v_sealed_through and a.audit_id <= v_sealable
         and not exists (select from inventory.audit_chain c where c.audit_id = a.audit_id)
       order by a.audit_id
       limit seal_audit_log.batch_size
    loop
      v_seq := v_seq + 1;
      v_hash := pg_catalog.sha256(coalesce(v_prev, ''::bytea) || inventory.audit_row_bytes(v_entry));
      insert into inventory.audit_chain (seq, audit_id, transaction_id, prev_hash, hash)
      values (v_seq, v_entry.audit_id, v_entry.transaction_id, v_prev, v_hash);
      v_prev := v_hash;
      v_count := v_count + 1;
    end loop;
    v_sealed_through := case when v_count = seal_audit_log.batch_size then v_entry.audit_id else v_sealable end;
    update inventory.audit_seal_state s set sealed_through = v_sealed_through;
    delete from inventory.audit_seal_cuts c where c.sealable_through <= v_sealed_through;
  end if;
  -- A transaction open for very long keeps its cut unclean; keep the pending list short.
  delete from inventory.audit_seal_cuts c
   where c.sealable_through in (select d.sealable_through from inventory.audit_seal_cuts d
                                 order by d.sealable_through desc offset 100);
  perform inventory.finish_job('seal_audit_log', v_count);
  return v_count;
end
$$;

comment on function inventory.seal_audit_log(integer) is 'Implements inventory_api.seal_audit_log.';

create function inventory.audit_chain_breaks() returns setof inventory_api.chain_break
language sql stable
set search_path = ''
as $$
  (select * from (
     select c.seq, c.audit_id,
            case
              when c.seq <> pg_catalog.row_number() over w then 'sequence gap before this link'
              when a.audit_id is null then 'audit row deleted'
              when c.prev_hash is distinct from pg_catalog.lag(c.hash) over w then 'prev_hash does not match the previous link'
              when c.hash <> pg_catalog.sha256(coalesce(c.prev_hash, ''::bytea) || inventory.audit_row_bytes(a))
                then 'audit row changed after sealing'
            end as problem
       from inventory.audit_chain c
       left join inventory.audit_log a on a.audit_id = c.audit_id
     window w as (order by c.seq)
   ) links
    where links.problem is not null
    order by links.seq
    limit 1)
  union all
  (select null::bigint, a.audit_id, 'audit row missing from the chain although sealing passed it'
     from inventory.audit_log a, inventory.audit_seal_state s
    where a.audit_id <= s.sealed_through
      and not exists (select from inventory.audit_chain c where c.audit_id = a.audit_id)
    order by a.audit_id
    limit 1)
  union all
  (select null::bigint, a.audit_id,
          pg_catalog.format('committed more than %s ago and not sealed: is seal_audit_log scheduled?',
                            t.audit_seal_max_lag)
     from inventory.audit_log a, inventory.audit_seal_state s, inventory.settings t
    where a.audit_id > s.sealed_through and a.created_at < pg_catalog.now() - t.audit_seal_max_lag
      and not exists (select from inventory.audit_chain c where c.audit_id = a.audit_id)
    order by a.audit_id
    limit 1)
$$;

comment on function inventory.audit_chain_breaks() is 'The first broken link of the audit chain, the first row sealing skipped, and the first committed row left unsealed beyond settings.audit_seal_max_lag (internal).';

create function inventory.verify_audit_chain(anchor jsonb) returns setof inventory_api.chain_break
language plpgsql stable security definer
set search_path = ''
as $$
begin
  perform inventory.authorize('admin');
  return query
    select * from inventory.audit_chain_breaks()
    union all
    select null::bigint, null::bigint, p.problem from inventory.anchor_problems(verify_audit_chain.anchor, 'audit') p;
end
$$;

comment on function inventory.verify_audit_chain(jsonb) is 'Implements inventory_api.verify_audit_chain.';
