"""The one place jitaccess is wired together (cosmicpython's bootstrap): the API, the worker,
`jitaccess dev up`, the bench and the chaos harness all build their parts here.

- `connect(settings)`: the Temporal client, with the one data converter (payload codec) and the
  API's command-signing interceptor;
- `api_parts(settings, client)`: what the API's lifespan holds (client, ledger) — it imports no
  provider and no boto3 (tests/unit/test_bootstrap.py checks);
- `build_providers(settings)`, `build_worker(client, settings, role=...)`: the providers (imported
  lazily, only by processes that issue or read back credentials) and a grant or background worker;
- `configure_logging`, `grant_options`: the logging every process writes, the knobs grants carry.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, TextIO

import structlog
from temporalio.client import Client
from temporalio.converter import DataConverter

from jitaccess.config import Settings, load_catalogue
from jitaccess.config.keys import api_signer
from jitaccess.config.settings import ConfigError
from jitaccess.domain.contracts import GrantOptions
from jitaccess.ledger import Ledger
from jitaccess.ops import metrics, siem, tracing
from jitaccess.ops.temporal_conn import tls_options
from jitaccess.service.signing import CommandSigningInterceptor
from jitaccess.workers.codec import EncryptionCodec
from jitaccess.workers.converter import PYDANTIC_DATA_CONVERTER

if TYPE_CHECKING:  # worker-side types: imported at run time only by the functions that build them
    from temporalio.worker import Interceptor, Worker

    from jitaccess.domain.catalogue import Catalogue
    from jitaccess.providers.base import ProviderRegistry


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
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


# -- Temporal --------------------------------------------------------------------------------------
def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models through the sandbox; payloads encrypted when a key is configured."""
    ring = settings.payload_key_ring()
    if not ring:
        return PYDANTIC_DATA_CONVERTER
    return dataclasses.replace(PYDANTIC_DATA_CONVERTER, payload_codec=EncryptionCodec(ring))


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


def grant_options(settings: Settings) -> GrantOptions:
    """The operational knobs every new grant carries (the workflow cannot read settings)."""
    from jitaccess.activities.notify import route_table

    return GrantOptions(
        issue_timeout=settings.issue_timeout,
        revocation_backoff_cap=settings.revocation_backoff_cap,
        revocation_failing_after=settings.revocation_failing_after,
        notifiers=route_table(settings.notifiers),
        expiry_warning_lead=settings.expiry_warning_lead,
    )


# -- the API ---------------------------------------------------------------------------------------
@dataclass
class ApiParts:
    """What the API's lifespan holds open: the Temporal client and the ledger."""

    settings: Settings
    client: Client
    ledger: Ledger

    def close(self) -> None:
        self.ledger.close()  # the client has no close: its connection ends with the process


async def api_parts(settings: Settings, client: Client | None = None) -> ApiParts:
    """The API's parts: `client` (a test's) or a new connection, and the ledger."""
    return ApiParts(settings, client or await connect(settings), Ledger(settings.ledger_url))


# -- providers and workers (imported lazily: the API never needs them) ----------------------------
def build_providers(settings: Settings) -> ProviderRegistry:
    """Every provider the settings configure: the OpenBao ones always, AWS with an endpoint or region."""
    from jitaccess.providers.base import ProviderRegistry
    from jitaccess.providers.vault_approle import VaultAppRoleSecretIdProvider
    from jitaccess.providers.vault_database import VaultDatabaseCredentialsProvider
    from jitaccess.providers.vault_token import VaultClients, VaultTokenProvider

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
        providers.update(_aws_providers(settings, vault))
    return ProviderRegistry(providers)


def _aws_providers(settings: Settings, vault) -> dict:
    from jitaccess.providers.aws import (
        AwsClients,
        IamGroupMembershipProvider,
        IdentityCenterAssignmentProvider,
        StsRoleSessionProvider,
    )
    from jitaccess.providers.vault_token import VaultWrapper

    aws = AwsClients.from_settings(settings)
    roles = _catalogue_params(settings, StsRoleSessionProvider.name, "role_arn")
    return {
        IdentityCenterAssignmentProvider.name: IdentityCenterAssignmentProvider(
            aws, instance_arn=settings.aws_sso_instance_arn, identity_store_id=settings.aws_identity_store_id
        ),
        IamGroupMembershipProvider.name: IamGroupMembershipProvider(aws),
        StsRoleSessionProvider.name: StsRoleSessionProvider(aws, VaultWrapper(vault), roles=roles),
    }


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


class WorkerParts(NamedTuple):
    """A worker and the ledger its activities write (`worker, ledger = build_worker(...)`)."""

    worker: Worker
    ledger: Ledger

    def close(self) -> None:
        self.ledger.close()


WorkerRole = Literal["grants", "background"]


def require_background_queue(settings: Settings) -> None:
    if settings.background_queue == settings.task_queue:
        raise ConfigError(
            "a background worker needs a queue of its own: set JITACCESS_BACKGROUND_TASK_QUEUE "
            "(left empty, reconciliation and checkpoints run on the grant workers)"
        )


def build_worker(
    client: Client,
    settings: Settings,
    *,
    role: WorkerRole = "grants",
    providers: ProviderRegistry | None = None,
    ledger: Ledger | None = None,
    catalogue: Catalogue | None = None,
    interceptors: tuple[Interceptor, ...] = (),
) -> WorkerParts:
    """The one way to build a worker. `catalogue` (default: settings.catalogue_file) is what the
    issuer trusts: it issues only what this catalogue defines.

    role "grants": `settings.task_queue`, every workflow and activity (a reconciliation or
    checkpoint started on this queue, as they are without a background queue, or were before it,
    runs here). role "background": `settings.background_queue` only, the fleet-wide jobs over
    every held grant or every event — ReconciliationWorkflow (scan, revokes) and CheckpointWorkflow
    — with their event writes, in a process of their own, so that a job's CPU, heap and GIL never
    stand between a grant and its expiry."""
    from jitaccess.activities import GrantActivities
    from jitaccess.activities.checkpoint import CheckpointActivities
    from jitaccess.activities.notify import NotificationActivities
    from jitaccess.activities.reconcile import ReconcileActivities
    from jitaccess.config.keys import command_verifier, worker_signer
    from jitaccess.ledger.backstop import BackstopStore
    from jitaccess.ledger.holds import HoldStore
    from jitaccess.ops.memory import limit_malloc_arenas
    from jitaccess.workers.factory import BACKGROUND_WORKFLOWS, new_worker
    from jitaccess.workflows import trust

    if role == "background":
        require_background_queue(settings)  # else it would poll the grant queue knowing no grant
    limit_malloc_arenas(settings.malloc_arenas)  # before the activity threads exist
    verifier = command_verifier(settings)
    trust.install(verifier, worker_signer(settings))
    ledger = ledger or Ledger(settings.ledger_url)
    providers = metrics.instrument_providers(providers or build_providers(settings))  # call latency
    grants = GrantActivities(
        providers,
        ledger,
        settings.wrap_ttl,
        catalogue or load_catalogue(settings.catalogue_file),
        verifier,
        holds=HoldStore(ledger),
        backstop=BackstopStore(ledger),
    )
    reconcile = ReconcileActivities(providers, ledger, calls_per_second=settings.reconcile_calls_per_second).all()
    checkpoint = CheckpointActivities(ledger, settings.checkpoint_key_file, settings.checkpoint_dir).all()
    if role == "background":
        worker = new_worker(
            client,
            settings,
            [grants.record_events, *reconcile, *checkpoint],  # a run's evidence goes to the ledger as a grant's
            task_queue=settings.background_queue,
            workflows=BACKGROUND_WORKFLOWS,
            interceptors=interceptors,
        )
        return WorkerParts(worker, ledger)
    activities = grants.all() + NotificationActivities.from_settings(settings).all() + reconcile + checkpoint
    return WorkerParts(new_worker(client, settings, activities, interceptors=interceptors), ledger)
