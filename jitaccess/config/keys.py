"""Command keys from settings: the API's signer, a worker's signer and the verifier it trusts."""

from __future__ import annotations

from jitaccess.config.settings import ConfigError, Settings
from jitaccess.domain.commands import (
    CommandSigner,
    CommandVerifier,
    SignerRole,
    load_public_key,
    public_key_text,
)


def _signer(text: str, role: SignerRole, setting: str) -> CommandSigner:
    try:
        return CommandSigner.from_text(text, role)
    except ValueError as e:
        raise ConfigError(f"JITACCESS_{setting.upper()}: {e}") from None


def api_signer(settings: Settings) -> CommandSigner | None:
    key = settings.command_signing_key
    return _signer(key.get_secret_value(), SignerRole.api, "command_signing_key") if key else None


def worker_signer(settings: Settings) -> CommandSigner:
    key = settings.worker_signing_key
    if key is None:
        raise ConfigError(
            "a worker needs JITACCESS_WORKER_SIGNING_KEY to sign what its workflows send each other "
            "(make one with `jitaccess keys new-signing-key`)"
        )
    return _signer(key.get_secret_value(), SignerRole.worker, "worker_signing_key")


def command_verifier(settings: Settings) -> CommandVerifier:
    """The API keys (JITACCESS_COMMAND_PUBLIC_KEYS, plus the API key's own when this process holds
    it, as in the dev stack) and worker keys a worker trusts. Fails closed with no API key."""
    api = list(settings.command_public_keys)
    if (own := api_signer(settings)) is not None:
        api.append(public_key_text(own.public_key))
    if not api:
        raise ConfigError(
            "a worker needs JITACCESS_COMMAND_PUBLIC_KEYS (the API's public signing keys): without them "
            "it could not tell a genuine decision from a forged one"
        )
    workers = [*settings.worker_public_keys, public_key_text(worker_signer(settings).public_key)]
    try:
        keys = [(load_public_key(k), SignerRole.api) for k in api]
        keys += [(load_public_key(k), SignerRole.worker) for k in workers]
    except ValueError as e:
        raise ConfigError(f"JITACCESS_COMMAND_PUBLIC_KEYS / JITACCESS_WORKER_PUBLIC_KEYS: {e}") from None
    return CommandVerifier(keys, max_age=settings.command_max_age)
