-- Layer 4, functions by concern: anchors, the heads of the audit chain and of every ledger chain, exported to storage the database
-- cannot write. A hash chain proves that nothing was changed inside it, but a superuser who deletes
-- the newest links, or rewrites a level's ledger and recomputes its hashes, leaves a chain that is
-- consistent again. An anchor taken earlier and kept elsewhere is what such a rewrite cannot match:
-- verify_audit_chain(anchor) and verify_inventory(anchor) compare the database with it.
--
-- The ledger part is a cut at a movement id: for every stock level, its latest movement at or
-- below the cut. A cut is only reproducible if no transaction could still add a movement below it,
-- so taking an anchor waits (briefly, without blocking anyone) for the transactions that were
-- running when the cut was read.

-- Per-location digests of the ledger chain heads at a cut: for each level with movements at or
-- below the cut, its latest such movement's id and hash.
create function inventory.ledger_digests(through_movement bigint)
returns table (location text, levels bigint, digest text)
language sql stable
set search_path = ''
as $$
  select l.code, pg_catalog.count(*),
         pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.string_agg(
           h.item_id::text || ':' || h.movement_id::text || ':' || pg_catalog.encode(h.hash, 'hex'), ','
           order by h.item_id), 'UTF8')), 'hex')
    from inventory.stock_levels s
    join inventory.locations l on l.location_id = s.location_id
    cross join lateral (
          select g.item_id, g.movement_id, g.hash from inventory.ledger g
           where g.item_id = s.item_id and g.location_id = s.location_id and g.bucket is null
             and g.movement_id <= ledger_digests.through_movement
           order by g.movement_id desc
           limit 1) h
   group by l.code
$$;

comment on function inventory.ledger_digests(bigint) is 'sha256 per location over the ledger chain heads of its levels at a movement id cut.';

create function inventory.take_anchor(wait_seconds numeric) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_cut bigint;
  v_waiting xid8[];
  v_deadline timestamptz;
  v_audit inventory.audit_chain;
  v_locations jsonb;
begin
  perform inventory.authorize('scheduler');
  if take_anchor.wait_seconds is null or not (take_anchor.wait_seconds between 0 and 3600) then
    perform inventory.raise_error('INVALID_ARGUMENT', 'wait_seconds must be between 0 and 3600',
      pg_catalog.jsonb_build_object('argument', 'wait_seconds', 'problem', 'out of range'));
  end if;
  -- Waiting for other transactions to end only helps if later statements see their commits.
  if pg_catalog.current_setting('transaction_isolation') <> 'read committed' then
    perform inventory.raise_error('INVALID_STATE',
      'an anchor must be taken at READ COMMITTED (in a transaction of its own)',
      pg_catalog.jsonb_build_object('transaction_isolation', pg_catalog.current_setting('transaction_isolation')));
  end if;
  -- The sequence first, then the transactions that may still hold movement ids below it.
  select case when q.is_called then q.last_value else 0 end into v_cut from inventory.ledger_movement_id_seq q;
  v_waiting := inventory.running_transactions();
  v_deadline := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => take_anchor.wait_seconds::double precision);
  while not inventory.cut_is_clean(v_waiting) loop
    if pg_catalog.clock_timestamp() >= v_deadline then
      perform inventory.raise_error('BUSY',
        pg_catalog.format('transactions still running after %s seconds keep the ledger cut open; retry later',
                          take_anchor.wait_seconds),
        pg_catalog.jsonb_build_object('waiting_for', (
          select pg_catalog.count(*) from pg_catalog.unnest(v_waiting) x
           where pg_catalog.pg_xact_status(x) = 'in progress')));
    end if;
    perform pg_catalog.pg_sleep(0.01);
  end loop;
  select * into v_audit from inventory.audit_chain c order by c.seq desc limit 1;
  select coalesce(pg_catalog.jsonb_object_agg(d.location,
                    pg_catalog.jsonb_build_object('levels', d.levels, 'digest', d.digest)), '{}'::jsonb)
    into v_locations
    from inventory.ledger_digests(v_cut) d;
  return pg_catalog.jsonb_build_object(
    'format', 'pyinv-anchor/1',
    'database', pg_catalog.current_database(),
    'taken_at', pg_catalog.to_char(pg_catalog.clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'audit', pg_catalog.jsonb_build_object('seq', coalesce(v_audit.seq, 0),
                                           'hash', pg_catalog.encode(v_audit.hash, 'hex')),
    'ledger', pg_catalog.jsonb_build_object('through_movement', v_cut, 'locations', v_locations));
end
$$;

comment on function inventory.take_anchor(numeric) is 'Implements inventory_api.audit_anchor.';

-- What no longer matches an anchor: the audit part (its chain link must still be there with the
-- same hash) or the ledger part (every location's digest at the cut must be the same).
create function inventory.anchor_problems(anchor jsonb, part text)
returns table (location text, problem text)
language plpgsql stable
set search_path = ''
as $$
declare
  v_seq bigint;
  v_hash bytea;
  v_cut bigint;
begin
  if anchor_problems.anchor is null then
    return;
  end if;
  if not coalesce(pg_catalog.jsonb_typeof(anchor_problems.anchor) = 'object'
                  and anchor_problems.anchor ->> 'format' = 'pyinv-anchor/1'
                  and (anchor_problems.anchor #>> '{audit,seq}') ~ '^[0-9]{1,18}$'
                  and ((anchor_problems.anchor #>> '{audit,seq}') = '0'
                       or (anchor_problems.anchor #>> '{audit,hash}') ~ '^[0-9a-f]{64}$')
                  and (anchor_problems.anchor #>> '{ledger,through_movement}') ~ '^[0-9]{1,18}$'
                  and pg_catalog.jsonb_typeof(anchor_problems.anchor #> '{ledger,locations}') = 'object'
                  and not exists (
                        select from pg_catalog.jsonb_each(anchor_problems.anchor #> '{ledger,locations}') e
                         where not coalesce((e.value ->> 'levels') ~ '^[0-9]{1,18}$'
                                            and (e.value ->> 'digest') ~ '^[0-9a-f]{64}$', false)), false) then
    perform inventory.raise_error('INVALID_ARGUMENT', 'anchor is not a pyinv anchor (format pyinv-anchor/1)',
      pg_catalog.jsonb_build_object('argument', 'anchor', 'problem', 'malformed'));
  end if;
  if anchor_problems.part = 'audit' then
    v_seq := (anchor_problems.anchor #>> '{audit,seq}')::bigint;
    v_hash := pg_catalog.decode(anchor_problems.anchor #>> '{audit,hash}', 'hex');
    if v_seq > 0 and not exists (select from inventory.audit_chain c where c.seq = v_seq) then
      return query select null::text, pg_catalog.format(
        'anchor: the audit chain no longer reaches link %s (truncated since the anchor was taken)', v_seq);
    elsif v_seq > 0 and not exists (select from inventory.audit_chain c where c.seq = v_seq and c.hash = v_hash) then
      return query select null::text, pg_catalog.format(
        'anchor: audit chain link %s differs from the anchor (rewritten at or before it)', v_seq);
    end if;
    return;
  end if;
  v_cut := (anchor_problems.anchor #>> '{ledger,through_movement}')::bigint;
  return query
    select coalesce(a.key, d.location),
           case when d.location is null then 'anchor: no movements at or before the cut any more (ledger deleted)'
                when a.key is null then 'anchor: movements at or before the cut that the anchor did not cover'
                when (a.value ->> 'levels')::bigint <> d.levels
                  then pg_catalog.format('anchor: %s levels had movements at or before the cut, %s now',
                                         a.value ->> 'levels', d.levels)
                else pg_catalog.format('anchor: ledger rewritten at or before movement %s', v_cut) end
      from pg_catalog.jsonb_each(anchor_problems.anchor #> '{ledger,locations}') a
      full join inventory.ledger_digests(v_cut) d on d.location = a.key
     where d.location is null or a.key is null or (a.value ->> 'digest') is distinct from d.digest
        or (a.value ->> 'levels')::bigint <> d.levels;
end
$$;

comment on function inventory.anchor_problems(jsonb, text) is 'Differences between the database and an anchor: part audit (chain link) or ledger (per-location digests); raises INVALID_ARGUMENT for a malformed anchor.';
