"""Secrets the lakehouse makes for itself (the masking salt, the audit key): from the environment,
else generated once into a private file under LAKEHOUSE_HOME (0600, its folders 0700: see files.py).
Never logged, shown or written elsewhere."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from lakehouse.core.files import FILE_MODE, private_dir


class MissingSecret(LookupError):
    """The secret is neither in the environment nor in its file (and was not to be created)."""


def local_secret(
    home: str, filename: str, env_var: str, env: Mapping[str, str] | None = None, create: bool = True
) -> bytes:
    """`env_var` when set, else the content of $home/filename, created once with mode 0600 (unless
    `create` is False: then MissingSecret)."""
    env = os.environ if env is None else env
    if env.get(env_var):
        return env[env_var].encode("utf-8")
    path = Path(home) / filename
    if not path.exists() and not create:
        raise MissingSecret(f"neither {env_var} nor {path} holds the secret")
    if not path.exists():
        private_dir(path.parent)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode("utf-8")
