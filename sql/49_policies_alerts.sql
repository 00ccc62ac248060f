-- Layer 4, functions by concern: stock policies and real-time reorder alerts.

-- Announces an alert change on the inventory_alerts channel. Any login may LISTEN to (or NOTIFY)
-- any channel, so the payload carries only the event and the alert id: a consumer re-reads the
-- alert through inventory_api.reorder_alerts, where row level security decides what it may see,
-- and a forged notification makes it re-read nothing it could not read anyway.
create function inventory.notify_alert(event text, alert_id bigint) returns void
language sql volatile
set search_path = ''
as $$
  select pg_catalog.pg_notify('inventory_alerts', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
           'event', notify_alert.event, 'alert_id', notify_alert.alert_id))::text)
$$;

comment on function inventory.notify_alert(text, bigint) is 'NOTIFY inventory_alerts with the event and alert id only (consumers re-read under row level security).';

-- Re-evaluates the alert of one level whose available quantity is `available`. The caller holds the
-- level's row lock (the UPDATE that fired the trigger, or an explicit lock), so evaluations of one
-- level never run at once. Returns what it did: OPENED, ESCALATED, RESOLVED or null.
create function inventory.evaluate_reorder_alert(item_id bigint, location_id bigint, available numeric)
returns text
language plpgsql volatile
set search_path = ''
as $$
declare
  v_policy inventory.stock_policies;
  v_alert inventory.reorder_alerts;
  v_severity text;
  v_alert_id bigint;
begin
  select * into v_policy from inventory.stock_policies p
   where p.item_id = evaluate_reorder_alert.item_id and p.location_id = evaluate_reorder_alert.location_id;
  if not found then
    return null;
  end if;
  v_severity := case when evaluate_reorder_alert.available <= v_policy.safety_stock then 'CRITICAL'
                     when evaluate_reorder_alert.available <= v_policy.reorder_point then 'REORDER' end;
  select * into v_alert from inventory.reorder_alerts a
   where a.item_id = evaluate_reorder_alert.item_id and a.location_id = evaluate_reorder_alert.location_id
     and a.recovered_at is null;
  if v_severity is null then
    if v_alert.alert_id is null then
      return null;
    end if;
    update inventory.reorder_alerts a
       set recovered_at = pg_catalog.now(),
           status = case when a.status in ('OPEN', 'ACKNOWLEDGED') then 'RESOLVED' else a.status end,
           closed_at = coalesce(a.closed_at, pg_catalog.now()),
           closed_by = coalesce(a.closed_by, inventory.current_actor()),
           note = coalesce(a.note, 'stock recovered')
     where a.alert_id = v_alert.alert_id;
    return case when v_alert.status in ('OPEN', 'ACKNOWLEDGED') then 'RESOLVED' end;
  end if;
  if v_alert.alert_id is null then
    insert into inventory.reorder_alerts (item_id, location_id, severity, available_at_open, reorder_point,
                                          safety_stock)
    values (evaluate_reorder_alert.item_id, evaluate_reorder_alert.location_id, v_severity,
            evaluate_reorder_alert.available, v_policy.reorder_point, v_policy.safety_stock)
    on conflict do nothing
    returning alert_id into v_alert_id;
    if v_alert_id is not null then
      perform inventory.notify_alert('opened', v_alert_id);
      return 'OPENED';
    end if;
    return null;
  end if;
  if v_severity = 'CRITICAL' and v_alert.severity = 'REORDER' and v_alert.status in ('OPEN', 'ACKNOWLEDGED') then
    update inventory.reorder_alerts a set severity = 'CRITICAL', escalated_at = pg_catalog.now()
     where a.alert_id = v_alert.alert_id;
    perform inventory.notify_alert('escalated', v_alert.alert_id);
    return 'ESCALATED';
  end if;
  return null;
end
$$;

comment on function inventory.evaluate_reorder_alert(bigint, bigint, numeric) is 'Opens, raises or resolves the reorder alert of one level for its available quantity (caller holds the level lock).';


create function inventory.reorder_alert_result(alert_id bigint) returns inventory_api.reorder_alert
language sql stable
set search_path = ''
as $$
  select row(a.alert_id, i.sku, l.code, a.severity, a.status, s.available, a.available_at_open, a.reorder_point,
             a.safety_stock, a.opened_at, a.escalated_at, a.acknowledged_by, a.acknowledged_at, a.closed_by,
             a.closed_at, a.note)::inventory_api.reorder_alert
    from inventory.reorder_alerts a
    join inventory.items i on i.item_id = a.item_id
    join inventory.locations l on l.location_id = a.location_id
    left join inventory.stock_levels s on s.item_id = a.item_id and s.location_id = a.location_id
   where a.alert_id = reorder_alert_result.alert_id
$$;

comment on function inventory.reorder_alert_result(bigint) is 'The public view of one reorder alert.';

create function inventory.update_reorder_alert(alert_id bigint, status text, note text)
returns inventory_api.reorder_alert
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_alert inventory.reorder_alerts;
  v_actor text := inventory.current_actor();
begin
  if update_reorder_alert.status is null
     or update_reorder_alert.status not in ('ACKNOWLEDGED', 'RESOLVED', 'DISMISSED') then
    perform inventory.raise_error('INVALID_ARGUMENT', 'status must be ACKNOWLEDGED, RESOLVED or DISMISSED',
      pg_catalog.jsonb_build_object('argument', 'status', 'problem', 'not a status'));
  end if;
  perform inventory.check_text(update_reorder_alert.note, 'note', 500, required => false);
  select * into v_alert from inventory.reorder_alerts a where a.alert_id = update_reorder_alert.alert_id
     for update;
  if not found then
    if not inventory.holds_role_somewhere('operator') then
      perform inventory.authorize('operator');
    end if;
    perform inventory.raise_error('ALERT_NOT_FOUND',
      pg_catalog.format('no reorder alert with id %s', update_reorder_alert.alert_id),
      pg_catalog.jsonb_build_object('alert_id', update_reorder_alert.alert_id));
  end if;
  perform inventory.authorize('operator', v_alert.location_id);
  if v_alert.status not in ('OPEN', 'ACKNOWLEDGED')
     or (v_alert.status = 'ACKNOWLEDGED' and update_reorder_alert.status = 'ACKNOWLEDGED') then
    perform inventory.raise_error('INVALID_STATE',
      pg_catalog.format('alert %s is %s and cannot become %s', v_alert.alert_id, v_alert.status,
                        update_reorder_alert.status),
      pg_catalog.jsonb_build_object('alert_id', v_alert.alert_id, 'status', v_alert.status));
  end if;
  update inventory.reorder_alerts a
     set status = update_reorder_alert.status,
         acknowledged_by = case when update_reorder_alert.status = 'ACKNOWLEDGED' then v_actor else a.acknowledged_by end,
         acknowledged_at = case when update_reorder_alert.status = 'ACKNOWLEDGED' then pg_catalog.now()
                                else a.acknowledged_at end,
         closed_by = case when update_reorder_alert.status = 'ACKNOWLEDGED' then null else v_actor end,
         closed_at = case when update_reorder_alert.status = 'ACKNOWLEDGED' then null else pg_catalog.now() end,
         note = coalesce(update_reorder_alert.note, a.note)
   where a.alert_id = v_alert.alert_id;
  return inventory.reorder_alert_result(v_alert.alert_id);
end
$$;

comment on function inventory.update_reorder_alert(bigint, text, text) is 'Implements inventory_api.update_reorder_alert.';

-- Re-evaluates the alerts of the given levels (all levels with a policy when item_ids is null) in one
-- pass; the caller holds the levels' row locks. Set-based: used by bulk policy imports and
-- check_reorder_points. Returns (levels checked, opened, escalated, resolved).
create function inventory.refresh_reorder_alerts(item_ids bigint[], location_ids bigint[])
returns inventory_api.reorder_check
language plpgsql volatile
set search_path = ''
as $$
declare
  v_result inventory_api.reorder_check;
begin
  -- One statement: its parts touch disjoint alerts (a level is either recovered, or low), so they
  -- may share one snapshot.
  with levels as materialized (
    select s.item_id, s.location_id, s.available,
           case when s.available <= p.safety_stock then 'CRITICAL'
                when s.available <= p.reorder_point then 'REORDER' end as severity,
           p.reorder_point, p.safety_stock
      from inventory.stock_policies p
      join (select x.item_id, x.location_id,
                   x.on_hand - x.reserved
                   + case when x.hot_buckets > 1 then inventory.parked_units(x.item_id, x.location_id) else 0 end
                     as available
              from inventory.stock_levels x) s on s.item_id = p.item_id and s.location_id = p.location_id
     where refresh_reorder_alerts.item_ids is null
        or (p.item_id, p.location_id) in (
             select k.item_id, k.location_id
               from rows from (pg_catalog.unnest(refresh_reorder_alerts.item_ids),
                               pg_catalog.unnest(refresh_reorder_alerts.location_ids)) as k (item_id, location_id))
  ), resolved as (
    update inventory.reorder_alerts a
       set recovered_at = pg_catalog.now(),
           status = case when a.status in ('OPEN', 'ACKNOWLEDGED') then 'RESOLVED' else a.status end,
           closed_at = coalesce(a.closed_at, pg_catalog.now()),
           closed_by = coalesce(a.closed_by, inventory.current_actor()),
           note = coalesce(a.note, 'stock recovered')
      from levels r
     where a.item_id = r.item_id and a.location_id = r.location_id and a.recovered_at is null
       and r.severity is null
    returning a.alert_id
  ), escalated as (
    update inventory.reorder_alerts a set severity = 'CRITICAL', escalated_at = pg_catalog.now()
      from levels r
     where a.item_id = r.item_id and a.location_id = r.location_id and a.recovered_at is null
       and a.status in ('OPEN', 'ACKNOWLEDGED') and a.severity = 'REORDER' and r.severity = 'CRITICAL'
    returning a.alert_id
  ), opened as (
    insert into inventory.reorder_alerts (item_id, location_id, severity, available_at_open, reorder_point,
                                          safety_stock)
    select r.item_id, r.location_id, r.severity, r.available, r.reorder_point, r.safety_stock
      from levels r
     where r.severity is not null
       and not exists (select from inventory.reorder_alerts a
                        where a.item_id = r.item_id and a.location_id = r.location_id and a.recovered_at is null)
    on conflict do nothing
    returning alert_id
  )
  select (select pg_catalog.count(*) from levels)::integer, (select pg_catalog.count(*) from opened)::integer,
         (select pg_catalog.count(*) from escalated)::integer, (select pg_catalog.count(*) from resolved)::integer
    into v_result.levels_checked, v_result.opened, v_result.escalated, v_result.resolved;
  if v_result.opened > 0 or v_result.escalated > 0 then
    perform inventory.notify_alert('refreshed', null);
  end if;
  return v_result;
end
$$;

comment on function inventory.refresh_reorder_alerts(bigint[], bigint[]) is 'Set-based re-evaluation of the reorder alerts of many levels (caller holds their locks).';

create function inventory.check_reorder_points() returns inventory_api.reorder_check
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_result inventory_api.reorder_check;
begin
  perform inventory.authorize('scheduler');
  -- One pass at a time (a second waits for the first: both re-evaluate from scratch); levels with a
  -- policy are share-locked in the global order so no movement changes them meanwhile.
  perform inventory.lock_job('check_reorder_points', wait => true);
  perform from inventory.stock_levels s
   where s.has_stock_policy
   order by s.item_id, s.location_id
     for share;
  v_result := inventory.refresh_reorder_alerts(null, null);
  perform inventory.finish_job('check_reorder_points', v_result.levels_checked);
  return v_result;
end
$$;

comment on function inventory.check_reorder_points() is 'Implements inventory_api.check_reorder_points.';

create function inventory.stock_policy_result(item_id bigint, location_id bigint) returns inventory_api.stock_policy
language sql stable
set search_path = ''
as $$
  select row(i.sku, l.code, p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level,
             p.lead_time_days, p.updated_by, p.updated_at, p.version)::inventory_api.stock_policy
    from inventory.stock_policies p
    join inventory.items i on i.item_id = p.item_id
    join inventory.locations l on l.location_id = p.location_id
   where p.item_id = stock_policy_result.item_id and p.location_id = stock_policy_result.location_id
$$;

comment on function inventory.stock_policy_result(bigint, bigint) is 'The public view of one stock policy.';

create function inventory.set_stock_policy(sku text, location text, reorder_point numeric, safety_stock numeric,
                                           reorder_quantity numeric, max_stock_level numeric,
                                           lead_time_days integer, expected_version integer)
returns inventory_api.stock_policy
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_item record;
  v_location_id bigint;
  v_level inventory.stock_levels;
  v_version integer;
begin
  v_item := inventory.item_for_sku(set_stock_policy.sku);
  v_location_id := inventory.location_for_code(set_stock_policy.location);
  perform inventory.authorize('admin', v_location_id);
  if set_stock_policy.reorder_point is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'reorder_point is required',
      pg_catalog.jsonb_build_object('argument', 'reorder_point', 'value', null));
  end if;
  perform inventory.check_level_quantity(set_stock_policy.reorder_point, 'reorder_point');
  if set_stock_policy.safety_stock is null then
    perform inventory.raise_error('INVALID_QUANTITY', 'safety_stock is required',
      pg_catalog.jsonb_build_object('argument', 'safety_stock', 'value', null));
  end if;
  perform inventory.check_level_quantity(set_stock_policy.safety_stock, 'safety_stock');
  if set_stock_policy.safety_stock > set_stock_policy.reorder_point then
    perform inventory.raise_error('INVALID_ARGUMENT', 'safety_stock must not exceed reorder_point',
      pg_catalog.jsonb_build_object('argument', 'safety_stock', 'problem', 'above reorder_point'));
  end if;
  if set_stock_policy.reorder_quantity is not null then
    perform inventory.check_quantity(set_stock_policy.reorder_quantity, 'reorder_quantity');
  end if;
  if set_stock_policy.max_stock_level is not null then
    perform inventory.check_quantity(set_stock_policy.max_stock_level, 'max_stock_level');
    if set_stock_policy.max_stock_level < set_stock_policy.reorder_point then
      perform inventory.raise_error('INVALID_ARGUMENT', 'max_stock_level must not be below reorder_point',
        pg_catalog.jsonb_build_object('argument', 'max_stock_level', 'problem', 'below reorder_point'));
    end if;
  end if;
  if set_stock_policy.lead_time_days is not null and set_stock_policy.lead_time_days not between 0 and 3650 then
    perform inventory.raise_error('INVALID_ARGUMENT', 'lead_time_days must be between 0 and 3650',
      pg_catalog.jsonb_build_object('argument', 'lead_time_days', 'problem', 'out of range'));
  end if;

  -- The level first (global lock order), then the policy, then its alert.
  insert into inventory.stock_levels (item_id, location_id, has_stock_policy)
  values (v_item.item_id, v_location_id, true)
  on conflict do nothing;
  select * into v_level from inventory.stock_levels s
   where s.item_id = v_item.item_id and s.location_id = v_location_id
     for update;
  if set_stock_policy.expected_version is not null then
    -- A level's policy is changed only under the level's lock, so the version read here stays.
    select p.version into v_version from inventory.stock_policies p
     where p.item_id = v_item.item_id and p.location_id = v_location_id;
    perform inventory.check_version(coalesce(v_version, 0), set_stock_policy.expected_version,
      pg_catalog.jsonb_build_object('sku', set_stock_policy.sku, 'location', set_stock_policy.location));
  end if;
  insert into inventory.stock_policies as p (item_id, location_id, reorder_point, safety_stock, reorder_quantity,
                                             max_stock_level, lead_time_days, updated_by)
  values (v_item.item_id, v_location_id, set_stock_policy.reorder_point, set_stock_policy.safety_stock,
          set_stock_policy.reorder_quantity, set_stock_policy.max_stock_level, set_stock_policy.lead_time_days,
          inventory.current_actor())
  on conflict (item_id, location_id) do update
     set reorder_point = excluded.reorder_point, safety_stock = excluded.safety_stock,
         reorder_quantity = excluded.reorder_quantity, max_stock_level = excluded.max_stock_level,
         lead_time_days = excluded.lead_time_days, updated_by = excluded.updated_by, updated_at = pg_catalog.now()
   where (p.reorder_point, p.safety_stock, p.reorder_quantity, p.max_stock_level, p.lead_time_days)
         is distinct from (excluded.reorder_point, excluded.safety_stock, excluded.reorder_quantity,
                           excluded.max_stock_level, excluded.lead_time_days);
  if not v_level.has_stock_policy then
    update inventory.stock_levels s set has_stock_policy = true
     where s.item_id = v_item.item_id and s.location_id = v_location_id;
  end if;
  perform inventory.evaluate_reorder_alert(v_item.item_id, v_location_id,
    v_level.on_hand - v_level.reserved
    + case when v_level.hot_buckets > 1 then inventory.parked_units(v_item.item_id, v_location_id) else 0 end);
  return inventory.stock_policy_result(v_item.item_id, v_location_id);
end
$$;

comment on function inventory.set_stock_policy(text, text, numeric, numeric, numeric, numeric, integer, integer) is 'Implements inventory_api.set_stock_policy.';
