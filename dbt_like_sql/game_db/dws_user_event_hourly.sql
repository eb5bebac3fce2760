/* ---
description: >
  Partial aggregates of each landing hour's events, by event day, user, device and region: what the
  daily tables need, computed once per hour (in the hour's DataScan run) instead of once per day
  from every event. Location is trimmed, NULL or empty -> 'unknown'; province is the text before the
  first '-', city the text after it ('unknown' when there is none). Amounts are summed exactly
  (DECIMAL(38, 9); NaN or amounts beyond it are left out), so partial sums add up to the same GMV in
  any order.
day_index: event_date
columns:
  event_date:      date
  user_id:         bigint
  device_type:     string
  province:        string
  city:            string
  events:          bigint
  purchase_amount: decimal
  paid_orders:     {type: bigint, description: Purchase events with amount > 0}
--- */

with e as (
    select event_date, user_id, device_type, event_type, amount, nullif(trim(location), '') as loc
    from dwd_user_event
    where dt = $dt and hh = $hh
)
select
    event_date,
    user_id,
    device_type,
    case
        when loc is null then 'unknown'
        else coalesce(nullif(trim(split_part(loc, '-', 1)), ''), 'unknown')
    end as province,
    case
        when loc is null or strpos(loc, '-') = 0 then 'unknown'
        else coalesce(nullif(trim(substr(loc, strpos(loc, '-') + 1)), ''), 'unknown')
    end as city,
    count(*) as events,
    coalesce(sum(try_cast(amount as decimal(38, 9))) filter (where event_type = 'purchase'), 0) as purchase_amount,
    count(*) filter (where event_type = 'purchase' and amount > 0) as paid_orders
from e
group by all
