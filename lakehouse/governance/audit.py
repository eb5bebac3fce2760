"""The access audit: a row for every governed attempt, written before it runs and completed after,
in a tamper-evident chain.

Each row links to the row before it (`prev_id`, unique, so two writers cannot fork the chain: the
loser of a race retries on the new last row) and carries an HMAC of the attempt and the previous
row's hash (`row_hash`); completing it adds an HMAC of the outcome (`end_hash`) and, in the same
transaction, an entry in a second chain, of completions (`gov_access_ends`): an attempt whose
outcome was wiped back to 'started' still has its completion entry, and deleting that entry breaks
the completions' chain, so either shows. The key is
LAKEHOUSE_AUDIT_KEY, else a random key in $LAKEHOUSE_HOME/audit_key (mode 0600), never stored in
the catalog database. So an edited, inserted or deleted row is detected by `lakehouse audit verify`
by anyone holding only the database; rows cut off the end are not (nothing follows them).

User names are written in one spelling: the user's stored name, `owner` for the project owner, and
`unknown:'<as typed>'` (escaped) for a name that is no user, so nobody can write a row that reads
like another user's or the owner's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lakehouse.core.secrets import MissingSecret, local_secret
from lakehouse.governance.schema import access_ends_t, access_t, settings_t

AUDIT_KEY_FILE = "audit_key"
AUDIT_KEY_ENV = "LAKEHOUSE_AUDIT_KEY"
CHAIN_ANCHOR_FILE = "audit_chain"
ENDS_ANCHOR_FILE = "audit_ends_chain"
"""The first attempt whose completion this home chained (beside the key, like CHAIN_ANCHOR_FILE)."""
KEY_FINGERPRINT = "lakehouse.audit.key_fingerprint"
ENDS_FROM = "lakehouse.audit.ends_from"
"""Catalog setting: the first attempt whose completion is chained (older ones were completed before
completions had a chain of their own)."""
STARTED = "started"
APPEND_RETRIES = 20
_WRITERS = threading.Lock()
"""One audit write at a time in this process: threads (the SQL endpoint's pool) queue here instead
of in SQLite's busy handler, which sleeps in growing steps; other processes still wait on SQLite."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


class AuditKeyMismatch(RuntimeError):
    """This home's audit key is not the one the catalog's trail is written with."""


@dataclass
class VerifyReport:
    rows: int = 0
    """Rows in the trail."""
    chained: int = 0
    """Rows that carry the chain (older rows were written before it existed)."""
    started: int = 0
    """Attempts that never completed (a killed process, or still running)."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditLog:
    """Append and complete audit rows; verify the chain."""

    def __init__(self, engine: sa.Engine, home: str) -> None:
        self.engine = engine
        self._home = home
        self._write_key: bytes | None = None
        """The key, once read and checked against the catalog's fingerprint (by this process)."""
        self._anchored = False

    def _key(self, create: bool = True) -> bytes:
        return local_secret(self._home, AUDIT_KEY_FILE, AUDIT_KEY_ENV, create=create)

    def _checked_key(self, conn: sa.Connection) -> bytes:
        """The key to write with: read and checked until a write with it committed (the caller then
        remembers it in `_write_key`)."""
        if self._write_key is not None:
            return self._write_key
        key = self._key()
        self._check_key(conn, key)
        return key

    def _mac(self, *parts: Any, key: bytes | None = None) -> str:
        payload = json.dumps([_text(p) for p in parts], separators=(",", ":"), ensure_ascii=True)
        return hmac.new(key or self._key(), payload.encode("utf-8"), hashlib.sha256).hexdigest()

    def fingerprint(self, text: str) -> str:
        """A keyed hash of `text` (hex): the same text gives the same value, which tells nothing of
        the text without the audit key (how logins record a name that is no user)."""
        return self._mac("lakehouse fingerprint", text)

    def _check_key(self, conn: sa.Connection, key: bytes) -> None:
        """The catalog remembers which key its trail is written with (a keyed fingerprint, not the
        key): another LAKEHOUSE_HOME on the same catalog with another key is refused, not chained."""
        fingerprint = self._mac("lakehouse audit key", key=key)
        where = (settings_t.c.namespace == "") & (settings_t.c.key == KEY_FINGERPRINT)
        stored = conn.execute(sa.select(settings_t.c.value).where(where)).scalar()
        if stored is None:
            conn.execute(
                sa.insert(settings_t).values(
                    namespace="", key=KEY_FINGERPRINT, value=fingerprint, updated_at=_now()
                )
            )
        elif not hmac.compare_digest(stored, fingerprint):
            raise AuditKeyMismatch(
                f"the audit key of {self._home} is not the key this catalog's audit trail is written with; "
                f"set {AUDIT_KEY_ENV} (or {self._home}/{AUDIT_KEY_FILE}) to that key"
            )

    def _anchor(self) -> Path:
        return Path(self._home) / CHAIN_ANCHOR_FILE

    def _remember_start(self, row_id: int) -> None:
        """The first row this home chained, kept beside the key: wiping every hash in the database
        then shows, instead of passing for rows older than the chain."""
        if self._anchored:
            return
        anchor = self._anchor()
        self._anchored = anchor.exists()
        if not self._anchored:
            anchor.parent.mkdir(parents=True, exist_ok=True)
            anchor.write_text(f"{row_id}\n")

    def begin(self, user_name: str, roles: Iterable[str], kind: str, statement: str | None) -> int:
        """Write the attempt (status started) before it runs; returns its id."""
        with _WRITERS:
            return self._begin(user_name, roles, kind, statement)

    def complete(
        self,
        user_name: str,
        roles: Iterable[str],
        kind: str,
        statement: str | None,
        tables: Iterable[Any],
        masked_columns: Iterable[str],
        rows: int | None,
        status: str,
        reason: str | None,
    ) -> int:
        """One attempt that read nothing yet (refused, or answered from a remembered result),
        written complete in one transaction; returns its id."""
        with _WRITERS:
            return self._begin(
                user_name, roles, kind, statement, (tables, masked_columns, rows, status, reason)
            )

    def _begin(
        self,
        user_name: str,
        roles: Iterable[str],
        kind: str,
        statement: str | None,
        outcome: tuple[Iterable[Any], Iterable[str], int | None, str, str | None] | None = None,
    ) -> int:
        roles_text = ",".join(sorted(roles))
        for attempt in range(APPEND_RETRIES):
            at = _now()
            try:
                with self.engine.begin() as conn:
                    key = self._checked_key(conn)
                    last = conn.execute(
                        sa.select(access_t.c.id, access_t.c.row_hash).order_by(access_t.c.id.desc()).limit(1)
                    ).first()
                    prev_id, prev_hash = (last.id, last.row_hash or "") if last else (0, "")
                    row_hash = self._mac(
                        prev_id, prev_hash, at, user_name, roles_text, kind, statement, key=key
                    )
                    values: dict[str, Any] = {"tables": "", "masked_columns": "", "status": STARTED}
                    if outcome is not None:
                        tables, masked, rows, status, reason = outcome
                        values = self._outcome(row_hash, tables, masked, rows, status, reason, key)
                    result = conn.execute(
                        sa.insert(access_t).values(
                            at=at,
                            user_name=user_name,
                            roles=roles_text,
                            kind=kind,
                            statement=statement,
                            prev_id=prev_id,
                            prev_hash=prev_hash,
                            row_hash=row_hash,
                            **values,
                        )
                    )
                    inserted = result.inserted_primary_key
                    assert inserted is not None
                    if outcome is not None:
                        self._append_end(conn, int(inserted[0]), values["end_hash"], key)
                self._write_key = key
            except (sa.exc.IntegrityError, sa.exc.OperationalError):
                # Another writer appended after the row we read (unique prev_id), or SQLite refused our
                # stale snapshot: link to the new last row.
                time.sleep(0.005 * (attempt + 1))
                continue
            assert inserted is not None
            self._remember_start(int(inserted[0]))
            return int(inserted[0])
        raise RuntimeError("could not append to the audit trail: too many concurrent writers")

    def end(
        self,
        attempt: int,
        tables: Iterable[Any],
        masked_columns: Iterable[str],
        rows: int | None,
        status: str,
        reason: str | None,
    ) -> None:
        """Complete the attempt with its outcome (ok | denied | error), and chain the completion."""
        tables = list(tables)
        masked_columns = list(masked_columns)
        with _WRITERS:
            for retry in range(APPEND_RETRIES):
                try:
                    with self.engine.begin() as conn:
                        key = self._checked_key(conn)
                        row_hash = conn.execute(
                            sa.select(access_t.c.row_hash).where(access_t.c.id == attempt)
                        ).scalar()
                        values = self._outcome(row_hash, tables, masked_columns, rows, status, reason, key)
                        updated = conn.execute(
                            sa.update(access_t)
                            .where(access_t.c.id == attempt, access_t.c.status == STARTED)
                            .values(**values)
                        ).rowcount
                        if updated:
                            self._append_end(conn, attempt, values["end_hash"], key)
                except (sa.exc.IntegrityError, sa.exc.OperationalError):
                    time.sleep(0.005 * (retry + 1))  # another process chained a completion first
                    continue
                self._write_key = key  # checked and used by a committed write
                return
        raise RuntimeError("could not complete an audit row: too many concurrent writers")

    def _append_end(self, conn: sa.Connection, attempt: int, end_hash: str, key: bytes) -> None:
        """The completion's entry in the chain of completions (same transaction as the outcome)."""
        last = conn.execute(
            sa.select(access_ends_t.c.id, access_ends_t.c.entry_hash)
            .order_by(access_ends_t.c.id.desc())
            .limit(1)
        ).first()
        prev_id, prev_hash = (last.id, last.entry_hash) if last else (0, "")
        if last is None:
            self._mark_ends_from(conn, attempt)
        conn.execute(
            sa.insert(access_ends_t).values(
                attempt_id=attempt,
                prev_id=prev_id,
                prev_hash=prev_hash,
                entry_hash=self._mac("completion", prev_id, prev_hash, attempt, end_hash, key=key),
            )
        )

    def _mark_ends_from(self, conn: sa.Connection, attempt: int) -> None:
        """Remember (in the catalog and beside the key) from which attempt on completions are chained."""
        where = (settings_t.c.namespace == "") & (settings_t.c.key == ENDS_FROM)
        if conn.execute(sa.select(settings_t.c.value).where(where)).scalar() is None:
            conn.execute(
                sa.insert(settings_t).values(
                    namespace="", key=ENDS_FROM, value=str(attempt), updated_at=_now()
                )
            )
        anchor = Path(self._home) / ENDS_ANCHOR_FILE
        if not anchor.exists():
            anchor.parent.mkdir(parents=True, exist_ok=True)
            anchor.write_text(f"{attempt}\n")

    def _outcome(
        self,
        row_hash: str | None,
        tables: Iterable[Any],
        masked_columns: Iterable[str],
        rows: int | None,
        status: str,
        reason: str | None,
        key: bytes,
    ) -> dict[str, Any]:
        """The outcome columns of an attempt and their HMAC, chained to the attempt's row hash."""
        finished = _now()
        tables_text = ",".join(str(t) for t in tables)
        masked_text = ",".join(masked_columns)
        end_hash = self._mac(row_hash, finished, tables_text, masked_text, rows, status, reason, key=key)
        return {
            "finished_at": finished,
            "tables": tables_text,
            "masked_columns": masked_text,
            "rows": rows,
            "status": status,
            "reason": reason,
            "end_hash": end_hash,
        }

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` rows, newest first."""
        with self.engine.connect() as conn:
            query = sa.select(access_t).order_by(access_t.c.id.desc()).limit(limit)
            return [dict(r._mapping) for r in conn.execute(query)]

    def verify(self) -> VerifyReport:
        """Recompute the chain: every row's link and HMACs, in order."""
        report = VerifyReport()
        try:
            self._key(create=False)
        except MissingSecret as exc:
            report.problems.append(f"no audit key to verify with: {exc}")
            return report
        anchor = self._anchor()
        start = int(anchor.read_text().strip()) if anchor.exists() else None
        previous: Any = None
        last_legacy = 0  # the newest row written before the chain existed: where the chain starts
        with self.engine.connect() as conn:
            ends = self._verify_ends(conn, report)
            ends_from = self._ends_from(conn)
            for row in conn.execute(sa.select(access_t).order_by(access_t.c.id)):
                r = row._mapping
                report.rows += 1
                if r["row_hash"] is None:
                    if previous is not None:
                        report.problems.append(f"row {r['id']}: not chained, after chained rows")
                    elif start is not None and r["id"] >= start:
                        report.problems.append(
                            f"row {r['id']}: not chained, but the chain started at row {start} "
                            f"({CHAIN_ANCHOR_FILE}): its hashes were removed"
                        )
                    last_legacy = r["id"]
                    continue
                report.chained += 1
                want_prev = (
                    (previous["id"], previous["row_hash"]) if previous is not None else (last_legacy, "")
                )
                if (r["prev_id"], r["prev_hash"]) != want_prev:
                    report.problems.append(
                        f"row {r['id']}: follows row {r['prev_id']}, but the row before it is "
                        f"{want_prev[0]} (a row was deleted or inserted)"
                    )
                mac = self._mac(
                    r["prev_id"],
                    r["prev_hash"],
                    r["at"],
                    r["user_name"],
                    r["roles"],
                    r["kind"],
                    r["statement"],
                )
                if not hmac.compare_digest(mac, r["row_hash"]):
                    report.problems.append(f"row {r['id']}: the attempt was changed after it was written")
                entry = ends.pop(r["id"], None)
                if r["status"] == STARTED:
                    report.started += 1
                    outcome = (r["end_hash"], r["finished_at"], r["rows"], r["reason"])
                    if outcome != (None, None, None, None) or r["tables"] or r["masked_columns"]:
                        report.problems.append(f"row {r['id']}: an outcome was changed back to started")
                    elif entry is not None:
                        report.problems.append(
                            f"row {r['id']}: completed (completion entry {entry[0]}), but turned back into started"
                        )
                else:
                    if entry is None and ends_from is not None and r["id"] >= ends_from:
                        report.problems.append(
                            f"row {r['id']}: completed, but its completion entry is missing (deleted)"
                        )
                    elif entry is not None and not hmac.compare_digest(
                        entry[1], self._mac("completion", entry[2], entry[3], r["id"], r["end_hash"])
                    ):
                        report.problems.append(
                            f"row {r['id']}: the outcome differs from the one its completion entry chained"
                        )
                    end = self._mac(
                        r["row_hash"],
                        r["finished_at"],
                        r["tables"],
                        r["masked_columns"],
                        r["rows"],
                        r["status"],
                        r["reason"],
                    )
                    if r["end_hash"] is None or not hmac.compare_digest(end, r["end_hash"]):
                        report.problems.append(f"row {r['id']}: the outcome was changed after it was written")
                previous = r
        for attempt, (entry_id, *_rest) in sorted(ends.items()):
            report.problems.append(
                f"completion entry {entry_id}: completes row {attempt}, which is not there"
            )
        return report

    def _ends_from(self, conn: sa.Connection) -> int | None:
        """The first attempt whose completion must be chained: the catalog's mark, or the one kept
        beside the key when the catalog's was removed (the lower wins)."""
        where = (settings_t.c.namespace == "") & (settings_t.c.key == ENDS_FROM)
        marks = [conn.execute(sa.select(settings_t.c.value).where(where)).scalar()]
        anchor = Path(self._home) / ENDS_ANCHOR_FILE
        if anchor.exists():
            marks.append(anchor.read_text().strip())
        found = [int(m) for m in marks if m and str(m).isdigit()]
        return min(found) if found else None

    def _verify_ends(self, conn: sa.Connection, report: VerifyReport) -> dict[int, tuple[int, str, int, str]]:
        """Check the chain of completions; returns attempt id -> (entry id, entry hash, prev_id,
        prev_hash) for the attempts' own check."""
        found: dict[int, tuple[int, str, int, str]] = {}
        previous: tuple[int, str] = (0, "")
        for e in conn.execute(sa.select(access_ends_t).order_by(access_ends_t.c.id)):
            if (e.prev_id, e.prev_hash) != previous:
                report.problems.append(
                    f"completion entry {e.id}: follows entry {e.prev_id}, but the entry before it is "
                    f"{previous[0]} (a completion was deleted or inserted)"
                )
            found[int(e.attempt_id)] = (int(e.id), e.entry_hash, int(e.prev_id), e.prev_hash)
            previous = (int(e.id), e.entry_hash)
        return found
