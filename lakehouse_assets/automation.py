"""Late data through Dagster's own machinery: daily models that read only daily models.

Such a model depends on its inputs through a TimeWindowPartitionMapping (see assets.py) and carries
the automation condition below; the `lakehouse_automation` sensor evaluates it in the daemon.
"""

from __future__ import annotations

import dagster as dg

AUTOMATION_SENSOR = "lakehouse_automation"


def late_data_condition() -> dg.AutomationCondition:
    """Rebuild a day when any day it reads (through its time-window mapping) was updated, however old;
    and build a day that is missing while some day it reads exists (also right after a restart).

    Dagster's `eager()` only looks at the latest time window and waits for missing inputs; late data
    changes old days, and day d+7 is legitimately missing for the last week, so neither applies."""
    AC = dg.AutomationCondition
    built_from_existing_days = AC.missing() & AC.any_deps_match(~AC.missing())
    return (
        (AC.any_deps_updated() | built_from_existing_days).since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("rebuild when a day it reads changes")


def build_automation_sensor(
    automated: list[dg.AssetKey], interval_seconds: int
) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.keys(*automated),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=min(interval_seconds, 30),
        description="Rebuilds days whose input days changed (retention reads d, d+1, d+7).",
    )
