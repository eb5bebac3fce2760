"""Spark over Spark Connect: the same engine interface as DuckDB, on a cluster.

Spark here has no Iceberg or Delta connector (no Maven; see STACK), so it never reads a table by
name: every source is the list of data files the table store planned for the table's current
snapshot (the same pyarrow datasets DuckDB scans), read as Parquet with the table's schema, the
partition values of files that do not hold them (Delta) added as constants. Queries are DuckDB SQL
translated by spark_sql.py. Model builds do not bring results back through the client: see
models/spark_run.py, where Spark writes Parquet that the table store commits.

One Spark Connect session per remote URL and process; its settings: session time zone UTC,
TIMESTAMP_NTZ as the timestamp type (our timestamps are wall-clock, as in DuckDB), Parquet
timestamps as TIMESTAMP_MICROS.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from lakehouse.core.ids import TableId
from lakehouse.engines.base import QueryError
from lakehouse.engines.spark_sql import translate, view_name

if TYPE_CHECKING:
    import pyarrow as pa


SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
}


def spark_uri(path: str) -> str:
    """A data file's path as Spark's Hadoop file systems name it (s3:// is s3a:// there)."""
    if path.startswith("s3://"):
        return "s3a://" + path.removeprefix("s3://")
    if path.startswith("file://") or "://" in path:
        return path
    return "file://" + path


class SparkEngine:
    """Statements on a Spark Connect session (`remote` = sc://host:port)."""

    name = "spark"
    _sessions: ClassVar[dict[str, Any]] = {}
    _lock = threading.Lock()

    def __init__(self, remote: str, locate: Callable[[TableId], str] | None = None) -> None:
        if not remote.startswith("sc://"):
            raise QueryError(
                f"LAKEHOUSE_SPARK_REMOTE must be a Spark Connect URL sc://host:port, not {remote!r} "
                "(`lakehouse spark start` prints one)"
            )
        self.remote = remote
        self.locate = locate
        """A table's root location: Delta's datasets name their files relative to it."""
        self.timings: dict[str, float] = {}
        """Seconds spent by phase since the engine was made: session, planning, execute, commit."""

    def _add(self, phase: str, seconds: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    @property
    def spark(self) -> Any:
        with SparkEngine._lock:
            found = SparkEngine._sessions.get(self.remote)
            if found is not None and not found.is_stopped:
                return found
            started = time.perf_counter()
            from pyspark.sql import SparkSession

            self._reachable()
            try:
                session = SparkSession.builder.remote(self.remote).getOrCreate()
                for key, value in SESSION_CONF.items():
                    session.conf.set(key, value)
            except Exception as exc:
                raise QueryError(
                    f"cannot reach Spark Connect at {self.remote} (LAKEHOUSE_SPARK_REMOTE): "
                    f"{str(exc).splitlines()[0][:300]}"
                ) from None
            SparkEngine._sessions[self.remote] = session
            atexit.register(_close_at_exit, session)  # runs before pyspark's own exit hook (LIFO)
            self._add("session", time.perf_counter() - started)
            return session

    @classmethod
    def close_all(cls) -> None:
        """Close every cached session's channel (no server call: the cluster may be gone)."""
        with cls._lock:
            for session in cls._sessions.values():
                _close_at_exit(session)
            cls._sessions.clear()

    def _reachable(self, timeout: float = 10.0) -> None:
        """Fail at once, naming the URL, when nothing listens there (Spark's client would retry
        for minutes)."""
        import socket
        from urllib.parse import urlparse

        parsed = urlparse(self.remote.replace("sc://", "http://", 1))
        try:
            with socket.create_connection((parsed.hostname or "", parsed.port or 15002), timeout=timeout):
                pass
        except OSError as exc:
            raise QueryError(
                f"cannot reach Spark Connect at {self.remote} (LAKEHOUSE_SPARK_REMOTE): {exc.strerror or exc}"
            ) from None

    # -- sources ------------------------------------------------------------------------------
    def source_frame(self, source: Any, root: str | None = None) -> Any:
        """A Spark DataFrame over a source: the files of a pyarrow dataset (the table store's plan
        of a snapshot), or, for an in-memory table (an empty stand-in for an unbuilt model), its rows."""
        import pyarrow as pa
        import pyarrow.dataset as pads
        from pyspark.sql import functions as F  # noqa: N812
        from pyspark.sql.pandas.types import from_arrow_schema

        spark = self.spark
        if isinstance(source, pa.RecordBatchReader):
            source = source.read_all()
        if isinstance(source, pa.Table):
            return spark.createDataFrame(source) if source.num_rows else _empty(spark, source.schema)
        if isinstance(source, pads.UnionDataset):
            frames = [self.source_frame(child, root) for child in source.children]
            return _union(frames, source.schema, spark)
        if isinstance(source, pads.InMemoryDataset):
            return self.source_frame(source.to_table())
        if not isinstance(source, pads.FileSystemDataset):
            raise QueryError(f"Spark cannot read a source of type {type(source).__name__}")
        schema = source.schema
        groups: dict[tuple[tuple[str, Any], ...], list[str]] = {}
        for fragment in source.get_fragments():
            keys = pads.get_partition_keys(fragment.partition_expression) or {}
            groups.setdefault(tuple(sorted(keys.items())), []).append(
                _with_scheme(fragment.path, source, root)
            )
        if not groups:
            return _empty(spark, schema)
        frames = []
        for keys, paths in groups.items():
            constants = dict(keys)
            in_files = pa.schema([f for f in schema if f.name not in constants])
            frame = spark.read.schema(from_arrow_schema(in_files, prefer_timestamp_ntz=True)).parquet(
                *[spark_uri(p) for p in paths]
            )
            spark_types = {f.name: f.dataType for f in from_arrow_schema(schema, prefer_timestamp_ntz=True)}
            for name, value in constants.items():
                frame = frame.withColumn(name, F.lit(value).cast(spark_types[name]))
            frames.append(frame.select(*schema.names))
        return _union(frames, schema, spark)

    def frame(
        self,
        sql: str,
        sources: Mapping[TableId | str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
        view_suffix: str = "",
    ) -> Any:
        """The statement as a Spark DataFrame, analysed (so a bad statement fails here, by name).

        Its sources are bound as temporary views named after them (plus `view_suffix`, so that
        several statements over different inputs can be combined in one job)."""
        started = time.perf_counter()
        bound: dict[tuple[str | None, str], Any] = {}
        for ident, source in sources.items():
            key = (None, ident) if isinstance(ident, str) else (ident.namespace, ident.name)
            bound[key] = source
        try:
            text = translate(sql, default_namespace, bound, view_suffix)
            for (namespace, name), source in bound.items():
                root = self.locate(TableId(namespace, name)) if self.locate and namespace else None
                view = view_name(namespace, name) + view_suffix
                self.source_frame(source, root).createOrReplaceTempView(view)
            used = {k: v for k, v in (params or {}).items() if f"${k}" in sql}
            frame = self.spark.sql(text, args=used or None)
            frame.schema  # noqa: B018 - analysis happens here: errors name the statement
        except QueryError as exc:
            raise QueryError(f"{statement_name}: {exc}") from None
        except Exception as exc:
            raise QueryError(f"{statement_name}: {_first_line(exc)}") from None
        finally:
            self._add("planning", time.perf_counter() - started)
        return frame

    # -- the engine interface -----------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[SparkEngine]:
        yield self

    def query(
        self,
        sql: str,
        sources: Mapping[TableId | str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
    ) -> pa.Table:
        frame = self.frame(
            sql, sources, params, default_namespace=default_namespace, statement_name=statement_name
        )
        started = time.perf_counter()
        try:
            return frame.toArrow()
        except Exception as exc:
            raise QueryError(f"{statement_name}: {_first_line(exc)}") from None
        finally:
            self._add("execute", time.perf_counter() - started)

    @contextmanager
    def stream(
        self,
        sql: str,
        sources: Mapping[TableId | str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
        batch_rows: int = 262_144,
    ) -> Iterator[pa.RecordBatchReader]:
        import pyarrow as pa

        table = self.query(
            sql, sources, params, default_namespace=default_namespace, statement_name=statement_name
        )
        yield pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_rows))


def _with_scheme(path: str, dataset: Any, root: str | None) -> str:
    """A fragment path, absolute, with its file system's scheme (pyarrow's S3 paths are bucket/key;
    Delta's datasets name files relative to the table's root, through deltalake's own file system)."""
    import pyarrow.fs as pafs

    filesystem = dataset.filesystem
    if isinstance(filesystem, pafs.PyFileSystem) and "://" not in path and not path.startswith("/"):
        if root is None:
            raise QueryError(
                f"Spark cannot locate the relative data file {path!r}: its table's root is unknown"
            )
        return root.rstrip("/") + "/" + path
    while isinstance(filesystem, pafs.SubTreeFileSystem):
        path = filesystem.base_path.rstrip("/") + "/" + path
        filesystem = filesystem.base_fs
    if isinstance(filesystem, pafs.S3FileSystem):
        return "s3://" + path
    return path


def _empty(spark: Any, schema: Any) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return spark.createDataFrame([], from_arrow_schema(schema, prefer_timestamp_ntz=True))


def _union(frames: list[Any], schema: Any, spark: Any) -> Any:
    if not frames:
        return _empty(spark, schema)
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def _close_at_exit(session: Any) -> None:
    """Close a Connect session's channel without calling the server. pyspark's own exit hook cleans
    the server's ML cache over gRPC first and, when the cluster has gone away (`lakehouse spark
    stop`, a restart), retries for about ten minutes before the process may exit."""
    try:
        client = session.client
        if not client.is_closed:
            client.close()
    except Exception:  # noqa: BLE001 - best effort at exit
        pass
