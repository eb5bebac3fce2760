"""`lakehouse spark start|stop|status`: a local standalone Spark cluster with Spark Connect, on loopback."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from lakehouse.core.settings import as_uri


def _home() -> Path:
    # Only LAKEHOUSE_HOME matters here: the cluster may be started before LAKEHOUSE_SPARK_REMOTE is set.
    return Path(as_uri(os.environ.get("LAKEHOUSE_HOME") or "./.lakehouse"))


@click.group()
def spark() -> None:
    """A local Spark cluster (master, workers, Spark Connect) for LAKEHOUSE_ENGINE=spark."""


@spark.command()
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Workers to start.")
@click.option("--cores-per-worker", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--worker-memory", default="2g", show_default=True, help="Memory each worker offers.")
@click.option("--executor-memory", default="1g", show_default=True, help="Heap of each executor.")
@click.option("--driver-memory", default="1g", show_default=True, help="Heap of the Connect server's driver.")
@click.option(
    "--connect-port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    help="Spark Connect port (default 15002 when free, else a free one).",
)
def start(
    workers: int,
    cores_per_worker: int,
    worker_memory: str,
    executor_memory: str,
    driver_memory: str,
    connect_port: int,
) -> None:
    """Start a standalone master, WORKERS workers and a Spark Connect server on 127.0.0.1.

    The last line of stdout is the sc:// URL for LAKEHOUSE_SPARK_REMOTE; PIDs and logs are kept
    under $LAKEHOUSE_HOME/spark/."""
    from lakehouse.engines.spark_cluster import SparkClusterError
    from lakehouse.engines.spark_cluster import start as start_cluster

    home = _home()
    click.echo(
        f"starting Spark: master, {workers} worker(s), Connect server (logs in {home / 'spark' / 'logs'})",
        err=True,
    )
    began = time.monotonic()
    try:
        state = start_cluster(
            home,
            workers,
            cores_per_worker=cores_per_worker,
            worker_memory=worker_memory,
            executor_memory=executor_memory,
            driver_memory=driver_memory,
            connect_port=connect_port or None,
        )
    except SparkClusterError as exc:
        raise click.ClickException(str(exc)) from None
    pids = ", ".join(f"{name} {pid}" for name, pid in state.pids.items())
    click.echo(
        f"Spark up in {time.monotonic() - began:.0f} s; master {state.master_url} (UI {state.master_ui}); pids {pids}",
        err=True,
    )
    click.echo(f"export LAKEHOUSE_ENGINE=spark LAKEHOUSE_SPARK_REMOTE={state.connect_url}", err=True)
    click.echo(state.connect_url)


@spark.command()
def stop() -> None:
    """Stop the cluster `lakehouse spark start` started (by the PIDs it recorded)."""
    from lakehouse.engines.spark_cluster import stop as stop_cluster

    stopped = stop_cluster(_home())
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "no Spark cluster is running")


@spark.command()
def status() -> None:
    """The recorded cluster: URL and each process, running or not."""
    from lakehouse.engines.spark_cluster import alive, read_state

    state = read_state(_home())
    if state is None:
        raise click.ClickException("no Spark cluster was started here (lakehouse spark start)")
    for name, pid in state.pids.items():
        click.echo(f"{name:<10} pid {pid:<8} {'running' if alive(pid) else 'gone'}")
    click.echo(state.connect_url)
