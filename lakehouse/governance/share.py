"""Secure sharing: a table exported as a user sees it (granted, masked) for another team's engine.

The export is plain Parquet (any Spark, Trino or pandas reads it) plus `_manifest.json`, written
last, so a reader that sees the manifest sees a complete share. Hadoop-style readers such as Spark
skip files starting with `_`, so the folder reads as one table. The manifest names the table and
snapshot, every column with its masking, each file with its row count and SHA-256, who exported it
and when; it never contains credentials or the masking salt.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse

MANIFEST = "_manifest.json"
ROWS_PER_FILE = 1_000_000
SHARE_FILE = re.compile(r"^(part-\d{5}\.parquet|_manifest\.json)$")


class ShareError(ValueError):
    """The export cannot be written where asked (for example, the target already holds files)."""


def _protected_locations(lakehouse: Lakehouse) -> list[str]:
    """Where the lakehouse keeps its own state: a share may not be written into, over or around them."""
    from pathlib import Path

    settings = lakehouse.settings
    places = [settings.home, settings.landing_uri, settings.warehouse_uri]
    if settings.catalog_uri.startswith("sqlite:///"):
        places.append(str(Path(settings.catalog_uri.removeprefix("sqlite:///")).resolve().parent))
    return places


def check_target(lakehouse: Lakehouse, uri: str) -> None:
    """Refuse a target that is, holds or lies inside the lakehouse's home, landing zone, warehouse or
    catalog folder: `--overwrite` would delete tables, landed files or the catalog (and the salt),
    and masked files in the landing zone would be loaded back as data."""

    def norm(location: str) -> str:
        return location.rstrip("/") or "/"

    target = norm(uri)
    for place in _protected_locations(lakehouse):
        place = norm(place)
        if (
            target == place
            or target.startswith(place.rstrip("/") + "/")
            or place.startswith(target.rstrip("/") + "/")
        ):
            raise ShareError(
                f"{uri} overlaps the lakehouse's own storage ({place}); export somewhere outside it"
            )


def export_share(
    lakehouse: Lakehouse,
    table: str,
    target: str,
    user: str,
    role: str | None = None,
    overwrite: bool = False,
    rows_per_file: int = ROWS_PER_FILE,
) -> dict[str, Any]:
    """Write the table as `user` (optionally only `role`) may see it to `target`; the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lakehouse.core.settings import as_uri
    from lakehouse.governance.masking import lookup
    from lakehouse.storage.object_store import open_object_store

    statement = f"export {table} to {target}"
    principal = lakehouse.access.principal(user, role, "export", statement)
    gov = lakehouse.governance
    with lakehouse.access.attempt(principal, "export", statement) as record:
        ident = TableId.parse(table)
        ident = lakehouse.canonical(ident.namespace, ident.name)
        record.tables.append(ident)
        record.masks = masks = gov.authorize(principal, [ident])
        uri = as_uri(target)
        check_target(lakehouse, uri)
        store = open_object_store(uri, lakehouse.settings.s3)
        existing = [info.path for info in store.walk()]
        if existing and not overwrite:
            raise ShareError(
                f"{target} already holds {len(existing)} file(s); choose an empty target or --overwrite"
            )
        foreign = [path for path in existing if not SHARE_FILE.match(path)]
        if foreign:
            raise ShareError(
                f"{target} holds {len(foreign)} file(s) that are not a share's (e.g. {foreign[0]}); "
                "--overwrite only replaces a previous share"
            )
        for path in existing:
            store.remove(path)
        version = lakehouse.tables.version(ident)
        schema, batches = lakehouse.masked_batches(ident, masks[ident])
        files: list[dict[str, Any]] = []
        pending: list[pa.RecordBatch] = []
        pending_rows = 0

        def flush() -> None:
            nonlocal pending, pending_rows
            sink = io.BytesIO()
            # TIMESTAMP_MICROS: what Spark reads without options (see STACK notes)
            pq.write_table(pa.Table.from_batches(pending, schema=schema), sink, coerce_timestamps="us")
            data = sink.getvalue()
            name = f"part-{len(files):05d}.parquet"
            store.write_bytes(name, data)
            files.append(
                {
                    "path": name,
                    "rows": pending_rows,
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
            pending, pending_rows = [], 0

        for batch in batches:
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= rows_per_file:
                flush()
        if pending_rows or not files:
            flush()  # an empty table still gets one (empty) file with the schema
        table_masks = {f.name: lookup(masks[ident], f.name) for f in schema}
        table_masks = {name: mask for name, mask in table_masks.items() if mask is not None}
        manifest = {
            "format": "lakehouse-share/1",
            "table": str(ident),
            "table_format": lakehouse.settings.table_format,
            "snapshot": version,
            "location": target,
            "exported_by": principal.audit_user,
            "roles": sorted(principal.roles),
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rows": sum(f["rows"] for f in files),
            "columns": [
                {
                    "name": f.name,
                    "type": str(f.type),
                    "masking": (
                        f"{table_masks[f.name].function}({', '.join(repr(a) for a in table_masks[f.name].args)})"
                        if f.name in table_masks
                        else None
                    ),
                    "policy": table_masks[f.name].policy if f.name in table_masks else None,
                }
                for f in schema
            ],
            "files": files,
        }
        store.write_bytes(MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
        record.rows = manifest["rows"]
    return manifest
