"""Settings for every process (worker, API, CLI, dev stack), from env `JITACCESS_*`."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jitaccess.config.oidc import OidcIssuer
from jitaccess.domain.access import DEFAULT_AUDITOR_GROUPS
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.notifications import Audience
from jitaccess.domain.principals import ActorKind, Principal
from jitaccess.domain.provider_params import catalogue_params_problems

EXAMPLES = Path(__file__).parent / "examples"


class ConfigError(Exception):
    """A configuration file is missing or invalid; the message says which and why."""


class UserEntry(BaseModel):
    """A directory entry (users.yaml): the dev stack's seed of users and groups for its identity
    provider, and the API's lookup of people who are not the caller (a delegator's current groups,
    a workload's owner). Nobody signs in with it: the API takes identities from OIDC tokens only."""

    groups: tuple[str, ...] = ()
    kind: ActorKind = ActorKind.human
    owner: str | None = None

    def principal(self, name: str) -> Principal:
        return Principal(id=name, kind=self.kind, groups=self.groups, owner=self.owner)


class NotifierConfig(BaseModel):
    """One notification channel. `url` is a secret (a Slack incoming-webhook URL is a
    credential): it is never logged nor put in an event. Env example:
    JITACCESS_NOTIFIERS='[{"name":"sec-slack","format":"slack","url":"https://hooks.slack.com/…","audiences":["approvers","security"]}]'
    """

    name: str = Field(min_length=1)
    format: Literal["webhook", "slack"] = "webhook"
    url: SecretStr
    audiences: list[Audience] = Field(default_factory=lambda: list(Audience))
    timeout: float = Field(default=5.0, gt=0, le=60)  # seconds, per delivery attempt

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("notifier url must be an http:// or https:// URL")
        return v


class Settings(BaseSettings):
    # secrets may also come from files: with JITACCESS_SECRETS_DIR=/run/secrets (several: separated
    # by ':'), a file named like the variable (e.g. /run/secrets/jitaccess_payload_keys, as compose
    # `secrets:` mounts them) is read when the variable itself is not set (docs/operations.md)
    model_config = SettingsConfigDict(
        env_prefix="JITACCESS_",
        extra="ignore",
        secrets_dir=[d for d in os.environ.get("JITACCESS_SECRETS_DIR", "").split(":") if d] or None,
    )

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    # reaching a production cluster (docs/operations.md): mTLS with a client certificate (Temporal
    # Cloud, or self-hosted with its CA), or TLS alone, or a Temporal Cloud API key
    temporal_tls: bool = False
    temporal_tls_cert_file: Path | None = None
    temporal_tls_key_file: Path | None = None
    temporal_tls_ca_file: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None
    task_queue: str = "jitaccess-grants"
    # the fleet-wide jobs' own task queue, served by `jitaccess worker --role background` (compose, dev
    # up): a reconciliation scan reads every held grant and every object at the targets (seconds of
    # CPU and a heap of their size at 10,000 held grants), a checkpoint hashes every event since the
    # last one; on a grant worker either delays the expiries due meanwhile. Empty: the grant task
    # queue, where every grant worker runs them too.
    background_task_queue: str = ""

    # AES-256-GCM keys (urlsafe base64, 32 bytes each) for Temporal payloads (jitaccess.workers.codec):
    # payload_keys is a comma-separated ring — the first encrypts, any decrypts (`jitaccess keys
    # rotate`); payload_key alone is a ring of one (and, beside payload_keys, decrypt-only).
    payload_keys: SecretStr | None = None
    payload_key: SecretStr | None = None

    # Signed commands (DESIGN.md, "Trust model"). The API signs every command that changes a grant
    # or an onboarding with its private key; workers verify with the API public keys they trust, and
    # sign what workflows send each other with the worker key. Keys are urlsafe base64 of 32 raw
    # Ed25519 bytes (`jitaccess keys new-signing-key`); lists are JSON in env ('["key1","key2"]').
    # Rotation: add the new public key to every worker, switch the API, and keep the old public key
    # listed (verify-only) while workflows that used it may still run or replay.
    command_signing_key: SecretStr | None = None  # the API's; never given to workers in production
    command_public_keys: list[str] = []  # API public keys a worker trusts
    worker_signing_key: SecretStr | None = None  # the workers' (shared by the worker fleet)
    worker_public_keys: list[str] = []  # further worker keys to trust (the own key always is)
    command_max_age: timedelta = Field(default=timedelta(minutes=5), gt=timedelta(0))  # clock skew + latency

    vault_addr: str = "http://127.0.0.1:8200"
    vault_token: SecretStr = SecretStr("")
    # vault_database: the database secrets engine's mount; the optional DSN (any user that can read
    # pg_roles; it may hold a password, hence secret) lets revocation be confirmed in PostgreSQL too,
    # without it the provider confirms on the Vault lease alone and says so.
    vault_database_mount: str = "database"
    postgres_verify_dsn: SecretStr | None = None
    # vault_approle: the AppRole auth mount and the lifetime of tokens a service gets by logging in
    # (the residual window after a secret-ID is destroyed, unless login tokens are swept).
    vault_approle_mount: str = "approle"
    vault_approle_token_ttl: timedelta = Field(default=timedelta(minutes=15), gt=timedelta(0))
    vault_approle_token_max_ttl: timedelta = Field(default=timedelta(hours=1), gt=timedelta(0))
    vault_approle_revoke_login_tokens: bool = True

    # AWS providers (aws_identity_center, aws_iam_group, aws_sts_session): enabled when aws_region
    # (real AWS) or aws_endpoint_url (moto) is set. Unset credentials fall back to boto3's chain
    # (environment, profile, instance role). The Identity Center instance is discovered when the
    # account has exactly one.
    aws_endpoint_url: str | None = None
    aws_region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None
    aws_sso_instance_arn: str | None = None
    aws_identity_store_id: str | None = None

    ledger_url: str = "sqlite:///.jitaccess/ledger.db"
    catalogue_file: Path = EXAMPLES / "catalogue.yaml"
    users_file: Path | None = None  # directory (users and groups, no credentials): see UserEntry
    # Sign-in (jitaccess.api.auth): the OIDC issuers whose bearer JWTs the API accepts (JSON list of
    # jitaccess.config.oidc.OidcIssuer), the clock skew allowed on exp/nbf/iat, how long an issuer's
    # keys (JWKS) are trusted without asking it again, and how often an unknown `kid` may make the
    # API ask (a rotated key is picked up at once; a flood of made-up kids is not an amplifier).
    oidc_issuers: list[OidcIssuer] = []
    oidc_clock_skew: timedelta = Field(default=timedelta(seconds=60), ge=timedelta(0), le=timedelta(minutes=5))
    oidc_jwks_ttl: timedelta = Field(default=timedelta(minutes=10), gt=timedelta(0), le=timedelta(days=1))
    oidc_jwks_min_refresh: timedelta = Field(default=timedelta(seconds=5), ge=timedelta(0))
    admin_groups: tuple[str, ...] = ("jitaccess-admins",)

    # reconciliation (ReconciliationWorkflow): how often the Temporal Schedule runs it (ISO 8601 in
    # env, e.g. JITACCESS_RECONCILE_INTERVAL=PT15M), and who besides admin_groups may run it on
    # demand and read its reports (API /v1/reconciliation/*)
    reconcile_interval: timedelta = Field(default=timedelta(minutes=15), ge=timedelta(minutes=1))
    # a scan's calls to the targets (per-object lookups and read-backs) a second: paced so that the
    # expiries due during a scan are not slowed by it (0: unpaced). 10,000 new tokens: ~50 s a scan
    reconcile_calls_per_second: float = Field(default=200, ge=0)
    reconciliation_groups: tuple[str, ...] = ("security",)
    # who reads every grant, onboarding and chain and may verify them all (GET /v1/evidence/verify),
    # besides admin_groups; everyone else reads what their role covers (jitaccess.domain.access)
    auditor_groups: tuple[str, ...] = DEFAULT_AUDITOR_GROUPS

    # signed checkpoints over the ledger's global log (jitaccess.ledger.evidence_log): the Ed25519
    # key file (never readable by the ledger's database users), the directory each checkpoint is
    # also written to, and how often the worker's Schedule makes one (the longest an event can go
    # uncovered by a signed checkpoint). Without a key file, no schedule is created.
    checkpoint_key_file: Path | None = None
    checkpoint_dir: Path | None = None
    checkpoint_interval: timedelta = Field(default=timedelta(minutes=5), ge=timedelta(seconds=10))
    checkpoint_public_keys: list[str] = []  # for the API's /v1/evidence/verify (JSON list, like command keys)

    # The single-use wrapping token is the only credential material in history: keep it short-lived.
    wrap_ttl: timedelta = Field(default=timedelta(minutes=5), le=timedelta(minutes=5), gt=timedelta(0))
    issue_timeout: timedelta = timedelta(minutes=2)
    revocation_backoff_cap: timedelta = timedelta(minutes=5)
    revocation_failing_after: int = Field(default=3, ge=1)
    expiry_warning_lead: timedelta | None = None  # tell the requester this long before expiry

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # operations (docs/operations.md): a worker serves /metrics on metrics_port (none when unset);
    # sdk_metrics adds the Temporal SDK's runtime metrics (a loopback Prometheus exporter merged into
    # /metrics); codec_cors_origins are the browser origins (the Temporal UI's) allowed to call the
    # codec endpoint /codec/*; search_attributes: grants keep Requester, Entitlement, GrantState,
    # BreakGlass and Provider current in Temporal visibility (the namespace must have them registered);
    # off by default: nothing in jitaccess reads them, and they cost a quarter of the throughput on
    # the dev server's visibility (docs/operations.md)
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = None
    sdk_metrics: bool = True
    codec_cors_origins: list[str] = []
    search_attributes: bool = False
    max_concurrent_activities: int = 64
    # Grant starts at once that ask for their first workflow task eagerly: returned with the start
    # to a worker in the API's own process (`dev up`; an API without a worker gets none). Off by
    # default: it made one request at a time active 15-20 % sooner, but under a sustained burst
    # (10,000 requests) the eager tasks evicted grants under way from the cache (3.7x evictions) and
    # a fifth fewer grants were active by the same time (bench/README.md)
    eager_start_limit: int = Field(default=0, ge=0)
    # The worker's workflow cache (each cached run skips a history replay on its next task; an
    # active grant between timers is one entry, ~190 KB) and how many workflow tasks it runs at once
    # (None: the SDK's default, 100). 500 keeps 10,000 held grants within 512 MB (bench/README.md).
    max_cached_workflows: int = Field(default=500, ge=0)
    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=2)
    # Run workflow code in Temporal's sandbox (a runtime determinism check that re-creates each
    # workflow's module environment). Off by default: our workflow code is pure and every test and
    # the replay test run it sandboxed (tests/conftest.py), while production saves the sandbox's
    # CPU on every new or replayed grant (bench/README.md, issue 15).
    workflow_sandbox: bool = False
    # New workflow runs record one marker for every patch of the release (jitaccess/workflows/patches.py,
    # BASELINE) instead of one per patch. A worker of a release before it cannot replay such a run:
    # while any still polls (a rolling upgrade from one), set this false on the new workers, so that
    # they record each patch's own marker as the old ones do; set it back once they are all gone.
    record_patch_baseline: bool = True
    # glibc malloc arenas in a worker process (jitaccess.ops.memory; 0: glibc's default, 8 per core)
    malloc_arenas: int = Field(default=2, ge=0)
    # The cyclic collector's young-generation threshold in a worker process (jitaccess.ops.memory;
    # 0: CPython's 700). Fewer full passes, each of which stops the worker (bench/README.md).
    gc_young_threshold: int = Field(default=2000, ge=0)
    # Worker recovery after a crash (see README, Configuration). A workflow task (e.g. a fired
    # expiry timer) goes first to the sticky queue of the worker that ran the workflow last; if that
    # worker is dead, Temporal waits this long before handing the task to any worker. Short = a
    # dead worker delays an expiry by at most this; the cost is a full history replay on another
    # worker whenever the sticky one is merely slow to poll (more than this).
    sticky_schedule_to_start_timeout: timedelta = Field(default=timedelta(seconds=2), gt=timedelta(0))
    workflow_task_pollers: int = Field(default=10, ge=2)  # concurrent long-polls (sticky + normal queue)
    activity_task_pollers: int = Field(default=10, ge=1)
    # On SIGTERM: stop polling, give running activities this long to finish (a revoke mid-call
    # completes instead of waiting out its start-to-close timeout on another worker), then cancel.
    graceful_shutdown_timeout: timedelta = Field(default=timedelta(seconds=10), ge=timedelta(0))
    # The expiry backstop (jitaccess.workers.backstop): each worker ends identity-based access (IAM
    # group, Identity Center, the STS deny: no provider-side TTL) itself `backstop_grace` after the
    # grant's expiry when the workflow has not (Temporal down), scanning every `backstop_interval`.
    backstop: bool = True
    backstop_grace: timedelta = Field(default=timedelta(milliseconds=500), ge=timedelta(0), le=timedelta(minutes=5))
    backstop_interval: timedelta = Field(
        default=timedelta(milliseconds=250), ge=timedelta(milliseconds=50), le=timedelta(seconds=30)
    )

    notifiers: list[NotifierConfig] = []
    public_url: str | None = None  # base URL for links in notifications (approve/deny), e.g. https://jit.example.com

    @property
    def background_queue(self) -> str:
        """The task queue reconciliation and checkpoints run on (schedules, on-demand runs, workers)."""
        return self.background_task_queue or self.task_queue

    def payload_key_ring(self) -> list[str]:
        """The payload keys in ring order (first encrypts); [] when encryption is off."""
        raw = self.payload_keys.get_secret_value() if self.payload_keys else ""
        ring = list(dict.fromkeys(k.strip() for k in raw.split(",") if k.strip()))
        if self.payload_key is not None and self.payload_key.get_secret_value() not in ring:
            ring.append(self.payload_key.get_secret_value())
        return ring

    @field_validator("notifiers")
    @classmethod
    def _unique_notifier_names(cls, v: list[NotifierConfig]) -> list[NotifierConfig]:
        names = [n.name for n in v]
        if dupes := sorted({x for x in names if names.count(x) > 1}):
            raise ValueError(f"notifier names must be unique; repeated: {', '.join(dupes)}")
        return v


def _read_yaml(path: Path, what: str) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{what} file not found: {path}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} file {path} is not valid YAML: {e}") from e


def load_catalogue(path: Path) -> Catalogue:
    """The catalogue at `path`, every entitlement's provider params checked against its provider
    type's model (jitaccess.domain.provider_params); ConfigError naming each problem otherwise."""
    raw = _read_yaml(path, "catalogue")
    try:
        catalogue = Catalogue.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"catalogue {path} is invalid:\n{e}") from e
    problems = catalogue_params_problems(catalogue)
    if problems:
        raise ConfigError(f"catalogue {path} is invalid:\n" + "\n".join(problems))
    return catalogue


def load_users(path: Path | None) -> dict[str, UserEntry]:
    if path is None:
        return {}
    raw = _read_yaml(path, "users")
    if not isinstance(raw, dict) or not isinstance(raw.get("users"), dict):
        raise ConfigError(
            f"users file {path} must have a top-level 'users:' mapping of name -> {{groups, kind, owner}}"
        )
    try:
        return {name: UserEntry.model_validate(entry) for name, entry in raw["users"].items()}
    except ValidationError as e:
        raise ConfigError(f"users file {path} is invalid:\n{e}") from e
