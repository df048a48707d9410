"""How a process reaches a Temporal cluster beyond address and namespace: mTLS (self-hosted with
a CA, or Temporal Cloud with a client certificate) or a Temporal Cloud API key (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from temporalio.service import TLSConfig

from jitaccess.config.settings import ConfigError, Settings


def tls_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for Client.connect: `tls` and/or `api_key` (empty: plaintext, as in dev)."""
    opts: dict[str, Any] = {}
    cert, key, ca = settings.temporal_tls_cert_file, settings.temporal_tls_key_file, settings.temporal_tls_ca_file
    if bool(cert) != bool(key):
        raise ConfigError("JITACCESS_TEMPORAL_TLS_CERT_FILE and JITACCESS_TEMPORAL_TLS_KEY_FILE go together (mTLS)")
    if cert or ca or settings.temporal_tls:
        try:
            opts["tls"] = TLSConfig(
                client_cert=cert.read_bytes() if cert else None,
                client_private_key=key.read_bytes() if key else None,
                server_root_ca_cert=ca.read_bytes() if ca else None,
                domain=settings.temporal_tls_server_name,
            )
        except OSError as e:
            raise ConfigError(f"Temporal TLS file: {e}") from None
    if settings.temporal_api_key is not None:
        opts["api_key"] = settings.temporal_api_key.get_secret_value()
        opts.setdefault("tls", True)
    return opts
