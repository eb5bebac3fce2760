"""`lakehouse serve` in its own process for tests: started on a free port (read from what it prints),
stopped by PID; its peak memory read from /proc."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def start_server(env: dict[str, str], log: Path, *flags: str) -> tuple[subprocess.Popen[Any], int]:
    """`lakehouse serve --port 0 [flags]`; the port it bound, read from what it prints."""
    out = open(log, "w")  # noqa: SIM115 - closed with the process
    command = [str(BIN / "lakehouse"), "serve", "--port", "0", *flags]
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            raise AssertionError(f"lakehouse serve exited {proc.returncode}: {log.read_text()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"lakehouse serve did not start: {log.read_text()}")


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found
