"""What maintenance decides from a table's state: partitions to compact, snapshots to keep, durations."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse.cli.maintain import _DEFAULTS
from lakehouse.maintenance.options import MB, MaintenanceOptions, format_duration, parse_duration
from lakehouse.maintenance.plan import partitions_to_compact, versions_to_expire, versions_to_keep
from lakehouse.storage.tables.upkeep import DataFile, Version

NOW = dt.datetime(2025, 9, 20, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=30)


def files(partition: str, count: int, size: int = 1000) -> list[DataFile]:
    return [DataFile(f"/t/{partition}/{i}.parquet", size, 10, (("dt", partition),)) for i in range(count)]


def versions(*kinds: str, young: int = 0) -> list[Version]:
    """One version per kind ('d' data, 'm' maintenance), oldest first; the last `young` are recent."""
    out = []
    for i, kind in enumerate(kinds):
        when = NOW - dt.timedelta(minutes=1) if i >= len(kinds) - young else OLD + dt.timedelta(hours=i)
        out.append(Version(str(i), when, kind == "m", i == len(kinds) - 1))
    return out


def test_partitions_past_a_threshold_are_compacted_if_a_rewrite_makes_fewer_files() -> None:
    options = MaintenanceOptions(max_files=8, max_small_files=4, small_file_bytes=32 * MB)
    found = [*files("a", 9, 100 * MB), *files("b", 8, 100 * MB), *files("c", 5), *files("d", 4)]
    plans = {p.key: p for p in partitions_to_compact(found, options)}
    assert set(plans) == {"dt=a", "dt=c"}  # b: 8 big files; d: 4 small ones
    assert plans["dt=a"].files_after == 8  # 900 MB in 128 MB files: 8 < 9
    assert plans["dt=c"].files_after == 1 and plans["dt=c"].rows == 50
    big = files("e", 9, 200 * MB)  # a rewrite would not make fewer files
    assert partitions_to_compact(big, options) == []
    [bounded] = partitions_to_compact(files("f", 20), options, rows_per_file=50)  # 200 rows
    assert bounded.files_after == 4
    nulls = [DataFile("/t/x.parquet", 1, 1, (("dt", None),))] * 20
    assert partitions_to_compact(nulls, options) == []


def test_keep_the_current_the_last_n_data_snapshots_young_and_pinned_ones() -> None:
    options = MaintenanceOptions(keep_last=2, retention=dt.timedelta(days=7))
    history = versions("d", "d", "d", "d", "d", "d")
    assert versions_to_keep(history, set(), options, NOW) == {"4", "5"}
    assert versions_to_keep(history, {"1", "99"}, options, NOW) == {"1", "4", "5"}
    young = versions("d", "d", "d", "d", "d", "d", young=3)
    assert versions_to_keep(young, set(), options, NOW) == {"3", "4", "5"}


def test_maintenance_snapshots_ride_along_and_a_second_run_keeps_everything() -> None:
    options = MaintenanceOptions(keep_last=2, retention=dt.timedelta(0))
    history = versions("d", "m", "d", "d", "m", "d", "m", "m")  # compactions, vacuum commits
    keep = versions_to_keep(history, set(), options, NOW)
    assert keep == {"3", "4", "5", "6", "7"}  # data 3 and 5, the maintenance after 3, the current 7
    left = [v for v in history if v.snapshot_id in keep]
    assert versions_to_expire(left, set(), options, NOW) == []


def test_durations_and_the_cli_defaults_match_the_options() -> None:
    assert parse_duration("7d") == dt.timedelta(days=7)
    assert parse_duration("90s") == parse_duration("1.5m") == dt.timedelta(seconds=90)
    assert parse_duration("0") == dt.timedelta(0) and parse_duration("2w") == dt.timedelta(days=14)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
    assert format_duration(dt.timedelta(hours=1)) == "1h"
    defaults = MaintenanceOptions()
    assert defaults.describe() == {
        "max_files": _DEFAULTS["max_files"],
        "max_small_files": _DEFAULTS["max_small_files"],
        "small_file_mb": _DEFAULTS["small_file_mb"],
        "target_file_mb": _DEFAULTS["target_file_mb"],
        "retention": _DEFAULTS["retention"],
        "keep_last": _DEFAULTS["keep_last"],
        "orphan_age": _DEFAULTS["orphan_age"],
    }
    assert defaults.vacuum_hours == 1 and MaintenanceOptions(orphan_age=dt.timedelta(0)).vacuum_hours == 0
    with pytest.raises(ValueError, match="keep_last"):
        MaintenanceOptions(keep_last=0)
