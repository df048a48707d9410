"""Settings for every process (worker, API, CLI, dev stack), from env `JITACCESS_*`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.principals import ActorKind, Principal

EXAMPLES = Path(__file__).parent / "examples"


class ConfigError(Exception):
    """A configuration file is missing or invalid; the message says which and why."""


class UserEntry(BaseModel):
    token: SecretStr
    groups: tuple[str, ...] = ()
    kind: ActorKind = ActorKind.human

    def principal(self, name: str) -> Principal:
        return Principal(id=name, kind=self.kind, groups=self.groups)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JITACCESS_", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "jitaccess-grants"

    # AES-256-GCM key (urlsafe base64, 32 bytes) for Temporal payloads; generate: jitaccess.workers.codec.new_key()
    payload_key: SecretStr | None = None

    vault_addr: str = "http://127.0.0.1:8200"
    vault_token: SecretStr = SecretStr("")

    ledger_url: str = "sqlite:///.jitaccess/ledger.db"
    catalogue_file: Path = EXAMPLES / "catalogue.yaml"
    users_file: Path | None = None  # dev/static bearer tokens; production fronts the API with OIDC
    admin_groups: tuple[str, ...] = ("jitaccess-admins",)

    # The single-use wrapping token is the only credential material in history: keep it short-lived.
    wrap_ttl: timedelta = Field(default=timedelta(minutes=5), le=timedelta(minutes=5), gt=timedelta(0))
    issue_timeout: timedelta = timedelta(minutes=2)
    revocation_backoff_cap: timedelta = timedelta(minutes=5)
    revocation_failing_after: int = Field(default=3, ge=1)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_concurrent_activities: int = 64


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
