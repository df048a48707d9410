"""Worker roles (issue 15): the fleet-wide jobs (reconciliation, evidence checkpoints) on a task queue
and worker process of their own, so that a scan's or a checkpoint's CPU and heap never stand between
a grant and its expiry. What each role polls and runs."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from temporalio.client import Client

from jitaccess.bootstrap import build_worker
from jitaccess.config import Settings
from jitaccess.config.settings import ConfigError
from jitaccess.ledger import Ledger
from jitaccess.ledger.migrate import upgrade
from jitaccess.providers.base import ProviderRegistry
from jitaccess.workers import factory
from jitaccess.workers.main import worker_roles
from jitaccess.workflows.checkpoint import CheckpointWorkflow
from jitaccess.workflows.reconciliation import ReconciliationWorkflow

OWN = "jitaccess-background"


@pytest.mark.parametrize(
    ("role", "background_queue", "runs"),
    [
        ("all", "", ("grants",)),  # no queue of its own: the grant workers run reconciliation
        ("all", OWN, ("grants", "background")),  # one process polling both queues
        ("grants", "", ("grants",)),
        ("grants", OWN, ("grants",)),  # compose's grant workers
        ("background", OWN, ("background",)),  # compose's and dev up's background worker
    ],
)
def test_each_role_runs_the_workers_it_names(role: str, background_queue: str, runs: tuple[str, ...]) -> None:
    assert worker_roles(Settings(background_task_queue=background_queue), role) == runs


@pytest.mark.parametrize("background_queue", ["", "jitaccess-grants"])
def test_a_background_worker_without_a_queue_of_its_own_is_refused(background_queue: str) -> None:
    """It would poll the grant queue knowing no grant workflow: refused before anything starts."""
    settings = Settings(task_queue="jitaccess-grants", background_task_queue=background_queue)
    with pytest.raises(ConfigError, match="JITACCESS_BACKGROUND_TASK_QUEUE"):
        worker_roles(settings, "background")
    with pytest.raises(ConfigError, match="JITACCESS_BACKGROUND_TASK_QUEUE"):
        build_worker(cast(Client, None), settings, role="background")


def test_an_unknown_role_is_refused_with_the_roles_there_are() -> None:
    with pytest.raises(ConfigError, match="one of all, grants, background"):
        worker_roles(Settings(), "reconcile")


def test_the_jobs_go_to_their_own_queue_when_it_is_set() -> None:
    assert Settings(task_queue="g").background_queue == "g"
    assert Settings(task_queue="g", background_task_queue=OWN).background_queue == OWN


def _built(monkeypatch, tmp_path: Path, command_keys: dict[str, str], role: str) -> dict:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    built: dict = {}
    monkeypatch.setattr(factory, "Worker", lambda client, **kw: built.update(kw))
    settings = Settings(task_queue="g", background_task_queue=OWN, ledger_url=url, **command_keys)
    parts = build_worker(cast(Client, None), settings, role=role, providers=ProviderRegistry({}), ledger=Ledger(url))
    parts.close()
    return built


def test_the_background_worker_polls_its_queue_with_reconciliation_and_checkpoints_alone(
    monkeypatch, tmp_path, command_keys
) -> None:
    built = _built(monkeypatch, tmp_path, command_keys, "background")
    assert built["task_queue"] == OWN
    assert built["workflows"] == [ReconciliationWorkflow, CheckpointWorkflow]
    names = {fn.__temporal_activity_definition.name for fn in built["activities"]}
    jobs = {"reconcile_scan", "reconcile_revoke", "reconcile_store_report", "make_checkpoint"}
    assert names == {"record_events", *jobs}


def test_the_grant_worker_keeps_reconciliation_for_runs_started_before_the_split(
    monkeypatch, tmp_path, command_keys
) -> None:
    """A run already on the grant queue when the background queue was set still finishes there."""
    built = _built(monkeypatch, tmp_path, command_keys, "grants")
    assert built["task_queue"] == "g"
    assert set(built["workflows"]) == set(factory.WORKFLOWS) and ReconciliationWorkflow in built["workflows"]
    names = {fn.__temporal_activity_definition.name for fn in built["activities"]}
    assert {"issue_credential", "revoke_credential", "reconcile_scan", "make_checkpoint", "record_events"} <= names
