"""Every use case, built once over the ports (jitaccess.api.wiring builds it for the API and keeps
it on `app.state.use_cases`; the console and tests reach the same object)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from jitaccess.domain.catalogue import Catalogue
from jitaccess.domain.contracts import GrantOptions
from jitaccess.service.authority import Authority
from jitaccess.service.decisions import Decisions
from jitaccess.service.delegations import Delegations
from jitaccess.service.grants import GrantRequests
from jitaccess.service.onboardings import Onboardings
from jitaccess.service.ports import Clock, DelegationStore, Directory, EvidenceStore, WorkflowGateway
from jitaccess.service.reads import Reads
from jitaccess.service.reconciliation import Reconciliations


@dataclass(frozen=True)
class Config:
    """What the use cases take from the settings."""

    admin_groups: tuple[str, ...]
    auditor_groups: tuple[str, ...]
    reconciliation_groups: tuple[str, ...]
    options: GrantOptions
    known_users: Collection[str] = ()  # the directory's user IDs (empty: no directory)
    directory: Directory | None = None  # None: no directory


@dataclass(frozen=True)
class UseCases:
    catalogue: Catalogue
    authority: Authority
    requests: GrantRequests
    decisions: Decisions
    reads: Reads
    delegations: Delegations
    onboardings: Onboardings
    reconciliation: Reconciliations


def build_use_cases(
    catalogue: Catalogue,
    cfg: Config,
    workflows: WorkflowGateway,
    evidence: EvidenceStore,
    delegations: DelegationStore,
    clock: Clock,
) -> UseCases:
    authority = Authority(delegations, clock, cfg.admin_groups, cfg.auditor_groups, cfg.directory)
    return UseCases(
        catalogue=catalogue,
        authority=authority,
        requests=GrantRequests(catalogue, workflows, clock, cfg.admin_groups, cfg.options),
        decisions=Decisions(workflows, authority, clock),
        reads=Reads(workflows, evidence, authority, cfg.reconciliation_groups),
        delegations=Delegations(catalogue, delegations, clock, cfg.known_users),
        onboardings=Onboardings(
            catalogue, workflows, authority, clock, cfg.admin_groups, cfg.options, directory=cfg.directory
        ),
        reconciliation=Reconciliations(workflows, evidence, authority, cfg.reconciliation_groups),
    )
