/* ---
description: >
  Who was active on each day, on which device, and what they paid (the seed's `dau` CTE of step 5.1,
  kept as a table): one row per event_date, user_id and device_type, summed from the hourly partial
  aggregates of that day. Retention reads days d, d+1 and d+7 of it; purchase trends and device
  preference aggregate it instead of every event.
partitions: daily
columns:
  user_id:         bigint
  device_type:     string
  events:          bigint
  purchase_amount: {type: decimal, description: "Sum of amount over purchase events, exact"}
  paid_orders:     {type: bigint, description: Purchase events with amount > 0}
--- */

select
    user_id,
    device_type,
    sum(events) as events,
    sum(purchase_amount) as purchase_amount,
    sum(paid_orders) as paid_orders
from dws_user_event_hourly
where event_date = cast($dt as date)
group by user_id, device_type
