"""The independent game reference (tests/helpers/game_reference.py) on hand-made rows: its trickiest
rules checked by hand, so that it is more than "agrees with the pipeline"."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from tests.helpers import game_reference as ref

PROFILE_FILE = ref.RawFile(
    "game_db/ods_user_profile/dt=2025-09-01/hh=00/p.parquet", Path("p"), "2025-09-01", "00"
)
EVENT_FILE = ref.RawFile(
    "game_db/ods_user_event/dt=2025-09-01/hh=00/e.parquet", Path("e"), "2025-09-01", "00"
)


def raw(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def profile(
    user_id: int | None, last_login: str | None = "2025-09-01", **values: str | None
) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in ref.DETAIL_COLUMNS}
    row.update(user_id=user_id, gender="female", device_type="iOS", location="Zhejiang-Hangzhou")
    row.update(last_login_date=last_login, **values)
    return {k: v if k == "user_id" else raw(v) for k, v in row.items()}


def event(
    user_id: int | None,
    ts: str | None,
    event_type: str = "login",
    details: str | None = "{}",
    location: str | None = None,
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "event_type": raw(event_type),
        "timestamp": raw(ts),
        "event_details": raw(details),
        "location": raw(location),
    }


def compute(
    profiles: list[dict[str, Any]], events: list[dict[str, Any]], **options: Any
) -> dict[str, list[dict[str, Any]]]:
    return ref.compute_rows(
        [(PROFILE_FILE, p) for p in profiles], [(EVENT_FILE, e) for e in events], **options
    )


def by_day(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["dt"]: r for r in rows}


# --- timestamps ----------------------------------------------------------------------------------


def test_timestamps_in_three_formats_and_everything_else_rejected() -> None:
    kept = compute(
        [profile(1)],
        [
            event(1, "1756771200999"),  # 13 digits: ms; the seed's FROM_UNIXTIME keeps whole seconds
            event(1, "1756771201"),  # 10 digits: s
            event(1, "  2025-09-02 10:11:12 "),  # text, surrounding spaces stripped
            event(1, "2025-09-02T10:11:12"),  # ISO 'T': not one of the three formats
            event(1, "2025-9-2 10:11:12"),  # not zero-padded
            event(1, "2025-02-30 10:00:00"),  # no such day
            event(1, "2025-09-02 24:00:00"),  # no such hour
            event(1, "17567712000"),  # 11 digits
            event(1, "\t1756771201"),  # only spaces are stripped
            event(1, "١٧٥٦٧٧١٢٠١"),  # 10 digits, but not ASCII ones
            event(1, ""),
            event(1, "yesterday"),
            event(1, None),
            {**event(1, None), "timestamp": b"\xff\xfe"},  # not UTF-8
        ],
    )["dwd_user_event"]
    assert [e["event_ts"] for e in kept] == [
        dt.datetime(2025, 9, 2, 0, 0, 0),
        dt.datetime(2025, 9, 2, 0, 0, 1),
        dt.datetime(2025, 9, 2, 10, 11, 12),
    ]
    assert {e["event_date"] for e in kept} == {dt.date(2025, 9, 2)}


def test_epochs_are_wall_time_in_the_zone_and_text_is_wall_time_already() -> None:
    events = [
        event(1, "1756756800000"),  # 2025-09-01 20:00:00 UTC
        event(2, "1756756800"),
        event(3, "2025-09-01 20:00:00"),
        event(4, "1762063200"),  # 2025-11-02 06:00:00 UTC: New York is back on EST (UTC-5)
    ]
    got = {
        zone: {e["user_id"]: e["event_ts"] for e in compute([], events, timezone=zone)["dwd_user_event"]}
        for zone in ("UTC", "Asia/Shanghai", "America/New_York")
    }
    assert got["UTC"][1] == got["UTC"][2] == got["UTC"][3] == dt.datetime(2025, 9, 1, 20)
    assert got["Asia/Shanghai"][1] == got["Asia/Shanghai"][2] == dt.datetime(2025, 9, 2, 4)
    assert got["Asia/Shanghai"][3] == dt.datetime(2025, 9, 1, 20)
    assert got["America/New_York"][1] == dt.datetime(2025, 9, 1, 16)  # EDT, UTC-4
    assert got["America/New_York"][4] == dt.datetime(2025, 11, 2, 1)
    shanghai = compute([], events[:3], timezone="Asia/Shanghai")
    assert [(r["dt"], r["dau"]) for r in shanghai["ads_retention_daily"]] == [
        ("2025-09-01", 1),
        ("2025-09-02", 2),
    ]


# --- location, profile columns, amount -------------------------------------------------------------


def test_location_falls_back_to_the_profile_only_when_null_or_empty() -> None:
    ts = "2025-09-02 08:00:00"
    tables = compute(
        [profile(1, location="Beijing", gender="male", device_type="Android")],
        [
            event(1, ts, location="Shanghai"),
            event(1, ts, location=""),
            event(1, ts, location=None),
            event(1, ts, location="  "),  # blanks are a location (that has no region)
            {**event(1, ts), "location": b"\xc3("},  # not UTF-8: NULL, so the profile's
            event(9, ts, location=None),  # no profile: no location, gender or device
        ],
    )
    got = [(e["user_id"], e["location"], e["gender"], e["device_type"]) for e in tables["dwd_user_event"]]
    assert got == [
        (1, "Shanghai", "male", "Android"),
        (1, "Beijing", "male", "Android"),
        (1, "Beijing", "male", "Android"),
        (1, "  ", "male", "Android"),
        (1, "Beijing", "male", "Android"),
        (9, None, None, None),
    ]
    regions = {(r["province"], r["city"]): r["dau"] for r in tables["ads_region_distribution_daily"]}
    assert regions == {("Shanghai", "unknown"): 1, ("Beijing", "unknown"): 1, ("unknown", "unknown"): 2}


def test_region_split() -> None:
    assert ref.region(" Jiangsu-Nanjing ") == ("Jiangsu", "Nanjing")
    assert ref.region("Guangdong-") == ("Guangdong", "unknown")
    assert ref.region("-Hangzhou") == ("unknown", "Hangzhou")
    assert ref.region("Inner Mongolia-Hohhot-Xincheng") == ("Inner Mongolia", "Hohhot-Xincheng")
    assert ref.region(None) == ref.region("") == ref.region("   ") == ("unknown", "unknown")


@pytest.mark.parametrize(
    ("details", "amount"),
    [
        ('{"amount": 12.5}', 12.5),
        ('{"amount": "7.25"}', 7.25),
        ('{"amount": " 3 "}', 3.0),
        ('{"amount": 1e2}', 100.0),
        ('{"amount": -4}', -4.0),
        ('{"item": "sword"}', 0.0),  # missing
        ('{"amount": null}', 0.0),
        ('{"amount": 3', 0.0),  # malformed JSON
        ('{"amount": "lots"}', 0.0),  # not numeric
        ('{"amount": true}', 0.0),
        ('{"amount": {"value": 5}}', 0.0),
        ('{"amount": NaN}', 0.0),  # not JSON
        ("[1, 2]", 0.0),
        ("", 0.0),
        (None, 0.0),
        ('{"amount": 1, "amount": 2}', 1.0),  # the first key, as get_json_object reads it
    ],
)
def test_amount_from_json(details: str | None, amount: float) -> None:
    assert ref.json_amount(details) == amount


def test_gmv_is_exact_and_nan_is_paid_but_not_summed() -> None:
    ts = "2025-09-01 10:00:00"
    purchases = compute(
        [profile(u) for u in (1, 2, 3)],
        [
            event(1, ts, "PURCHASE", '{"amount": 0.1}'),
            event(1, ts, "Purchase", '{"amount": "0.2"}'),
            event(2, ts, "purchase", '{"amount": 0}'),  # in gmv, but neither paying nor an order
            event(3, ts, "purchase", '{"amount": "NaN"}'),  # SQL: NaN > 0, but no decimal has it
            event(3, ts, "login", '{"amount": 99}'),  # not a purchase
            event(2, "2025-09-02 10:00:00", "battle"),  # a day without purchases
        ],
    )["ads_purchase_trends_daily"]
    assert purchases == [
        {"dt": "2025-09-01", "gmv": 0.3, "paying_users": 2, "orders": 3, "arppu": 0.15},
        {"dt": "2025-09-02", "gmv": 0.0, "paying_users": 0, "orders": 0, "arppu": None},
    ]
    assert 0.1 + 0.2 != 0.3  # a double sum would not give this gmv


def test_arppu_and_rates_round_half_away_from_zero_on_the_exact_value() -> None:
    assert ref.rounded(ref.Decimal("65.07"), 2, 2) == 32.54  # 32.535 (a double holds 32.53499...)
    assert ref.rounded(1, 32, 4) == 0.0313  # 0.03125
    assert ref.rounded(2, 3, 4) == 0.6667
    assert ref.rounded(-1, 8, 2) == -0.13
    assert ref.rounded(0, 0, 4) is None


def test_profile_casts() -> None:
    assert [ref.cast_int(v) for v in [" 7 ", "+7", "-3", "7.5", "abc", "1e2", "", None, "2147483648"]] == [
        7,
        7,
        -3,
        7,
        None,
        None,
        None,
        None,
        None,
    ]
    assert [ref.cast_double(v) for v in ["12.5", " .5 ", "1e3", "abc", None]] == [
        12.5,
        0.5,
        1000.0,
        None,
        None,
    ]
    assert ref.cast_date(" 2025-09-01 ") == ref.cast_date("2025-9-1") == dt.date(2025, 9, 1)
    assert ref.cast_date("2025-09-01 10:00:00") == dt.date(2025, 9, 1)
    assert [ref.cast_date(v) for v in ["2025-02-30", "20250901", "yesterday", None]] == [None] * 4


# --- dwd_user_details ----------------------------------------------------------------------------------


def test_latest_login_wins_with_null_dates_last() -> None:
    details = compute(
        [
            profile(1, "2025-08-01", location="Shanghai"),
            profile(1, "2025-09-03", location="Beijing", current_level=" 7 "),
            profile(1, None, location="Sichuan-Chengdu"),
            profile(2, None, location="Shanghai", current_level="abc"),
            profile(2, None, location="Beijing"),
        ],
        [],
    )["dwd_user_details"]
    got = {d["user_id"]: d for d in details}
    assert sorted(got) == [1, 2]
    assert got[1]["location"] == "Beijing" and got[1]["current_level"] == 7
    assert got[1]["last_login_date"] == dt.date(2025, 9, 3)
    # only NULL dates: the tie rules decide (same file: the smallest values, location "Beijing")
    assert got[2]["last_login_date"] is None and got[2]["location"] == "Beijing"
    assert set(got[1]) == set(ref.DETAIL_COLUMNS)


def test_login_ties_go_to_the_newest_hour_then_the_greatest_file_then_the_smallest_values() -> None:
    def file(dt_value: str, hh: str, name: str) -> ref.RawFile:
        path = f"game_db/ods_user_profile/dt={dt_value}/hh={hh}/{name}"
        return ref.RawFile(path, Path(name), dt_value, hh)

    rows = [
        (file("2025-09-01", "05", "b.parquet"), profile(1, "2025-09-01", location="old hour")),
        (file("2025-09-02", "01", "a.parquet"), profile(1, "2025-09-01", location="newest hour")),
        (file("2025-09-02", "01", "b.parquet"), profile(2, "2025-09-01", location="file b")),
        (file("2025-09-02", "01", "a.parquet"), profile(2, "2025-09-01", location="file a")),
        (file("2025-09-02", "01", "a.parquet"), profile(3, "2025-09-01", gender=None)),
        (file("2025-09-02", "01", "a.parquet"), profile(3, "2025-09-01", gender="male")),
        (file("2025-09-02", "01", "a.parquet"), profile(3, "2025-09-01", gender="female")),
        (file("2025-09-03", "00", "z.parquet"), profile(4, None, location="newer hour, no date")),
        (file("2025-09-01", "00", "a.parquet"), profile(4, "2020-01-01", location="a date")),
    ]
    got = {d["user_id"]: d for d in ref.compute_rows(rows, [])["dwd_user_details"]}
    assert got[1]["location"] == "newest hour"
    assert got[2]["location"] == "file b"
    assert got[3]["gender"] == "female"  # NULLs last, then ascending
    assert got[4]["location"] == "a date"


# --- retention, devices ------------------------------------------------------------------------------


def test_retention_d1_d7() -> None:
    events = (
        [event(u, "2025-09-01 09:00:00") for u in (1, 2, 3, 4)]
        + [event(u, "2025-09-02 09:00:00") for u in (1, 2)]
        + [event(1, "2025-09-02 10:00:00")]
        + [event(u, "2025-09-08 09:00:00") for u in (2, 3, 4)]
        + [event(5, "2025-09-09 09:00:00"), event(None, "2025-09-09 10:00:00")]  # NULL ids are no users
        + [event(None, "2025-09-10 09:00:00")]  # a day with events but no users
    )
    got = by_day(compute([profile(u) for u in range(1, 5)], events)["ads_retention_daily"])
    assert got["2025-09-01"] == {
        "dt": "2025-09-01",
        "dau": 4,
        "d1_retained": 2,
        "d1_retention_rate": 0.5,
        "d7_retained": 3,
        "d7_retention_rate": 0.75,
    }
    assert (got["2025-09-02"]["d1_retained"], got["2025-09-02"]["d7_retained"]) == (0, 0)
    assert got["2025-09-02"]["d7_retention_rate"] == 0.0
    assert got["2025-09-09"]["dau"] == 1
    assert got["2025-09-10"] == {
        "dt": "2025-09-10",
        "dau": 0,
        "d1_retained": 0,
        "d1_retention_rate": None,
        "d7_retained": 0,
        "d7_retention_rate": None,
    }
    assert sorted(got) == ["2025-09-01", "2025-09-02", "2025-09-08", "2025-09-09", "2025-09-10"]


def test_retention_rate_rounds_to_four_places() -> None:
    day1 = [event(u, "2025-09-01 09:00:00") for u in (1, 2, 3)]
    day2 = [event(u, "2025-09-02 09:00:00") for u in (1, 2)]
    got = by_day(compute([], day1 + day2)["ads_retention_daily"])
    assert got["2025-09-01"]["d1_retention_rate"] == 0.6667


def test_device_preference() -> None:
    ts = "2025-09-01 10:00:00"
    got = compute(
        [profile(1, device_type="iOS"), profile(2, device_type=None), profile(3, device_type="iOS")],
        [event(1, ts), event(1, ts), event(2, ts), event(3, ts), event(4, ts)],
    )["ads_device_preference_daily"]
    assert got == [
        {"dt": "2025-09-01", "device_type": "iOS", "users": 2, "share": 0.5},
        {"dt": "2025-09-01", "device_type": "unknown", "users": 2, "share": 0.5},
    ]


def test_ads_only_cover_the_daily_partitions() -> None:
    events = [
        event(1, "2019-12-31 23:00:00"),
        event(1, "2020-01-01 00:00:00"),
        event(1, "2020-01-03 00:00:00"),
    ]
    tables = compute([], events, last_day="2020-01-02")
    assert len(tables["dwd_user_event"]) == 3
    for name in ref.ADS_TABLES:
        assert {r["dt"] for r in tables[name]} == {"2020-01-01"}, name


# --- the landing folder ------------------------------------------------------------------------------


def _binary_table(rows: list[dict[str, Any]]) -> pa.Table:
    columns = list(rows[0])
    schema = pa.schema([("user_id", pa.int64()), *[(c, pa.binary()) for c in columns if c != "user_id"]])
    return pa.Table.from_pylist(rows, schema=schema)


def test_walks_the_landing_folder_and_skips_what_is_not_data(tmp_path: Path) -> None:
    events_dir = tmp_path / "game_db" / "ods_user_event"
    hour = events_dir / "dt=2025-09-01" / "hh=00"
    hour.mkdir(parents=True)
    good = _binary_table([event(1, "2025-09-01 10:00:00")])
    pq.write_table(good, hour / "a.parquet")
    orc.write_table(_binary_table([event(2, "2025-09-01 11:00:00")]), str(hour / "b.orc"))
    for junk in (".a.parquet", "_SUCCESS.parquet", "a.parquet.uploading", "notes.txt"):
        pq.write_table(good, hour / junk)
    (hour / "empty.parquet").write_bytes(b"")
    (hour / "corrupt.parquet").write_bytes(b"not a parquet file at all")
    (hour / "corrupt.orc").write_bytes(b"not an orc file")
    for misplaced in (
        events_dir / "loose.parquet",
        events_dir / "dt=2025-09-01" / "no_hour.parquet",
        events_dir / "dt=2025-9-1" / "hh=00" / "unpadded.parquet",
        events_dir / "dt=2025-09-01" / "hh=24" / "bad_hour.parquet",
        events_dir / "dt=2025-09-01" / "_temporary" / "x.parquet",
        hour / "nested" / "deeper.parquet",
    ):
        misplaced.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(good, misplaced)
    files = ref.raw_files(tmp_path, "ods_user_event")
    assert [f.path for f in files] == [
        "game_db/ods_user_event/dt=2025-09-01/hh=00/a.parquet",
        "game_db/ods_user_event/dt=2025-09-01/hh=00/b.orc",
        "game_db/ods_user_event/dt=2025-09-01/hh=00/corrupt.orc",
        "game_db/ods_user_event/dt=2025-09-01/hh=00/corrupt.parquet",
    ]
    assert (files[0].dt, files[0].hh) == ("2025-09-01", "00")
    tables = ref.compute(tmp_path)  # the corrupt files are read and skipped
    assert sorted(e["user_id"] for e in tables["dwd_user_event"]) == [1, 2]
    assert tables["dwd_user_details"] == []
    assert ref.compute(tmp_path / "nothing here")["ads_retention_daily"] == []


# --- comparing ---------------------------------------------------------------------------------------


def test_difference_is_exact_about_values_and_types() -> None:
    rows = [{"dt": "2025-09-01", "dau": 1, "share": 0.5}]
    assert ref.difference("t", rows, list(reversed(rows))) is None
    assert ref.difference("t", [{"x": float("nan")}], [{"x": float("nan")}]) is None
    message = ref.difference("ads_x", [{"dt": "2025-09-01", "dau": 1.0, "share": 0.5}], rows)
    assert message is not None and message.startswith("ads_x:")
    assert "only in the pipeline" in message and "dau: pipeline float, reference int" in message
    assert "only in the reference: {'dau': 1, 'dt': '2025-09-01', 'share': 0.5}" in message
