"""The web dashboard (`lakehouse dashboard`): a Streamlit script over both seeds' ADS tables.

Every read is the facade's governed call `lh.sql(query, user=account.user)`, so a user sees only the
tables its grants allow, with its masks applied (the owner, user None, sees everything). A table the
user may not read gets a short note instead of a chart; no error text of the engine or the
governance reaches the page. Data is queried on every rerun (no result cache): the Refresh button,
or the optional auto-refresh, shows what landed since.

The query functions are in dashboard_data.py (plain functions of a `Lakehouse` and a user,
unit-testable without Streamlit); `main()` renders them and runs only when Streamlit executes this
file as its script (importing the module has no side effect).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse
    from lakehouse.serving.auth import Account

from lakehouse.serving.dashboard_data import (
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
)

log = logging.getLogger("lakehouse.dashboard")

SURFACE = "dashboard"
AUTO_REFRESH_SECONDS = 30
FAILED_LOGIN_PAUSE = 0.5  # seconds a refused login waits (slows guessing; every attempt is audited)

# --- rendering (Streamlit) ------------------------------------------------------------------------


def _lakehouse() -> Lakehouse:
    import streamlit as st

    @st.cache_resource(show_spinner=False)
    def opened() -> Lakehouse:
        from lakehouse.facade import Lakehouse

        # a long-lived reader: snapshot-keyed table and result caches, pooled connections; every
        # query still reads the current snapshot (Lakehouse.for_serving)
        return Lakehouse.from_env().for_serving()

    return opened()


def _login_form(lh: Lakehouse) -> None:
    import streamlit as st

    from lakehouse.serving.auth import login

    st.title("Lakehouse dashboard")
    with st.form("login", clear_on_submit=False):
        st.subheader("Sign in")
        name = st.text_input("User", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        found = login(lh, name, password, SURFACE)
        if found is None:
            time.sleep(FAILED_LOGIN_PAUSE)
            st.error("Wrong user or password.")
        else:
            st.session_state["account"] = found
            st.session_state.pop("login_password", None)
            st.rerun()


def _note(result: Result) -> bool:
    """Show the result's note (True) or nothing (False: it has rows to chart)."""
    import streamlit as st

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


def _sidebar(lh: Lakehouse, account: Account) -> tuple[DateRange, bool]:
    import streamlit as st

    with st.sidebar:
        st.write(f"Signed in as **{account.label}**")
        if st.button("Log out", key="logout"):
            st.session_state.pop("account", None)
            st.rerun()
        st.button("Refresh", key="refresh")  # a rerun: every panel is queried again
        auto = st.toggle(f"Auto-refresh every {AUTO_REFRESH_SECONDS} s", value=False, key="auto_refresh")
        mode = st.radio("Dates", ["All", "Range"], horizontal=True, key="date_mode")
        days = DateRange()
        if mode == "Range":
            bounds = date_bounds(lh, account.user)
            if bounds is None:
                st.caption("no dated rows yet")
            else:
                picked = st.date_input("Date range", value=bounds, key="date_range")
                if isinstance(picked, tuple | list) and len(picked) == 2:
                    days = DateRange(picked[0], picked[1])
                elif isinstance(picked, tuple | list) and len(picked) == 1:
                    days = DateRange(picked[0], picked[0])
    return days, auto


def main() -> None:
    import streamlit as st

    st.set_page_config(page_title="Lakehouse dashboard", layout="wide")
    try:
        lh = _lakehouse()
    except Exception as exc:  # a bad setting: one line naming it, no traceback
        log.error("dashboard cannot open the lakehouse: %s", exc)
        st.error("The lakehouse cannot be opened; see the server's log.")
        return
    account = st.session_state.get("account")
    if account is None:
        _login_form(lh)
        return
    days, auto = _sidebar(lh, account)

    @st.fragment(run_every=AUTO_REFRESH_SECONDS if auto else None)
    def body() -> None:
        st.title("Lakehouse dashboard")
        st.caption(f"Updated {dt.datetime.now().strftime('%H:%M:%S')}")
        _render_fleet(fleet(lh, account.user, days))
        _render_games(games(lh, account.user, days))

    body()


if __name__ == "__main__":
    main()
