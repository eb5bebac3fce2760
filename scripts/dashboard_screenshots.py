"""Screenshots of the dashboard for the docs: docs/dashboard-owner.png and docs/dashboard-thirdparty.png.

Builds a lakehouse with `make demo`'s amounts of data (6 hours of 300 vehicles, 8 days of 2,000
players) in a temporary folder (or --home), applies the seed policy, starts `lakehouse dashboard`
and signs in as the owner and as the third party (RAM$alice) in Debian's Chromium.

    .venv/bin/python scripts/dashboard_screenshots.py [--home DIR] [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.dashboard import (  # noqa: E402
    ALICE,
    OWNER_CHARTS,
    PASSWORDS,
    THIRDPARTY_CHARTS,
    Demo,
    build_lake,
    chromium,
    dashboard_server,
    full_page_screenshot,
    sign_in,
    wait_for_charts,
)

DEMO = Demo(
    iov_hours=6, vehicles=300, iov_interval_seconds=30, game_days=8, users=2_000, events_per_day=10_000
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="Lakehouse home to build in (default: a temporary folder).")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dashboard-shots-") as scratch:
        home = args.home or Path(scratch) / "lh"
        started = time.monotonic()
        print(f"building the demo lakehouse in {home} ...", flush=True)
        build_lake(home, DEMO)
        print(f"built in {time.monotonic() - started:.0f}s", flush=True)
        with dashboard_server(home, Path(scratch) / "dashboard.log") as url, chromium() as browser:
            for name, charts, file in (
                ("owner", OWNER_CHARTS, "dashboard-owner.png"),
                (ALICE, THIRDPARTY_CHARTS, "dashboard-thirdparty.png"),
            ):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                sign_in(page, url, name, PASSWORDS[name])
                wait_for_charts(page, charts)
                full_page_screenshot(page, args.out / file)
                context.close()
                print(f"wrote {args.out / file}", flush=True)


if __name__ == "__main__":
    main()
