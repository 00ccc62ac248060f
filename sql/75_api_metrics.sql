-- Layer 7, the public API: metrics (issue 13) and the daily movements behind the HTML report's chart.
-- Security invoker views like the reports of 70_api_views.sql: they read the tables as the caller,
-- so every figure about stock covers only the caller's locations.

-- One row per metric. Each figure is defined once, here (the README's "Metrics" repeats it):
--   stock_out_rate                    levels of live items whose available (as inventory_api.stock_levels
--                                     shows it: overdue holds released, blocked lots left out) is 0 or
--                                     less, divided by all levels of live items; null without levels.
--   out_of_stock_levels               the numerator of stock_out_rate.
--   items_at_or_below_reorder_point   levels with a stock policy whose available is at or below the
--                                     reorder point, now (low_stock_items shows them as of the last refresh).
--   reservation_fill_rate             over the holds closed (fulfilled, cancelled or expired) in the last
--                                     30 days: units shipped from them / units they held. A request
--                                     refused for lack of stock leaves no row anywhere (its transaction
--                                     rolls back), so it cannot count: this is the share of what was
--                                     held that was shipped.
--   inventory_turnover                units shipped (SHIP movements) in the last 365 days / average units
--                                     on hand, where the average is (on hand now + on hand 365 days ago)
--                                     / 2, the latter reconstructed from the ledger (now - the net change
--                                     of the window); null when the average is 0. Per year.
--   inventory_accuracy                cycle counts of the last 30 days whose counted quantity equals the
--                                     on hand it was compared with / all counts of the window; null
--                                     without counts.
--   lot_expiration_waste_units        units written off with reason expired (expire_inventory_lots and
--                                     adjustments with reason code expired) in the last 30 days.
--   lot_expiration_waste_value        those units at the lot's unit cost (else the item's); units without
--                                     a known cost left out.
--   holds_expired_last_day            holds that lapsed in the last 24 hours (expires_at passed without
--                                     being fulfilled or cancelled): EXPIRED ones and overdue ones not
--                                     swept yet.
--   maintenance_lag_seconds           over the jobs that ran at least once, the most any is overdue:
--                                     now - (last start + its default interval), 0 when none is late.
--                                     Jobs run at other intervals (pyinv maintain --every) show their
--                                     lateness against the default one.
--   maintenance_jobs_never_run        jobs of pyinv maintain's default schedule that never ran.
--   audit_rows_unsealed               committed audit rows the sealer has not put on the hash chain yet.
-- The two maintenance figures and the audit backlog are about the whole database; the other figures
-- about the caller's locations. A caller without a business role sees no rows.
create view inventory_api.inventory_metrics with (security_invoker = true) as
  with levels as (
    select pg_catalog.count(*) filter (where i.deleted_at is null) as levels,
           pg_catalog.count(*) filter (where i.deleted_at is null and a.available <= 0) as out_of_stock,
           pg_catalog.count(*) filter (where i.deleted_at is null and p.item_id is not null
                                        and a.available <= p.reorder_point) as at_or_below_reorder_point,
           coalesce(pg_catalog.sum(s.on_hand), 0) as on_hand
      from inventory.stock_levels s
      join inventory.items i on i.item_id = s.item_id
      left join inventory.stock_policies p on p.item_id = s.item_id and p.location_id = s.location_id
      -- Open units of overdue holds, for every level at once (the sweeper has not released them yet,
      -- but they no longer count).
      left join (select r.item_id, r.location_id, pg_catalog.sum(r.quantity - r.quantity_fulfilled) as units
                   from inventory.reservations r
                  where r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now()
                  group by r.item_id, r.location_id) o on o.item_id = s.item_id and o.location_id = s.location_id
      cross join lateral (select s.available + coalesce(o.units, 0) + case when s.hot_buckets > 1 then inventory.parked_units(s.item_id, s.location_id) else 0 end
                                 - case when s.track_lots then inventory.blocked_quantity(s.item_id, s.location_id)
                                        else 0 end as available) a
  ),
  moves as (
    select coalesce(-(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'SHIP')), 0) as shipped,
           coalesce(pg_catalog.sum(g.on_hand_delta), 0) as net_change
      from inventory.ledger g
     where g.created_at >= pg_catalog.now() - interval '365 days'
       and g.movement_type::text <> 'REBALANCE'  -- hot mode's internal moves change no total (text: see 0006)
  ),
  waste as (
    select coalesce(-pg_catalog.sum(coalesce(lm.on_hand_delta, g.on_hand_delta)), 0) as units,
           coalesce(-pg_catalog.sum(coalesce(lm.on_hand_delta, g.on_hand_delta) * coalesce(t.unit_cost, i.unit_cost)),
                    0) as value
      from inventory.ledger g
      join inventory.items i on i.item_id = g.item_id
      left join inventory.lot_movements lm on lm.movement_id = g.movement_id and lm.on_hand_delta <> 0
      left join inventory.lots t on t.lot_id = lm.lot_id
     where g.movement_type = 'ADJUST' and g.reason = 'expired' and g.created_at >= pg_catalog.now() - interval '30 days'
  ),
  holds as (
    select pg_catalog.sum(r.quantity_fulfilled) filter (where r.closed) as units_shipped,
           pg_catalog.sum(r.quantity) filter (where r.closed) as units_held,
           pg_catalog.count(*) filter (where r.lapsed) as lapsed
      from (select r.quantity, r.quantity_fulfilled,
                   r.status <> 'ACTIVE' and r.closed_at >= pg_catalog.now() - interval '30 days' as closed,
                   r.status in ('ACTIVE', 'EXPIRED') and r.expires_at <= pg_catalog.now()
                   and r.expires_at > pg_catalog.now() - interval '1 day' as lapsed
              from inventory.reservations r
             where r.closed_at >= pg_catalog.now() - interval '30 days'
                or (r.status = 'ACTIVE' and r.expires_at <= pg_catalog.now())) r
  ),
  counts as (
    select pg_catalog.count(*) as counts,
           pg_catalog.count(*) filter (where c.counted_quantity = c.on_hand_at_count) as exact
      from inventory.cycle_counts c
     where c.counted_at >= pg_catalog.now() - interval '30 days'
  ),
  jobs as (
    select pg_catalog.max(greatest(pg_catalog.now() - j.last_started_at - d.every, interval '0'))
             filter (where j.last_started_at is not null) as lag,
           pg_catalog.count(*) filter (where j.last_started_at is null) as never_run
      from inventory.maintenance_jobs j
      cross join lateral (select inventory.maintenance_default_interval(j.job) as every) d
     where d.every is not null
  )
  select m.metric, m.value, m.unit, m.period, m.description
    from levels cross join moves cross join waste cross join holds cross join counts cross join jobs
    cross join lateral (values
      ('stock_out_rate', pg_catalog.round(levels.out_of_stock::numeric / nullif(levels.levels, 0), 6),
       'ratio', null::interval,
       'Share of stock levels (item and location) with nothing available'),
      ('out_of_stock_levels', levels.out_of_stock::numeric, 'count', null,
       'Stock levels with nothing available'),
      ('items_at_or_below_reorder_point', levels.at_or_below_reorder_point::numeric, 'count', null,
       'Stock levels with a stock policy whose available units are at or below the reorder point'),
      ('reservation_fill_rate', pg_catalog.round(holds.units_shipped / nullif(holds.units_held, 0), 6),
       'ratio', interval '30 days',
       'Units shipped from the holds closed in the window / units they held'),
      ('inventory_turnover',
       pg_catalog.round(moves.shipped / nullif((2 * levels.on_hand - moves.net_change) / 2, 0), 6),
       'per year', interval '365 days',
       'Units shipped in the window / average units on hand ((now + at the start of the window) / 2)'),
      ('inventory_accuracy', pg_catalog.round(counts.exact::numeric / nullif(counts.counts, 0), 6),
       'ratio', interval '30 days',
       'Cycle counts in the window that found exactly the on hand recorded / all counts in the window'),
      ('lot_expiration_waste_units', waste.units, 'units', interval '30 days',
       'Units written off as expired in the window'),
      ('lot_expiration_waste_value', waste.value, 'currency', interval '30 days',
       'Value of the units written off as expired in the window, at the lot''s unit cost (else the item''s)'),
      ('holds_expired_last_day', holds.lapsed::numeric, 'count', interval '1 day',
       'Holds that lapsed unfulfilled in the window (expired, or overdue and not swept yet)'),
      ('maintenance_lag_seconds', pg_catalog.round(extract(epoch from jobs.lag), 3), 'seconds', null,
       'How far the most overdue maintenance job is behind its default schedule (0: none is late)'),
      ('maintenance_jobs_never_run', jobs.never_run::numeric, 'count', null,
       'Maintenance jobs of the default schedule that never ran'),
      ('audit_rows_unsealed', (select inventory.unsealed_audit_rows())::numeric, 'count', null,
       'Committed audit rows not sealed onto the hash chain yet')
    ) as m (metric, value, unit, period, description)
   where (select inventory.has_any_role());

comment on view inventory_api.inventory_metrics is 'Operational metrics, one row each (pyinv metrics; Prometheus gauges pyinv_<metric>). Over the caller''s locations: stock_out_rate and out_of_stock_levels (available <= 0 among the levels of live items), items_at_or_below_reorder_point (levels with a policy, now), reservation_fill_rate (units shipped / units held, holds closed in the last 30 days; refused requests are not recorded anywhere), inventory_turnover (units shipped in 365 days / (on hand now + on hand 365 days ago, from the ledger) / 2), inventory_accuracy (counts of the last 30 days that matched the recorded on hand / all counts), lot_expiration_waste_units and _value (units written off with reason expired in 30 days, at the lot''s else the item''s unit cost), holds_expired_last_day (holds that lapsed in the last 24 hours, swept or not). About the whole database: maintenance_lag_seconds (the most any job that ran is overdue against pyinv maintain''s default interval, 0 when none is), maintenance_jobs_never_run, audit_rows_unsealed. No rows for a caller without a business role.';
comment on column inventory_api.inventory_metrics.metric is 'Name of the metric (snake_case; the Prometheus gauge is pyinv_<metric>).';
comment on column inventory_api.inventory_metrics.value is 'Its value now; null when it is undefined (a rate without anything to count).';
comment on column inventory_api.inventory_metrics.unit is 'ratio (0 to 1), count, units (of stock), currency (unit cost''s), per year or seconds.';
comment on column inventory_api.inventory_metrics.period is 'The window the figure covers, ending now; null for a figure of the present moment.';
comment on column inventory_api.inventory_metrics.description is 'What the figure is, in one line (the view''s comment defines each precisely).';

-- Movements per day, for the HTML report's chart: the last 30 days (UTC), today included, one row per
-- day even without movements, summed over the caller's locations (none for a caller without a
-- business role, like inventory_metrics).
create view inventory_api.daily_movements with (security_invoker = true) as
  select d.day, coalesce(g.received, 0) as received, coalesce(g.shipped, 0) as shipped,
         coalesce(g.returned, 0) as returned, coalesce(g.adjusted, 0) as adjusted,
         coalesce(g.transferred_in, 0) as transferred_in, coalesce(g.transferred_out, 0) as transferred_out,
         coalesce(g.net_change, 0) as net_change, coalesce(g.movements, 0) as movements
    from (select (pg_catalog.timezone('UTC', pg_catalog.now()))::date - n as day
            from pg_catalog.generate_series(0, 29) n) d
    left join (select (pg_catalog.timezone('UTC', g.created_at))::date as day,
                      pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'RECEIVE') as received,
                      -(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'SHIP')) as shipped,
                      pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'RETURN') as returned,
                      pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'ADJUST') as adjusted,
                      pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'TRANSFER_IN') as transferred_in,
                      -(pg_catalog.sum(g.on_hand_delta) filter (where g.movement_type = 'TRANSFER_OUT'))
                        as transferred_out,
                      pg_catalog.sum(g.on_hand_delta) as net_change, pg_catalog.count(*) as movements
                 from inventory.ledger g
                where g.created_at >= pg_catalog.timezone('UTC', (pg_catalog.timezone('UTC', pg_catalog.now()))::date - 29)
                  and g.movement_type::text <> 'REBALANCE'  -- hot mode's internal moves change no total (text: see 0006)
                group by 1) g on g.day = d.day
   where (select inventory.has_any_role());

comment on view inventory_api.daily_movements is 'Units moved per day (UTC) over the last 30 days, today included, summed over the caller''s locations: one row per day, zeros on days without movements (the movement chart of pyinv report); no rows for a caller without a business role.';
comment on column inventory_api.daily_movements.day is 'The day (UTC).';
comment on column inventory_api.daily_movements.received is 'Units received (RECEIVE movements).';
comment on column inventory_api.daily_movements.shipped is 'Units shipped (SHIP movements), as a positive number.';
comment on column inventory_api.daily_movements.returned is 'Units restocked by customer returns (RETURN movements).';
comment on column inventory_api.daily_movements.adjusted is 'Net units added (positive) or removed (negative) by adjustments, counts and write-offs (ADJUST movements).';
comment on column inventory_api.daily_movements.transferred_in is 'Units that arrived from other locations (TRANSFER_IN movements).';
comment on column inventory_api.daily_movements.transferred_out is 'Units sent to other locations (TRANSFER_OUT movements), as a positive number.';
comment on column inventory_api.daily_movements.net_change is 'Change of on_hand that day: the sum of every movement''s on_hand_delta.';
comment on column inventory_api.daily_movements.movements is 'Ledger movements that day, of every type (holds included).';
