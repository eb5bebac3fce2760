"""The web dashboard (`lakehouse dashboard`): a Streamlit script over both seeds' ADS tables, behind a
login. Whoever logs in is untrusted (the dashboard is partner-facing).

Every read is the facade's governed call `lh.sql(query, user=account.user)`, and only of the tables
governance says the user may SELECT (dashboard_data.readable_tables, asked before any query): a
panel of another table is not shown, not queried, not audited as refused. No error text of the
engine or the governance reaches the page. Data is queried on every rerun (no result cache): the
Refresh button, or the optional auto-refresh, shows what landed since.

Logins (auth.login): one LoginThrottle for the whole Streamlit process, per user and per client
address (MySQL's FAILED_LOGIN_ATTEMPTS / PASSWORD_LOCK_TIME); it lives in this module, imported
once per process, not in st.cache_resource, which any browser may empty for every session (a
`clear_cache` message, honoured whatever the toolbar shows). The owner is refused unless
`allow_owner` (refused exactly like a wrong password, auth.login_refused). A typed name is
canonical before the throttle counts it (`RAM$Bob`, ` bob` and `bob` are one name whether or not
bob exists: no lock tells which names are users). A session ends after `idle_timeout_seconds`
without a user action (the auto-refresh is none), after `absolute_timeout_seconds` whatever, and
when the account's password changes (`lakehouse user password`) or the user is gone; logging out
or ending clears the whole session state.

The query functions are in dashboard_data.py (plain functions of a `Lakehouse` and a user,
unit-testable without Streamlit); `main()` renders them. `lakehouse dashboard` runs a launcher
script calling `main(DashboardOptions(...))` with its flags; importing this module has no side
effect.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse
    from lakehouse.serving.auth import Account, Credential, LoginThrottle

from lakehouse.serving.dashboard_data import (
    GAME_TABLES,
    IOV,
    TOP_VEHICLES,
    DateRange,
    Fleet,
    Games,
    Result,
    date_bounds,
    fleet,
    game_totals,
    games,
    km,
    money,
    readable_tables,
)

log = logging.getLogger("lakehouse.dashboard")

SURFACE = "dashboard"
AUTO_REFRESH_SECONDS = 30
SESSION_KEY = "session"
NOTICE_KEY = "notice"
"""The one key kept across a cleared session state: why the last session ended (no data)."""

WRONG = "Wrong user or password."
LOCKED = "Too many failed sign-ins for this user or from this address; try again in {seconds} s."
OWNER_REFUSED = (
    "the dashboard refuses the owner (it is partner-facing); lakehouse dashboard --allow-owner permits it"
)
ENDED_IDLE = "Signed out after {minutes} without activity."
ENDED_ABSOLUTE = "Signed out: a session lasts at most {hours}. Sign in again."
ENDED_PASSWORD = "Signed out: the password was changed (or the user removed). Sign in again."
ENDED_UNCHECKED = "Signed out: the session could not be checked. Sign in again."
SIGNED_OUT = "Signed out."


@dataclass(frozen=True)
class DashboardOptions:
    """What `lakehouse dashboard` passes to the script (its flags, written into the launcher)."""

    failed_login_attempts: int = 5
    """Failed logins in a row before a user (or, twice as many, a client address) is locked."""
    password_lock_seconds: float = 1.0
    """The first lock; doubled with every further failure, up to 900 s."""
    allow_owner: bool = False
    """Let `owner` (every table, real values) log in to this partner-facing surface."""
    idle_timeout_seconds: float = 1800.0
    """A session ends after this long without a user action (30 min)."""
    absolute_timeout_seconds: float = 43200.0
    """A session ends this long after its login, active or not (12 h)."""

    @property
    def watch_seconds(self) -> float:
        """How often an open page checks its session (so an abandoned tab is signed out on time)."""
        return max(1.0, min(30.0, self.idle_timeout_seconds / 3, self.absolute_timeout_seconds / 3))


@dataclass
class Session:
    """One signed-in browser session (kept in st.session_state)."""

    account: Account
    credential: Credential
    """The account's stored password at login: the session ends when it changes."""
    signed_in_at: float
    last_active: float
    """monotonic seconds of the login and of the last user action (a full script run)."""


# --- process-wide state (this module is imported once per Streamlit process) -----------------------

_SHARED: dict[Any, Any] = {}
_SHARED_LOCK = threading.Lock()


def serving_lakehouse() -> Lakehouse:
    """The process's long-lived reader for the current settings: snapshot-keyed table and result
    caches, pooled connections; every query still reads the current snapshot."""
    from lakehouse.core.settings import LakehouseSettings
    from lakehouse.facade import Lakehouse

    settings = LakehouseSettings.from_env()
    with _SHARED_LOCK:
        found = _SHARED.get(("lakehouse", settings))
        if found is None:
            found = _SHARED[("lakehouse", settings)] = Lakehouse(settings).for_serving()
        return found  # type: ignore[no-any-return]


def process_throttle(options: DashboardOptions) -> LoginThrottle:
    """The one LoginThrottle every session of this process shares."""
    from lakehouse.serving.auth import LoginThrottle

    key = ("throttle", options.failed_login_attempts, options.password_lock_seconds)
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = LoginThrottle(
                free_failures=options.failed_login_attempts, lock_seconds=options.password_lock_seconds
            )
        return found  # type: ignore[no-any-return]


def client_address() -> str | None:
    """The session's client address: the TCP peer of its WebSocket, or what a trusted proxy says in
    X-Forwarded-For (uvicorn honours it only from the addresses `lakehouse dashboard` lets it trust,
    loopback by default). Loopback is an address like any other here (st.context.ip_address hides it
    as None). None outside a Streamlit server."""
    try:
        from streamlit import runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is None or not runtime.exists():
            return None
        client = runtime.get_instance().get_client(ctx.session_id)
        remote = getattr(getattr(client, "client_context", None), "remote_ip", None)
        return str(remote) if remote else None
    except Exception:  # noqa: BLE001 - no address: the user key still counts
        return None


# --- logins and sessions (plain functions: unit-testable without Streamlit) -----------------------


def canonical_login_name(typed: str) -> str:
    """The name the throttle and the login see: `RAM$Bob`, ` BOB` and `bob` are one name (the store's
    user key), whether or not such a user exists, so a lock on one spelling holds for the others
    for every name alike and tells nothing about which names are users. `owner` is only `owner`
    itself (not `RAM$owner`); a name the key would change in meaning is passed as typed."""
    from lakehouse.governance.store import OWNER, RESERVED_USER_KEYS, user_key

    text = typed.strip() if isinstance(typed, str) else ""
    if text.lower() == OWNER:
        return OWNER
    key = user_key(text)
    return key if key == user_key(key) and key not in RESERVED_USER_KEYS else text


@dataclass(frozen=True)
class SignIn:
    """What one attempt gave: a session, or the message to show (the same for every refusal)."""

    session: Session | None
    message: str | None = None


def sign_in(
    lh: Lakehouse,
    name: str,
    password: str,
    options: DashboardOptions,
    throttle: LoginThrottle | None,
    address: str | None,
    now: float | None = None,
) -> SignIn:
    """One login attempt on the dashboard. Wrong passwords, unknown names and a refused owner get
    the same message and cost the same work; a locked user or address is told to wait. Nothing typed
    is logged here (auth audits a name that is no user as a keyed fingerprint)."""
    from lakehouse.governance.store import OWNER
    from lakehouse.serving.auth import LoginLocked, credential, login, login_refused, native_verifier

    typed = canonical_login_name(name)
    try:
        if typed == OWNER and not options.allow_owner:
            login_refused(lh, typed, password, SURFACE, OWNER_REFUSED, throttle=throttle, address=address)
            return SignIn(None, WRONG)
        found = login(lh, typed, password, SURFACE, throttle=throttle, address=address)
    except LoginLocked as exc:
        return SignIn(None, LOCKED.format(seconds=max(1, round(exc.seconds))))
    if found is None:
        return SignIn(None, WRONG)
    stored = credential(lh, found)
    if stored is None or stored.verifier != native_verifier(password):
        return SignIn(None, WRONG)  # the password changed between the check and now
    at = time.monotonic() if now is None else now
    return SignIn(Session(found, stored, signed_in_at=at, last_active=at))


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def session_end(
    lh: Lakehouse, session: Session, options: DashboardOptions, now: float | None = None
) -> str | None:
    """Why the session is over (the message to show), or None while it holds: its absolute limit,
    its idle limit, or a changed password (or a user that is gone). A failed check ends it too."""
    from lakehouse.serving.auth import credential

    at = time.monotonic() if now is None else now
    if at - session.signed_in_at >= options.absolute_timeout_seconds:
        return ENDED_ABSOLUTE.format(hours=_duration(options.absolute_timeout_seconds))
    if at - session.last_active >= options.idle_timeout_seconds:
        return ENDED_IDLE.format(minutes=_duration(options.idle_timeout_seconds))
    try:
        current = credential(lh, session.account)
    except Exception:  # the page's boundary: fail closed, details to the server's log
        log.exception("dashboard session check failed")
        return ENDED_UNCHECKED
    if current != session.credential:
        return ENDED_PASSWORD
    return None


# --- rendering (Streamlit) ------------------------------------------------------------------------


def _end_session(notice: str) -> NoReturn:
    """Clear the whole session state (widgets, dates, the session), keep why, and start over."""
    import streamlit as st

    st.session_state.clear()
    st.session_state[NOTICE_KEY] = notice
    st.rerun()


def _login_form(lh: Lakehouse, options: DashboardOptions) -> None:
    import streamlit as st

    from lakehouse.serving.auth import MAX_PASSWORD

    st.title("Lakehouse dashboard")
    notice = st.session_state.get(NOTICE_KEY)
    if notice:
        st.info(notice)
    with st.form("login", clear_on_submit=True):  # nothing typed stays in the session state
        st.subheader("Sign in")
        name = st.text_input("User", key="login_user", max_chars=255)
        password = st.text_input("Password", type="password", key="login_password", max_chars=MAX_PASSWORD)
        submitted = st.form_submit_button("Sign in")
    if submitted:
        outcome = sign_in(lh, name, password, options, process_throttle(options), client_address())
        if outcome.session is None:
            st.error(outcome.message or WRONG)
        else:
            st.session_state.clear()  # nothing from before the login survives it
            st.session_state[SESSION_KEY] = outcome.session
            st.rerun()


def _note(result: Result) -> bool:
    """Show the result's note (True) or nothing (False: it has rows to chart); nothing at all for a
    table the user may not read (True: no panel)."""
    import streamlit as st

    if result.hidden:
        return True
    if result.frame is None:
        st.info(result.note or f"no data in {result.table}")
        return True
    if result.frame.empty:
        st.info(f"no rows in {result.table} for these dates")
        return True
    return False


def _chart(figure: Any) -> None:
    import streamlit as st

    figure.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10}, height=340)
    st.plotly_chart(figure, width="stretch", config={"displaylogo": False})


def _render_fleet(data: Fleet) -> None:
    import plotly.express as px
    import streamlit as st

    st.header("Vehicles (iov)")
    if _note(data.totals):
        return
    assert data.totals.frame is not None
    row = data.totals.frame.iloc[0]
    if not int(row["vehicle_hours"]):
        st.info(f"no rows in {IOV} for these dates")
        return
    a, b, c = st.columns(3)
    a.metric("Fleet mileage", km(float(row["total_km"])))
    b.metric("Vehicle-hours", f"{int(row['vehicle_hours']):,}")
    speed = row["avg_speed"]
    c.metric("Average speed", "–" if speed is None or speed != speed else f"{float(speed):,.1f} km/h")
    if not _note(data.hourly):
        hourly = data.hourly.frame
        _chart(
            px.bar(
                hourly,
                x="stat_hour",
                y="total_km",
                title="Fleet mileage per hour",
                labels={"stat_hour": "hour", "total_km": "km"},
            ).update_xaxes(type="category")
        )
    what = "vehicle-hours" if data.per_hour else "vehicles"
    left, right = st.columns(2)
    masked = False
    for column, result, x, color, title in (
        (left, data.top_mileage, "total_km", "avg_speed", f"Top {TOP_VEHICLES} {what} by mileage"),
        (right, data.top_speed, "avg_speed", "total_km", f"Top {TOP_VEHICLES} {what} by average speed"),
    ):
        with column:
            if _note(result):
                continue
            frame = result.frame
            assert frame is not None
            masked = masked or bool(frame["vehicle"].astype(str).str.contains("*", regex=False).any())
            _chart(
                px.bar(
                    frame,
                    x=x,
                    y="vehicle",
                    orientation="h",
                    color=color,
                    title=title,
                    labels={"total_km": "km", "avg_speed": "km/h", "vehicle": ""},
                ).update_yaxes(autorange="reversed", type="category")
            )
    if data.per_hour:
        st.caption(
            "Vehicle ids are masked for you and several vehicles share a masked id, so the top lists "
            "rank single vehicle-hours."
        )
    elif masked:
        st.caption("Vehicle ids are masked for you.")


def _render_games(data: Games) -> None:
    import plotly.express as px
    import streamlit as st

    st.header("Game analytics (game_db)")
    totals = game_totals(data)
    if totals.dau is not None or totals.gmv is not None:
        a, b, c = st.columns(3)
        if totals.dau is not None:
            a.metric(f"DAU ({totals.last_day})", f"{totals.dau:,}")
        if totals.gmv is not None:
            b.metric("GMV", money(totals.gmv))
            c.metric("Paying users (last day)", f"{totals.paying_users:,}")
    left, right = st.columns(2)
    with left:
        if not _note(data.retention):
            frame = data.retention.frame
            assert frame is not None
            rates = frame.melt(
                id_vars=["dt"],
                value_vars=["d1_retention_rate", "d7_retention_rate"],
                var_name="retention",
                value_name="rate",
            )
            rates["retention"] = rates["retention"].map(
                {"d1_retention_rate": "D1", "d7_retention_rate": "D7"}
            )
            _chart(
                px.line(
                    rates, x="dt", y="rate", color="retention", markers=True, title="D1 / D7 retention"
                ).update_yaxes(tickformat=".0%")
            )
    with right:
        if not _note(data.devices):
            frame = data.devices.frame
            assert frame is not None
            _chart(
                px.bar(
                    frame,
                    x="dt",
                    y="share",
                    color="device_type",
                    title="Device share per day",
                    labels={"device_type": "device"},
                ).update_yaxes(tickformat=".0%")
            )
    if not _note(data.purchases):
        frame = data.purchases.frame
        assert frame is not None
        left, right = st.columns(2)
        with left:
            _chart(px.bar(frame, x="dt", y="gmv", title="GMV per day", labels={"gmv": "GMV"}))
        with right:
            _chart(
                px.line(
                    frame,
                    x="dt",
                    y="paying_users",
                    markers=True,
                    title="Paying users per day",
                    labels={"paying_users": "paying users"},
                )
            )
    if not _note(data.regions):
        frame = data.regions.frame
        assert frame is not None
        _chart(
            px.bar(
                frame,
                x="dau",
                y="province",
                color="city",
                orientation="h",
                title="Region distribution (daily active users, summed over the days)",
                labels={"dau": "user-days"},
            ).update_yaxes(categoryorder="total ascending")
        )


def _sidebar(lh: Lakehouse, account: Account, readable: frozenset[str]) -> tuple[DateRange, bool]:
    import streamlit as st

    with st.sidebar:
        st.write(f"Signed in as **{account.label}**")
        if st.button("Log out", key="logout"):
            _end_session(SIGNED_OUT)
        st.button("Refresh", key="refresh")  # a rerun: every panel is queried again
        auto = st.toggle(f"Auto-refresh every {AUTO_REFRESH_SECONDS} s", value=False, key="auto_refresh")
        mode = st.radio("Dates", ["All", "Range"], horizontal=True, key="date_mode")
        days = DateRange()
        if mode == "Range":
            bounds = date_bounds(lh, account.user, readable)
            if bounds is None:
                st.caption("no dated rows yet")
            else:
                picked = st.date_input("Date range", value=bounds, key="date_range")
                if isinstance(picked, tuple | list) and len(picked) == 2:
                    days = DateRange(picked[0], picked[1])
                elif isinstance(picked, tuple | list) and len(picked) == 1:
                    days = DateRange(picked[0], picked[0])
    return days, auto


def _check(lh: Lakehouse, options: DashboardOptions) -> Session:
    """The session, still valid (a fragment's timed run checks it too: it is no user action); an ended
    one is cleared and the page starts over at the login."""
    import streamlit as st

    session = st.session_state.get(SESSION_KEY)
    if not isinstance(session, Session):
        _end_session(SIGNED_OUT)
    ended = session_end(lh, session, options)
    if ended is not None:
        _end_session(ended)
    return session


def main(options: DashboardOptions | None = None) -> None:
    import streamlit as st

    options = options or DashboardOptions()
    st.set_page_config(page_title="Lakehouse dashboard", layout="wide")
    try:
        lh = serving_lakehouse()
    except Exception as exc:  # a bad setting: one line naming it, no traceback
        log.error("dashboard cannot open the lakehouse: %s", exc)
        st.error("The lakehouse cannot be opened; see the server's log.")
        return
    if st.session_state.get(SESSION_KEY) is None:
        _login_form(lh, options)
        return
    session = _check(lh, options)
    session.last_active = time.monotonic()  # a full run is a user action (a click, a reload)
    st.session_state.pop(NOTICE_KEY, None)
    account = session.account
    readable = readable_tables(lh, account.user)
    days, auto = _sidebar(lh, account, readable)

    @st.fragment(run_every=options.watch_seconds)
    def watch() -> None:  # an abandoned tab is signed out on time, its data taken off the page
        _check(lh, options)

    watch()

    @st.fragment(run_every=AUTO_REFRESH_SECONDS if auto else None)
    def body() -> None:
        _check(lh, options)
        st.title("Lakehouse dashboard")
        st.caption(f"Updated {dt.datetime.now().strftime('%H:%M:%S')}")
        if IOV in readable:
            _render_fleet(fleet(lh, account.user, days))
        if readable & set(GAME_TABLES):
            _render_games(games(lh, account.user, days, readable))
        if not readable:
            st.info("No table of this dashboard is granted to you.")

    body()


if __name__ == "__main__":
    # Streamlit executes this file afresh at every run: the process-wide state (the throttle, the
    # lakehouse) lives in the imported module, which is imported once.
    from lakehouse.serving import dashboard as _imported

    _imported.main()
