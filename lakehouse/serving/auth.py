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
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from lakehouse.governance.schema import changes_t, credentials_t
from lakehouse.governance.store import OWNER, PermissionDenied, user_key

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


def login_label(lh: Lakehouse, name: object, found: Account | None) -> str:
    """How the audit and the logs name a login attempt: the account, or for a name that is no user a
    keyed fingerprint of what was typed (`unknown login #1a2b3c4d5e`), never the text itself: people
    type passwords into the user field. The owner can still tell repeated attempts of one name apart."""
    if found is not None:
        return found.label
    return f"unknown login #{lh.audit.fingerprint(ascii(name))[:10]}"


_NOBODY = Account("\x00nobody", None)
"""An account no stored verifier belongs to."""
DENIED = "wrong password, unknown user or no password set"


def audit_login(
    lh: Lakehouse, name: object, found: Account | None, surface: str, ok: bool, reason: str = DENIED
) -> None:
    """One complete audit row for a login attempt (kind `login`, statement names the surface)."""
    status, why = ("ok", None) if ok else ("denied", reason)
    lh.audit.complete(
        login_label(lh, name, found), [], "login", f"login to {surface}", [], [], None, status, why
    )


_UNMATCHABLE = native_verifier(secrets.token_hex(32))
"""What an attempt without a stored verifier is compared with: no password matches it."""


def login(
    lh: Lakehouse,
    name: object,
    password: object,
    surface: str,
    throttle: LoginThrottle | None = None,
    address: str | None = None,
) -> Account | None:
    """The account when `password` is its password, else None; audited either way. A wrong password,
    an unknown user and a user without a password are refused alike and cost the same work (the
    verifier is looked up and a hash computed for every name), so no name is confirmed, not even by
    the time the answer takes. With a `throttle`, a user or client `address` locked by earlier
    failures is refused without looking at the password (LoginLocked says for how long)."""
    found = account(lh, name)
    keys = throttle_keys(found, name, address)
    if throttle is not None:
        wait = throttle.locked_for(keys)
        if wait > 0:
            audit_login(
                lh, name, found, surface, False, f"locked after repeated failures ({wait:.0f} s left)"
            )
            raise LoginLocked(wait)
    stored = verifier(lh, found or _NOBODY)  # the same lookup for a name that is no user
    typed = password if isinstance(password, str) and 0 < len(password) <= MAX_PASSWORD else ""
    ok = hmac.compare_digest(native_verifier(typed), stored or _UNMATCHABLE)
    ok = ok and found is not None and stored is not None and bool(typed)
    audit_login(lh, name, found, surface, ok)
    if throttle is not None:
        if ok:
            throttle.succeeded(keys)
        else:
            throttle.failed(keys)
    return found if ok else None


# --- the login throttle ---------------------------------------------------------------------------


class LoginLocked(PermissionDenied):
    """A user or client address is locked for a while after repeated failed logins."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"too many failed logins for this user or address; try again in {max(1, round(seconds))} s"
        )
        self.seconds = seconds


def throttle_keys(found: Account | None, name: object, address: str | None) -> list[str]:
    """The keys one attempt counts against: the account (or the name as typed, lower-cased), and the
    client address when known."""
    user = found.login if found is not None else f"?{str(name).strip().lower()[:255]}"
    return [f"user:{user}"] + ([f"address:{address}"] if address else [])


@dataclass
class _Failures:
    count: int
    last: float
    locked_until: float


class LoginThrottle:
    """Failed logins per user and per client address, shared by every connection or session of the
    process, as MySQL's FAILED_LOGIN_ATTEMPTS / PASSWORD_LOCK_TIME: after `free_failures` failures
    in a row a key is locked for `lock_seconds`, doubled with every further failure up to
    `max_lock_seconds`; during a lock every attempt is refused, the right password included. A
    success clears the user's count (not the address's: one good password does not buy an address
    more guesses at other users). Counts are forgotten after `forget_seconds` without a failure.

    An address counts `address_factor` times the user's allowance (several people share one NAT)."""

    MAX_KEYS = 100_000
    """Keys remembered at most (the oldest are forgotten first): a spray of names stays bounded."""

    def __init__(
        self,
        free_failures: int = 5,
        lock_seconds: float = 1.0,
        max_lock_seconds: float = 900.0,
        forget_seconds: float = 3600.0,
        address_factor: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.lock_seconds = lock_seconds
        self.max_lock_seconds = max_lock_seconds
        self.forget_seconds = forget_seconds
        self.address_factor = address_factor
        self._clock = clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def _allowance(self, key: str) -> int:
        return self.free_failures * (self.address_factor if key.startswith("address:") else 1)

    def locked_for(self, keys: Iterable[str]) -> float:
        """Seconds until all of `keys` may try again (0: now)."""
        now = self._clock()
        with self._lock:
            found = [self._keys.get(k) for k in keys]
        return max([f.locked_until - now for f in found if f is not None] + [0.0])

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                found = self._keys.pop(key, None)
                if found is None or now - found.last > self.forget_seconds:
                    found = _Failures(0, now, 0.0)
                found.count += 1
                found.last = now
                extra = found.count - self._allowance(key)
                if extra >= 0:
                    lock = min(self.lock_seconds * 2 ** min(extra, 40), self.max_lock_seconds)
                    found.locked_until = now + lock
                self._keys[key] = found
            while len(self._keys) > self.MAX_KEYS:
                self._keys.popitem(last=False)

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                if key.startswith("user:"):
                    self._keys.pop(key, None)


# --- what the dashboard adds (it refuses the owner, and ends sessions on a password change) ----------


def login_refused(
    lh: Lakehouse,
    name: object,
    password: object,
    surface: str,
    reason: str,
    throttle: LoginThrottle | None = None,
    address: str | None = None,
) -> None:
    """Refuse an attempt the surface does not take at all (the dashboard refusing `owner`) exactly
    as `login` refuses a wrong password: the lock is checked first (LoginLocked), the verifier looked
    up and a hash computed, one denied audit row (with `reason`, for the owner's eyes), a failure
    counted. The password is never compared, so the refusal says nothing about it: a surface that
    refuses an account must not become an oracle for its password on the surfaces that take it."""
    found = account(lh, name)
    keys = throttle_keys(found, name, address)
    if throttle is not None:
        wait = throttle.locked_for(keys)
        if wait > 0:
            audit_login(
                lh, name, found, surface, False, f"locked after repeated failures ({wait:.0f} s left)"
            )
            raise LoginLocked(wait)
    stored = verifier(lh, found or _NOBODY)
    typed = password if isinstance(password, str) and 0 < len(password) <= MAX_PASSWORD else ""
    hmac.compare_digest(native_verifier(typed), stored or _UNMATCHABLE)  # the work login does; unused
    audit_login(lh, name, found, surface, False, reason)
    if throttle is not None:
        throttle.failed(keys)


@dataclass(frozen=True)
class Credential:
    """An account's password as stored when a session began: a session ends when it differs."""

    verifier: str
    updated_at: str


def credential(lh: Lakehouse, found: Account) -> Credential | None:
    """The account's stored password (verifier and when it was set), or None when it has none or the
    user is gone: `lakehouse user password` (or a policy dropping the user) changes it, and a surface
    that compares it on every request ends the sessions opened with the old one."""
    if found.user is not None and lh.governance.stored_user(found.login) is None:
        return None
    with lh.governance.engine.connect() as conn:
        row = conn.execute(
            sa.select(credentials_t.c.verifier, credentials_t.c.updated_at).where(
                credentials_t.c.user_name == found.login, credentials_t.c.plugin == PLUGIN
            )
        ).first()
    if row is None or not row.verifier:
        return None
    return Credential(str(row.verifier), str(row.updated_at))
