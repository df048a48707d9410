"""jitaccess.bootstrap: the API's parts load no provider and no AWS/OpenBao client library (the
API never issues a credential), and the worker settings reach the Worker it builds."""

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import cast

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner

from jitaccess.config import Settings
from jitaccess.workers import factory


def test_api_parts_import_no_provider(tmp_path: Path) -> None:
    # a fresh interpreter: this test process may have imported providers for other tests
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from jitaccess.api import create_app
        from jitaccess.bootstrap import api_parts
        from jitaccess.config import Settings
        from jitaccess.ledger.migrate import upgrade

        url = "sqlite:///{tmp_path / "ledger.db"}"
        upgrade(url)
        settings = Settings(ledger_url=url)
        create_app(settings, client=object())
        parts = asyncio.run(api_parts(settings, client=object()))
        parts.close()
        loaded = [m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "hvac")]
        loaded += [m for m in sys.modules if m.startswith("jitaccess.providers.") and m != "jitaccess.providers.base"]
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "", f"the API's parts imported {out.stdout.strip()}"


def test_worker_cache_and_concurrency_come_from_settings(monkeypatch) -> None:
    built: dict = {}
    monkeypatch.setattr(factory, "Worker", lambda client, **kw: built.update(kw))
    settings = Settings(max_cached_workflows=7, max_concurrent_workflow_tasks=5, max_concurrent_activities=3)
    factory.new_worker(cast(Client, None), settings, [])
    assert built["max_cached_workflows"] == 7
    assert built["max_concurrent_workflow_tasks"] == 5
    assert built["max_concurrent_activities"] == 3
    assert built["graceful_shutdown_timeout"] == settings.graceful_shutdown_timeout


def test_worker_cache_is_sized_for_10000_held_grants_and_task_slots_are_the_sdks() -> None:
    settings = Settings()
    assert settings.max_cached_workflows == 500 and settings.max_concurrent_workflow_tasks is None


def test_workflow_sandbox_follows_settings(monkeypatch) -> None:
    """Production default: plain Python; the suite (tests/conftest.py) and the replay test: the sandbox."""
    built: dict = {}
    monkeypatch.setattr(factory, "Worker", lambda client, **kw: built.update(kw))
    factory.new_worker(cast(Client, None), Settings(workflow_sandbox=False), [])
    assert isinstance(built["workflow_runner"], UnsandboxedWorkflowRunner)
    factory.new_worker(cast(Client, None), Settings(workflow_sandbox=True), [])
    assert built["workflow_runner"] is factory.SANDBOXED_RUNNER
    monkeypatch.delenv("JITACCESS_WORKFLOW_SANDBOX", raising=False)
    assert Settings().workflow_sandbox is False


def test_the_suite_runs_workflows_sandboxed() -> None:
    assert Settings().workflow_sandbox is True
