/* ---
description: >
  Who was active on each day (the seed's `dau` CTE of step 5.1, kept as a table): one row per
  event_date and user_id with the number of events. Retention reads days d, d+1 and d+7 of it.
partitions: daily
columns:
  user_id: bigint
  events:  bigint
--- */

select user_id, count(*) as events
from dwd_user_event
where event_date = cast($dt as date)
group by user_id
