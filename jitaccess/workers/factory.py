"""The one worker factory: every grant worker (`jitaccess worker`, `dev up`, the tests) is a Worker
built here, with the same workflows, sandbox, pollers, cache and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.client import Client
from temporalio.worker import (
    Interceptor,
    PatchActivationInput,
    PollerBehaviorSimpleMaximum,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from jitaccess.config import Settings
from jitaccess.workflows import patches
from jitaccess.workflows.checkpoint import CheckpointWorkflow
from jitaccess.workflows.grant import GrantWorkflow
from jitaccess.workflows.onboarding import ServiceOnboardingWorkflow
from jitaccess.workflows.reconciliation import ReconciliationWorkflow

# Our workflow and domain modules are pure (no I/O, clock or randomness at import or call time),
# so the sandbox may share them instead of re-importing them for every workflow run: the
# re-import dominated worker CPU with hundreds of grants starting at once. `cryptography` (command
# signatures) is passed through too: its Rust core cannot import its exception types in a sandbox.
SANDBOXED_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("jitaccess", "cryptography", "opentelemetry")
)


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox when `settings.workflow_sandbox` (tests, the replay test), else plain Python:
    the same pure code without the sandbox's per-run module environment (bench/README.md)."""
    return SANDBOXED_RUNNER if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


WORKFLOWS = [GrantWorkflow, ServiceOnboardingWorkflow, ReconciliationWorkflow, CheckpointWorkflow]
BACKGROUND_WORKFLOWS = [ReconciliationWorkflow, CheckpointWorkflow]  # settings.background_queue, when set


def new_worker(
    client: Client,
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    *,
    task_queue: str | None = None,
    workflows: Sequence[type] = WORKFLOWS,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """A worker on `task_queue` (default: `settings.task_queue`) running `workflows` (default: every
    jitaccess workflow) and `activities`. The client's interceptors (tracing) apply too;
    `interceptors` adds worker-only ones."""
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(workflows),
        activities=list(activities),
        activity_executor=ThreadPoolExecutor(settings.max_concurrent_activities),
        max_concurrent_activities=settings.max_concurrent_activities,
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        workflow_runner=workflow_runner(settings),
        # a dead worker's sticky queue holds a fired timer's task only this long (default 10 s)
        sticky_queue_schedule_to_start_timeout=settings.sticky_schedule_to_start_timeout,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(settings.workflow_task_pollers),
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(settings.activity_task_pollers),
        # on shutdown: stop polling, let running activities (a revoke mid-call) finish this long
        graceful_shutdown_timeout=settings.graceful_shutdown_timeout,
        interceptors=list(interceptors),
        patch_activation_callback=patch_baseline_gate(settings),
    )


def patch_baseline_gate(settings: Settings) -> Callable[[PatchActivationInput], bool]:
    """Whether a new run records a patch baseline (settings.record_patch_baseline); every other
    patch id is recorded as it is asked. Consulted only when a run first asks an id live."""
    record = settings.record_patch_baseline
    return lambda asked: record or asked.patch_id not in patches.BASELINES


def stop_on_signals(*signals: signal.Signals) -> asyncio.Event:
    """An event set by SIGTERM / SIGINT (or `signals`): what a process's workers run until."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in signals or (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_until(workers: Sequence[Worker], stop: asyncio.Event) -> None:
    """Poll until `stop` is set, then shut every worker down gracefully (graceful_shutdown_timeout)."""
    async with contextlib.AsyncExitStack() as running:
        for worker in workers:
            await running.enter_async_context(worker)
        await stop.wait()
