"""Governance: the policy statements (parsing, atomic and idempotent apply, audit trail), the masking
functions, and enforcement on every path: `sql`, `read_table`, the CLI, and asset metadata."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from lakehouse.facade import Lakehouse
from lakehouse.governance import store as g
from lakehouse.governance.masking import MaskingError, mask_array, masking_salt, validate
from lakehouse.governance.policy_apply import apply_policy
from lakehouse.governance.policy_parser import PolicyError, parse
from lakehouse.governance.store import PermissionDenied
from tests.helpers.governed import ADS, ALICE, MASKED, SEED_POLICY, VINS, assert_no_raw_vin, governed

__all__ = ["governed"]

# --- masking functions (pure) ------------------------------------------------------------------


def masked(
    values: list, function: str, *args: object, type_: pa.DataType | None = None, salt: bytes = b"s"
) -> list:
    name, canonical = validate(function, args)
    return mask_array(pa.array(values, type=type_), name, canonical, salt).to_pylist()


@pytest.mark.parametrize(
    ("value", "m", "n", "expected"),
    [
        ("LSVAU2180N2183294", 1, 1, "L***************4"),
        ("VIN001", 1, 1, "V****1"),
        ("ab", 1, 1, "ab"),  # length <= m + n: unchanged
        ("abc", 1, 1, "a*c"),
        ("", 1, 1, ""),
        ("京A12345Z", 1, 1, "京******Z"),  # by character, not byte
        ("abcdef", 2, 0, "ab****"),
        ("abcdef", 0, 3, "***def"),
        (None, 1, 1, None),
    ],
)
def test_masked_string_unmasked_ba(value: str | None, m: int, n: int, expected: str | None) -> None:
    assert masked([value], "MASKED_STRING_UNMASKED_BA", m, n, type_=pa.string()) == [expected]


def test_other_masking_functions() -> None:
    assert masked(["abcdef", "ab"], "masked_string_masked_ba", 1, 1) == ["*bcde*", "**"]
    assert masked(["secret", None], "MASKED_ALL") == ["***", None]
    assert masked([12.5], "MASKED_ALL") == [0.0]
    assert masked(["x", "y"], "MASKED_NULL") == [None, None]
    ts = [dt.datetime(2025, 9, 17, 23, 41, 7)]
    assert masked(ts, "MASKED_DATE_ROUND", "month") == [dt.datetime(2025, 9, 1)]
    assert masked(ts, "MASKED_DATE_ROUND", "YEAR") == [dt.datetime(2025, 1, 1)]
    assert masked([dt.date(2025, 9, 17)], "MASKED_DATE_ROUND", "MONTH") == [dt.date(2025, 9, 1)]
    assert masked([1234.5678, 1250], "MASKED_NUMBER_ROUND", -2, type_=pa.float64()) == [1200.0, 1300.0]
    assert masked([1234.5678], "MASKED_NUMBER_ROUND", 1) == [1234.6]
    assert masked([1234], "MASKED_NUMBER_ROUND", -1, type_=pa.int64()) == [1230]


def test_masked_hash_is_keyed_stable_and_hides_the_value() -> None:
    first = masked(["VIN001", "VIN001", "VIN002"], "MASKED_HASH", salt=b"one")
    assert first[0] == first[1] != first[2] and len(first[0]) == 64
    assert masked(["VIN001"], "MASKED_HASH", salt=b"two")[0] != first[0]  # the salt matters
    import hashlib

    assert first[0] != hashlib.sha256(b"VIN001").hexdigest()  # not a plain, guessable hash


@pytest.mark.parametrize(
    ("function", "args", "reason"),
    [
        ("MASKED_NOPE", (), "unknown masking function"),
        ("MASKED_STRING_UNMASKED_BA", (1,), "takes 2 argument"),
        ("MASKED_STRING_UNMASKED_BA", (-1, 1), "whole numbers >= 0"),
        ("MASKED_DATE_ROUND", ("WEEK",), "unit must be one of"),
    ],
)
def test_bad_masking_calls(function: str, args: tuple, reason: str) -> None:
    with pytest.raises(MaskingError, match=reason):
        validate(function, args)


def test_masking_a_wrong_type_fails() -> None:
    with pytest.raises(MaskingError, match="cannot mask a column of type double"):
        mask_array(pa.array([1.0]), "MASKED_STRING_UNMASKED_BA", (1, 1), None)


def test_salt_from_env_or_a_private_file(tmp_path: Path) -> None:
    assert masking_salt(str(tmp_path), {"LAKEHOUSE_MASKING_SALT": "pepper"}) == b"pepper"
    first = masking_salt(str(tmp_path), {})
    assert first == masking_salt(str(tmp_path), {}) and len(first) == 64
    mode = stat.S_IMODE(os.stat(tmp_path / "masking_salt").st_mode)
    assert mode == 0o600


# --- parsing (pure) ----------------------------------------------------------------------------


def test_the_seed_statements_parse_verbatim() -> None:
    statements = parse(SEED_POLICY.read_text(), "seed.sql")
    assert [s.action for s in statements] == [
        "create_role", "grant", "grant", "add_user", "grant_role", "setproject", "create_policy", "bind",
    ]  # fmt: skip
    assert statements[1].args["privileges"] == ["CreateInstance", "List"]
    assert statements[3].args["user"] == ALICE
    policy = statements[6].args
    assert (policy["policy"], policy["roles"], policy["function"], policy["fargs"]) == (
        "masking_vin", ["thirdparty"], "MASKED_STRING_UNMASKED_BA", [1, 1],
    )  # fmt: skip
    assert statements[7].line == 22


def test_statements_are_case_insensitive_and_comments_are_ignored() -> None:
    text = "create role R1; -- a comment; with a semicolon\n  Grant select ON table iov.t TO role r1 ;"
    first, second = parse(text)
    assert first.args == {"role": "r1"} and second.args["subject"] == ("role", "r1") and second.line == 2


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("CREATE ROLE a;\nGRANT SELECT ON VIEW t TO ROLE a", "f.sql:2: expected PROJECT or TABLE after ON"),
        ("CREATE ROLE a;\n\nDELETE FROM t;", "f.sql:3: unknown statement 'DELETE'"),
        (
            "CREATE DATA MASKING POLICY p TO ROLE (a) USING MASKED_FOO(1);",
            "f.sql:1: unknown masking function",
        ),
        ("CREATE ROLE a b;", "f.sql:1: unexpected 'b'"),
        ("SHOW GRANTS;", "lakehouse policy show"),
        ("CREATE ROLE 'a;", "unterminated quote"),
    ],
)
def test_parse_errors_name_the_line(text: str, where: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse(text, "f.sql")
    assert where in str(info.value)


# --- applying, against a real lakehouse ---------------------------------------------------------


def _count(lh: Lakehouse, table: sa.Table) -> int:
    with g.GovernanceDB(lh.settings.catalog_uri).engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_the_seed_applies_idempotently_with_an_audit_trail(governed: Lakehouse) -> None:
    # Other tests of the module add their own changes to the shared lakehouse: look at the seed's.
    def seed_trail() -> list[dict]:
        rows = governed.sql("select source, change, actor from lakehouse.policy_changes order by id")
        return [r for r in rows.to_pylist() if r["source"].rsplit(":", 1)[0] == str(SEED_POLICY)]

    assert len(seed_trail()) == 9  # the module fixture applied the seed once: 9 changes
    changes = _count(governed, g.changes_t)
    report = apply_policy(governed, SEED_POLICY.read_text(), "iov", "again.sql")
    assert report.statements == 8 and report.changes == []
    assert _count(governed, g.changes_t) == changes
    trail = seed_trail()
    assert trail[-1]["source"].endswith("iov_thirdparty.sql:22")
    assert trail[-1]["change"] == "bound masking policy masking_vin to iov.ads_vehicle_hourly_stat.vin"


def test_a_failing_statement_applies_nothing(governed: Lakehouse) -> None:
    before = {t.name: _count(governed, t) for t in g.metadata.sorted_tables}
    text = "CREATE ROLE analysts;\nGRANT SELECT ON TABLE iov.nope TO ROLE analysts;"
    with pytest.raises(PolicyError, match=r"bad\.sql:2: table iov.nope does not exist"):
        apply_policy(governed, text, "iov", "bad.sql")
    assert {t.name: _count(governed, t) for t in g.metadata.sorted_tables} == before
    with pytest.raises(PolicyError, match="has no column 'vim'"):
        apply_policy(
            governed,
            "APPLY DATA MASKING POLICY masking_vin BIND TO TABLE ads_vehicle_hourly_stat COLUMN vim;",
            "iov",
        )
    with pytest.raises(PolicyError, match="cannot mask iov.ads_vehicle_hourly_stat.avg_speed of type double"):
        apply_policy(
            governed,
            "APPLY DATA MASKING POLICY masking_vin BIND TO TABLE ads_vehicle_hourly_stat COLUMN avg_speed;",
            "iov",
        )
    with pytest.raises(PolicyError, match="role 'ghost' does not exist"):
        apply_policy(governed, "GRANT SELECT ON TABLE ads_vehicle_hourly_stat TO ROLE ghost;", "iov")
    with pytest.raises(PolicyError, match="privilege 'Write' on a project is not supported"):
        apply_policy(governed, "GRANT Write ON PROJECT iov TO ROLE thirdparty;", "iov")
    with pytest.raises(PolicyError, match="already exists with another definition"):
        apply_policy(
            governed,
            "CREATE DATA MASKING POLICY IF NOT EXISTS masking_vin TO ROLE (thirdparty) USING MASKED_ALL();",
            "iov",
        )
    assert {t.name: _count(governed, t) for t in g.metadata.sorted_tables} == before


def test_owner_sees_real_ids_and_alice_masked_ones(governed: Lakehouse) -> None:
    owner = governed.sql(f"select vin from {ADS} order by vin").column("vin").to_pylist()
    assert sorted(set(owner)) == sorted(VINS)
    alice = governed.sql(f"select vin from {ADS} order by vin", user=ALICE).column("vin").to_pylist()
    assert sorted(set(alice)) == sorted(MASKED.values())
    # the seed's own query, unqualified in the seed's project
    seed = governed.sql(
        "SELECT * FROM ads_vehicle_hourly_stat ORDER BY stat_hour DESC", user=ALICE, project="iov"
    )
    assert set(seed.column("vin").to_pylist()) == set(MASKED.values())
    assert seed.num_rows == len(VINS)
    assert_no_raw_vin(seed.to_pylist())
    # the same user without the RAM$ prefix, any case
    assert set(governed.sql(f"select vin from {ADS}", user="ALICE").column("vin").to_pylist()) == set(
        MASKED.values()
    )


def test_permissions(governed: Lakehouse) -> None:
    with pytest.raises(
        PermissionDenied, match=r"RAM\$alice \(role thirdparty\) has no SELECT on table iov.dwd_vehicle_gps"
    ):
        governed.sql("select * from iov.dwd_vehicle_gps", user=ALICE)
    with pytest.raises(PermissionDenied, match="no SELECT on table iov.ods_vehicle_gps_raw"):
        governed.sql(f"select * from {ADS} a join iov.ods_vehicle_gps_raw o using (vin)", user=ALICE)
    with pytest.raises(PermissionDenied, match="user 'bob' does not exist"):
        governed.sql(f"select * from {ADS}", user="bob")
    apply_policy(governed, "CREATE ROLE auditors;", "iov")
    with pytest.raises(PermissionDenied, match=r"user 'RAM\$alice' does not hold role 'auditors'"):
        governed.sql(f"select * from {ADS}", user=ALICE, role="auditors")
    # the owner previewing a role sees what the role sees
    preview = governed.sql(f"select distinct vin from {ADS}", role="thirdparty").column("vin").to_pylist()
    assert set(preview) == set(MASKED.values())


def test_revoke_unbind_and_drop_take_effect_at_once(governed: Lakehouse) -> None:
    try:
        apply_policy(governed, "REVOKE SELECT ON TABLE ads_vehicle_hourly_stat FROM ROLE thirdparty;", "iov")
        with pytest.raises(PermissionDenied, match="no SELECT on table iov.ads_vehicle_hourly_stat"):
            governed.sql(f"select * from {ADS}", user=ALICE)
        with pytest.raises(PermissionDenied):
            governed.read_table(ADS, user=ALICE)
        apply_policy(governed, SEED_POLICY.read_text(), "iov")
        apply_policy(
            governed,
            "APPLY DATA MASKING POLICY masking_vin UNBIND FROM TABLE ads_vehicle_hourly_stat COLUMN vin;",
            "iov",
        )
        assert set(governed.sql(f"select vin from {ADS}", user=ALICE).column("vin").to_pylist()) == set(VINS)
        apply_policy(governed, SEED_POLICY.read_text(), "iov")
        assert set(governed.sql(f"select vin from {ADS}", user=ALICE).column("vin").to_pylist()) == set(
            MASKED.values()
        )
        apply_policy(governed, "DROP DATA MASKING POLICY masking_vin;", "iov")
        assert set(governed.sql(f"select vin from {ADS}", user=ALICE).column("vin").to_pylist()) == set(VINS)
        apply_policy(governed, "REVOKE thirdparty FROM RAM$alice;", "iov")
        with pytest.raises(PermissionDenied, match="has no CreateInstance on project iov"):
            governed.sql(f"select * from {ADS}", user=ALICE)
    finally:
        apply_policy(governed, SEED_POLICY.read_text(), "iov")
    assert set(governed.sql(f"select vin from {ADS}", user=ALICE).column("vin").to_pylist()) == set(
        MASKED.values()
    )


def test_masking_can_be_switched_off_per_project_and_other_functions_apply(governed: Lakehouse) -> None:
    hashed = (
        "CREATE DATA MASKING POLICY hash_vin TO ROLE (hashers) USING MASKED_HASH();"
        "APPLY DATA MASKING POLICY hash_vin BIND TO TABLE ads_vehicle_hourly_stat COLUMN vin;"
        "CREATE DATA MASKING POLICY round_speed TO ROLE (hashers) USING MASKED_NUMBER_ROUND(-1);"
        "APPLY DATA MASKING POLICY round_speed BIND TO TABLE ads_vehicle_hourly_stat COLUMN avg_speed;"
    )
    apply_policy(
        governed,
        "CREATE ROLE hashers; ADD USER carol; GRANT hashers TO carol;"
        "GRANT CreateInstance ON PROJECT iov TO ROLE hashers;"
        "GRANT SELECT ON TABLE ads_vehicle_hourly_stat TO ROLE hashers;" + hashed,
        "iov",
    )
    rows = governed.sql(f"select vin, avg_speed from {ADS}", user="carol").to_pylist()
    assert all(len(r["vin"]) == 64 for r in rows) and {r["avg_speed"] for r in rows} <= {40.0, 50.0}
    assert_no_raw_vin(rows)
    # alice holds thirdparty only: her mask is unchanged by carol's policies
    assert set(governed.sql(f"select vin from {ADS}", user=ALICE).column("vin").to_pylist()) == set(
        MASKED.values()
    )
    try:
        apply_policy(governed, "setproject odps.data.masking.policy.enable=false;", "iov")
        assert set(governed.sql(f"select vin from {ADS}", user=ALICE).column("vin").to_pylist()) == set(VINS)
    finally:
        apply_policy(governed, "setproject odps.data.masking.policy.enable=true;", "iov")
    assert set(governed.sql(f"select vin from {ADS}", user=ALICE).column("vin").to_pylist()) == set(
        MASKED.values()
    )


def test_read_table_is_governed_too(governed: Lakehouse) -> None:
    table = governed.read_table(ADS, user=ALICE, columns=["vin", "avg_speed"])
    assert table.column_names == ["vin", "avg_speed"]
    assert set(table.column("vin").to_pylist()) == set(MASKED.values())
    assert set(governed.read_table(ADS).column("vin").to_pylist()) == set(VINS)  # the owner
    with pytest.raises(PermissionDenied, match="no SELECT on table iov.dwd_vehicle_gps"):
        governed.read_table("iov.dwd_vehicle_gps", user=ALICE)


def test_every_governed_access_is_audited(governed: Lakehouse) -> None:
    governed.sql(f"select vin from {ADS} where avg_speed > 0", user=ALICE)
    with pytest.raises(PermissionDenied):
        governed.sql("select * from iov.dwd_vehicle_gps", user=ALICE)
    governed.read_table(ADS, user=ALICE)
    audit = governed.sql("select * from lakehouse.audit order by id desc limit 3").to_pylist()
    read, denied, query = audit
    assert (query["user_name"], query["roles"], query["kind"], query["status"]) == (
        ALICE,
        "thirdparty",
        "query",
        "ok",
    )
    assert query["tables"] == ADS and query["rows"] == len(VINS)
    assert query["masked_columns"] == f"{ADS}.vin:MASKED_STRING_UNMASKED_BA"
    assert denied["status"] == "denied" and "no SELECT on table iov.dwd_vehicle_gps" in denied["reason"]
    assert read["kind"] == "read_table" and read["rows"] == len(VINS)
    assert isinstance(query["at"], dt.datetime)
    with pytest.raises(PermissionDenied, match="system table lakehouse.audit"):
        governed.sql("select * from lakehouse.audit", user=ALICE)


def test_asset_metadata_shows_masked_columns(governed: Lakehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse_assets.definitions import build_definitions

    monkeypatch.setenv("LAKEHOUSE_HOME", governed.settings.home)
    monkeypatch.setenv("LAKEHOUSE_TABLE_FORMAT", governed.settings.table_format)
    for name in ("LAKEHOUSE_CATALOG_URI", "LAKEHOUSE_WAREHOUSE_URI", "LAKEHOUSE_LANDING_URI"):
        monkeypatch.delenv(name, raising=False)
    defs = build_definitions(governed.settings)
    import dagster as dg

    ads = defs.resolve_assets_def(dg.AssetKey(["iov", "ads_vehicle_hourly_stat"]))
    metadata = ads.specs_by_key[dg.AssetKey(["iov", "ads_vehicle_hourly_stat"])].metadata
    table = metadata["governance/masked_columns"].value
    assert "| vin | thirdparty | MASKED_STRING_UNMASKED_BA(1, 1) | masking_vin |" in table
    assert "vin" in metadata["governance/masked_column_names"].value
    assert "role thirdparty" in metadata["governance/readers"].value
    ods = defs.resolve_assets_def(dg.AssetKey(["iov", "ods_vehicle_gps_raw"]))
    assert (
        ods.specs_by_key[dg.AssetKey(["iov", "ods_vehicle_gps_raw"])]
        .metadata["governance/masked_columns"]
        .value
        == "no masked columns"
    )


def test_masking_metadata_tolerates_a_missing_catalog(tmp_path: Path) -> None:
    from lakehouse.core.ids import TableId
    from lakehouse.core.settings import LakehouseSettings
    from lakehouse_assets.metadata import governance_metadata

    settings = LakehouseSettings.for_home(tmp_path / "nothing-here")
    assert governance_metadata(TableId("iov", "t"), settings) == {}
    assert not (tmp_path / "nothing-here").exists()


def test_cli_policy_sql_and_audit(governed: Lakehouse, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lakehouse.cli.main import main
    from tests.helpers.env import UNSET

    env: dict[str, str | None] = {k: None for k in UNSET}
    env.update(LAKEHOUSE_HOME=governed.settings.home, LAKEHOUSE_TABLE_FORMAT=governed.settings.table_format)
    run = CliRunner()
    again = run.invoke(main, ["policy", "apply", str(SEED_POLICY), "--project", "iov"], env=env)
    assert again.exit_code == 0 and again.stdout.strip() == "8 statement(s), 0 change(s)"
    alice = run.invoke(
        main,
        ["sql", f"select distinct vin from {ADS} order by vin", "--user", ALICE, "--format", "json"],
        env=env,
    )
    assert alice.exit_code == 0, alice.stderr
    assert [r["vin"] for r in json.loads(alice.stdout)] == sorted(MASKED.values())
    denied = run.invoke(main, ["sql", "select * from iov.dwd_vehicle_gps", "--user", ALICE], env=env)
    assert denied.exit_code != 0 and denied.stdout == ""
    assert denied.stderr.strip().splitlines() == [
        "Error: PermissionDenied: RAM$alice (role thirdparty) has no SELECT on table iov.dwd_vehicle_gps"
    ]
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE ROLE x;\nGRANT SELECT ON TABLE nope TO ROLE x;\n")
    failed = run.invoke(main, ["policy", "apply", str(bad), "--project", "iov"], env=env)
    assert failed.exit_code != 0 and f"{bad}:2: table iov.nope does not exist" in failed.stderr
    shown = run.invoke(main, ["policy", "show", "masking", "--format", "json"], env=env)
    [policy] = [p for p in json.loads(shown.stdout) if p["name"] == "masking_vin"]
    assert policy["bound_to"] == "iov.ads_vehicle_hourly_stat.vin"
    audit = run.invoke(main, ["audit", "--limit", "2", "--format", "json"], env=env)
    assert [r["status"] for r in json.loads(audit.stdout)] == ["denied", "ok"]
