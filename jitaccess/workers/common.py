"""Moved to jitaccess.bootstrap (wiring), jitaccess.workers.factory (the worker) and
jitaccess.workers.schedules; this thin re-export goes once nothing imports it."""

from jitaccess.bootstrap import build_providers, build_worker, configure_logging, connect, data_converter, grant_options
from jitaccess.workers.factory import WORKFLOW_RUNNER, WORKFLOWS
from jitaccess.workers.schedules import (
    RECONCILIATION_SCHEDULE_ID,
    ensure_reconciliation_schedule,
    ensure_schedule,
    reconciliation_schedule,
)

__all__ = [
    "RECONCILIATION_SCHEDULE_ID",
    "WORKFLOWS",
    "WORKFLOW_RUNNER",
    "build_providers",
    "build_worker",
    "configure_logging",
    "connect",
    "data_converter",
    "ensure_reconciliation_schedule",
    "ensure_schedule",
    "grant_options",
    "reconciliation_schedule",
]
