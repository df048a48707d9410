"""The Provider port and its implementations (credential issuance at a target)."""

from jitaccess.providers.base import Provider, ProviderError, ProviderRegistry

__all__ = ["Provider", "ProviderError", "ProviderRegistry"]
