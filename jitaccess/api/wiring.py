"""The one place the API's use cases are put together: Temporal and the ledger behind the service
layer's ports (jitaccess.service.ports), with what the settings and the directory say."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio.client import Client

from jitaccess.api.gateway import TemporalWorkflows
from jitaccess.api.stores import LedgerStores
from jitaccess.bootstrap import grant_options
from jitaccess.config import Settings
from jitaccess.config.settings import UserEntry
from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.principals import Principal
from jitaccess.ledger import Ledger
from jitaccess.service.ports import Directory, SystemClock
from jitaccess.service.use_cases import Config, UseCases, build_use_cases


def directory_of(users: Mapping[str, UserEntry]) -> Directory | None:
    """Each user as configured now (groups, kind, owner); None when there is no directory."""
    if not users:
        return None

    def resolve(uid: str) -> Principal | None:
        return users[uid].principal(uid) if uid in users else None

    return resolve


def use_cases(
    settings: Settings, catalogue: Catalogue, users: Mapping[str, UserEntry], client: Client, ledger: Ledger
) -> UseCases:
    store = LedgerStores(ledger, settings)
    cfg = Config(
        admin_groups=tuple(settings.admin_groups),
        auditor_groups=tuple(settings.auditor_groups),
        reconciliation_groups=tuple(settings.reconciliation_groups),
        options=grant_options(settings),
        known_users=users.keys(),
        directory=directory_of(users),
    )
    return build_use_cases(catalogue, cfg, TemporalWorkflows(client, settings), store, store, SystemClock())
