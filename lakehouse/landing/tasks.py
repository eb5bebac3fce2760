"""DataScan tasks: which location is scanned, into which namespace, through which connection, how often.

- The default task is today's settings: LAKEHOUSE_LANDING_URI, whose first-level folders are
  namespaces and second-level folders tables, every LAKEHOUSE_SCAN_INTERVAL_SECONDS (sensor
  `datascan`). Its manifest paths are relative to the landing URI.
- A named task (`lakehouse datascan add TASK --location URI --namespace NS ...`, stored in the
  catalog) reads the table folders directly under its location into its namespace, each as table
  `<table_prefix><folder>`, on its own cycle (sensor `datascan_<TASK>`). Its manifest paths are full
  URIs, so two tasks' files never collide.

Every task feeds the same reconcile loop (lakehouse/models/reconcile.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.core.settings import as_uri
from lakehouse.landing.layout import IDENTIFIER, LandedFile, Misplaced, classify
from lakehouse.storage.discovery import TaskRecord

if TYPE_CHECKING:
    from lakehouse.core.settings import LakehouseSettings, S3Credentials
    from lakehouse.facade import Lakehouse
    from lakehouse.storage.object_store import ObjectInfo, ObjectStore

DEFAULT_TASK = "default"
DEFAULT_SENSOR = "datascan"
PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)?$")
MIN_INTERVAL_SECONDS = 1


class TaskError(ValueError):
    """A task that cannot be added or run; the message names the task or the flag."""


@dataclass(frozen=True)
class ScanTask:
    name: str
    location: str
    """A local folder or s3://bucket/prefix (no trailing slash)."""
    namespace: str | None
    """None for the default task: the location's first-level folders are namespaces."""
    connection: str | None = None
    interval_seconds: int = 300
    table_prefix: str = ""

    @property
    def is_default(self) -> bool:
        return self.namespace is None

    @property
    def sensor_name(self) -> str:
        return DEFAULT_SENSOR if self.is_default else f"{DEFAULT_SENSOR}_{self.name}"

    @property
    def base(self) -> str:
        """What manifest paths of this task start with: '' (relative) for the default task."""
        return "" if self.is_default else self.location

    def relative(self, path: str) -> str:
        """A manifest path as a path inside the task's location."""
        return path[len(self.base) + 1 :] if self.base else path

    def uri(self, path: str) -> str:
        """A manifest path as a full location, for messages."""
        return path if self.base else f"{self.location}/{path}"

    def folder(self, namespace: str, table: str) -> str:
        """The table folder inside the location, for a table this task would name so."""
        return f"{namespace}/{table}" if self.is_default else table.removeprefix(self.table_prefix)

    def classify(self, info: ObjectInfo) -> LandedFile | Misplaced | None:
        """What one object of this task's location is (lakehouse/landing/layout.py)."""
        return classify(
            info.path,
            info.size,
            info.modified,
            namespace=self.namespace,
            prefix=self.table_prefix,
            base=self.base,
        )

    def describe(self) -> str:
        into = "namespaces as folders" if self.is_default else f"namespace {self.namespace}"
        via = f" via connection {self.connection}" if self.connection else ""
        return f"DataScan task {self.name} ({self.location} -> {into}{via})"


def default_task(settings: LakehouseSettings) -> ScanTask:
    return ScanTask(DEFAULT_TASK, settings.landing_uri, None, None, settings.scan_interval_seconds)


def from_record(record: TaskRecord) -> ScanTask:
    return ScanTask(
        record.name,
        record.location,
        record.namespace,
        record.connection,
        record.interval_seconds,
        record.table_prefix,
    )


def all_tasks(lh: Lakehouse) -> list[ScanTask]:
    """The default task first, then the named ones by name (the first to find a table holds it)."""
    return [default_task(lh.settings), *(from_record(r) for r in lh.catalog.tasks())]


def find_task(lh: Lakehouse, name: str) -> ScanTask:
    for task in all_tasks(lh):
        if task.name == name:
            return task
    raise TaskError(f"no DataScan task {name!r} (see `lakehouse datascan list`)")


def new_task(lh: Lakehouse, record: TaskRecord) -> TaskRecord:
    """A task about to be stored, validated (TaskError naming the flag) and its location normalized."""
    if not IDENTIFIER.match(record.name) or record.name == DEFAULT_TASK:
        raise TaskError(f"task name {record.name!r} must be letters, digits and _ (and not {DEFAULT_TASK!r})")
    if not IDENTIFIER.match(record.namespace):
        raise TaskError(f"--namespace {record.namespace!r} must be letters, digits and _")
    if not PREFIX.match(record.table_prefix):
        raise TaskError(f"--table-prefix {record.table_prefix!r} must be letters, digits and _ (e.g. ods_)")
    if record.interval_seconds < MIN_INTERVAL_SECONDS:
        raise TaskError(f"--interval must be at least {MIN_INTERVAL_SECONDS} second(s)")
    location = as_uri(record.location)
    if "://" in location and not location.startswith("s3://"):
        raise TaskError(f"--location {record.location!r}: use a local folder, file:// or s3://bucket/prefix")
    if record.connection is not None:
        from lakehouse.landing.connections import problem

        found = lh.catalog.connection(record.connection)
        if found is None:
            raise TaskError(
                f"--connection {record.connection!r}: no such connection (`lakehouse connection list`)"
            )
        unsafe = problem(found)  # a row written into the catalog directly: refused here too
        if unsafe is not None:
            raise TaskError(f"--connection {record.connection}: refused: {unsafe}")
        if not location.startswith("s3://"):
            raise TaskError(f"--connection needs an s3:// --location, got {record.location!r}")
    return TaskRecord(
        record.name,
        location.rstrip("/"),
        record.namespace,
        record.connection,
        record.interval_seconds,
        record.table_prefix,
    )


def task_credentials(lh: Lakehouse, task: ScanTask) -> S3Credentials:
    """The credentials a task reads with: its connection's (assumed again before they expire), else
    the lakehouse's own AWS_* settings. Raises ConnectionFailed naming the connection, also when the
    connection breaks a rule of landing/connections.py (checked on every use, before any variable is
    read or endpoint contacted)."""
    from lakehouse.landing.connections import ConnectionFailed, credentials

    if task.connection is None:
        return lh.settings.s3
    record = lh.catalog.connection(task.connection)
    if record is None:
        raise ConnectionFailed(f"{task.describe()}: its connection {task.connection} was removed")
    return credentials(record)


def task_store(lh: Lakehouse, task: ScanTask) -> ObjectStore:
    """The object store of a task's location (the landing store for the default task)."""
    from lakehouse.storage.object_store import open_object_store

    if task.is_default:
        return lh.landing
    creds = task_credentials(lh, task)
    cache: dict[str, tuple[S3Credentials, ObjectStore]] = lh.__dict__.setdefault("_task_stores", {})
    held = cache.get(task.name)
    if held is None or held[0] != creds or held[1].uri != task.location:
        held = (creds, open_object_store(task.location, creds))
        cache[task.name] = held
    return held[1]


def read_error(lh: Lakehouse, task: ScanTask, exc: BaseException) -> Exception:
    """A failure to list or read a task's location, as an error naming the task and its connection
    and never a secret."""
    from lakehouse.landing.connections import ConnectionFailed, auth_error, base_credentials, scrubbed

    if isinstance(exc, ConnectionFailed):
        return ConnectionFailed(f"{task.describe()}: {exc}")
    own = lh.settings.s3
    secrets = [own.secret_access_key, own.session_token, own.access_key_id]
    record = lh.catalog.connection(task.connection) if task.connection else None
    if record is None:
        return ConnectionFailed(f"{task.describe()}: cannot list {task.location}: {scrubbed(exc, secrets)}")
    for found in (lambda: base_credentials(record), lambda: task_credentials(lh, task)):
        try:
            creds = found()
        except Exception:  # noqa: BLE001 - what is at hand is scrubbed; the listing error is reported
            continue
        secrets += [creds.secret_access_key, creds.session_token, creds.access_key_id]
    return ConnectionFailed(f"{task.describe()}: {auth_error(record, task.location, exc, secrets)}")
