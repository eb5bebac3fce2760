"""The dashboard as a user drives it: a lakehouse with both seeds' ADS tables and the seed policy,
`lakehouse dashboard` started as a process, Debian's Chromium driven by Playwright."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from lakehouse.core.settings import LakehouseSettings
from lakehouse.demo.game import generate_game
from lakehouse.demo.iov import generate_iov
from lakehouse.facade import Lakehouse
from lakehouse.governance.policy_apply import apply_policy
from lakehouse.serving.auth import set_password
from lakehouse_assets.definitions import build_definitions
from sensors.run_once import catch_up
from tests.helpers.env import clean_env
from tests.helpers.paths import REPO

SEED_POLICY = REPO / "policies" / "iov_thirdparty.sql"
ALICE = "RAM$alice"
PASSWORDS = {"owner": "owner-secret-1", ALICE: "alice-secret-2"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
OWNER_CHARTS = 8
"""Mileage per hour, top vehicles by mileage and by speed, retention, device share, GMV, paying
users, regions."""
THIRDPARTY_CHARTS = 3
GAME_TABLES = [
    "game_db.ads_retention_daily",
    "game_db.ads_purchase_trends_daily",
    "game_db.ads_device_preference_daily",
    "game_db.ads_region_distribution_daily",
]


@dataclass(frozen=True)
class Demo:
    """How much demo data to land."""

    iov_hours: int = 3
    vehicles: int = 5
    iov_interval_seconds: int = 300
    game_days: int = 3
    users: int = 60
    events_per_day: int = 300


def land_iov(lh: Lakehouse, start: dt.datetime, hours: int, vehicles: int, interval_seconds: int) -> None:
    generate_iov(
        lh.landing,
        hours=hours,
        vehicles=vehicles,
        start=start,
        interval_seconds=interval_seconds,
        junk=False,
        file_format="parquet",
    )


def catch_up_lake(settings: LakehouseSettings) -> None:
    """Build what is stale, like the daemon, in a thread of its own (Dagster's runs must not share
    the event loop Playwright's sync API keeps in the main thread)."""

    def run() -> int:
        with dg.instance_for_test() as instance:
            return catch_up(build_definitions(settings), instance, log_level="ERROR").failed

    with ThreadPoolExecutor(1) as pool:
        failed = pool.submit(run).result()
    assert failed == 0, f"{failed} run(s) failed"


def build_lake(home: Path, demo: Demo = Demo()) -> Lakehouse:
    """Both seeds landed and built to ADS, the seed policy applied, passwords set (PASSWORDS)."""
    settings = LakehouseSettings.for_home(home)
    lh = Lakehouse(settings)
    land_iov(lh, dt.datetime(2025, 9, 17, 18), demo.iov_hours, demo.vehicles, demo.iov_interval_seconds)
    generate_game(
        lh.landing,
        days=demo.game_days,
        users=demo.users,
        events_per_day=demo.events_per_day,
        start=dt.date(2025, 9, 1),
    )
    catch_up_lake(settings)
    apply_policy(lh, SEED_POLICY.read_text(), "iov", str(SEED_POLICY))
    for name, password in PASSWORDS.items():
        set_password(lh, name, password)
    return lh


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def dashboard_server(
    home: Path,
    log: Path,
    args: Sequence[str] = (),
    cwd: Path = REPO,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """`lakehouse dashboard ARGS` on a free loopback port until the block ends (SIGTERM by PID, which
    the command forwards to Streamlit), started in `cwd` with `env` added to the test environment:
    yields its URL once its health check answers."""
    port = free_port()
    environment = clean_env(dict(os.environ), LAKEHOUSE_HOME=str(home))
    if cwd != REPO:  # the repository's modules still come first
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), environment.get("PYTHONPATH")) if p
        )
    environment.update(env or {})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lakehouse.cli", "dashboard", "--port", str(port), *args],
            cwd=cwd,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"dashboard exited: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"dashboard not up: {log.read_text()[-2000:]}"
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                        if answer.read() == b"ok":
                            break
                except OSError:
                    pass
                time.sleep(0.2)
            yield url
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("the dashboard did not stop on SIGTERM") from None
    assert not port_open(port), "Streamlit still listens after the command stopped"


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, url: str, name: str, password: str) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="User").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def wait_for_charts(page: Any, count: int, timeout: float = 60_000) -> None:
    """Until `count` Plotly charts have drawn their SVG and the script run is over."""
    page.wait_for_function(
        "n => [...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(p => p.querySelector('svg.main-svg')).length >= n",
        arg=count,
        timeout=timeout,
    )
    idle(page)


def idle(page: Any, timeout: float = 60_000) -> None:
    """Until Streamlit's script run is over (its status widget shows no run)."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'",
        timeout=timeout,
    )


def metric(page: Any, label: str) -> Any:
    """The value element of the st.metric whose label is `label`."""
    box = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)
    )
    return box.locator('[data-testid="stMetricValue"]')


def full_page_screenshot(page: Any, path: Path) -> None:
    """The whole dashboard: Streamlit scrolls inside its main block, so the viewport is made as tall
    as that block first."""
    height = page.evaluate(
        '() => Math.max(...[...document.querySelectorAll(\'[data-testid="stMain"], section.main,'
        ' [data-testid="stAppViewContainer"]\')].map(e => e.scrollHeight), document.body.scrollHeight)'
    )
    width = page.viewport_size["width"] if page.viewport_size else 1400
    page.set_viewport_size({"width": width, "height": int(height) + 40})
    idle(page)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
