"""A governed table for the Spark team: what a user may see, masked, as a table of a Spark cluster.

`publish_to_spark` exports the table as the user sees it (grants and masks applied, audited: the
share export of share.py) into `<root>/v<version>/`, one folder per snapshot of the table, then
points a view of the Spark cluster's catalog at that folder over Spark Connect (`CREATE OR REPLACE
VIEW db.t AS SELECT * FROM parquet.`<folder>``: a view is resolved anew by every query of every
session, so a new version is seen at once, with no REFRESH in the reader's session). The Spark team's
notebook then reads fresh masked data in one line, `spark.table("iov_share.ads_vehicle_hourly_stat")`,
and never sees the lake's files or raw values. A publish when the table has no new snapshot does
nothing; `watch` publishes on every new snapshot. The folder before the current one is kept (a
query may still be reading it); older ones are removed.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.governance.share import ShareError

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
KEEP_VERSIONS = 2


def _local_root(root: str) -> Path:
    if "://" in root and not root.startswith("file://"):
        raise ShareError(
            f"{root}: a Spark share is published to a local or shared folder the cluster can read "
            "(s3:// needs the cluster's hadoop-aws, which this Spark does not have)"
        )
    return Path(root.removeprefix("file://")).resolve()


def publish_to_spark(
    lakehouse: Lakehouse,
    table: str,
    root: str,
    spark_table: str,
    user: str,
    remote: str,
    role: str | None = None,
) -> dict[str, Any]:
    """Export `table` as `user` sees it under `root` and make `spark_table` (db.name) of the Spark
    cluster at `remote` read it. Returns what was done (version, folder, rows, published)."""
    from lakehouse.engines.spark import SparkEngine, spark_uri

    if not _NAME.match(spark_table):
        raise ShareError(f"--spark-table must be database.table (letters, digits, _), got {spark_table!r}")
    ident = TableId.parse(table)
    ident = lakehouse.canonical(ident.namespace, ident.name)
    version = lakehouse.tables.version(ident) or "0"
    base = _local_root(root)
    folder = base / f"v{version}"
    spark = SparkEngine(remote).spark
    database, name = spark_table.split(".")
    location = spark_uri(str(folder))
    current = _location(spark, spark_table)
    if current == location and folder.exists():
        return {"version": version, "folder": str(folder), "published": False, "rows": None}
    manifest = lakehouse.export_share(str(ident), str(folder), user=user, role=role, overwrite=True)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    spark.sql(f"CREATE OR REPLACE VIEW `{database}`.`{name}` AS SELECT * FROM parquet.`{location}`")
    _prune(base, folder)
    return {"version": version, "folder": str(folder), "published": True, "rows": manifest["rows"]}


def _location(spark: Any, spark_table: str) -> str | None:
    """The folder the Spark view reads now (None: there is no such view)."""
    database, name = spark_table.split(".")
    if not spark.catalog.databaseExists(database) or not spark.catalog.tableExists(name, database):
        return None
    text = str(spark.sql(f"SHOW CREATE TABLE `{database}`.`{name}`").collect()[0][0])
    found = re.search(r"parquet\.`([^`]+)`", text)
    return found.group(1) if found else None


def _prune(base: Path, current: Path) -> None:
    versions = sorted(
        (p for p in base.glob("v*") if p.is_dir() and p != current), key=lambda p: p.stat().st_mtime
    )
    for old in versions[: max(len(versions) - (KEEP_VERSIONS - 1), 0)]:
        shutil.rmtree(old, ignore_errors=True)


def watch(
    publish: Callable[[], dict[str, Any]],
    every_seconds: float,
    report: Callable[[dict[str, Any]], None],
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Publish now and then every `every_seconds`, reporting each new version, until `stop()`."""
    while True:
        result = publish()
        if result["published"]:
            report(result)
        deadline = time.monotonic() + every_seconds
        while time.monotonic() < deadline:
            if stop():
                return
            time.sleep(min(0.5, every_seconds))
