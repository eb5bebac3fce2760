"""The landing layout, from a path alone: data, junk to ignore, or a misplaced file to report."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from lakehouse.core.partitioning import split_hour_key
from lakehouse.landing.layout import (
    LandedFile,
    Layout,
    Misplaced,
    classify,
    other_layout,
    partition_prefix,
    partition_values,
    table_layout,
)

GOOD_FOLDER = "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=23"


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("iov/.DS_Store", 6148),
        (f"{GOOD_FOLDER}/.DS_Store", 6148),
        (f"{GOOD_FOLDER}/._part-0.parquet", 4096),  # macOS resource fork
        (f"{GOOD_FOLDER}/.part-0.parquet", 100),  # hidden file
        (f"{GOOD_FOLDER}/_SUCCESS", 0),
        (f"{GOOD_FOLDER}/_part-0.parquet", 100),  # names starting with _ are bookkeeping
        ("iov/ods_vehicle_gps_raw/_temporary/dt=2025-09-17/hh=23/part-0.parquet", 100),
        ("iov/.staging/dt=2025-09-17/hh=23/part-0.parquet", 100),
        (f"{GOOD_FOLDER}/_temporary/part-0.parquet", 100),  # a junk folder at any depth
        ("_tmp/ods_vehicle_gps_raw/dt=2025-09-17/hh=23/part-0.parquet", 100),
        (f"{GOOD_FOLDER}/part-0.parquet.uploading", 100),  # upload in progress
        (f"{GOOD_FOLDER}/part-0.parquet.crc", 100),
        (f"{GOOD_FOLDER}/readme.txt", 100),
        (f"{GOOD_FOLDER}/part-0.csv", 100),
        (f"{GOOD_FOLDER}/part-0.parquet", 0),  # zero bytes: never data
        (f"{GOOD_FOLDER}/part-0.orc", 0),
    ],
)
def test_junk_is_ignored_silently(path: str, size: int) -> None:
    assert classify(path, size) is None


def test_unknown_size_is_not_treated_as_empty() -> None:
    assert isinstance(classify(f"{GOOD_FOLDER}/part-0.parquet"), LandedFile)


@pytest.mark.parametrize(
    ("path", "reason_contains"),
    [
        ("part-0.parquet", "not in <namespace>/<table>/dt=YYYY-MM-DD/hh=HH/<file>"),
        ("iov/part-0.parquet", "not in <namespace>/<table>"),
        ("iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=23/x/y.parquet", "not in <namespace>/<table>"),
        ("iov/ods_vehicle_gps_raw/raw/part-0.parquet", "partition folders are dt=YYYY-MM-DD[/hh=HH]"),
        ("iov/ods_vehicle_gps_raw/dt=2025-9-1/part-0.parquet", "dt=2025-9-1 must be zero-padded"),
        ("iov/ods_vehicle_gps_raw/dt=2025-02-30/part-0.parquet", "dt=2025-02-30 is not a valid date"),
        (f"{GOOD_FOLDER}/extra/part-0.parquet", "not in <namespace>/<table>"),
        ("iov/ods_vehicle_gps_raw/date=2025-09-17/hh=23/part-0.parquet", "dt=YYYY-MM-DD/hh=HH"),
        ("iov/ods_vehicle_gps_raw/hh=23/dt=2025-09-17/part-0.parquet", "dt=YYYY-MM-DD/hh=HH"),
        (
            "iov/ods_vehicle_gps_raw/dt=2025-13-01/hh=00/part-0.parquet",
            "dt=2025-13-01/hh=00 is not a valid date and hour",
        ),
        (
            "iov/ods_vehicle_gps_raw/dt=2025-02-30/hh=00/part-0.parquet",
            "dt=2025-02-30/hh=00 is not a valid date",
        ),
        (
            "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=24/part-0.parquet",
            "dt=2025-09-17/hh=24 is not a valid date and hour",
        ),
        ("iov/ods_vehicle_gps_raw/dt=20250917/hh=23/part-0.parquet", "is not a valid date and hour"),
        ("iov/ods_vehicle_gps_raw/dt=2025-9-1/hh=07/part-0.parquet", "dt=2025-9-1/hh=07 must be zero-padded"),
        (
            "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=7/part-0.parquet",
            "dt=2025-09-17/hh=7 must be zero-padded",
        ),
        ("iov/my-table/dt=2025-09-17/hh=23/part-0.parquet", "table folder 'my-table' is not a valid name"),
        ("iov/2025_gps/dt=2025-09-17/hh=23/part-0.parquet", "table folder '2025_gps' is not a valid name"),
        ("my iov/gps/dt=2025-09-17/hh=23/part-0.parquet", "namespace folder 'my iov' is not a valid name"),
    ],
)
def test_data_in_the_wrong_place_is_misplaced_with_a_helpful_reason(path: str, reason_contains: str) -> None:
    result = classify(path, 100)
    assert isinstance(result, Misplaced)
    assert result.path == path
    assert reason_contains in result.reason


def test_misplaced_file_in_a_table_folder_remembers_the_table() -> None:
    # so that `lakehouse rejected` can say which table the stray file was meant for
    result = classify("iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=7/part-0.parquet", 100)
    assert isinstance(result, Misplaced)
    assert (result.namespace, result.table) == ("iov", "ods_vehicle_gps_raw")


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("part-00000.parquet", 1234),
        ("part-00000.orc", 1234),
        ("part-00000.PARQUET", 1234),
        ("Data.Orc", 1234),
        ("part-00000.parquet", None),
    ],
)
def test_data_files_are_landed_with_their_partition(name: str, size: int | None) -> None:
    path = f"{GOOD_FOLDER}/{name}"
    result = classify(path, size)
    assert result == LandedFile(path, "iov", "ods_vehicle_gps_raw", "2025-09-17-23", Layout.HOURLY)
    assert (result.dt, result.hh) == ("2025-09-17", "23")


@pytest.mark.parametrize(
    ("dt", "hh", "key"),
    [
        ("2025-01-01", "00", "2025-01-01-00"),
        ("2024-02-29", "09", "2024-02-29-09"),  # leap day
        ("2025-12-31", "23", "2025-12-31-23"),
    ],
)
def test_partition_key_round_trips(dt: str, hh: str, key: str) -> None:
    landed = classify(f"iov/t_1/dt={dt}/hh={hh}/f.parquet", 10)
    assert isinstance(landed, LandedFile)
    assert landed.partition_key == key
    assert split_hour_key(key) == (dt, hh)
    assert partition_prefix("iov", "t_1", key) == f"iov/t_1/dt={dt}/hh={hh}"


@pytest.mark.parametrize(
    "key",
    [
        "2025-09-17",  # no hour
        "2025-09-17-24",  # no such hour
        "2025-13-01-00",  # no such month
        "2025-02-30-00",  # no such day
        "2025-09-17 23",
        "2025-09-17T23",
        "2025-09-17-23-00",
        "",
        "garbage",
    ],
)
def test_malformed_partition_key_raises_value_error_naming_it(key: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"partition key {key!r} is not YYYY-MM-DD-HH")):
        split_hour_key(key)


@pytest.mark.parametrize("key", ["2025-9-1-7", "2025-09-17-7"])
def test_partition_key_must_be_zero_padded_like_the_folders(key: str) -> None:
    with pytest.raises(ValueError, match="is not YYYY-MM-DD-HH"):
        split_hour_key(key)


def test_partition_prefix_rejects_a_malformed_key() -> None:
    with pytest.raises(ValueError, match="'2025-09-17' is not YYYY-MM-DD-HH"):
        partition_prefix("iov", "ods_vehicle_gps_raw", "2025-09-17")


def test_a_file_directly_in_a_table_folder_is_flat_keyed_by_its_arrival_hour() -> None:
    written = dt.datetime(2025, 9, 17, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    result = classify("game_db/ods_user_event/events-1.parquet", 10, written)
    assert result == LandedFile(
        "game_db/ods_user_event/events-1.parquet", "game_db", "ods_user_event", "2025-09-17-23", Layout.FLAT
    )
    assert Layout.FLAT.partitioning.columns == ("dt", "hh")  # grouped by arrival hour


def test_dt_folders_alone_are_daily_partitions() -> None:
    result = classify("sales/orders/dt=2025-09-17/part-0.parquet", 10)
    assert result == LandedFile(
        "sales/orders/dt=2025-09-17/part-0.parquet", "sales", "orders", "2025-09-17", Layout.DAILY
    )
    assert result.hh is None
    assert partition_values(Layout.DAILY, "2025-09-17") == {"dt": "2025-09-17"}
    assert partition_values(Layout.HOURLY, "2025-09-17-05") == {"dt": "2025-09-17", "hh": "05"}


def test_a_named_task_reads_table_folders_under_its_location_with_its_prefix() -> None:
    base = "s3://raw-a/openlake/sr_game_demo_v2"
    result = classify("user_event/part-0.parquet", 10, 0.0, namespace="game_db", prefix="ods_", base=base)
    assert result == LandedFile(
        f"{base}/user_event/part-0.parquet", "game_db", "ods_user_event", "1970-01-01-00", Layout.FLAT
    )
    stray = classify("part-0.parquet", 10, namespace="game_db", base=base)
    assert isinstance(stray, Misplaced) and stray.path == f"{base}/part-0.parquet"
    assert "directly in the task's location" in stray.reason
    hourly = classify("gps/dt=2025-09-17/hh=23/f.orc", 10, namespace="iov", prefix="ods_", base=base)
    assert isinstance(hourly, LandedFile) and (hourly.table, hourly.layout) == ("ods_gps", Layout.HOURLY)


def test_a_table_has_one_layout_and_files_of_another_are_rejected_naming_both() -> None:
    hourly = classify(f"{GOOD_FOLDER}/part-0.parquet", 10)
    flat = classify("iov/ods_vehicle_gps_raw/stray.parquet", 10, 0.0)
    daily = classify("iov/ods_vehicle_gps_raw/dt=2025-09-17/x.parquet", 10)
    assert isinstance(hourly, LandedFile) and isinstance(flat, LandedFile) and isinstance(daily, LandedFile)
    assert table_layout([flat, daily, hourly]) is Layout.HOURLY
    assert table_layout([flat, daily]) is Layout.DAILY
    assert table_layout([flat]) is Layout.FLAT
    assert table_layout([hourly], claimed=Layout.FLAT) is Layout.FLAT  # the registered layout holds
    rejected = other_layout(flat, Layout.HOURLY)
    assert rejected.path == "iov/ods_vehicle_gps_raw/stray.parquet"
    assert "not in <namespace>/<table>/dt=YYYY-MM-DD/hh=HH/<file>" in rejected.reason
    assert "laid out hourly" in rejected.reason and "this file is flat" in rejected.reason
