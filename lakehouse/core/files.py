"""Private files: what the lakehouse writes on this machine is for its owner only.

The home (LAKEHOUSE_HOME) holds the catalog (catalog.db and its -wal/-shm), the audit key and the
anchors of the audit chains, the masking salt, the local warehouse (Parquet) and the Dagster storage
it owns (dagster_home). Anyone who can read it reads every table unmasked and can forge the audit;
anyone who can write it can change what the lakehouse believes. So, like PostgreSQL's data
directory (which it refuses to use when group or others may access it):

- opening a lakehouse (`Lakehouse(settings)`) sets the process's umask to 077 (kept stricter if it
  was), so every folder it or its libraries (pyiceberg, deltalake, SQLite, Dagster) create is 0700
  and every file 0600, whatever umask the caller had (022 is common);
- where the lakehouse creates a folder or a file itself it also says so explicitly
  (`private_dir`, `private_file`): 0700 / 0600 even for a caller that changed the umask back;
- an existing home or catalog file that group or others may read or write is not changed (it is
  the operator's): the CLI warns once on stderr, naming the path and the `chmod` that fixes it
  (`exposure`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_umask() -> None:
    """Make this process create folders 0700 and files 0600 (umask |= 077)."""
    current = os.umask(PRIVATE_UMASK)
    os.umask(current | PRIVATE_UMASK)


def private_dir(path: str | Path) -> Path:
    """`path` and its missing parents created 0700 (existing folders are left as they are)."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for created in missing:
        # mkdir's mode passes through the umask: say it outright. OSError: another process removed
        # it or owns it, not ours to fix.
        with contextlib.suppress(OSError):
            os.chmod(created, DIR_MODE)
    return path


def private_file(path: str | Path) -> Path:
    """`path` created empty with mode 0600 unless it exists (its folder made with `private_dir`)."""
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    return path


def exposure(path: str | Path) -> str | None:
    """A one-line warning when group or others may read or write `path` (None when private, or
    when it does not exist), naming the path and the `chmod` that makes it private."""
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o066:
        return None
    is_dir = path.is_dir()
    who = " and ".join(w for w, bits in (("group", 0o060), ("others", 0o006)) if mode & bits)
    fix = f"chmod {'700' if is_dir else '600'} {path}"
    what = "the lakehouse home (catalog, audit key, masking salt, data)" if is_dir else "the catalog file"
    return (
        f"warning: {path} is {what} and {who} may read or write it (mode {mode:04o}); make it private: {fix}"
    )
