"""CLI tables never cut an identifier: grant, onboarding and run IDs come out whole on a narrow
terminal (COLUMNS=60) and when piped; only free text wraps. `catalog` shows staged approval rules,
durations and break-glass."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from jitaccess import cli, cli_client
from jitaccess.config import load_catalogue
from jitaccess.config.settings import EXAMPLES

GID = "grant-01m8vva4qk4z3t1c0z9s8x7w6v5u"
GID2 = "grant-nightly-report-staging-payments-api-secret-id-g1"
OID = "onboarding-nightly-report-staging"
RUN = "reconciliation-01m8vvb2xk4z3t1c0z9s8x7w6v"
LONG = "a long free text reason that goes on and on so that it has to wrap somewhere on a narrow terminal"


def _catalog() -> dict:
    cat = load_catalogue(EXAMPLES / "catalogue.yaml")
    return {
        "policy_version": cat.version,
        "entitlements": [{**e.model_dump(mode="json"), "you_may_request": True} for e in cat.entitlements],
    }


ANSWERS = {
    "/v1/grants": {
        "grants": [
            {
                "grant_id": g,
                "state": "awaiting_approval",
                "entitlement": "secrets-prod-write",
                "requester": "alice",
                "expires_at": "2026-12-02T22:43:11.123456+00:00",
            }
            for g in (GID, GID2)
        ]
    },
    f"/v1/grants/{GID}/events": {
        "grant_id": GID,
        "events": [
            {
                "seq": 1,
                "at": "2026-12-02T22:43:07.000001+00:00",
                "type": "grant.requested",
                "actor": {"id": "alice", "kind": "human", "role": "requester"},
                "hash": "ab" * 32,
            }
        ],
    },
    f"/v1/onboardings/{OID}": {
        "onboarding_id": OID,
        "state": "active",
        "template": "batch-job",
        "workload": {"owning_team": "platform-leads"},
        "ends_at": None,
        "rotations": 0,
        "children": [{"grant_id": GID2, "entitlement": "payments-api-secret-id", "state": "active", "reference": None}],
    },
    "/v1/reconciliation/last": {
        "run_id": RUN.removeprefix("reconciliation-"),
        "chain_id": RUN,
        "dry_run": True,
        "findings": [
            {
                "kind": "orphan",
                "provider": "vault_token",
                "grant_id": GID,
                "reference": "accessor-0123456789abcdef0123",
                "detail": LONG,
                "remediation": {"action": "revoked", "detail": "confirmed by read-back"},
            }
        ],
        "providers": [],
        "counts": {"orphan": 1},
    },
    f"/v1/grants/{GID}/evidence": {
        "verification": {"grant_id": GID, "events": 9, "ok": False, "first_broken": f"{GID}:3", "problem": LONG}
    },
    "/v1/catalog": _catalog(),
}

COMMANDS = {
    "list": (["list"], [GID, GID2]),
    "events": (["events", GID], [GID] and ["grant.requested", "requester", "abababababab"]),
    "onboarding": (["onboarding", OID], [OID, GID2]),
    "reconcile": (["reconcile", "--last"], [GID, RUN, "accessor-0123456789abcdef0123"]),
    "evidence verify": (["evidence", "verify", GID], [GID, f"{GID}:3"]),
}


@pytest.fixture
def fake_api(monkeypatch):
    def call(method, path, **kw):
        return ANSWERS[path]

    monkeypatch.setattr(cli_client, "call", call)
    monkeypatch.setattr(cli_client.ctx, "json", False)


def run(args: list[str], *, width: int, terminal: bool, monkeypatch) -> str:
    monkeypatch.setattr(cli_client.console, "width", width)
    monkeypatch.setattr(cli_client.console, "_force_terminal", terminal)
    result = CliRunner().invoke(cli.app, args, env={"COLUMNS": str(width)})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output


@pytest.mark.parametrize("terminal", [True, False], ids=["narrow-terminal", "piped"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_identifiers_are_never_cut(fake_api, monkeypatch, name, terminal):
    args, whole = COMMANDS[name]
    out = run(args, width=60, terminal=terminal, monkeypatch=monkeypatch)
    assert "…" not in out.replace("...", "")
    lines = out.splitlines()
    for ident in whole:
        assert any(ident in line for line in lines), f"{ident} not whole on one line in:\n{out}"


def test_piped_rows_are_whole_lines_and_free_text_wraps_on_a_terminal(fake_api, monkeypatch):
    piped = run(["reconcile", "--last"], width=60, terminal=False, monkeypatch=monkeypatch)
    assert any(LONG in line for line in piped.splitlines())  # one row, one line: a script can grep it
    narrow = run(["reconcile", "--last"], width=100, terminal=True, monkeypatch=monkeypatch)
    assert not any(LONG in line for line in narrow.splitlines())  # the free text wrapped...
    assert any(GID in line for line in narrow.splitlines())  # ...the identifier did not


@pytest.mark.parametrize("terminal", [True, False], ids=["narrow-terminal", "piped"])
def test_catalog_shows_stages_durations_and_break_glass(fake_api, monkeypatch, terminal):
    out = run(["catalog"], width=60, terminal=terminal, monkeypatch=monkeypatch)
    flat = " ".join(out.split())
    for ident in ("secrets-prod-write", "secrets-readonly", "payments-api-secret-id", "aws-readonly-console"):
        assert any(ident in line for line in out.splitlines()), ident
    # secrets-prod-write: two stages in parallel, each with its own group (it printed "1 of" before)
    prod = next(e for e in ANSWERS["/v1/catalog"]["entitlements"] if e["id"] == "secrets-prod-write")
    stages = prod["approval"]["stages"]
    assert len(stages) == 2
    if not terminal:
        row = next(line for line in out.splitlines() if "secrets-prod-write" in line)
        for st in stages:
            assert f"{st['min_approvals']} of {', '.join(st['approver_groups'])}" in row
        admin = next(line for line in out.splitlines() if "secrets-admin " in line or "│ secrets-admin " in line)
        assert "30m" in admin and "2h" in admin and "up to 1h (oncall)" in admin
    assert "auto" in flat
