"""Two processes adding the same dynamic partitions at once (two `lakehouse scan`s, or the daemon's
sensor and a reconcile run): the one that loses the race on the storage's unique constraint looks
again instead of failing its run (the cause of test_two_scans_at_once_do_the_work_once's flakes)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from sensors.dynamic_partitions import add_dynamic_partitions
from tests.helpers.daemon import instance_at

NAME = "game_db_hourly"


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with instance_at(tmp_path / "dagster_home") as found:
        yield found


def _insert_after_a_stale_look(instance: dg.DagsterInstance, keys: Sequence[str]) -> None:
    """What Dagster's storage does once its look found the keys missing: insert them all."""
    with instance._event_storage.index_connection() as conn:  # type: ignore[attr-defined]
        conn.execute(
            sa.text("insert into dynamic_partitions (partitions_def_name, partition) values (:n, :k)"),
            [{"n": NAME, "k": k} for k in keys],
        )


def test_dagster_alone_fails_when_it_loses_the_race(instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions(NAME, ["2024-01-01-00"])  # the other process got there first
    with pytest.raises(sa.exc.IntegrityError):
        _insert_after_a_stale_look(instance, ["2024-01-01-00", "2024-01-01-01"])


def test_the_loser_of_the_race_looks_again_and_adds_what_is_missing(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance.add_dynamic_partitions(NAME, ["2024-01-01-00"])  # the other process got there first
    storage = instance._event_storage  # type: ignore[attr-defined]
    real_add = storage.add_dynamic_partitions
    calls: list[list[str]] = []

    def racing_add(name: str, keys: Sequence[str]) -> None:
        calls.append(list(keys))
        if len(calls) == 1:  # our first insert races the other process's and loses
            _insert_after_a_stale_look(instance, [*keys, "2024-01-01-00"])
        real_add(name, keys)

    monkeypatch.setattr(storage, "add_dynamic_partitions", racing_add)
    added = add_dynamic_partitions(instance, NAME, ["2024-01-01-00", "2024-01-01-01"])
    assert len(calls) == 2, "the insert that failed on the unique key was retried"
    assert added == ["2024-01-01-01"]
    assert sorted(instance.get_dynamic_partitions(NAME)) == ["2024-01-01-00", "2024-01-01-01"]


def test_keys_already_there_add_nothing(instance: dg.DagsterInstance) -> None:
    assert add_dynamic_partitions(instance, NAME, ["a", "b", "a"]) == ["a", "b"]
    assert add_dynamic_partitions(instance, NAME, ["b"]) == []
    assert sorted(instance.get_dynamic_partitions(NAME)) == ["a", "b"]
