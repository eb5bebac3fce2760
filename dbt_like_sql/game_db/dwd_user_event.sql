/* ---
description: >
  Player events (seed 004, step 4.2), per landing hour. event_type lower-cased; the timestamp text
  (trimmed) is a 13-digit epoch in ms, a 10-digit epoch in s, or YYYY-MM-DD HH:MM:SS; epochs become
  local time in LAKEHOUSE_TIMEZONE (UTC by default), text is taken as local time. Rows whose timestamp
  does not parse go to dwd_user_event_rejected with the reason. location is the event's unless NULL
  or empty, else the profile's; amount is $.amount of event_details (a JSON number or numeric string)
  as a double, 0.0 when missing or malformed; gender and device_type come from the profile.
  The days each hour holds (event_date) are indexed, so daily tables find their hours.
day_index: event_date
inputs:
  dwd_user_details: {changes_by: user_id}
columns:
  user_id:     bigint
  event_ts:    {type: timestamp, description: Event time (local time in LAKEHOUSE_TIMEZONE)}
  event_date:  date
  event_type:  string
  location:    string
  amount:      double
  gender:      string
  device_type: string
checks:
  - not_null: [event_ts, event_date]
reject_reason_column: reject_reason
reconcile_with: ods_user_event
--- */

with e as (
    select
        user_id,
        lower(try(decode(event_type))) as event_type,
        trim(try(decode("timestamp"))) as ts_str,
        try(decode(event_details)) as event_details,
        try(decode(location)) as event_location,
        "timestamp" is null as ts_missing,
        _source_file
    from ods_user_event
    where dt = $dt and hh = $hh
),
e_ts as (
    select
        *,
        case
            when regexp_full_match(ts_str, '[0-9]{13}')
                then timezone($timezone, timezone('UTC', epoch_ms(cast(ts_str as bigint))))
            when regexp_full_match(ts_str, '[0-9]{10}')
                then timezone($timezone, timezone('UTC', epoch_ms(cast(ts_str as bigint) * 1000)))
            else try_strptime(ts_str, '%Y-%m-%d %H:%M:%S')
        end as event_ts
    from e
)
select
    e.user_id,
    e.event_ts,
    cast(e.event_ts as date) as event_date,
    e.event_type,
    coalesce(nullif(e.event_location, ''), d.location) as location,
    coalesce(try_cast(try(json_extract_string(e.event_details, '$.amount')) as double), 0.0) as amount,
    d.gender,
    d.device_type,
    e.ts_str as raw_timestamp,
    e._source_file,
    case
        when e.event_ts is not null then null
        when e.ts_missing then 'timestamp is missing'
        when e.ts_str is null then 'timestamp is not valid UTF-8'
        else 'timestamp is not a 13-digit epoch ms, a 10-digit epoch s or YYYY-MM-DD HH:MM:SS'
    end as reject_reason
from e_ts as e
left join dwd_user_details as d on e.user_id = d.user_id
