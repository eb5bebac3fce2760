"""SQL models (one file per table, deps parsed from the SELECT) and the read-only query guard."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings
from lakehouse.engines.base import QueryError, ReadOnlyViolation
from lakehouse.engines.sql import ensure_read_only, referenced_tables
from lakehouse.models.parser import MODELS_ROOT, load_models, parse_model
from lakehouse.models.spec import ModelError
from lakehouse_assets.definitions import build_definitions
from tests.helpers.pipeline import Pipeline, gps

ODS = TableId("iov", "ods_vehicle_gps_raw")
DWD = TableId("iov", "dwd_vehicle_gps")
ADS = TableId("iov", "ads_vehicle_hourly_stat")

DAILY_COUNT = """\
/* ---
description: Reports per vehicle and hour.
columns:
  vin:     {type: string, description: Vehicle}
  reports: {type: bigint, description: Number of valid reports}
checks:
  - unique: [vin]
  - not_null: [vin, reports]
--- */

select vin, count(*) as reports
from dwd_vehicle_gps
where dt = $dt and hh = $hh
group by vin
"""


def write_model(root: Path, relpath: str, header: str, sql: str = "select vin from dwd_vehicle_gps") -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"/* ---\n{textwrap.dedent(header).strip()}\n--- */\n\n{sql}\n")
    return path


# --- the real models ----------------------------------------------------------------------------


def test_the_real_models_load_in_dependency_order() -> None:
    models = load_models()
    tables = [m.table for m in models]
    assert {t for t in tables if t.namespace == "iov"} == {DWD, ADS}
    assert tables.index(DWD) < tables.index(ADS)
    game = [t.name for t in tables if t.namespace == "game_db"]
    assert (
        game.index("dwd_user_details") < game.index("dwd_user_event") < game.index("dws_user_activity_daily")
    )
    assert game.index("dws_user_activity_daily") < game.index("ads_retention_daily")


def test_ads_models_declare_partition_metrics_and_a_preview() -> None:
    models = {m.table: m for m in load_models()}
    ads = [m for m in models.values() if m.layer == "ads"]
    assert ads and all(m.metrics and m.preview_rows == 5 for m in ads)
    assert [(m.name, m.sql) for m in models[ADS].metrics] == [
        ("fleet_km", "coalesce(sum(total_distance), 0)")
    ]
    assert models[DWD].preview_rows == 0 and not models[DWD].metrics


def test_deps_are_parsed_from_the_sql() -> None:
    models = {m.table: m for m in load_models()}
    assert models[DWD].deps == (ODS,)
    assert models[ADS].deps == (DWD,)  # its CTEs (ordered, with_prev, steps) are not tables
    assert models[DWD].layer == "dwd" and models[ADS].layer == "ads"
    assert models[DWD].rejected_table == TableId("iov", "dwd_vehicle_gps_rejected")
    assert models[DWD].reconcile_with == ODS


def test_model_columns_come_from_the_header() -> None:
    ads = {m.table: m for m in load_models()}[ADS]
    assert [(c.name, c.type) for c in ads.columns] == [
        ("vin", "string"),
        ("stat_hour", "string"),
        ("total_distance", "double"),
        ("avg_speed", "double"),
    ]
    assert ads.arrow_schema().names == ["vin", "stat_hour", "total_distance", "avg_speed"]


def test_a_qualified_dependency_keeps_its_namespace(tmp_path: Path) -> None:
    path = write_model(
        tmp_path,
        "iov/ads_joined.sql",
        "columns: {vin: string}",
        "select g.vin from dwd_vehicle_gps g join fleet.dim_vehicle v on g.vin = v.vin",
    )
    assert parse_model(path, "iov").deps == (DWD, TableId("fleet", "dim_vehicle"))


def test_cte_names_are_not_dependencies(tmp_path: Path) -> None:
    path = write_model(
        tmp_path,
        "iov/ads_x.sql",
        "columns: {vin: string}",
        """
        with recent as (select vin from dwd_vehicle_gps where dt = $dt),
             distinct_vins as (select distinct vin from recent)
        select vin from distinct_vins""",
    )
    assert parse_model(path, "iov").deps == (DWD,)


# --- malformed models ---------------------------------------------------------------------------

BAD_HEADERS = {
    "bad_yaml": ("columns: [vin, speed", "header is not valid YAML"),
    "no_columns": ("description: no columns here", "must declare the table's columns"),
    "empty_columns": ("columns: {}", "must declare the table's columns"),
    "unknown_check": ("columns: {vin: string}\nchecks:\n  - positive: [vin]", "unknown check 'positive'"),
    "typo_in_key": (
        "columns: {vin: string}\nreject_reson_column: why",
        "unknown header key(s) ['reject_reson_column']",
    ),
    "metric_unknown_column": (
        'columns: {vin: string}\nmetrics: {vehicles: "count(distinct vim)"}',
        "metrics.vehicles ('count(distinct vim)') reads 'vim', not a column of the table",
    ),
    "metric_not_an_aggregate": (
        'columns: {vin: string}\nmetrics: {vehicles: "vin"}',
        "metrics.vehicles ('vin') must aggregate the partition's rows",
    ),
    "metric_not_one_expression": (
        'columns: {vin: string}\nmetrics: {vehicles: "count(*) from ods_vehicle_gps_raw --"}',
        "metrics.vehicles ('count(*) from ods_vehicle_gps_raw --') cannot parse SQL",
    ),
    "metric_reads_files": (
        "columns: {vin: string}\nmetrics: {vehicles: \"max(length(read_text('/etc/passwd')))\"}",
        "metrics.vehicles",
    ),
    "metrics_not_a_mapping": ("columns: {vin: string}\nmetrics: [count(*)]", "metrics is a mapping"),
    "preview_not_a_count": ("columns: {vin: string}\npreview: all", "preview is a number of rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_a_malformed_header_raises_model_error_naming_the_file(tmp_path: Path, case: str) -> None:
    header, message = BAD_HEADERS[case]
    path = write_model(tmp_path, f"iov/dwd_{case}.sql", header)
    with pytest.raises(ModelError, match=re.escape(str(path)) + ".*" + re.escape(message)):
        parse_model(path, "iov")


def test_a_model_without_header_raises_model_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "iov" / "dwd_plain.sql"
    path.parent.mkdir()
    path.write_text("-- just sql\nselect vin from ods_vehicle_gps_raw\n")
    with pytest.raises(
        ModelError, match=re.escape(f"{path}: a model starts with a /* --- YAML header --- */")
    ):
        parse_model(path, "iov")


def test_an_unknown_layer_raises_model_error_naming_the_file(tmp_path: Path) -> None:
    path = write_model(tmp_path, "iov/report_vehicles.sql", "columns: {vin: string}")
    with pytest.raises(ModelError, match=re.escape(f"{path}: layer 'report' unknown")):
        parse_model(path, "iov")


def test_a_declared_layer_overrides_the_file_name(tmp_path: Path) -> None:
    path = write_model(tmp_path, "iov/vehicles.sql", "layer: dim\ncolumns: {vin: string}")
    assert parse_model(path, "iov").layer == "dim"


def test_unparseable_sql_raises_model_error_naming_the_file(tmp_path: Path) -> None:
    path = write_model(tmp_path, "iov/dwd_broken.sql", "columns: {vin: string}", "select from where")
    with pytest.raises(ModelError, match=re.escape(f"{path}: cannot parse SQL")):
        parse_model(path, "iov")


def test_an_unknown_column_type_raises_model_error_naming_the_file(tmp_path: Path) -> None:
    path = write_model(tmp_path, "iov/dwd_typo.sql", "columns: {vin: strng}")
    with pytest.raises(ModelError, match=re.escape(str(path)) + ".*unknown column type 'strng'"):
        parse_model(path, "iov")


def test_an_unknown_column_type_is_still_a_model_error(tmp_path: Path) -> None:
    path = write_model(tmp_path, "iov/dwd_typo.sql", "columns: {vin: strng}")
    with pytest.raises(ModelError, match="unknown column type 'strng'"):
        parse_model(path, "iov")


@pytest.mark.parametrize(
    "header",
    [
        "columns: {vin: {description: the vehicle}}",
        "- vin\n- speed",
        "columns: {vin: string}\nchecks:\n  - accepted_range: 5",
    ],
)
def test_other_header_mistakes_raise_model_error_naming_the_file(tmp_path: Path, header: str) -> None:
    path = write_model(tmp_path, "iov/dwd_mistake.sql", header)
    with pytest.raises(ModelError, match=re.escape(str(path))):
        parse_model(path, "iov")


def test_a_dependency_cycle_raises_model_error(tmp_path: Path) -> None:
    write_model(tmp_path, "iov/dwd_a.sql", "columns: {vin: string}", "select vin from dwd_b")
    write_model(tmp_path, "iov/dwd_b.sql", "columns: {vin: string}", "select vin from dwd_a")
    with pytest.raises(ModelError, match=r"dependency cycle through iov\.dwd_[ab]"):
        load_models(tmp_path)


def copied_models(tmp_path: Path) -> Path:
    """The project's models in a folder of the test's own, to add or break a model in."""
    tree = tmp_path / "models"
    shutil.copytree(MODELS_ROOT, tree)
    return tree


def test_a_broken_model_stops_loading_the_whole_tree(tmp_path: Path) -> None:
    # a typo must fail loudly when definitions load, not silently drop the table
    tree = copied_models(tmp_path)
    (tree / "iov" / "ads_oops.sql").write_text("select 1\n")
    with pytest.raises(ModelError, match="ads_oops.sql"):
        build_definitions(LakehouseSettings.for_home(tmp_path / "lh"), models_root=tree)


# --- adding a model is adding one file ----------------------------------------------------------


@pytest.fixture
def tree_with_new_model(tmp_path: Path) -> Path:
    tree = copied_models(tmp_path)
    (tree / "iov" / "ads_vehicle_daily_count.sql").write_text(DAILY_COUNT)
    return tree


def test_a_new_model_file_becomes_an_asset_downstream_of_what_it_reads(
    tmp_path: Path, tree_with_new_model: Path
) -> None:
    defs = build_definitions(LakehouseSettings.for_home(tmp_path / "lh"), models_root=tree_with_new_model)
    graph = defs.resolve_asset_graph()
    new = dg.AssetKey(["iov", "ads_vehicle_daily_count"])
    assert new in graph.get_all_asset_keys()
    assert graph.get(new).parent_keys == {dg.AssetKey(["iov", "dwd_vehicle_gps"])}
    # the existing models are still there
    assert dg.AssetKey(["iov", "ads_vehicle_hourly_stat"]) in graph.get_all_asset_keys()


def test_a_new_model_file_is_built_end_to_end(
    settings: LakehouseSettings, instance: dg.DagsterInstance, tree_with_new_model: Path
) -> None:
    pipeline = Pipeline(settings, instance, models_root=tree_with_new_model)
    pipeline.land(
        [
            gps("VIN001", "2025-09-17 23:00:00"),
            gps("VIN001", "2025-09-17 23:00:30"),
            gps("VIN001", "2025-09-17 23:01:00"),
            gps("VIN002", "2025-09-17 23:00:00"),
            gps("VIN003", speed=-1.0),  # rejected by DWD, so not counted
        ]
    )
    pipeline.land([gps("VIN002", "2025-09-18 00:00:10")], dt="2025-09-18", hh="00")
    pipeline.scan()
    rows = pipeline.sql("select dt, hh, vin, reports from iov.ads_vehicle_daily_count order by dt, hh, vin")
    assert rows == [
        {"dt": "2025-09-17", "hh": "23", "vin": "VIN001", "reports": 3},
        {"dt": "2025-09-17", "hh": "23", "vin": "VIN002", "reports": 1},
        {"dt": "2025-09-18", "hh": "00", "vin": "VIN002", "reports": 1},
    ]
    # a second file landing in an hour rebuilds that hour of the new table too
    pipeline.land([gps("VIN001", "2025-09-17 23:59:00")], name="part-1.parquet")
    pipeline.scan()
    assert pipeline.sql(
        "select reports from iov.ads_vehicle_daily_count "
        "where dt = '2025-09-17' and hh = '23' and vin = 'VIN001'"
    ) == [{"reports": 4}]


# --- the read-only guard and table references ---------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "select 1",
        "select * from iov.dwd_vehicle_gps where speed > 10",
        "with a as (select vin from iov.dwd_vehicle_gps) select count(*) from a",
        "select vin from iov.a union select vin from iov.b",
        "select vin from iov.a union all select vin from iov.b",
        "from iov.dwd_vehicle_gps",
        "select 1;",
    ],
)
def test_read_only_queries_are_allowed(sql: str) -> None:
    ensure_read_only(sql)  # does not raise


@pytest.mark.parametrize(
    ("sql", "word"),
    [
        ("insert into iov.t values (1)", "INSERT"),
        ("create table iov.t as select 1", "CREATE"),
        ("drop table iov.dwd_vehicle_gps", "DROP"),
        ("delete from iov.t", "DELETE"),
        ("update iov.t set a = 1", "UPDATE"),
        ("copy iov.t to '/tmp/out.csv'", "COPY"),
        ("attach '/tmp/other.db'", "ATTACH"),
        ("pragma version", "PRAGMA"),
        ("set threads = 1", "SET"),
        ("with x as (insert into t values (1) returning *) select * from x", "INSERT"),
    ],
)
def test_writes_and_settings_are_refused(sql: str, word: str) -> None:
    with pytest.raises(ReadOnlyViolation, match=word):
        ensure_read_only(sql)


@pytest.mark.parametrize("sql", ["select 1; select 2", "select 1; drop table iov.t"])
def test_only_one_statement_is_allowed(sql: str) -> None:
    with pytest.raises(ReadOnlyViolation, match="exactly one statement is allowed, got 2"):
        ensure_read_only(sql)


def test_a_syntax_error_is_a_query_error_not_a_violation() -> None:
    with pytest.raises(QueryError, match="cannot parse query") as info:
        ensure_read_only("select * from")
    assert not isinstance(info.value, ReadOnlyViolation)


@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ("select * from iov.t", [("iov", "t")]),
        ("select * from t", [(None, "t")]),
        ("with a as (select * from iov.t) select * from a", [("iov", "t")]),
        (
            "with a as (select * from iov.t), b as (select * from a) select * from b join iov.u using (vin)",
            [("iov", "u"), ("iov", "t")],
        ),
        ("select * from iov.t where vin in (select vin from fleet.v)", [("iov", "t"), ("fleet", "v")]),
        ("select * from iov.t a join iov.t b using (vin)", [("iov", "t")]),
    ],
)
def test_referenced_tables_excludes_cte_names(sql: str, tables: list) -> None:
    assert sorted(referenced_tables(sql), key=str) == sorted(tables, key=str)
