"""Shared Temporal plumbing: client connection (one data converter), logging, worker building."""

from __future__ import annotations

import dataclasses
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

import structlog
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from jitaccess.activities import GrantActivities
from jitaccess.config import Settings
from jitaccess.ledger import Ledger
from jitaccess.providers.base import ProviderRegistry
from jitaccess.providers.vault_token import VaultClients, VaultTokenProvider
from jitaccess.workers.codec import EncryptionCodec
from jitaccess.workflows.grant import GrantWorkflow

WORKFLOWS = [GrantWorkflow]


def configure_logging(level: str = "INFO", stream=None) -> None:
    """Structured JSON lines on stdout (or `stream`): the identity-event feed is one of them."""
    logging.basicConfig(level=level, stream=stream or sys.stdout, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=True,
    )


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models through the sandbox; payloads encrypted when a key is configured."""
    if settings.payload_key is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(settings.payload_key.get_secret_value()))


async def connect(settings: Settings) -> Client:
    if settings.payload_key is None:
        structlog.get_logger("jitaccess").warning(
            "payload_encryption_off", hint="set JITACCESS_PAYLOAD_KEY so wrapping tokens are not stored in clear in Temporal"
        )
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=data_converter(settings)
    )


def build_providers(settings: Settings) -> ProviderRegistry:
    vault = VaultClients(settings.vault_addr, settings.vault_token.get_secret_value())
    return ProviderRegistry({"vault_token": VaultTokenProvider(vault)})


def build_worker(
    client: Client, settings: Settings, *, providers: ProviderRegistry | None = None, ledger: Ledger | None = None
) -> tuple[Worker, Ledger]:
    ledger = ledger or Ledger(settings.ledger_url)
    acts = GrantActivities(providers or build_providers(settings), ledger, settings.wrap_ttl)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=acts.all(),
        activity_executor=ThreadPoolExecutor(settings.max_concurrent_activities),
        max_concurrent_activities=settings.max_concurrent_activities,
    )
    return worker, ledger
