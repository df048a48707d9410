"""Settings for every process (worker, API, CLI, dev stack), from env `JITACCESS_*`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.notifications import Audience
from jitaccess.domain.principals import ActorKind, Principal

EXAMPLES = Path(__file__).parent / "examples"


class ConfigError(Exception):
    """A configuration file is missing or invalid; the message says which and why."""


class UserEntry(BaseModel):
    token: SecretStr
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
    model_config = SettingsConfigDict(env_prefix="JITACCESS_", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "jitaccess-grants"

    # AES-256-GCM key (urlsafe base64, 32 bytes) for Temporal payloads; generate: jitaccess.workers.codec.new_key()
    payload_key: SecretStr | None = None

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
    users_file: Path | None = None  # dev/static bearer tokens; production fronts the API with OIDC
    admin_groups: tuple[str, ...] = ("jitaccess-admins",)

    # reconciliation (ReconciliationWorkflow): how often the Temporal Schedule runs it (ISO 8601 in
    # env, e.g. JITACCESS_RECONCILE_INTERVAL=PT15M), and who besides admin_groups may run it on
    # demand and read its reports (API /v1/reconciliation/*)
    reconcile_interval: timedelta = Field(default=timedelta(minutes=15), ge=timedelta(minutes=1))
    reconciliation_groups: tuple[str, ...] = ("security",)

    # The single-use wrapping token is the only credential material in history: keep it short-lived.
    wrap_ttl: timedelta = Field(default=timedelta(minutes=5), le=timedelta(minutes=5), gt=timedelta(0))
    issue_timeout: timedelta = timedelta(minutes=2)
    revocation_backoff_cap: timedelta = timedelta(minutes=5)
    revocation_failing_after: int = Field(default=3, ge=1)
    expiry_warning_lead: timedelta | None = None  # tell the requester this long before expiry

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_concurrent_activities: int = 64

    notifiers: list[NotifierConfig] = []
    public_url: str | None = None  # base URL for links in notifications (approve/deny), e.g. https://jit.example.com

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
    raw = _read_yaml(path, "catalogue")
    try:
        return Catalogue.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"catalogue {path} is invalid:\n{e}") from e


def load_users(path: Path | None) -> dict[str, UserEntry]:
    if path is None:
        return {}
    raw = _read_yaml(path, "users")
    if not isinstance(raw, dict) or not isinstance(raw.get("users"), dict):
        raise ConfigError(f"users file {path} must have a top-level 'users:' mapping of name -> {{token, groups}}")
    try:
        return {name: UserEntry.model_validate(entry) for name, entry in raw["users"].items()}
    except ValidationError as e:
        raise ConfigError(f"users file {path} is invalid:\n{e}") from e
