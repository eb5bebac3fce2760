/* ---
description: >
  Daily GMV and paying users, for every date with any event: gmv = sum of amount over purchase events
  (0.0 if none), paying_users = distinct users with a purchase of amount > 0, orders = purchase events
  with amount > 0, arppu = gmv / paying_users rounded to 2 places (exactly, half away from zero, as
  Spark rounds), NULL without paying users. Read from the
  day's activity table; amounts are summed exactly (DECIMAL(38, 9)), so the result does not depend on
  file or row order. The check reconciles it with the events in dwd_user_event.
partitions: daily
columns:
  gmv:          double
  paying_users: bigint
  orders:       bigint
  arppu:        double
metrics:
  gmv:          "coalesce(sum(gmv), 0)"
  paying_users: "coalesce(sum(paying_users), 0)"
  orders:       "coalesce(sum(orders), 0)"
checks:
  - sql:
      name: gmv_reconciles_with_dwd
      description: >
        the day's GMV equals the sum of purchase amounts in dwd_user_event (not blocking: while an
        hour is in flight, DWD may be ahead of the activity table for a moment; the rebuild that
        follows re-checks)
      query: >
        select count(*) from (select coalesce(sum(gmv), 0) as gmv from this) as t,
          (select coalesce(sum(amount), 0) as amount from dwd_user_event
           where event_date = cast($dt as date) and event_type = 'purchase') as d
        where abs(t.gmv - d.amount) > 1e-6 * greatest(1, abs(d.amount))
    blocking: false
--- */

with agg as (
    select
        sum(purchase_amount) as gmv_exact,
        cast(sum(purchase_amount) as double) as gmv,
        count(distinct user_id) filter (where paid_orders > 0) as paying_users,
        sum(paid_orders) as orders
    from dws_user_activity_daily
    where dt = $dt
)
select
    gmv,
    paying_users,
    orders,
    -- exactly, half away from zero, from the DECIMAL sum in nano-units (rounding the double
    -- quotient turned 65.07 / 2 = 32.535 into 32.53)
    case when paying_users > 0 then
        sign(gmv_exact) * (
            (abs(cast(gmv_exact * 1000000000 as hugeint)) * 2 + paying_users * 10000000)
            // (paying_users * 20000000)
        ) / 100.0
    end as arppu
from agg
where gmv is not null
