"""Dagster partitions of the lakehouse's tables, one definition per Partitioning."""

from __future__ import annotations

import dagster as dg

from lakehouse.core.partitioning import Partitioning


def hourly_partitions(namespace: str) -> dg.DynamicPartitionsDefinition:
    """Partitions are the landing folders DataScan has found (keys YYYY-MM-DD-HH), any date."""
    return dg.DynamicPartitionsDefinition(name=f"{namespace}_hourly")


def daily_partitions(start_date: str) -> dg.DailyPartitionsDefinition:
    """Days (keys YYYY-MM-DD) from LAKEHOUSE_DAILY_START_DATE to tomorrow, e.g. event dates."""
    return dg.DailyPartitionsDefinition(start_date=start_date, end_offset=1)


class LakehousePartitions:
    """The partitions definitions of one code location: an hourly one per namespace, one daily."""

    def __init__(self, namespaces: list[str], daily_start_date: str) -> None:
        self.hourly = {ns: hourly_partitions(ns) for ns in namespaces}
        self.daily = daily_partitions(daily_start_date)

    def of(self, partitioning: Partitioning, namespace: str) -> dg.PartitionsDefinition | None:
        if partitioning is Partitioning.HOURLY:
            return self.hourly[namespace]
        if partitioning is Partitioning.DAILY:
            return self.daily
        return None
