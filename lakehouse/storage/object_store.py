"""Object stores: where raw files land. One interface, a local-folder and an S3 implementation.

Both are built on fsspec (s3fs for S3) so listing, reading and writing look the same; paths handed
around the lakehouse are always *relative* to the store's root, with forward slashes.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import fsspec
    import pyarrow as pa
    import pyarrow.fs as pafs

    from lakehouse.core.settings import S3Credentials

READABLE_SUFFIXES = (".parquet", ".orc")


class UnreadableFileError(Exception):
    """A landed file could not be read as the format its name promises."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object in a store."""

    path: str
    """Path relative to the store root, with forward slashes."""
    size: int
    """Size in bytes."""
    fingerprint: str
    """Changes whenever the object's content is replaced (ETag on S3, mtime+size locally)."""
    modified: float | None = None
    """When the object was last written, seconds since the epoch (a flat table's arrival hour)."""


class ObjectStore:
    """A folder of objects: list, read as Arrow, write. Subclasses only say how to reach the bytes."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, uri: str) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self.uri = uri.rstrip("/")

    def _abs(self, path: str) -> str:
        return f"{self._root}/{path}" if path else self._root

    def _fingerprint(self, detail: dict[str, Any]) -> str:
        raise NotImplementedError

    def refresh(self) -> None:
        """Forget cached listings so the next walk sees the store as it is now."""
        self._fs.invalidate_cache()

    def walk(self, prefix: str = "", strict: bool = False) -> Iterator[ObjectInfo]:
        """Every object under prefix, with size and fingerprint, in path order. A prefix that does
        not exist holds nothing; `strict`: every error is raised (a task listing its location must
        tell "empty" from "unreachable": s3fs's exists() answers False to a refused request)."""
        base = self._abs(prefix.strip("/"))
        if not strict and not self._fs.exists(base):
            return
        found = self._fs.find(base, detail=True, withdirs=False)
        cut = len(self._root) + 1
        for full in sorted(found):
            detail = found[full]
            if detail.get("type") == "directory":
                continue
            modified = detail.get("LastModified") or detail.get("mtime")
            yield ObjectInfo(
                path=full[cut:],
                size=int(detail.get("size") or 0),
                fingerprint=self._fingerprint(detail),
                modified=modified.timestamp() if hasattr(modified, "timestamp") else modified,
            )

    def list_dirs(self, prefix: str = "") -> list[str]:
        """Names of the immediate sub-folders of prefix."""
        base = self._abs(prefix.strip("/"))
        if not self._fs.exists(base):
            return []
        entries = self._fs.ls(base, detail=True)
        return sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "directory")

    def _fail(self, path: str, exc: Exception) -> UnreadableFileError:
        kind = path.rsplit(".", 1)[-1]
        return UnreadableFileError(f"{self.uri}/{path}: not a readable {kind} file ({exc})")

    def read_schema(self, path: str) -> pa.Schema:
        """The file's schema from its footer alone. Raises UnreadableFileError naming the object."""
        import pyarrow.orc as orc
        import pyarrow.parquet as pq

        if not path.endswith(READABLE_SUFFIXES):
            raise UnreadableFileError(
                f"{self.uri}/{path}: unsupported file type, expected one of {READABLE_SUFFIXES}"
            )
        try:
            with self._fs.open(self._abs(path), "rb") as handle:
                if path.endswith(".parquet"):
                    return pq.read_schema(handle)
                return orc.ORCFile(handle).schema
        except Exception as exc:  # pyarrow raises several unrelated types for corrupt input
            raise self._fail(path, exc) from exc

    def iter_arrow(self, path: str) -> Iterator[pa.Table]:
        """The file's rows, one Parquet row group or ORC stripe at a time (bounded memory)."""
        import pyarrow as pa
        import pyarrow.orc as orc
        import pyarrow.parquet as pq

        with self._fs.open(self._abs(path), "rb") as handle:
            try:
                if path.endswith(".parquet"):
                    reader = pq.ParquetFile(handle)
                    parts = (reader.read_row_group(i) for i in range(reader.num_row_groups))
                else:
                    orc_file = orc.ORCFile(handle)
                    parts = (
                        pa.Table.from_batches([orc_file.read_stripe(i)]) for i in range(orc_file.nstripes)
                    )
                yield from parts
            except (OSError, pa.ArrowException) as exc:
                raise self._fail(path, exc) from exc

    def read_arrow(self, path: str) -> pa.Table:
        """Read a Parquet or ORC object whole. Raises UnreadableFileError naming the object."""
        import pyarrow as pa

        self.read_schema(path)
        return pa.concat_tables(list(self.iter_arrow(path)))

    def read_bytes(self, path: str) -> bytes:
        """One object's bytes (an artifact; landed data is read with read_arrow / iter_arrow)."""
        with self._fs.open(self._abs(path), "rb") as handle:
            data: bytes = handle.read()
        return data

    def write_bytes(self, path: str, data: bytes) -> None:
        full = self._abs(path)
        self._fs.makedirs(posixpath.dirname(full), exist_ok=True)
        with self._fs.open(full, "wb") as handle:
            handle.write(data)

    def remove(self, path: str) -> None:
        """Delete one object (used to replace a previous share export)."""
        self._fs.rm(self._abs(path))

    def write_arrow(self, path: str, table: pa.Table) -> None:
        """Write Parquet or ORC, chosen by the path's suffix."""
        import pyarrow.orc as orc
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        if path.endswith(".orc"):
            orc.write_table(table, sink)
        else:
            pq.write_table(table, sink)
        self.write_bytes(path, sink.getvalue())


class LocalObjectStore(ObjectStore):
    """A folder on this machine (the embedded default)."""

    def __init__(self, root: str) -> None:
        from fsspec.implementations.local import LocalFileSystem

        super().__init__(LocalFileSystem(), root, root)

    def _fingerprint(self, detail: dict[str, Any]) -> str:
        raise NotImplementedError("LocalObjectStore.walk fingerprints from os.stat directly")

    def write_bytes(self, path: str, data: bytes) -> None:
        """Folders it creates 0700, a new file 0600 (lakehouse/core/files.py); a file it replaces
        keeps its mode."""
        import os

        from lakehouse.core.files import FILE_MODE, private_dir

        full = self._abs(path)
        private_dir(posixpath.dirname(full))
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def walk(self, prefix: str = "", strict: bool = False) -> Iterator[ObjectInfo]:
        """os.scandir instead of fsspec: a DataScan tick lists everything, so per-entry cost matters.

        Folders whose names start with '.' or '_' are junk by the landing rules and are not entered.
        `strict`: a missing folder is an error (an unmounted or mistyped location), not emptiness."""
        import os

        base = self._abs(prefix.strip("/"))
        if not os.path.isdir(base):
            if strict:
                raise FileNotFoundError(f"{base}: no such folder")
            return
        cut = len(self._root) + 1
        found: list[ObjectInfo] = []
        stack = [base]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if not entry.name.startswith((".", "_")):
                            stack.append(entry.path)
                    elif entry.is_file():
                        st = entry.stat()
                        # mtime (ns) + size + inode: rewritten in place or replaced by rename, it changes
                        fingerprint = f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
                        found.append(ObjectInfo(entry.path[cut:], st.st_size, fingerprint, st.st_mtime))
        found.sort(key=lambda info: info.path)
        yield from found

    def refresh(self) -> None:
        """Local listings are never cached."""


class S3ObjectStore(ObjectStore):
    """A bucket prefix on S3 or any S3-speaking server."""

    def __init__(self, uri: str, credentials: S3Credentials) -> None:
        import s3fs

        self._credentials = credentials
        fs = s3fs.S3FileSystem(
            key=credentials.access_key_id,
            secret=credentials.secret_access_key,
            token=credentials.session_token,
            endpoint_url=credentials.endpoint_url,
            client_kwargs={"region_name": credentials.region} if credentials.region else {},
            use_listings_cache=False,
        )
        super().__init__(fs, uri.removeprefix("s3://"), uri)

    def _fingerprint(self, detail: dict[str, Any]) -> str:
        return str(detail.get("ETag") or detail.get("etag") or "").strip('"') + f":{detail.get('size')}"

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.uri!r})"


def open_object_store(uri: str, credentials: S3Credentials) -> ObjectStore:
    """The store for a landing URI: s3://... on S3, anything else a local folder."""
    if uri.startswith("s3://"):
        return S3ObjectStore(uri, credentials)
    if "://" in uri:
        raise ValueError(f"unsupported landing location {uri!r}: use a local path, file:// or s3://")
    return LocalObjectStore(uri)


def arrow_s3_filesystem(credentials: S3Credentials) -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem for the same credentials (used to scan table data files lazily)."""
    import pyarrow.fs as pafs

    endpoint = credentials.endpoint_url
    kwargs: dict[str, Any] = {"region": credentials.region or "us-east-1"}
    if credentials.access_key_id:
        kwargs.update(access_key=credentials.access_key_id, secret_key=credentials.secret_access_key)
        if credentials.session_token:
            kwargs["session_token"] = credentials.session_token
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        kwargs.update(endpoint_override=rest or scheme, scheme=scheme if rest else "https")
    return pafs.S3FileSystem(**kwargs)
