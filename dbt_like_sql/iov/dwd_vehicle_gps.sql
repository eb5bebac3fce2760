/* ---
description: >
  Cleansed GPS reports, one row per valid report (seed 000, DWD). Rows without a vin, with a NULL,
  negative or NaN speed, or with a report_time that is not YYYY-MM-DD HH:MM:SS go to
  iov.dwd_vehicle_gps_rejected with the reason instead.
columns:
  vin:        {type: string,    description: Unique vehicle identifier}
  event_time: {type: timestamp, description: Report time}
  lng:        {type: double,    description: Longitude}
  lat:        {type: double,    description: Latitude}
  speed:      {type: double,    description: Speed (km/h)}
  loc_valid:  {type: boolean,   description: "Longitude in [70, 140] and latitude in [10, 60]; NULL coordinates are invalid"}
reject_reason_column: reject_reason
reconcile_with: ods_vehicle_gps_raw
checks:
  - not_null: [vin, event_time, speed, loc_valid]
  - accepted_range: {column: speed, min: 0}
--- */

with source as (
    select
        vin,
        cast(report_time as varchar) as report_time,
        lng,
        lat,
        speed,
        _source_file
    from ods_vehicle_gps_raw
    where dt = $dt and hh = $hh
),

parsed as (
    select
        *,
        case
            when regexp_full_match(trim(report_time), '\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}')
                then try_strptime(trim(report_time), '%Y-%m-%d %H:%M:%S')
        end as event_time
    from source
)

select
    vin,
    event_time,
    lng,
    lat,
    speed,
    coalesce(lng between 70 and 140 and lat between 10 and 60, false) as loc_valid,
    case
        when vin is null or trim(vin) = '' then 'vin is NULL or blank'
        when speed is null then 'speed is NULL'
        when isnan(speed) then 'speed is NaN'
        when speed < 0 then 'speed is negative'
        when event_time is null then 'report_time is not YYYY-MM-DD HH:MM:SS'
    end as reject_reason,
    report_time,
    _source_file
from parsed
