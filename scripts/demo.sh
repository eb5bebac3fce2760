#!/usr/bin/env bash
# Both seed pipelines end to end on the embedded defaults (local folder, SQLite catalog, DuckDB):
# vehicle GPS (seed 000), then game analytics with late data (seed 004).
set -euo pipefail
umask 077  # the home (catalog, audit key, masking salt, data) is private: lakehouse warns otherwise
: "${LAKEHOUSE_HOME:=$PWD/.lakehouse}"
: "${DAGSTER_HOME:=$LAKEHOUSE_HOME/dagster_home}"
export LAKEHOUSE_HOME DAGSTER_HOME
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
started=$(date +%s)

echo "== 1. Raw GPS files land in $LAKEHOUSE_HOME/landing (6 hours, 300 vehicles, dirty rows, junk files)"
lakehouse generate iov --hours 6 --vehicles 300 --start 2025-09-17T18

echo "== 2. DataScan discovers tables and partitions and loads them through ODS -> DWD -> ADS"
lakehouse scan

echo "== 3. What DataScan registered"
lakehouse tables
echo "Rejected files (junk like .DS_Store and uploads in progress is ignored, corrupt files are recorded):"
lakehouse rejected
echo "Rows DWD rejected, by reason:"
lakehouse sql "select reject_reason, count(*) as rows from iov.dwd_vehicle_gps_rejected group by reject_reason order by reject_reason"

echo "== 4. The seed's query: mileage and average speed of vehicle VIN001"
lakehouse sql "select vin as vehicle_id, stat_hour as stat_time,
                      concat(cast(round(total_distance, 2) as varchar), ' km') as mileage,
                      concat(cast(round(avg_speed, 2) as varchar), ' km/h') as avg_speed
               from iov.ads_vehicle_hourly_stat where vin = 'VIN001' order by stat_hour desc"
echo "== 5. Game analytics (seed 004): 8 days of player events, late events included, through DWD to the daily ADS"
lakehouse generate game --days 8 --users 2000 --events-per-day 10000 --start 2025-09-01
lakehouse scan
echo "Retention (seed step 5.1) and purchase trends, first days:"
lakehouse sql "select dt, dau, d1_retained, d1_retention_rate, d7_retained, d7_retention_rate
               from game_db.ads_retention_daily where dt between '2025-09-01' and '2025-09-04' order by dt"
lakehouse sql "select dt, round(gmv, 2) as gmv, paying_users, orders, arppu
               from game_db.ads_purchase_trends_daily where dt between '2025-09-01' and '2025-09-04' order by dt"

echo "== 6. Late data: a file of 2025-09-02 lands a week late (other players, some events days older still)"
lakehouse generate game --days 1 --users 2000 --events-per-day 3000 --start 2025-09-02 --no-profiles --tag _late --seed 99 --cohort 1
lakehouse scan
echo "Retention again: 2025-09-02's dau grew, and 2025-09-01's d1 retention with it (only the touched days were rebuilt):"
lakehouse sql "select dt, dau, d1_retained, d1_retention_rate, d7_retained, d7_retention_rate
               from game_db.ads_retention_daily where dt between '2025-09-01' and '2025-09-04' order by dt"

echo "Done in $(( $(date +%s) - started ))s. Browse it with 'make dev' (http://127.0.0.1:3000) or 'lakehouse sql'."
