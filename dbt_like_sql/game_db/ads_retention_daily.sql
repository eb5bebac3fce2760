/* ---
description: >
  Daily active users and day-1 / day-7 retention (seed 004, step 5.1, exactly): of the users active on
  day d, how many were active again on d+1 and on d+7; rates rounded to 4 places. Late events of day
  d+1 or d+7 change day d: Dagster's time-window mapping (d -> d..d+7) and an automation condition
  rebuild it.
partitions: daily
inputs:
  dws_user_activity_daily: {days: [0, 1, 7]}
columns:
  dau:               bigint
  d1_retained:       bigint
  d1_retention_rate: double
  d7_retained:       bigint
  d7_retention_rate: double
metrics:
  dau:               "coalesce(sum(dau), 0)"
  d1_retention_rate: "max(d1_retention_rate)"
  d7_retention_rate: "max(d7_retention_rate)"
checks:
  - accepted_range: {column: d1_retention_rate, min: 0, max: 1}
  - accepted_range: {column: d7_retention_rate, min: 0, max: 1}
  - sql:
      name: retained_le_dau
      description: d1_retained and d7_retained never exceed dau
      query: select count(*) from this where d1_retained > dau or d7_retained > dau
--- */

with dau as (
    select cast(dt as date) as dt, user_id
    from dws_user_activity_daily
),
base as (
    select dt, count(distinct user_id) as dau
    from dau
    where dt = cast($dt as date)
    group by dt
),
d1 as (
    select a.dt, count(distinct a.user_id) as d1_retained
    from dau as a
    join dau as b on a.user_id = b.user_id and b.dt = a.dt + 1
    where a.dt = cast($dt as date)
    group by a.dt
),
d7 as (
    select a.dt, count(distinct a.user_id) as d7_retained
    from dau as a
    join dau as b on a.user_id = b.user_id and b.dt = a.dt + 7
    where a.dt = cast($dt as date)
    group by a.dt
)
select  -- rates exactly, half away from zero, in integers (as share in ads_device_preference_daily)
    base.dau,
    coalesce(d1.d1_retained, 0) as d1_retained,
    (coalesce(d1.d1_retained, 0) * 20000 + base.dau) // (2 * nullif(base.dau, 0)) / 10000.0 as d1_retention_rate,
    coalesce(d7.d7_retained, 0) as d7_retained,
    (coalesce(d7.d7_retained, 0) * 20000 + base.dau) // (2 * nullif(base.dau, 0)) / 10000.0 as d7_retention_rate
from base
left join d1 on base.dt = d1.dt
left join d7 on base.dt = d7.dt
