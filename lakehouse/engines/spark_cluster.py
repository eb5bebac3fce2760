"""A local standalone Spark cluster for `lakehouse spark start|stop`: master, N workers, Spark Connect.

Everything binds to 127.0.0.1 and runs from the pyspark package's own Spark (no download; see
STACK: the sbin start scripts for master and worker are not shipped, so each daemon is started with
`spark-class`, and the Connect server with `spark-submit`, as `sbin/start-connect-server.sh` does).
Each process is started in its own session and remembered by PID in `<home>/spark/cluster.json`;
`stop` signals exactly those PIDs. The Connect URL (`sc://127.0.0.1:PORT`) is what
LAKEHOUSE_SPARK_REMOTE takes; for a real cluster the user sets that URL instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


class SparkClusterError(RuntimeError):
    """The cluster could not start (the message names the process and its log) or is not running."""


@dataclass
class ClusterState:
    master_url: str
    connect_url: str
    master_ui: str
    pids: dict[str, int] = field(default_factory=dict)
    """Process name (master, worker-1.., connect) -> PID, in start order."""
    logs: dict[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    driver_ui: str = ""
    """The Connect server's driver UI (its REST API has per-stage metrics: shuffle time, bytes)."""


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((LOOPBACK, port)) == 0


def state_path(home: Path) -> Path:
    return home / "spark" / "cluster.json"


def read_state(home: Path) -> ClusterState | None:
    path = state_path(home)
    if not path.exists():
        return None
    return ClusterState(**json.loads(path.read_text()))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie child of ours counts as gone
        status = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
        if status == "Z":
            return False
    return True


def _environment(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_LOCAL_IP=LOOPBACK,
        SPARK_LOCAL_HOSTNAME="localhost",
        SPARK_LOG_DIR=str(home / "spark" / "logs"),
        SPARK_WORKER_DIR=str(home / "spark" / "work"),
        PYSPARK_PYTHON=env.get("PYSPARK_PYTHON", "python3"),
        # no REST submission server (it would take the fixed port 6066)
        SPARK_MASTER_OPTS=(env.get("SPARK_MASTER_OPTS", "") + " -Dspark.master.rest.enabled=false").strip(),
    )
    # Secrets of the lakehouse are not the cluster's business.
    for name in ("LAKEHOUSE_MASKING_SALT", "LAKEHOUSE_AUDIT_KEY", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD"):
        env.pop(name, None)
    return env


def _spawn(name: str, argv: list[str], home: Path, env: dict[str, str]) -> tuple[int, str]:
    logs = home / "spark" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own Spark's launchers, argv only
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    return proc.pid, str(log)


def _wait(what: str, ready: object, pid: int, log: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise SparkClusterError(f"spark {what} (pid {pid}) exited while starting; see {log}")
        if callable(ready) and ready():
            return
        time.sleep(0.5)
    raise SparkClusterError(f"spark {what} (pid {pid}) not ready after {timeout:g} s; see {log}")


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{ui_port}/json/", timeout=2) as response:  # noqa: S310
            return int(json.load(response).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0


def start(
    home: Path,
    workers: int = 1,
    *,
    cores_per_worker: int = 1,
    worker_memory: str = "2g",
    executor_memory: str = "1g",
    driver_memory: str = "1g",
    connect_port: int | None = None,
    timeout: float = 180.0,
) -> ClusterState:
    """Start master, `workers` workers and a Connect server on loopback; return their state.

    Refuses when a cluster recorded under `home` is still running. On any failure every process
    started so far is stopped again."""
    if workers < 1:
        raise SparkClusterError("--workers must be at least 1")
    running = read_state(home)
    if running is not None and any(alive(p) for p in running.pids.values()):
        raise SparkClusterError(
            f"a Spark cluster is already running at {running.connect_url} (pids "
            f"{', '.join(map(str, running.pids.values()))}); run `lakehouse spark stop` first"
        )
    env = _environment(home)
    bin_dir = spark_home() / "bin"
    master_port, master_ui = free_port(), free_port()
    port = connect_port or (15002 if not _port_open(15002) else free_port())
    master_url = f"spark://{LOOPBACK}:{master_port}"
    state = ClusterState(
        master_url=master_url,
        connect_url=f"sc://{LOOPBACK}:{port}",
        master_ui=f"http://{LOOPBACK}:{master_ui}",
        started_at=time.time(),
    )
    try:
        pid, log = _spawn(
            "master",
            [
                str(bin_dir / "spark-class"),
                "org.apache.spark.deploy.master.Master",
                "--host",
                LOOPBACK,
                "--port",
                str(master_port),
                "--webui-port",
                str(master_ui),
            ],
            home,
            env,
        )
        state.pids["master"], state.logs["master"] = pid, log
        _save(home, state)
        _wait("master", lambda: _port_open(master_port), pid, log, timeout)
        for i in range(1, workers + 1):
            work_dir = home / "spark" / "work" / f"worker-{i}"
            work_dir.mkdir(parents=True, exist_ok=True)
            pid, log = _spawn(
                f"worker-{i}",
                [
                    str(bin_dir / "spark-class"),
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    LOOPBACK,
                    "--webui-port",
                    str(free_port()),
                    "--cores",
                    str(cores_per_worker),
                    "--memory",
                    worker_memory,
                    "--work-dir",
                    str(work_dir),
                    master_url,
                ],
                home,
                env,
            )
            state.pids[f"worker-{i}"], state.logs[f"worker-{i}"] = pid, log
            _save(home, state)
        _wait(
            "workers",
            lambda: _alive_workers(master_ui) >= workers,
            state.pids["master"],
            state.logs["master"],
            timeout,
        )
        pid, log = _spawn(
            "connect",
            [
                str(bin_dir / "spark-submit"),
                "--class",
                CONNECT_CLASS,
                "--name",
                "lakehouse Spark Connect",
                "--master",
                master_url,
                "--driver-memory",
                driver_memory,
                "--conf",
                f"spark.connect.grpc.binding.address={LOOPBACK}",
                "--conf",
                f"spark.connect.grpc.binding.port={port}",
                "--conf",
                f"spark.driver.host={LOOPBACK}",
                "--conf",
                f"spark.driver.bindAddress={LOOPBACK}",
                "--conf",
                f"spark.executor.memory={executor_memory}",
                "--conf",
                f"spark.executor.cores={cores_per_worker}",
                "--conf",
                f"spark.cores.max={workers * cores_per_worker}",
                "--conf",
                "spark.ui.port=0",
                "--conf",
                "spark.sql.session.timeZone=UTC",
                "--conf",
                f"spark.local.dir={home / 'spark' / 'tmp'}",
            ],
            home,
            env,
        )
        state.pids["connect"], state.logs["connect"] = pid, log
        _save(home, state)
        _wait("connect server", lambda: _port_open(port), pid, log, timeout)
        bound = re.search(r"started service 'SparkUI' on port (\d+)", Path(log).read_text(errors="replace"))
        state.driver_ui = f"http://{LOOPBACK}:{bound.group(1)}" if bound else ""
        _save(home, state)
    except BaseException:
        stop(home)
        raise
    return state


def _save(home: Path, state: ClusterState) -> None:
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def stop(home: Path, timeout: float = 30.0) -> list[str]:
    """Stop the recorded processes by PID (Connect first, then workers, then master): SIGTERM to
    each one's process group, SIGKILL after `timeout`. Returns what was stopped."""
    state = read_state(home)
    if state is None:
        return []
    stopped = []
    for name, pid in reversed(list(state.pids.items())):
        if not alive(pid):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        stopped.append(f"{name} (pid {pid})")
    state_path(home).unlink(missing_ok=True)
    return stopped
