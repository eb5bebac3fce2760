/* ---
description: >
  DAU per province and city: location trimmed, NULL or empty -> 'unknown'; province is the text
  before the first '-', city the text after it ('unknown' when there is none):
  'Zhejiang-Hangzhou' -> Zhejiang / Hangzhou, 'Shanghai' -> Shanghai / unknown.
partitions: daily
columns:
  province: string
  city:     string
  dau:      bigint
checks:
  - unique: [province, city]
  - not_null: [province, city]
--- */

with e as (
    select user_id, nullif(trim(location), '') as loc
    from dwd_user_event
    where event_date = cast($dt as date)
),
split as (
    select
        user_id,
        coalesce(nullif(trim(split_part(loc, '-', 1)), ''), 'unknown') as province,
        case
            when strpos(loc, '-') > 0 then coalesce(nullif(trim(substr(loc, strpos(loc, '-') + 1)), ''), 'unknown')
            else 'unknown'
        end as city
    from e
)
select province, city, count(distinct user_id) as dau
from split
group by province, city
