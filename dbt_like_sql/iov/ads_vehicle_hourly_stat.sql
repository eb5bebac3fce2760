/* ---
description: >
  Hourly mileage and average speed per vehicle (seed 000, ADS). Only rows with a valid location
  count; points are ordered by event_time and the distance between consecutive points is summed,
  by haversine (earth radius 6371.0 km) or the seed's planar approximation
  (LAKEHOUSE_DISTANCE_METHOD). Vehicles with no valid location in the hour have no row.
columns:
  vin:            {type: string, description: Unique vehicle identifier}
  stat_hour:      {type: string, description: Statistics hour (yyyy-MM-dd HH)}
  total_distance: {type: double, description: Total mileage (km)}
  avg_speed:      {type: double, description: Average speed (km/h)}
metrics:  # plotted per partition in the asset's Plots tab
  fleet_km: "coalesce(sum(total_distance), 0)"
checks:
  - unique: [vin]
  - not_null: [vin, stat_hour, total_distance, avg_speed]
  - accepted_range: {column: total_distance, min: 0}
  - accepted_range: {column: avg_speed, min: 0}
--- */

with ordered as (
    select
        vin,
        event_time,
        lng,
        lat,
        speed,
        -- ties on event_time are broken by the point itself, so a re-run orders rows identically
        row_number() over (partition by vin order by event_time, lng, lat, speed) as rn
    from dwd_vehicle_gps
    where dt = $dt and hh = $hh and loc_valid
),

with_prev as (
    select
        a.vin,
        a.rn,
        a.speed,
        a.lng,
        a.lat,
        b.lng as prev_lng,
        b.lat as prev_lat
    from ordered as a
    left join ordered as b
        on a.vin = b.vin and a.rn = b.rn + 1
),

steps as (
    select
        vin,
        rn,
        speed,
        case
            when prev_lng is null then 0.0
            when $distance_method = 'planar'
                then sqrt(power(abs(lng - prev_lng) * 111, 2) + power(abs(lat - prev_lat) * 111, 2))
            else 2 * 6371.0 * asin(sqrt(
                power(sin(radians(lat - prev_lat) / 2), 2)
                + cos(radians(prev_lat)) * cos(radians(lat)) * power(sin(radians(lng - prev_lng) / 2), 2)
            ))
        end as step_km
    from with_prev
)

-- ordered aggregates: the same inputs always sum in the same order, so results are bit-identical
select
    vin,
    $dt || ' ' || $hh as stat_hour,
    sum(step_km order by rn) as total_distance,
    avg(speed order by rn) as avg_speed
from steps
group by vin
