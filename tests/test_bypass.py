"""Attempts to get around grants and masking through SQL, in the spirit of Trino's column-mask tests.

RAM$alice holds role thirdparty: SELECT on iov.ads_vehicle_hourly_stat only, with `vin` masked by
MASKED_STRING_UNMASKED_BA(1, 1). Every attempt must either fail with a clear error or see masked
values only (no raw VIN, not even its hidden middle, anywhere in the result)."""

from __future__ import annotations

import pytest

from resources.engine import QueryError, ReadOnlyViolation
from resources.governance import PermissionDenied
from resources.lakehouse import Lakehouse
from tests.governed import ADS, ALICE, MASKED, VINS, assert_no_raw_vin, governed

__all__ = ["governed"]
RAW = VINS[0]

# (query, what alice must see): each row is checked for raw VINs as well.
SEES_MASKED = {
    "filter on the real value": (f"select * from {ADS} where vin = '{RAW}'", []),
    "LIKE on a real prefix": (f"select vin from {ADS} where vin like 'LSV%'", []),
    "regexp on the real value": (
        f"select count(*) as n from {ADS} where regexp_matches(vin, '^LSVAU')",
        [{"n": 0}],
    ),
    "range predicate on the real value": (
        f"select count(*) as n from {ADS} where vin between 'LSVAU2' and 'LSVAU3'",
        [{"n": 0}],
    ),
    "join with a literal list of real ids": (
        f"select a.vin from {ADS} a join (values ('{RAW}'), ('{VINS[1]}')) v(x) on a.vin = v.x",
        [],
    ),
    "IN list of real ids": (f"select vin from {ADS} where vin in ('{RAW}', '{VINS[2]}')", []),
    "GROUP BY the masked column": (
        f"select vin, count(*) as n from {ADS} group by vin order by vin",
        [{"vin": v, "n": 1} for v in sorted(MASKED.values())],
    ),
    "ORDER BY shows masked order only": (
        f"select vin from {ADS} order by vin desc",
        [{"vin": v} for v in sorted(MASKED.values(), reverse=True)],
    ),
    "substr of the hidden middle": (f"select distinct substr(vin, 2, 5) as s from {ADS}", [{"s": "*****"}]),
    "length is all that is left": (f"select distinct length(vin) as n from {ADS}", [{"n": 17}]),
    "aggregates": (
        f"select min(vin) as lo, max(vin) as hi, string_agg(vin, ',' order by vin) as s from {ADS}",
        [
            {
                "lo": "L***************4",
                "hi": "W***************7",
                "s": "L***************4,L***************7,W***************7",
            }
        ],
    ),
    "md5 of the masked column": (
        f"select count(*) as n from {ADS} where md5(vin) = md5('{RAW}')",
        [{"n": 0}],
    ),
    "CTE": (f"with x as (select vin from {ADS}) select count(*) as n from x where vin = '{RAW}'", [{"n": 0}]),
    "CTE named like the table": (
        f"with ads_vehicle_hourly_stat as (select * from {ADS}) select vin from ads_vehicle_hourly_stat where vin like 'LSV%'",
        [],
    ),
    "scalar subquery": (f"select (select max(vin) from {ADS}) as m", [{"m": "W***************7"}]),
    "EXISTS subquery": (
        f"select 1 as hit where exists (select 1 from {ADS} where vin = '{RAW}')",
        [],
    ),
    "UNION": (
        f"select vin from {ADS} where vin = '{RAW}' union all select vin from {ADS} where vin like 'W%' ",
        [{"vin": "W***************7"}],
    ),
    "recursive CTE over the column": (
        f"with recursive r(v, i) as (select min(vin), 0 from {ADS} union all select v, i + 1 from r where i < 1) "
        "select distinct v from r",
        [{"v": "L***************4"}],
    ),
    "the row as a struct": (f"select t from {ADS} t where t.vin like 'W%'", None),
    "FROM-first syntax": (f"from {ADS} select vin where vin like 'W%'", [{"vin": "W***************7"}]),
    "case-variant table name": (
        "select distinct VIN from IOV.ADS_VEHICLE_HOURLY_STAT where vin like 'W%'",
        [{"vin": "W***************7"}],
    ),
    "quoted identifiers": (
        'select distinct "vin" from "iov"."ads_vehicle_hourly_stat" where vin like \'W%\'',
        [{"vin": "W***************7"}],
    ),
    "window functions": (
        f"select distinct first_value(vin) over (order by vin) as f from {ADS}",
        [{"f": "L***************4"}],
    ),
    "PIVOT on the masked column (values become column names)": (
        f"select * from (pivot (select vin from {ADS}) on vin using count(*))",
        [{v: 1 for v in sorted(MASKED.values())}],
    ),
    "a comment hiding nothing": (
        f"select vin /* ; select 1 */ from {ADS} where vin like 'W%' -- ; attach 'x'",
        [{"vin": "W***************7"}],
    ),
    "sample": (
        f"select vin from {ADS} where vin like 'W%' using sample 100 percent (bernoulli)",
        [{"vin": "W***************7"}],
    ),
    "cast to blob and hex": (
        f"select distinct hex(vin::blob) as h from {ADS} where vin like 'W%'",
        [{"h": b"W***************7".hex().upper()}],
    ),
}


@pytest.mark.parametrize("case", list(SEES_MASKED))
def test_sees_only_masked_values(governed: Lakehouse, case: str) -> None:
    query, expected = SEES_MASKED[case]
    rows = governed.sql(query, user=ALICE).to_pylist()
    assert_no_raw_vin(rows)
    if expected is not None:
        assert rows == expected
    else:
        assert rows  # the query did return something, and it was checked for raw ids


# (query, error type, fragment of the message)
FAILS = {
    "query_table of the table": (
        f"select * from query_table('{ADS}')",
        ReadOnlyViolation,
        "query_table() is not allowed",
    ),
    "query() with SQL text": ("select * from query('select 1')", ReadOnlyViolation, "query() is not allowed"),
    "read_parquet of the warehouse": (
        "select * from read_parquet('/tmp/**/*.parquet')",
        ReadOnlyViolation,
        "read_parquet() is not allowed",
    ),
    "parquet_scan": ("select * from parquet_scan('x.parquet')", ReadOnlyViolation, "not allowed"),
    "read_csv": ("select * from read_csv('/etc/passwd')", ReadOnlyViolation, "read_csv"),
    "read_csv_auto": ("select * from read_csv_auto('/etc/passwd')", ReadOnlyViolation, "not allowed"),
    "glob": ("select * from glob('/tmp/*')", ReadOnlyViolation, "glob() is not allowed"),
    "read_text as a scalar subquery": (
        "select (select content from read_text('/etc/hostname')) as c",
        ReadOnlyViolation,
        "read_text() is not allowed",
    ),
    "parquet_metadata": ("select * from parquet_metadata('x.parquet')", ReadOnlyViolation, "not allowed"),
    "a URL": ("select * from 'https://example.com/x.parquet'", QueryError, "must be qualified"),
    "a file path as table": ("select * from '/etc/passwd'", QueryError, "must be qualified"),
    "getenv for the salt": (
        "select getenv('LAKEHOUSE_MASKING_SALT') as s",
        ReadOnlyViolation,
        "getenv() is not allowed",
    ),
    "current_setting": (
        "select current_setting('enable_external_access') as s",
        ReadOnlyViolation,
        "current_setting() is not allowed",
    ),
    "ATTACH": ("attach '/tmp/x.db' as x", ReadOnlyViolation, "only read-only queries"),
    "COPY TO": (f"copy (select * from {ADS}) to '/tmp/out.csv'", ReadOnlyViolation, "only read-only queries"),
    "INSTALL": ("install httpfs", ReadOnlyViolation, "only read-only queries"),
    "LOAD": ("load httpfs", ReadOnlyViolation, "only read-only queries"),
    "SET": ("set enable_external_access = true", ReadOnlyViolation, "only read-only queries"),
    "RESET": ("reset lock_configuration", ReadOnlyViolation, "only read-only queries"),
    "PRAGMA": ("pragma database_list", ReadOnlyViolation, "only read-only queries"),
    "CALL": ("call pragma_version()", ReadOnlyViolation, "only read-only queries"),
    "EXPLAIN": (f"explain select * from {ADS}", ReadOnlyViolation, "only read-only queries"),
    "DESCRIBE": (f"describe {ADS}", ReadOnlyViolation, "only read-only queries"),
    "SUMMARIZE": (f"summarize {ADS}", ReadOnlyViolation, "only read-only queries"),
    "SHOW TABLES": ("show tables", ReadOnlyViolation, "only read-only queries"),
    "CREATE TABLE AS": (
        f"create table x as select * from {ADS}",
        ReadOnlyViolation,
        "only read-only queries",
    ),
    "INSERT": (f"insert into {ADS} select * from {ADS}", ReadOnlyViolation, "only read-only queries"),
    "DELETE": (f"delete from {ADS}", ReadOnlyViolation, "only read-only queries"),
    "PREPARE": (f"prepare p as select * from {ADS}", ReadOnlyViolation, "only read-only queries"),
    "two statements": (f"select 1; select * from {ADS}", ReadOnlyViolation, "exactly one statement"),
    "a statement after a comment": (
        "select 1 -- harmless\n; attach '/tmp/x.db'",
        ReadOnlyViolation,
        "exactly one statement",
    ),
    "duckdb_tables()": ("select * from duckdb_tables()", ReadOnlyViolation, "duckdb_tables() is not allowed"),
    "duckdb_views() with view SQL": (
        "select sql from duckdb_views()",
        ReadOnlyViolation,
        "duckdb_views() is not allowed",
    ),
    "duckdb_settings()": ("select * from duckdb_settings()", ReadOnlyViolation, "not allowed"),
    "information_schema": (
        "select * from information_schema.tables",
        PermissionDenied,
        "no CreateInstance on project information_schema",
    ),
    "pg_catalog": ("select * from pg_catalog.pg_class", PermissionDenied, "pg_catalog"),
    "the registered raw alias": ("select * from __source_0", QueryError, "must be qualified"),
    "the registered alias in main": (
        "select * from main.__source_0",
        PermissionDenied,
        "no CreateInstance on project main",
    ),
    "time travel AT VERSION": (f"select * from {ADS} AT (VERSION => 1)", QueryError, "time travel"),
    "time travel FOR SYSTEM_TIME": (
        f"select * from {ADS} for system_time as of '2020-01-01'",
        QueryError,
        "",
    ),
    "a snapshot-suffixed name": (
        'select * from iov."ads_vehicle_hourly_stat@1"',
        PermissionDenied,
        "no SELECT",
    ),
    "system tables": ("select * from lakehouse.files", PermissionDenied, "system tables are the owner's"),
    "the audit log": ("select * from lakehouse.audit", PermissionDenied, "system tables are the owner's"),
    "grants": ("select * from lakehouse.grants", PermissionDenied, "system tables are the owner's"),
    "an ungranted table": (
        "select vin from iov.dwd_vehicle_gps",
        PermissionDenied,
        "no SELECT on table iov.dwd_vehicle_gps",
    ),
    "an ungranted table in a subquery": (
        f"select * from {ADS} where vin in (select vin from iov.ods_vehicle_gps_raw)",
        PermissionDenied,
        "no SELECT on table iov.ods_vehicle_gps_raw",
    ),
    "an ungranted table in a CTE": (
        "with x as (select * from iov.dwd_vehicle_gps) select 1 from x",
        PermissionDenied,
        "iov.dwd_vehicle_gps",
    ),
    "a homoglyph namespace": (
        "select * from іov.ads_vehicle_hourly_stat",
        PermissionDenied,
        "no CreateInstance",
    ),  # Cyrillic і
    "a homoglyph table": (
        "select * from iov.ads_vehiсle_hourly_stat",
        PermissionDenied,
        "no SELECT",
    ),  # Cyrillic с
}


@pytest.mark.parametrize("case", list(FAILS))
def test_fails_clearly(governed: Lakehouse, case: str) -> None:
    query, error, fragment = FAILS[case]
    with pytest.raises(error) as info:
        governed.sql(query, user=ALICE)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value).strip() or error is QueryError
    for vin in VINS:
        assert vin not in str(info.value)


def test_a_role_the_user_does_not_hold(governed: Lakehouse) -> None:
    with pytest.raises(PermissionDenied, match="does not exist|does not hold"):
        governed.sql(f"select * from {ADS}", user=ALICE, role="admin")


def test_unqualified_names_resolve_only_in_the_project(governed: Lakehouse) -> None:
    rows = governed.sql(
        "select distinct vin from ads_vehicle_hourly_stat where vin like 'W%'", user=ALICE, project="iov"
    )
    assert rows.to_pylist() == [{"vin": "W***************7"}]
    with pytest.raises(PermissionDenied, match="no SELECT on table iov.__source_0"):
        governed.sql("select * from __source_0", user=ALICE, project="iov")
    with pytest.raises(PermissionDenied, match="no SELECT on table iov./etc/passwd"):
        governed.sql("select * from '/etc/passwd'", user=ALICE, project="iov")


def test_the_hash_salt_never_shows(governed: Lakehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    from resources.policy import apply_policy

    salt = "pepper-that-must-never-leak-0123456789"
    monkeypatch.setenv("LAKEHOUSE_MASKING_SALT", salt)
    apply_policy(
        governed,
        "CREATE ROLE hashonly; ADD USER dave; GRANT hashonly TO dave;"
        "GRANT CreateInstance ON PROJECT iov TO ROLE hashonly;"
        "GRANT SELECT ON TABLE ads_vehicle_hourly_stat TO ROLE hashonly;"
        "CREATE DATA MASKING POLICY hash_only TO ROLE (hashonly) USING MASKED_HASH();"
        "APPLY DATA MASKING POLICY hash_only BIND TO TABLE ads_vehicle_hourly_stat COLUMN vin;",
        "iov",
    )
    rows = governed.sql(f"select vin, vin || '' as v2 from {ADS}", user="dave").to_pylist()
    assert_no_raw_vin(rows)
    assert all(len(r["vin"]) == 64 for r in rows)
    for attempt in ("select getenv('LAKEHOUSE_MASKING_SALT')", "select * from duckdb_views()"):
        with pytest.raises(ReadOnlyViolation) as info:
            governed.sql(attempt, user="dave")
        assert salt not in str(info.value)
    owner_views = governed.sql("select * from lakehouse.masking_policies").to_pylist()
    audit = governed.sql("select * from lakehouse.audit").to_pylist()
    assert salt not in str(owner_views) + str(audit)
