/* ---
description: >
  DAU per province and city: location trimmed, NULL or empty -> 'unknown'; province is the text
  before the first '-', city the text after it ('unknown' when there is none):
  'Zhejiang-Hangzhou' -> Zhejiang / Hangzhou, 'Shanghai' -> Shanghai / unknown. The split is done
  once per landing hour (dws_user_event_hourly); a day counts the distinct users of its partials.
partitions: daily
columns:
  province: string
  city:     string
  dau:      bigint
metrics:  # a user seen in two regions counts in both, so sum(dau) is not the day's DAU
  regions:        "count(*)"
  top_region_dau: "coalesce(max(dau), 0)"
checks:
  - unique: [province, city]
  - not_null: [province, city]
--- */

select province, city, count(distinct user_id) as dau
from dws_user_event_hourly
where event_date = cast($dt as date)
group by province, city
