"""Logins for the serving surfaces: passwords kept as verifiers only, every attempt audited.

A login name is `owner` (the project owner: every table, real values) or a user the policy added
(`RAM$alice` and `alice` are one user). The stored verifier is MySQL's native-password one,
SHA1(SHA1(password)): the SQL endpoint's handshake needs exactly that, and the dashboard checks a
typed password against the same verifier, so one password serves both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from lakehouse.governance.schema import changes_t, credentials_t
from lakehouse.governance.store import OWNER, PermissionDenied, audit_name, user_key

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse

PLUGIN = "mysql_native_password"
MAX_PASSWORD = 1024
"""Longest password accepted (a verifier is fixed-size; this bounds the hashing work of a login)."""


def native_verifier(password: str) -> str:
    """MySQL's mysql_native_password verifier: hex SHA1(SHA1(password))."""
    return hashlib.sha1(hashlib.sha1(password.encode("utf-8")).digest()).hexdigest()


@dataclass(frozen=True)
class Account:
    """Who a login name is: `user` is what the facade's governed calls take (None: the owner)."""

    login: str
    """The stored key: `owner` or the user's lower-case name without `RAM$`."""
    user: str | None
    """The user's stored spelling, or None for the owner."""

    @property
    def label(self) -> str:
        return self.user or OWNER


def account(lh: Lakehouse, name: object) -> Account | None:
    """The account a typed login name names, or None (not text, too long, no such user)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        return None
    if name.strip().lower() == OWNER:
        return Account(OWNER, None)
    stored = lh.governance.stored_user(name)
    return Account(user_key(name), stored) if stored else None


def set_password(lh: Lakehouse, name: str, password: str, actor: str = OWNER) -> Account:
    """Store the verifier of `password` for `name` (replacing the previous one), and record the
    change (never the password) in the policy change trail."""
    found = account(lh, name)
    if found is None:
        raise PermissionDenied(f"user {name!r} does not exist (ADD USER it in a policy file, or use 'owner')")
    if not password:
        raise ValueError(f"refusing an empty password for {found.label}")
    if len(password) > MAX_PASSWORD or "\n" in password or "\r" in password:
        raise ValueError(f"a password is one line of at most {MAX_PASSWORD} characters")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    values = {"plugin": PLUGIN, "verifier": native_verifier(password), "updated_at": now}
    with lh.governance.engine.begin() as conn:
        updated = conn.execute(
            sa.update(credentials_t).where(credentials_t.c.user_name == found.login).values(**values)
        )
        if updated.rowcount == 0:
            conn.execute(sa.insert(credentials_t).values(user_name=found.login, **values))
        conn.execute(
            sa.insert(changes_t).values(
                at=now,
                actor=actor,
                source="lakehouse user password",
                statement=f"SET PASSWORD FOR {found.label}",
                change=f"password set for {found.label}",
            )
        )
    return found


def verifier(lh: Lakehouse, found: Account) -> str | None:
    """The stored verifier of an account, or None when it has no password (it cannot log in)."""
    with lh.governance.engine.connect() as conn:
        value = conn.execute(
            sa.select(credentials_t.c.verifier).where(
                credentials_t.c.user_name == found.login, credentials_t.c.plugin == PLUGIN
            )
        ).scalar()
    return str(value) if value else None


def audit_login(lh: Lakehouse, name: object, found: Account | None, surface: str, ok: bool) -> None:
    """One complete audit row for a login attempt (kind `login`, statement names the surface)."""
    who = found.label if found else audit_name(name)
    status, reason = ("ok", None) if ok else ("denied", "wrong password, unknown user or no password set")
    lh.audit.complete(who, [], "login", f"login to {surface}", [], [], None, status, reason)


def login(lh: Lakehouse, name: object, password: object, surface: str) -> Account | None:
    """The account when `password` is its password, else None; audited either way. A wrong password,
    an unknown user and a user without a password are refused alike (no name is confirmed)."""
    found = account(lh, name)
    stored = verifier(lh, found) if found else None
    typed = password if isinstance(password, str) and 0 < len(password) <= MAX_PASSWORD else None
    ok = bool(stored and typed is not None and hmac.compare_digest(native_verifier(typed), stored))
    audit_login(lh, name, found, surface, ok)
    return found if ok else None
