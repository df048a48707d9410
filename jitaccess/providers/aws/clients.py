"""What every AWS provider shares: boto3 clients built from settings, and AWS failures
translated into ProviderErrors.

Endpoint, region and credentials come from settings (`AwsClients.from_settings`), so the same
code talks to real AWS or to moto. The process shares one boto3 client per service (clients are
thread-safe; the session that makes them is used under a lock).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeGuard

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from jitaccess.domain.provider_params import aws_name_problem
from jitaccess.providers.base import ProviderError

# botocore logs raw response bodies (AssumeRole's carries the secret key) and signed request
# headers (a session token) at DEBUG: never let those through, whatever the root level is or
# later becomes (only an explicit level set on the "botocore" logger itself overrides this).
_botocore_log = logging.getLogger("botocore")
if _botocore_log.level < logging.INFO:  # NOTSET (inherits the root) or DEBUG
    _botocore_log.setLevel(logging.INFO)

# error codes: worth retrying (throttling, transient, eventual consistency) / never worth it
_RETRYABLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    "InternalServerException",
    "ServiceFailure",
    "ConflictException",
    "ConcurrentModification",
    "ConcurrentModificationException",
    "RequestTimeout",
    "RequestTimeoutException",
    "ExpiredToken",
    "ExpiredTokenException",
    "IDPCommunicationError",
    "LimitExceeded",  # e.g. the role's inline-policy budget: frees up as revocation statements expire and are pruned
}


def error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def is_error(e: Exception, *codes: str) -> TypeGuard[ClientError]:
    return isinstance(e, ClientError) and error_code(e) in codes


def translate(e: Exception, action: str) -> ProviderError:
    """boto3/botocore failure -> ProviderError. Throttling, 5xx and connection failures are
    retryable; permission, validation and not-found errors are not (retrying cannot help).
    Messages carry AWS's error code and message, never request parameters or keys."""
    if isinstance(e, ProviderError):
        return e
    if isinstance(e, ClientError):
        code, msg = error_code(e), e.response.get("Error", {}).get("Message", "")
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        retryable = code in _RETRYABLE_CODES or status >= 500
        return ProviderError(f"aws refused to {action}: {code}: {msg}".rstrip(": "), retryable=retryable)
    if isinstance(e, (EndpointConnectionError, BotoConnectionError)):
        return ProviderError(f"aws unreachable while trying to {action}: {e.__class__.__name__}")
    if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
        return ProviderError(f"no usable AWS credentials to {action}: {e.__class__.__name__}", retryable=False)
    if isinstance(e, ParamValidationError):
        return ProviderError(f"invalid request to {action}: {e}", retryable=False)
    if isinstance(e, BotoCoreError):
        return ProviderError(f"aws error while trying to {action}: {e.__class__.__name__}: {e}")
    return ProviderError(f"aws error while trying to {action}: {e.__class__.__name__}: {e}")


class AwsClients:
    """One boto3 client per service, shared by every thread; endpoint, region and credentials from settings.

    Credentials left unset fall back to boto3's default chain (environment, profile, instance role)."""

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 15,
        max_attempts: int = 3,
        max_pool_connections: int = 64,
    ) -> None:
        self.region, self.endpoint_url = region, endpoint_url
        self._creds = (access_key_id, secret_access_key, session_token)
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=max_pool_connections,  # shared by every activity thread
        )
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> AwsClients:
        secret = settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
        token = settings.aws_session_token.get_secret_value() if settings.aws_session_token else None
        return cls(
            region=settings.aws_region or "us-east-1",
            endpoint_url=settings.aws_endpoint_url,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=secret,
            session_token=token,
        )

    def client(self, service: str) -> Any:
        """One client per service for the whole process: boto3 clients are thread-safe (sessions are
        not, so the one session is only used under the lock). A session and client per activity
        thread cost ~12 MB and a few hundred ms of CPU each: 64 threads took the worker from 200 to
        986 MB and made issues wait seconds at 200 concurrent IAM grants (bench/README.md, issue 15)."""
        got = self._clients.get(service)
        if got is not None:
            return got
        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    key_id, secret, token = self._creds
                    self._session = boto3.session.Session(
                        aws_access_key_id=key_id,
                        aws_secret_access_key=secret,
                        aws_session_token=token,
                        region_name=self.region,
                    )
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.endpoint_url, config=self._config
                )
            return self._clients[service]

    def client_with_keys(self, service: str, access_key_id: str, secret_access_key: str, session_token: str) -> Any:
        """A throw-away client signed with minted keys (to prove them), never cached."""
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=self.region,
        )
        return session.client(service, endpoint_url=self.endpoint_url, config=self._config)


def call(action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except Exception as e:
        raise translate(e, action) from e


def paginate(client: Any, op: str, key: str, action: str, **kwargs: Any) -> list[Any]:
    try:
        out: list[Any] = []
        for page in client.get_paginator(op).paginate(**kwargs):
            out.extend(page.get(key) or [])
        return out
    except Exception as e:
        raise translate(e, action) from e


def aws_name(value: str, what: str, max_len: int, min_len: int = 1) -> str:
    """`value` when it is a valid AWS name; ProviderError (not retryable) naming `what` otherwise."""
    problem = aws_name_problem(value, max_len, min_len)
    if problem:
        raise ProviderError(f"{what} {problem}", retryable=False)
    return value


def resolvable_or_none(fn: Callable[[], Any]) -> Any:
    """For shared_target / expected_credential: parameters that cannot resolve (no such user,
    no such permission set, bad params) mean issue cannot have created anything, so there is
    nothing to hold or clean up; AWS being down is retryable and propagates."""
    try:
        return fn()
    except ProviderError as e:
        if e.retryable:
            raise
        return None
