"""What the lakehouse writes on this machine is its owner's only, whatever the caller's umask: the
home, the catalog (catalog.db, -wal, -shm), the audit key and chain anchors, the masking salt, the
landing files it generates, the local warehouse and the Dagster storage under the home are 0700
(folders) / 0600 (files), with the real `lakehouse` command run under umask 022 (the usual one,
which would leave all of them readable by every local user: every table unmasked, the audit key).
A home or catalog that group or others may read is warned about on stderr, with the fix."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.helpers.env import clean_env
from tests.helpers.paths import BIN, REPO

POLICY = """
CREATE ROLE analyst;
GRANT CreateInstance, List ON PROJECT iov TO ROLE analyst;
GRANT SELECT ON TABLE ads_vehicle_hourly_stat TO ROLE analyst;
ADD USER RAM$bob;
GRANT analyst TO RAM$bob;
setproject odps.data.masking.policy.enable=true;
CREATE DATA MASKING POLICY hash_vin TO ROLE (analyst) USING MASKED_HASH();
APPLY DATA MASKING POLICY hash_vin BIND TO TABLE ads_vehicle_hourly_stat COLUMN vin;
"""


def _lakehouse(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `lakehouse` command in a shell whose umask is 022; DAGSTER_HOME unset, so the
    Dagster storage is the home's own (dagster_home)."""
    env = clean_env(dict(os.environ), LAKEHOUSE_HOME=str(home))
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" "$@"', str(BIN / "lakehouse"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _exposed(home: Path) -> list[str]:
    found = []
    for path in [home, *home.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode & 0o077 or (path.is_dir() and mode != want):
            found.append(f"{path.relative_to(home.parent)} {mode:04o}")
    return found


def test_everything_under_the_home_is_private_under_umask_022_and_an_open_home_is_warned(
    tmp_path: Path,
) -> None:
    home = tmp_path / "lh"
    (tmp_path / "policy.sql").write_text(POLICY)
    _lakehouse(home, "generate", "iov", "--hours", "1", "--vehicles", "2")
    _lakehouse(home, "scan")
    _lakehouse(home, "policy", "apply", str(tmp_path / "policy.sql"), "--project", "iov")
    read = _lakehouse(home, "sql", "select vin from iov.ads_vehicle_hourly_stat", "--user", "RAM$bob")
    assert "VIN001" not in read.stdout  # hashed with the salt: the salt file was made
    for name in ("catalog.db", "audit_key", "audit_chain", "audit_ends_chain", "masking_salt"):
        assert (home / name).is_file(), name
    assert (home / "warehouse").is_dir() and list((home / "warehouse").rglob("*.parquet"))
    assert (home / "dagster_home").is_dir() and any((home / "dagster_home").rglob("*"))
    assert _exposed(home) == []
    assert not _lakehouse(home, "tables").stderr  # nothing to warn about

    # an operator opened the home to everyone: every command warns, once, with the fix
    home.chmod(0o755)
    listed = _lakehouse(home, "tables")
    [warning] = [line for line in listed.stderr.splitlines() if "warning" in line]
    assert str(home) in warning and f"chmod 700 {home}" in warning
    assert "ods_vehicle_gps_raw" in listed.stdout  # a warning, not a refusal
    home.chmod(0o700)
    (home / "catalog.db").chmod(0o644)
    queried = _lakehouse(home, "sql", "select 1 as one")
    [warning] = [line for line in queried.stderr.splitlines() if "warning" in line]
    assert f"chmod 600 {home / 'catalog.db'}" in warning
