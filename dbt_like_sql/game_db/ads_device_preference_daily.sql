/* ---
description: >
  Device distribution per day: distinct users per event_date and device type (NULL -> 'unknown'),
  share = round(users / dau of that date, 4). Read from the day's activity table (one row per user
  and device) instead of every event.
partitions: daily
columns:
  device_type: string
  users:       bigint
  share:       double
metrics:  # a user on two devices counts in both, so sum(users) is not the day's DAU
  device_types:     "count(*)"
  top_device_share: "max(share)"
checks:
  - unique: [device_type]
  - accepted_range: {column: share, min: 0, max: 1}
--- */

with e as (
    select user_id, coalesce(device_type, 'unknown') as device_type
    from dws_user_activity_daily
    where dt = $dt
),
total as (
    select count(distinct user_id) as dau from e
)
select
    e.device_type,
    count(distinct e.user_id) as users,
    -- exactly, half away from zero, in integers (rounding the double quotient turned 81 / 160 =
    -- 0.50625 into 0.5062); NULL, not NaN, on a day without users
    (count(distinct e.user_id) * 20000 + total.dau) // (2 * nullif(total.dau, 0)) / 10000.0 as share
from e, total
group by e.device_type, total.dau
