"""Shared Temporal plumbing: client connection (one data converter), logging, worker building."""

from __future__ import annotations

import dataclasses
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from jitaccess.activities import GrantActivities
from jitaccess.activities.checkpoint import CheckpointActivities
from jitaccess.activities.notify import NotificationActivities, route_table
from jitaccess.activities.reconcile import ReconcileActivities
from jitaccess.config import Settings, load_catalogue
from jitaccess.config.keys import api_signer, command_verifier, worker_signer
from jitaccess.config.settings import ConfigError
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.contracts import GrantOptions
from jitaccess.domain.reconciliation import CHAIN_PREFIX, ReconcileInput
from jitaccess.ledger import Ledger
from jitaccess.ops import metrics, siem, tracing
from jitaccess.ops.temporal_conn import tls_options
from jitaccess.providers.aws import (
    AwsClients,
    IamGroupMembershipProvider,
    IdentityCenterAssignmentProvider,
    StsRoleSessionProvider,
)
from jitaccess.providers.base import ProviderRegistry
from jitaccess.providers.vault_approle import VaultAppRoleSecretIdProvider
from jitaccess.providers.vault_database import VaultDatabaseCredentialsProvider
from jitaccess.providers.vault_token import VaultClients, VaultTokenProvider, VaultWrapper
from jitaccess.service.signing import CommandSigningInterceptor
from jitaccess.workers.codec import EncryptionCodec
from jitaccess.workflows import trust
from jitaccess.workflows.checkpoint import CheckpointWorkflow
from jitaccess.workflows.grant import GrantWorkflow
from jitaccess.workflows.onboarding import ServiceOnboardingWorkflow
from jitaccess.workflows.reconciliation import ReconciliationWorkflow

# Our workflow and domain modules are pure (no I/O, clock or randomness at import or call time),
# so the sandbox may share them instead of re-importing them for every workflow run: the
# re-import dominated worker CPU with hundreds of grants starting at once. `cryptography` (command
# signatures) is passed through too: its Rust core cannot import its exception types in a sandbox.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("jitaccess", "cryptography", "opentelemetry")
)

WORKFLOWS = [GrantWorkflow, ServiceOnboardingWorkflow, ReconciliationWorkflow, CheckpointWorkflow]
RECONCILIATION_SCHEDULE_ID = "jitaccess-reconciliation"


def configure_logging(level: str = "INFO", stream=None) -> None:
    """Structured JSON lines on stdout (or `stream`): the identity-event feed is one of them."""
    logging.basicConfig(level=level, stream=stream or sys.stdout, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            siem.type_and_severity,  # every line: a `type` and a `severity` (the SIEM feed's contract)
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,
    )


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models through the sandbox; payloads encrypted when a key is configured."""
    ring = settings.payload_key_ring()
    if not ring:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(ring))


async def connect(settings: Settings) -> Client:
    if not settings.payload_key_ring():
        structlog.get_logger("jitaccess").warning(
            "payload_encryption_off",
            hint="set JITACCESS_PAYLOAD_KEYS so wrapping tokens are not stored in clear in Temporal",
        )
    signer = api_signer(settings)
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        # the API's client signs every command it sends (a worker-only process holds no API key);
        # with tracing on, a worker built from this client traces its workflows and activities too
        interceptors=([CommandSigningInterceptor(signer)] if signer else []) + tracing.client_interceptors(),
        runtime=metrics.sdk_runtime() if settings.sdk_metrics else None,  # SDK metrics into /metrics
        **tls_options(settings),  # mTLS / API key for a production cluster or Temporal Cloud
    )


def build_providers(settings: Settings) -> ProviderRegistry:
    vault = VaultClients(settings.vault_addr, settings.vault_token.get_secret_value())
    providers: dict = {"vault_token": VaultTokenProvider(vault)}
    dsn = settings.postgres_verify_dsn
    providers[VaultDatabaseCredentialsProvider.name] = VaultDatabaseCredentialsProvider(
        vault, mount=settings.vault_database_mount, verify_dsn=dsn.get_secret_value() if dsn else None
    )
    providers[VaultAppRoleSecretIdProvider.name] = VaultAppRoleSecretIdProvider(
        vault,
        mount=settings.vault_approle_mount,
        token_ttl=settings.vault_approle_token_ttl,
        token_max_ttl=settings.vault_approle_token_max_ttl,
        revoke_login_tokens=settings.vault_approle_revoke_login_tokens,
    )
    if settings.aws_endpoint_url or settings.aws_region:
        aws = AwsClients.from_settings(settings)
        providers[IdentityCenterAssignmentProvider.name] = IdentityCenterAssignmentProvider(
            aws, instance_arn=settings.aws_sso_instance_arn, identity_store_id=settings.aws_identity_store_id
        )
        providers[IamGroupMembershipProvider.name] = IamGroupMembershipProvider(aws)
        providers[StsRoleSessionProvider.name] = StsRoleSessionProvider(
            aws, VaultWrapper(vault), roles=_catalogue_params(settings, StsRoleSessionProvider.name, "role_arn")
        )
    return ProviderRegistry(providers)


def _catalogue_params(settings: Settings, provider: str, key: str) -> list[str]:
    """One parameter of every catalogue entry using `provider` (best effort: [] if the catalogue won't load)."""
    try:
        cat = load_catalogue(settings.catalogue_file)
    except ConfigError:
        return []
    return sorted(
        {
            str(e.provider.params[key])
            for e in cat.entitlements
            if e.provider.type == provider and key in e.provider.params
        }
    )


def grant_options(settings: Settings) -> GrantOptions:
    """The operational knobs every new grant carries (the workflow cannot read settings)."""
    return GrantOptions(
        issue_timeout=settings.issue_timeout,
        revocation_backoff_cap=settings.revocation_backoff_cap,
        revocation_failing_after=settings.revocation_failing_after,
        notifiers=route_table(settings.notifiers),
        expiry_warning_lead=settings.expiry_warning_lead,
    )


def build_worker(
    client: Client,
    settings: Settings,
    *,
    providers: ProviderRegistry | None = None,
    ledger: Ledger | None = None,
    catalogue: Catalogue | None = None,
) -> tuple[Worker, Ledger]:
    """The one way to build a worker. `catalogue` (default: settings.catalogue_file) is what the
    issuer trusts: it issues only what this catalogue defines."""
    verifier = command_verifier(settings)
    trust.install(verifier, worker_signer(settings))
    ledger = ledger or Ledger(settings.ledger_url)
    providers = metrics.instrument_providers(providers or build_providers(settings))  # call latency
    acts = GrantActivities(
        providers, ledger, settings.wrap_ttl, catalogue or load_catalogue(settings.catalogue_file), verifier
    )
    notify = NotificationActivities.from_settings(settings)
    reconcile = ReconcileActivities(providers, ledger)
    checkpoint = CheckpointActivities(ledger, settings.checkpoint_key_file, settings.checkpoint_dir)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=acts.all() + notify.all() + reconcile.all() + checkpoint.all(),
        activity_executor=ThreadPoolExecutor(settings.max_concurrent_activities),
        max_concurrent_activities=settings.max_concurrent_activities,
        workflow_runner=WORKFLOW_RUNNER,
        # a dead worker's sticky queue holds a fired timer's task only this long (default 10 s)
        sticky_queue_schedule_to_start_timeout=settings.sticky_schedule_to_start_timeout,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(settings.workflow_task_pollers),
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(settings.activity_task_pollers),
        graceful_shutdown_timeout=settings.graceful_shutdown_timeout,
    )
    return worker, ledger


def reconciliation_schedule(settings: Settings) -> Schedule:
    """Every `reconcile_interval`, one ReconciliationWorkflow (workflow ID reconciliation-<time>) on
    the grant task queue; a run still going when the next is due makes that one skip."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconciliationWorkflow.run,
            ReconcileInput(dry_run=False),
            id=CHAIN_PREFIX.rstrip("-"),
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=settings.reconcile_interval)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_schedule(client: Client, schedule_id: str, wanted: Schedule) -> ScheduleHandle:
    """Create a schedule, or leave it as it is when it exists with the same workflow, task queue
    and intervals (idempotent: call it at every worker / dev-up start). An existing schedule that
    differs is updated in place, its pause state kept."""
    try:
        return await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)
    want = wanted.action
    assert isinstance(want, ScheduleActionStartWorkflow)

    def _changed(inp: ScheduleUpdateInput) -> ScheduleUpdate | None:
        cur = inp.description.schedule
        action = cur.action
        same = (
            isinstance(action, ScheduleActionStartWorkflow)
            and action.task_queue == want.task_queue
            and action.workflow == want.workflow
            and [i.every for i in cur.spec.intervals] == [i.every for i in wanted.spec.intervals]
        )
        if same:
            return None
        wanted.state = cur.state
        return ScheduleUpdate(schedule=wanted)

    await handle.update(_changed)
    return handle


async def ensure_reconciliation_schedule(
    client: Client, settings: Settings, *, schedule_id: str = RECONCILIATION_SCHEDULE_ID
) -> ScheduleHandle:
    return await ensure_schedule(client, schedule_id, reconciliation_schedule(settings))
