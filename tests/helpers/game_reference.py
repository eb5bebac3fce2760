"""The game seed (004) recomputed from the raw files in plain Python: the tests' independent reference.

It shares nothing with the pipeline: it walks the landing folder itself, reads each file with
pyarrow, and applies the seed's semantics (Spark SQL, steps 4.1, 4.2, 5.1) and the README's
clarifications row by row with datetime/zoneinfo/json/decimal, all days at once. It imports nothing
from the project, so a rule the models get wrong is not repeated here.

The rules, in the order a row meets them:

- Files: ``<root>/game_db/<table>/dt=YYYY-MM-DD/hh=HH/<file>.parquet|.orc``. Names starting with '.'
  or '_' (files and folders), other extensions, empty files, files outside that layout and files
  pyarrow cannot read are not data.
- Text: every column but user_id is UTF-8 bytes; bytes that are not UTF-8 are NULL.
- Casts the README leaves to the seed (profile columns) follow Spark's (non-ANSI) CAST: surrounding
  whitespace ignored; an integer is ``[+-]digits`` with an optional fraction that is cut off ('7.5' ->
  7); a double is a decimal number with an optional exponent, or NaN / Infinity; a date is
  ``YYYY-M-D`` optionally followed by ' ' or 'T' and anything (the time is dropped); anything else NULL.
- dwd_user_details: one row per user_id; the latest last_login_date wins, NULL dates last; ties go to
  the newest landing hour, then the greatest file path, then the smallest values (column by column in
  table order, NULLs last).
- dwd_user_event: event_type lower-cased; the timestamp, stripped of spaces, is 13 ASCII digits (epoch
  ms), 10 ASCII digits (epoch s) or exactly ``YYYY-MM-DD HH:MM:SS``; an epoch is the instant's wall
  time in the zone (the seed's FROM_UNIXTIME keeps whole seconds), text is wall time already; any
  other timestamp rejects the row. location is the event's unless NULL or '', else the profile's;
  amount is ``$.amount`` of event_details (strict JSON: no NaN literal; the first 'amount' key) when a
  number or a numeric string, else 0.0; gender and device_type are the profile's.
- ADS, per event_date within the daily partitions (first_day..last_day; the pipeline's are
  LAKEHOUSE_DAILY_START_DATE..tomorrow): distinct user_ids (NULL ids are not users, but their events
  still make the day exist); ratios are exact and rounded half away from zero (SQL ROUND on the
  seed's decimal arithmetic), NULL when dividing by zero.

  - ads_retention_daily: dau; users also active on d+1 / d+7; rates to 4 places.
  - ads_purchase_trends_daily: gmv = exact sum of the purchase amounts (each as DECIMAL(38, 9); NaN,
    infinite and out-of-range amounts left out), as a double, 0.0 without purchases; orders and
    paying_users count purchases with amount > 0 (SQL orders NaN above every number, so NaN counts);
    arppu = gmv / paying_users to 2 places, NULL without paying users.
  - ads_device_preference_daily: users per device_type (NULL -> 'unknown'), share of dau to 4 places.
  - ads_region_distribution_daily: location stripped of spaces, NULL/'' -> 'unknown'; province = text
    before the first '-', city = text after it, each stripped, 'unknown' when empty or absent.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq

NAMESPACE = "game_db"
PROFILE_TABLE = "ods_user_profile"
EVENT_TABLE = "ods_user_event"
ADS_TABLES = (
    "ads_retention_daily",
    "ads_purchase_trends_daily",
    "ads_device_preference_daily",
    "ads_region_distribution_daily",
)
COMPARED_TABLES = ("dwd_user_details", *ADS_TABLES)
"""What the pipeline must equal; `compute` also returns dwd_user_event (for tests of the reference)."""

DETAIL_COLUMNS = (
    "user_id",
    "gender",
    "os_version",
    "current_level",
    "device_type",
    "last_login_date",
    "favorite_game_mode",
    "language_preference",
    "active_time",
    "registration_date",
    "total_deaths",
    "game_hours",
    "location",
    "play_frequency",
)
TIE_COLUMNS = tuple(c for c in DETAIL_COLUMNS if c not in ("user_id", "last_login_date"))
INT_COLUMNS = ("current_level", "total_deaths")
DATE_COLUMNS = ("last_login_date", "registration_date")
DOUBLE_COLUMNS = ("game_hours",)
DATA_SUFFIXES = (".parquet", ".orc")
UNREADABLE = (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError)
"""What pyarrow raises for a file it cannot read: ArrowInvalid for a Parquet file without its magic
bytes, OSError for an undecodable Parquet footer or ORC postscript, ArrowNotImplementedError for an
encoding it does not know."""

DEFAULT_FIRST_DAY = dt.date(2020, 1, 1)
INT32 = (-(2**31), 2**31 - 1)
GMV_BOUND = Decimal(10) ** 29  # DECIMAL(38, 9) holds 29 integer digits
NINE_PLACES = Decimal("1e-9")
SPACES = " "
WHITESPACE = " \t\n\r\f\v"

EPOCH_MS = re.compile(r"[0-9]{13}")
EPOCH_S = re.compile(r"[0-9]{10}")
LOCAL_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
SPARK_INT = re.compile(r"([+-]?[0-9]+)(?:\.[0-9]*)?")
SPARK_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[dDfF]?")
SPARK_SPECIAL_DOUBLE = re.compile(r"([+-]?)(nan|inf|infinity)", re.IGNORECASE)
SPARK_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[ T].*)?", re.DOTALL)


# --- files -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawFile:
    path: str
    """Relative to the landing root, e.g. game_db/ods_user_event/dt=2025-09-01/hh=00/e.parquet."""
    full_path: Path
    dt: str
    hh: str


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _partition_value(name: str, prefix: str, fmt: str) -> str | None:
    """The value of a `dt=`/`hh=` folder if it is a zero-padded date/hour, else None."""
    if not name.startswith(prefix):
        return None
    value = name[len(prefix) :]
    try:
        parsed = dt.datetime.strptime(value, fmt)
    except ValueError:
        return None
    return value if parsed.strftime(fmt) == value else None


def raw_files(landing_root: str | Path, table: str) -> list[RawFile]:
    """The table's data files, in path order: junk, misplaced and empty files are left out."""
    location = str(landing_root).removeprefix("file://")
    if "://" in location:
        raise ValueError(f"the reference reads a local landing folder, not {location}")
    root = Path(location)
    base = root / NAMESPACE / table
    found: list[RawFile] = []
    if not base.is_dir():
        return found
    for dt_dir in sorted(base.iterdir()):
        dt_value = _partition_value(dt_dir.name, "dt=", "%Y-%m-%d")
        if _hidden(dt_dir.name) or not dt_dir.is_dir() or dt_value is None:
            continue
        for hh_dir in sorted(dt_dir.iterdir()):
            hh_value = _partition_value(hh_dir.name, "hh=", "%H")
            if _hidden(hh_dir.name) or not hh_dir.is_dir() or hh_value is None:
                continue
            for file in sorted(hh_dir.iterdir()):
                if _hidden(file.name) or not file.name.lower().endswith(DATA_SUFFIXES):
                    continue
                if not file.is_file() or file.stat().st_size == 0:
                    continue
                relative = f"{NAMESPACE}/{table}/{dt_dir.name}/{hh_dir.name}/{file.name}"
                found.append(RawFile(relative, file, dt_value, hh_value))
    return found


def read_file(file: RawFile) -> pa.Table | None:
    """The file's rows, or None if pyarrow cannot read it (a corrupt file is not data)."""
    try:
        if file.full_path.name.lower().endswith(".orc"):
            return orc.ORCFile(str(file.full_path)).read()
        return pq.ParquetFile(str(file.full_path)).read()
    except UNREADABLE:
        return None


def raw_rows(landing_root: str | Path, table: str) -> Iterator[tuple[RawFile, dict[str, Any]]]:
    for file in raw_files(landing_root, table):
        data = read_file(file)
        if data is not None:
            for row in data.to_pylist():
                yield file, row


# --- values ------------------------------------------------------------------------------------


def text(value: Any) -> str | None:
    """A raw text column: UTF-8 bytes (or already text); bytes that are not UTF-8 are NULL."""
    if value is None or isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return None


def cast_int(value: str | None) -> int | None:
    """Spark's CAST(text AS INT): whitespace ignored, a fraction cut off, NULL out of range."""
    match = SPARK_INT.fullmatch(value.strip(WHITESPACE)) if value is not None else None
    if match is None:
        return None
    number = int(match.group(1))
    return number if INT32[0] <= number <= INT32[1] else None


def cast_double(value: str | None) -> float | None:
    """Spark's CAST(text AS DOUBLE): a decimal number with optional exponent, or NaN/Infinity."""
    if value is None:
        return None
    stripped = value.strip(WHITESPACE)
    if SPARK_DOUBLE.fullmatch(stripped):
        return float(stripped.rstrip("dDfF"))
    special = SPARK_SPECIAL_DOUBLE.fullmatch(stripped)
    if special:
        return float(special.group(1) + ("nan" if special.group(2).lower() == "nan" else "inf"))
    return None


def cast_date(value: str | None) -> dt.date | None:
    """Spark's TO_DATE(text): YYYY-M-D, optionally followed by ' ' or 'T' and a time."""
    match = SPARK_DATE.fullmatch(value.strip(WHITESPACE)) if value is not None else None
    if match is None:
        return None
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def parse_timestamp(raw: str | None, zone: ZoneInfo) -> dt.datetime | None:
    """The event's local time, or None when the text is none of the three formats."""
    if raw is None:
        return None
    value = raw.strip(SPACES)
    if EPOCH_MS.fullmatch(value):
        seconds = int(value) // 1000  # FROM_UNIXTIME(ms / 1000) keeps whole seconds
    elif EPOCH_S.fullmatch(value):
        seconds = int(value)
    else:
        match = LOCAL_TIME.fullmatch(value)
        if match is None:
            return None
        try:
            year, month, day, hour, minute, second = (int(g) for g in match.groups())
            return dt.datetime(year, month, day, hour, minute, second)
        except ValueError:
            return None
    return dt.datetime.fromtimestamp(seconds, tz=zone).replace(tzinfo=None)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _first_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        found.setdefault(key, value)
    return found


def json_amount(details: str | None) -> float:
    """$.amount as a double: a JSON number or a numeric string; 0.0 when missing or malformed."""
    if details is None:
        return 0.0
    try:
        document = json.loads(
            details,
            parse_float=str,  # a number stays its text, as get_json_object returns it
            parse_int=str,
            parse_constant=_reject_constant,
            object_pairs_hook=_first_key,
        )
    except ValueError:  # json.JSONDecodeError, and the NaN/Infinity literals strict JSON lacks
        return 0.0
    if not isinstance(document, dict):
        return 0.0
    value = document.get("amount")
    if not isinstance(value, str):  # null, true/false, objects and arrays are not amounts
        return 0.0
    amount = cast_double(value)
    return 0.0 if amount is None else amount


def amount_as_decimal(amount: float) -> Decimal | None:
    """CAST(amount AS DECIMAL(38, 9)), or None for NaN, infinities and amounts beyond it."""
    if math.isnan(amount) or math.isinf(amount):
        return None
    value = Decimal(repr(amount)).quantize(NINE_PLACES, rounding=ROUND_HALF_UP)
    return value if abs(value) < GMV_BOUND else None


def is_paid(amount: float) -> bool:
    """amount > 0 in SQL, where NaN sorts above every number."""
    return math.isnan(amount) or amount > 0


def rounded(numerator: Fraction | Decimal | int, denominator: int, places: int) -> float | None:
    """ROUND(numerator / denominator, places), exactly, half away from zero; NULL for x / 0."""
    if denominator == 0:
        return None
    exact = Fraction(numerator) / denominator
    units = math.floor(abs(exact) * 10**places + Fraction(1, 2))
    return float(Decimal(units if exact >= 0 else -units).scaleb(-places))


# --- DWD -----------------------------------------------------------------------------------------


def _order_key(value: Any) -> tuple[Any, ...]:
    """Ascending with NULLs last (and NaN above every number, as SQL orders it)."""
    if value is None:
        return (1,)
    if isinstance(value, float) and math.isnan(value):
        return (0, 1, 0.0)
    return (0, 0, value)


def profile_row(row: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = {"user_id": row.get("user_id")}
    for column in DETAIL_COLUMNS[1:]:
        value = text(row.get(column))
        if column in INT_COLUMNS:
            decoded[column] = cast_int(value)
        elif column in DATE_COLUMNS:
            decoded[column] = cast_date(value)
        elif column in DOUBLE_COLUMNS:
            decoded[column] = cast_double(value)
        else:
            decoded[column] = value
    return decoded


def user_details(profiles: Iterable[tuple[RawFile, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per user_id (NULL too, as SQL groups it): the latest login, then the tie rules."""
    by_user: dict[Any, list[tuple[RawFile, dict[str, Any]]]] = defaultdict(list)
    for file, raw in profiles:
        row = profile_row(raw)
        by_user[row["user_id"]].append((file, row))
    details = []
    for candidates in by_user.values():
        dated = [c for c in candidates if c[1]["last_login_date"] is not None]
        if dated:
            latest = max(c[1]["last_login_date"] for c in dated)
            candidates = [c for c in dated if c[1]["last_login_date"] == latest]
        newest = max((f.dt, f.hh, f.path) for f, _ in candidates)
        candidates = [c for c in candidates if (c[0].dt, c[0].hh, c[0].path) == newest]
        _, winner = min(candidates, key=lambda c: tuple(_order_key(c[1][col]) for col in TIE_COLUMNS))
        details.append(winner)
    return details


def user_events(
    events: Iterable[tuple[RawFile, dict[str, Any]]], details: list[dict[str, Any]], zone: ZoneInfo
) -> list[dict[str, Any]]:
    """dwd_user_event: the events whose timestamp parses, with the profile's columns."""
    profile = {d["user_id"]: d for d in details if d["user_id"] is not None}
    kept = []
    for _, raw in events:
        event_ts = parse_timestamp(text(raw.get("timestamp")), zone)
        if event_ts is None:
            continue
        user_id = raw.get("user_id")
        matched = profile.get(user_id) if user_id is not None else None
        location = text(raw.get("location"))
        if location is None or location == "":
            location = matched["location"] if matched else None
        event_type = text(raw.get("event_type"))
        kept.append(
            {
                "user_id": user_id,
                "event_ts": event_ts,
                "event_date": event_ts.date(),
                "event_type": event_type.lower() if event_type is not None else None,
                "location": location,
                "amount": json_amount(text(raw.get("event_details"))),
                "gender": matched["gender"] if matched else None,
                "device_type": matched["device_type"] if matched else None,
            }
        )
    return kept


# --- ADS -----------------------------------------------------------------------------------------


def _users(events: list[dict[str, Any]]) -> set[int]:
    return {e["user_id"] for e in events if e["user_id"] is not None}


def region(location: str | None) -> tuple[str, str]:
    loc = location.strip(SPACES) if location is not None else ""
    if loc == "":
        return "unknown", "unknown"
    province, dash, city = loc.partition("-")
    return province.strip(SPACES) or "unknown", (city.strip(SPACES) if dash else "") or "unknown"


def retention(by_day: dict[dt.date, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    active = {day: _users(events) for day, events in by_day.items()}
    out = []
    for day in sorted(by_day):
        dau = len(active[day])
        d1 = len(active[day] & active.get(day + dt.timedelta(days=1), set()))
        d7 = len(active[day] & active.get(day + dt.timedelta(days=7), set()))
        out.append(
            {
                "dt": day.isoformat(),
                "dau": dau,
                "d1_retained": d1,
                "d1_retention_rate": rounded(d1, dau, 4),
                "d7_retained": d7,
                "d7_retention_rate": rounded(d7, dau, 4),
            }
        )
    return out


def purchase_trends(by_day: dict[dt.date, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for day in sorted(by_day):
        purchases = [e for e in by_day[day] if e["event_type"] == "purchase"]
        gmv = sum(
            (d for d in (amount_as_decimal(e["amount"]) for e in purchases) if d is not None), Decimal(0)
        )
        paid = [e for e in purchases if is_paid(e["amount"])]
        paying_users = len(_users(paid))
        out.append(
            {
                "dt": day.isoformat(),
                "gmv": float(gmv),
                "paying_users": paying_users,
                "orders": len(paid),
                "arppu": rounded(gmv, paying_users, 2),
            }
        )
    return out


def device_preference(by_day: dict[dt.date, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for day in sorted(by_day):
        dau = len(_users(by_day[day]))
        by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in by_day[day]:
            by_device[e["device_type"] if e["device_type"] is not None else "unknown"].append(e)
        for device, events in sorted(by_device.items()):
            users = len(_users(events))
            out.append(
                {
                    "dt": day.isoformat(),
                    "device_type": device,
                    "users": users,
                    "share": rounded(users, dau, 4),
                }
            )
    return out


def region_distribution(by_day: dict[dt.date, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for day in sorted(by_day):
        by_region: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for e in by_day[day]:
            by_region[region(e["location"])].append(e)
        for (province, city), events in sorted(by_region.items()):
            out.append(
                {"dt": day.isoformat(), "province": province, "city": city, "dau": len(_users(events))}
            )
    return out


# --- all of it -------------------------------------------------------------------------------------


def _as_date(value: dt.date | str | None, default: dt.date) -> dt.date:
    if value is None:
        return default
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def compute_rows(
    profiles: Iterable[tuple[RawFile, dict[str, Any]]],
    events: Iterable[tuple[RawFile, dict[str, Any]]],
    timezone: str = "UTC",
    first_day: dt.date | str | None = None,
    last_day: dt.date | str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every table from raw rows (each with the file it came from)."""
    zone = ZoneInfo(timezone)
    first = _as_date(first_day, DEFAULT_FIRST_DAY)
    last = _as_date(last_day, dt.date.today() + dt.timedelta(days=1))
    details = user_details(profiles)
    dwd_events = user_events(events, details, zone)
    by_day: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
    for e in dwd_events:
        if first <= e["event_date"] <= last:
            by_day[e["event_date"]].append(e)
    return {
        "dwd_user_details": details,
        "dwd_user_event": dwd_events,
        "ads_retention_daily": retention(by_day),
        "ads_purchase_trends_daily": purchase_trends(by_day),
        "ads_device_preference_daily": device_preference(by_day),
        "ads_region_distribution_daily": region_distribution(by_day),
    }


def compute(
    landing_root: str | Path,
    timezone: str = "UTC",
    first_day: dt.date | str | None = None,
    last_day: dt.date | str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """{table: rows} from every readable raw file under `landing_root` (a local folder).

    `first_day`..`last_day` are the daily partitions (default 2020-01-01..tomorrow, the pipeline's
    default); events of other days are in dwd_user_event but in no ADS table."""
    return compute_rows(
        raw_rows(landing_root, PROFILE_TABLE),
        raw_rows(landing_root, EVENT_TABLE),
        timezone,
        first_day,
        last_day,
    )


# --- comparing ---------------------------------------------------------------------------------------


class _NaN:
    """NaN as a value equal to itself, so that rows holding NaN compare equal."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NaN)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "nan"


def _canonical(value: Any) -> tuple[str, Any]:
    """A value with its type, so that 1 != 1.0 != '1' and NaN equals NaN."""
    if isinstance(value, float) and math.isnan(value):
        return ("float", _NaN())
    return (type(value).__name__, value)


def canonical_rows(rows: Iterable[dict[str, Any]]) -> list[tuple[tuple[str, tuple[str, Any]], ...]]:
    """Rows as sorted tuples of (column, (type, value)), for an exact, order-free comparison."""
    canon = [tuple(sorted((k, _canonical(v)) for k, v in row.items())) for row in rows]
    return sorted(canon, key=repr)


def difference(name: str, got: list[dict[str, Any]], want: list[dict[str, Any]], show: int = 5) -> str | None:
    """None if the tables hold the same rows (values and types), else what differs first."""
    got_canon, want_canon = canonical_rows(got), canonical_rows(want)
    if got_canon == want_canon:
        return None
    got_columns = sorted({k for row in got for k in row})
    want_columns = sorted({k for row in want for k in row})
    lines = [f"{name}: pipeline has {len(got)} rows, the reference {len(want)}"]
    if got and want and got_columns != want_columns:
        lines.append(f"  columns: pipeline {got_columns}, reference {want_columns}")
    remaining = list(want_canon)
    extra = []
    for row in got_canon:
        if row in remaining:
            remaining.remove(row)
        else:
            extra.append(row)
    lines += [f"  only in the pipeline:  {dict((k, v[1]) for k, v in row)}" for row in extra[:show]]
    lines += [f"  only in the reference: {dict((k, v[1]) for k, v in row)}" for row in remaining[:show]]
    types = [
        f"  {k}: pipeline {tg}, reference {tw}"
        for g, w in zip(extra, remaining, strict=False)
        for (k, (tg, _)), (_, (tw, _)) in zip(g, w, strict=False)
        if tg != tw and "NoneType" not in (tg, tw)
    ]
    if types:
        lines.append("  types differ:")
        lines += sorted(set(types))[:show]
    return "\n".join(lines)
