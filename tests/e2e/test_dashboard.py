"""`lakehouse dashboard` in a real browser: logins, every chart of both seeds for the owner (let in with
--allow-owner), the third party's masked view without a trace of the tables it may not read, and new
data after a refresh. The attacks on it are in tests/serving/test_security_dashboard.py."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.facade import Lakehouse
from tests.helpers.dashboard import (
    ALICE,
    GAME_TABLES,
    OWNER_CHARTS,
    PASSWORDS,
    THIRDPARTY_CHARTS,
    Demo,
    build_lake,
    catch_up_lake,
    chromium,
    dashboard_server,
    idle,
    land_iov,
    metric,
    sign_in,
    wait_for_charts,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DEMO = Demo(iov_hours=2, vehicles=5, game_days=2, users=60, events_per_day=300)
VINS = [f"VIN{i:03d}" for i in range(1, DEMO.vehicles + 1)]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lakehouse:
    return build_lake(tmp_path_factory.mktemp("dashboard") / "lh", DEMO)


@pytest.fixture(scope="module")
def url(lake: Lakehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("dashboard-log") / "dashboard.log"
    with dashboard_server(Path(lake.settings.home), log, ["--allow-owner"]) as found:
        yield found
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as found:
        yield found


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def fleet_km(lake: Lakehouse, user: str | None = None) -> str:
    total = lake.sql("select sum(total_distance) as km from iov.ads_vehicle_hourly_stat", user=user)
    return f"{total.to_pylist()[0]['km']:,.1f} km"


def test_a_wrong_password_or_unknown_user_is_refused(url: str, page: Any) -> None:
    page.goto(url)
    for name, password in [("owner", "wrong"), (ALICE, PASSWORDS["owner"]), ("nobody", "x")]:
        page.get_by_role("textbox", name="User").fill(name)
        page.get_by_role("textbox", name="Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Wrong user or password.").wait_for()
        idle(page)
        assert page.locator(".js-plotly-plot").count() == 0
        assert page.get_by_role("button", name="Sign in").is_visible()
    assert "Traceback" not in page.content()


def test_the_third_party_sees_masked_vehicles_and_no_game_chart(url: str, lake: Lakehouse, page: Any) -> None:
    sign_in(page, url, ALICE, PASSWORDS[ALICE])
    wait_for_charts(page, THIRDPARTY_CHARTS)
    assert page.locator(".js-plotly-plot").count() == THIRDPARTY_CHARTS
    # the game tables are not granted: no panel, no note, not even their names
    assert page.locator('[data-testid="stAlert"]').count() == 0
    assert not any(table in page.content() for table in GAME_TABLES)
    assert "Game analytics" not in page.content()
    assert metric(page, "Fleet mileage").inner_text() == fleet_km(lake, ALICE) == fleet_km(lake)
    content = page.content()
    masked = [f"{vin[0]}{'*' * (len(vin) - 2)}{vin[-1]}" for vin in VINS]
    assert all(m in content for m in masked)  # the top-vehicle axes
    for vin in VINS:
        assert vin not in content and vin[1:-1] not in content
    assert not re.search(r"Traceback|PermissionDenied|CreateInstance|role thirdparty", content)


def test_the_owner_sees_every_chart_and_new_data_after_a_refresh(
    url: str, lake: Lakehouse, page: Any
) -> None:
    sign_in(page, url, "owner", PASSWORDS["owner"])
    wait_for_charts(page, OWNER_CHARTS)
    assert page.locator(".js-plotly-plot").count() == OWNER_CHARTS
    assert page.locator('[data-testid="stAlert"]').count() == 0
    before = fleet_km(lake)
    assert metric(page, "Fleet mileage").inner_text() == before
    last = lake.sql("select dt, dau from game_db.ads_retention_daily order by dt desc limit 1").to_pylist()[0]
    assert metric(page, f"DAU ({last['dt']})").inner_text() == f"{last['dau']:,}"
    gmv = lake.sql("select sum(gmv) as gmv from game_db.ads_purchase_trends_daily").to_pylist()[0]["gmv"]
    assert metric(page, "GMV").inner_text() == f"{gmv:,.2f}"
    content = page.content()
    assert all(vin in content for vin in VINS)  # the owner sees real ids

    # the date filter: one game day, no vehicle data on it
    day = lake.sql("select min(dt) as dt from game_db.ads_purchase_trends_daily").to_pylist()[0]["dt"]
    page.get_by_text("Range", exact=True).click()
    page.locator('[data-testid="stDateInput"]').wait_for()
    idle(page)
    for which in ("start", "end"):
        page.get_by_role("spinbutton", name=f"year, Date range {which} date").click()
        page.keyboard.type(day.replace("-", ""))
    page.get_by_role("heading", name="Lakehouse dashboard").click()  # the field commits on blur
    page.get_by_text("no rows in iov.ads_vehicle_hourly_stat for these dates").wait_for()
    idle(page)
    day_gmv = lake.sql(f"select gmv from game_db.ads_purchase_trends_daily where dt = '{day}'").to_pylist()[
        0
    ]["gmv"]
    assert metric(page, "GMV").inner_text() == f"{day_gmv:,.2f}"
    page.get_by_text("All", exact=True).click()
    metric(page, "Fleet mileage").wait_for()
    wait_for_charts(page, OWNER_CHARTS)

    # an hour lands and is built while the dashboard runs: Refresh shows it, no restart
    land_iov(lake, dt.datetime(2025, 9, 17, 18 + DEMO.iov_hours), 1, DEMO.vehicles, DEMO.iov_interval_seconds)
    catch_up_lake(lake.settings)
    after = fleet_km(lake)
    assert after != before
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_function(
        "want => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
        ".some(e => e.innerText.trim() === want)",
        arg=after,
        timeout=60_000,
    )
    idle(page)
    assert metric(page, "Fleet mileage").inner_text() == after

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    assert page.locator(".js-plotly-plot").count() == 0
