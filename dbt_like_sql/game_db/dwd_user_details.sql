/* ---
description: >
  One row per player (seed 004, step 4.1): every profile column decoded from UTF-8 bytes and cast;
  of several profile rows of a user the one with the latest last_login_date wins (NULL dates last).
  Ties are broken by the newest landing hour, then file, then the row's values, so a rebuild is
  deterministic. Text that does not cast (a level of "abc") becomes NULL, as in Spark.
partitions: none
columns:
  user_id:             {type: bigint, description: Player id}
  gender:              string
  os_version:          string
  current_level:       int
  device_type:         string
  last_login_date:     date
  favorite_game_mode:  string
  language_preference: string
  active_time:         string
  registration_date:   date
  total_deaths:        int
  game_hours:          double
  location:            {type: string, description: "Province-City, e.g. Zhejiang-Hangzhou"}
  play_frequency:      string
checks:
  - unique: [user_id]
--- */

with p as (
    select
        user_id,
        try(decode(gender)) as gender,
        try(decode(os_version)) as os_version,
        try_cast(trim(try(decode(current_level))) as integer) as current_level,
        try(decode(device_type)) as device_type,
        try_cast(trim(try(decode(last_login_date))) as date) as last_login_date,
        try(decode(favorite_game_mode)) as favorite_game_mode,
        try(decode(language_preference)) as language_preference,
        try(decode(active_time)) as active_time,
        try_cast(trim(try(decode(registration_date))) as date) as registration_date,
        try_cast(trim(try(decode(total_deaths))) as integer) as total_deaths,
        try_cast(trim(try(decode(game_hours))) as double) as game_hours,
        try(decode(location)) as location,
        try(decode(play_frequency)) as play_frequency,
        dt,
        hh,
        _source_file
    from ods_user_profile
),
ranked as (
    select
        *,
        row_number() over (
            partition by user_id
            order by
                last_login_date desc nulls last, dt desc, hh desc, _source_file desc,
                gender, os_version, current_level, device_type, favorite_game_mode, language_preference,
                active_time, registration_date, total_deaths, game_hours, location, play_frequency
        ) as rn
    from p
)
select * exclude (rn, dt, hh, _source_file)
from ranked
where rn = 1
