"""DataScan: compare the landing zone with what each ODS partition was built from.

One scan lists object metadata (paths, sizes, fingerprints): a partition's files make a digest, and
a partition whose digest differs from the one its ODS build recorded (or that has none, or whose
files are all gone) must be (re)loaded. It reads no file contents: reading happens in the
reconcile run, so a tick's work beyond the listing grows only with what changed.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lakehouse.core.ids import TableId
from lakehouse.facade import Lakehouse
from lakehouse.landing.layout import LandedFile, Layout, Misplaced, other_layout, table_layout
from lakehouse.landing.tasks import DEFAULT_TASK, ScanTask, all_tasks, read_error, task_store
from lakehouse.storage.catalog import FileRecord
from lakehouse.storage.discovery import TableClaim
from lakehouse.storage.object_store import ObjectInfo


@dataclass
class PartitionChange:
    """Files of one table partition that are new, replaced or gone since the last load."""

    table: TableId
    partition_key: str
    paths: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    size: int = 0
    """Bytes of its files."""

    @property
    def digest(self) -> str:
        return files_digest(zip(self.paths, self.fingerprints, strict=True))


def files_digest(files: Iterable[tuple[str, str]]) -> str:
    """The version of an ODS partition's input: its landed files (path, fingerprint), in any order."""
    digest = hashlib.sha256()
    for path, fingerprint in sorted(files):
        digest.update(f"{path}\0{fingerprint}\n".encode())
    return digest.hexdigest()[:32]


@dataclass
class ScanResult:
    changes: list[PartitionChange]
    """What to (re)load, one entry per table partition: its files now (none when all are gone)."""
    partitions: dict[str, set[str]]
    """namespace -> every hourly partition key present (hourly and flat tables)."""
    tables: set[TableId]
    """Every table folder in the landing zone (conflicting ones included)."""
    new_conflicts: list[tuple[TableId, str]]
    """Discovered names held by user tables, reported for the first time."""
    conflicting: set[TableId]
    misplaced: list[Misplaced]
    """Files outside the layout that are newly recorded as rejected."""
    files_listed: int = 0
    junk_ignored: int = 0
    seconds: float = 0.0
    failed_tasks: dict[str, str] = field(default_factory=dict)
    """task -> why its location could not be listed (its tables were left as they are)."""
    tasks: list[str] = field(default_factory=list)
    """The tasks whose locations were listed."""

    def changes_by_partition(self) -> dict[tuple[str, str], list[PartitionChange]]:
        grouped: dict[tuple[str, str], list[PartitionChange]] = defaultdict(list)
        for change in self.changes:
            grouped[(change.table.namespace, change.partition_key)].append(change)
        return dict(sorted(grouped.items()))


def conflict_reason(lh: Lakehouse, table: TableId) -> str | None:
    """Why DataScan may not write this table, or None when it may."""
    same = lh.canonical(table.namespace, table.name)
    if same != table and lh.catalog.get_table(same.namespace, same.name) is not None:
        return (
            f"{table} differs only in case from table {same}; SQL names are case-insensitive, so it "
            f"would shadow that table. Rename the landing folder (or land into {same.namespace}/{same.name}/)."
        )
    origin = lh.tables.origin(table)
    if origin == "datascan":
        return None
    if origin is not None:
        return (
            f"table {table} already exists (created by {origin}); DataScan will not overwrite it. "
            f"Rename the landing folder or drop the table."
        )
    if lh.tables.exists(table):
        return (
            f"table {table} already exists and was created by a user; DataScan will not overwrite it. "
            f"Rename the landing folder or drop the table."
        )
    return None


def case_conflicts(lh: Lakehouse, tables: set[TableId], declared: Iterable[TableId]) -> dict[TableId, str]:
    """Landing tables whose name differs only in case from another's: SQL names are case-insensitive,
    so they would shadow each other (and cut readers off a governed table). A declared or catalogued
    spelling wins; two new spellings of one name are both held until one is renamed. Namespaces too."""
    known = {(t.namespace.lower(), t.name.lower()): t for t in declared}
    for record in lh.catalog.list_tables():
        known.setdefault(
            (record.namespace.lower(), record.name.lower()), TableId(record.namespace, record.name)
        )
    namespaces = {key[0]: t.namespace for key, t in known.items()}
    landed: dict[tuple[str, str], set[TableId]] = defaultdict(set)
    landed_ns: dict[str, set[str]] = defaultdict(set)
    for table in tables:
        landed[(table.namespace.lower(), table.name.lower())].add(table)
        landed_ns[table.namespace.lower()].add(table.namespace)
    reasons: dict[TableId, str] = {}
    rename = "SQL names are case-insensitive; rename the landing folder"
    for table in tables:
        key = (table.namespace.lower(), table.name.lower())
        ns_known = namespaces.get(key[0])
        if key in known and known[key] != table:
            reasons[table] = f"{table} differs only in case from table {known[key]}; {rename}"
        elif ns_known is not None and ns_known != table.namespace:
            reasons[table] = (
                f"namespace {table.namespace} differs only in case from namespace {ns_known}; {rename}"
            )
        elif key not in known and len(landed[key]) > 1:
            others = ", ".join(str(t) for t in sorted(landed[key] - {table}, key=str))
            reasons[table] = (
                f"{table} and {others} differ only in case; neither is loaded until one is renamed"
            )
        elif ns_known is None and len(landed_ns[key[0]]) > 1:
            others = ", ".join(sorted(landed_ns[key[0]] - {table.namespace}))
            reasons[table] = (
                f"namespace {table.namespace} and {others} differ only in case; "
                "neither is loaded until one is renamed"
            )
    return reasons


def scan(
    lh: Lakehouse, declared: Iterable[TableId] = (), tasks: Sequence[ScanTask] | None = None
) -> ScanResult:
    """What to (re)load. `declared`: the tables the code location knows (models and their sources),
    whose spelling wins over a landing folder's that differs only in case. `tasks`: the DataScan
    tasks to list (all of them when None). A task whose location cannot be listed (a connection
    that cannot authenticate) is reported in `failed_tasks`; its tables are left as they are."""
    started = time.perf_counter()
    tasks = all_tasks(lh) if tasks is None else list(tasks)
    known = lh.catalog.file_fingerprints()
    claims = lh.catalog.table_claims()
    misplaced: list[Misplaced] = []
    failed: dict[str, str] = {}
    found: list[tuple[ScanTask, dict[TableId, list[tuple[LandedFile, ObjectInfo]]]]] = []
    listed = junk = 0

    def reject(kind: Misplaced, info: ObjectInfo) -> None:
        if known.get(kind.path) != info.fingerprint:
            misplaced.append(kind)
            lh.catalog.record_files(
                [
                    FileRecord(
                        path=kind.path,
                        namespace=kind.namespace,
                        table_name=kind.table,
                        partition_key=None,
                        size=info.size,
                        fingerprint=info.fingerprint,
                        status="rejected",
                        reason=kind.reason,
                    )
                ]
            )

    for task in tasks:
        try:
            store = task_store(lh, task)
            store.refresh()
            infos = list(store.walk(strict=not task.is_default))
        except Exception as exc:  # noqa: BLE001 - a task that cannot list must not stop the others
            failed[task.name] = str(read_error(lh, task, exc))
            continue
        if not infos and not task.is_default and _holds_data(lh, task, claims):
            failed[task.name] = (
                f"{task.describe()}: lists no object under {task.location} while its tables hold "
                "data (unreachable, misconfigured or emptied?); its tables are left as they are"
            )
            continue
        candidates: dict[TableId, list[tuple[LandedFile, ObjectInfo]]] = defaultdict(list)
        for info in infos:
            listed += 1
            kind = task.classify(info)
            if kind is None:
                junk += 1
            elif isinstance(kind, Misplaced):
                reject(kind, info)
            else:
                candidates[TableId(kind.namespace, kind.table)].append((kind, info))
        found.append((task, candidates))

    every = {table for _, candidates in found for table in candidates}
    case_reasons = case_conflicts(lh, every, declared)
    landed: dict[tuple[TableId, str], PartitionChange] = {}
    partitions: dict[str, set[str]] = defaultdict(set)
    tables: set[TableId] = set()
    conflicting: set[TableId] = set()
    new_conflicts: list[tuple[TableId, str]] = []
    for task, candidates in found:
        for table, files in sorted(candidates.items(), key=lambda kv: str(kv[0])):
            tables.add(table)
            folder = task.folder(table.namespace, table.name)
            claim = claims.get((table.namespace, table.name))
            reason = conflict_reason(lh, table) or case_reasons.get(table)
            if reason:  # the name is not DataScan's to use: the table is held, whoever found it
                conflicting.add(table)
                if lh.catalog.record_conflict(table.namespace, table.name, reason):
                    new_conflicts.append((table, reason))
                continue
            if claim is None and (task.is_default or lh.tables.origin(table) != "datascan"):
                # a table registered before layouts existed is hourly; a new one takes its files' layout
                registered = lh.tables.origin(table) == "datascan"
                layout = Layout.HOURLY if registered else table_layout(f for f, _ in files)
                claim = lh.catalog.claim_table(
                    TableClaim(table.namespace, table.name, task.name, layout.value, folder)
                )
                claims[(table.namespace, table.name)] = claim
            held = _held_by_another(lh, task, table, claim, folder)
            if held:  # another task holds it: its files count, this task's are not merged in
                if lh.catalog.record_task_conflict(table.namespace, table.name, task.name, held):
                    new_conflicts.append((table, held))
                    lh.catalog.record_conflict(table.namespace, table.name, held)  # lakehouse.conflicts
                continue
            assert claim is not None
            layout = Layout(claim.layout)
            for landed_file, info in files:
                if landed_file.layout is not layout:
                    reject(other_layout(landed_file, layout), info)
                    continue
                if layout is not Layout.DAILY:
                    partitions[table.namespace].add(landed_file.partition_key)
                change = landed.setdefault(
                    (table, landed_file.partition_key), PartitionChange(table, landed_file.partition_key)
                )
                change.paths.append(landed_file.path)
                change.fingerprints.append(info.fingerprint)
                change.size += info.size

    # Compare with what each ODS partition was built from; partitions whose files are all gone
    # must be rebuilt empty (only of the tables of tasks that were listed).
    listed_tasks = {task.name for task, _ in found}
    built = {
        (TableId(namespace, name), key): inputs
        for (namespace, name, key), inputs in lh.catalog.landed_inputs().items()
    }
    pending = {where: c for where, c in landed.items() if built.get(where) != f"files:{c.digest}"}
    for where, inputs in built.items():
        table = where[0]
        claim = claims.get((table.namespace, table.name))
        holder = claim.task if claim is not None else DEFAULT_TASK
        if (
            where not in landed
            and holder in listed_tasks
            and table not in conflicting
            and inputs != f"files:{files_digest([])}"
        ):
            pending[where] = PartitionChange(*where)

    changes = [
        c
        for (t, _), c in sorted(pending.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
        if t not in conflicting
    ]
    return ScanResult(
        changes=changes,
        partitions=dict(partitions),
        tables=tables,
        new_conflicts=new_conflicts,
        conflicting=conflicting,
        misplaced=misplaced,
        files_listed=listed,
        junk_ignored=junk,
        seconds=time.perf_counter() - started,
        failed_tasks=failed,
        tasks=sorted(listed_tasks),
    )


def _holds_data(lh: Lakehouse, task: ScanTask, claims: dict[tuple[str, str], TableClaim]) -> bool:
    """Whether any table the task holds has a partition built from files."""
    held = {(c.namespace, c.name) for c in claims.values() if c.task == task.name}
    empty = f"files:{files_digest([])}"
    return any(
        (namespace, name) in held and inputs != empty
        for (namespace, name, _key), inputs in lh.catalog.landed_inputs().items()
    )


def _held_by_another(
    lh: Lakehouse, task: ScanTask, table: TableId, claim: TableClaim | None, folder: str
) -> str | None:
    """Why another DataScan task holds this table (two tasks never merge into one table), or None."""
    if claim is None:
        if task.is_default or lh.tables.origin(table) != "datascan":
            return None
        holder, where = DEFAULT_TASK, f"{table.namespace}/{table.name}"  # registered before tasks existed
    elif claim.task == task.name and claim.folder == folder:
        return None
    else:
        holder, where = claim.task, claim.folder
    return (
        f"table {table} is registered by DataScan task {holder} (folder {where}); task {task.name} "
        f"found it too (folder {folder} under {task.location}): a conflict, not a merge. Give one "
        "task another --namespace or --table-prefix, or move the folder."
    )
