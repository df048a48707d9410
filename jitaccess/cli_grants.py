"""CLI commands for grants and service onboardings: request, decide, extend, revoke, review, look.
Registered on the main CLI by jitaccess.cli."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from jitaccess import cli_client as client
from jitaccess.cli_tables import ident, print_table

# the grant's own fields shown as they are, in this order, when present
_GRANT_FIELDS = (
    "grant_id",
    "state",
    "entitlement",
    "provider",
    "reason",
    "ticket",
    "incident",
    "duration_seconds",
    "expires_at",
    "end_reason",
    "decided_by",
    "credential_delivered",
    "events",
    "last_hash",
)


def _approval_rows(g: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    if g.get("approvals_required"):
        approvals = g.get("approvals", [])
        votes = ", ".join(v["approver"] + (f" (by {v['actor']})" if v.get("on_behalf_of") else "") for v in approvals)
        rows.append(("approvals", f"{len(approvals)}/{g['approvals_required']}: {votes or 'none yet'}"))
    if g.get("pending_approval"):
        waiting = (
            f"{p['stage']}: {p['have']}/{p['need']} from {', '.join(p['groups'])}" for p in g["pending_approval"]
        )
        rows.append(("waiting for", "; ".join(waiting)))
    if g.get("extension"):
        e = g["extension"]
        rows.append(("extension", f"+{e['extension_seconds']}s {e['status']}"))
    return rows


def _after_rows(g: dict[str, Any]) -> list[tuple[str, str]]:
    """Review, credential reference and drift: what happened once the grant was decided."""
    rows = []
    if g.get("review"):
        rows.append(("review", f"{g['review']['outcome']} by {g['review']['reviewer']}: {g['review']['notes']}"))
    elif g.get("review_deadline"):
        rows.append(
            ("review due", g["review_deadline"] + (" (OVERDUE, escalated)" if g.get("review_escalated") else ""))
        )
    if g.get("credential"):
        rows.append(("credential ref", f"{g['credential']['reference']} {g['credential'].get('details', {})}"))
    return rows


def show_grant(g: dict[str, Any]) -> None:
    if client.print_json_if_asked(g):
        return
    g = client.shown(g)
    t = Table(show_header=False, box=None)
    for key in _GRANT_FIELDS:
        if g.get(key) not in (None, ""):
            t.add_row(f"[bold]{key}[/bold]", str(g[key]))
    t.add_row("[bold]requester[/bold]", g["requester"]["id"])
    d = g.get("decision", {})
    t.add_row("[bold]decision[/bold]", f"{d.get('outcome')} by {d.get('rule')} ({d.get('policy_version')})")
    if d.get("reason_codes"):
        t.add_row("[bold]reason codes[/bold]", ", ".join(d["reason_codes"]))
    for label, value in _approval_rows(g) + _after_rows(g):
        t.add_row(f"[bold]{label}[/bold]", value)
    if g.get("drift"):
        drift = g["drift"]
        t.add_row("[bold red]drift[/bold red]", f"{drift['detail']} (reconciliation run {drift.get('run_id')})")
    client.console.print(t)


def show_onboarding(o: dict[str, Any]) -> None:
    if client.print_json_if_asked(o):
        return
    o = client.shown(o)
    client.console.print(
        f"[bold]{o['onboarding_id']}[/bold] {o['state']}  template={o['template']} "
        f"owner={o['workload']['owning_team']} ends_at={o.get('ends_at')} rotations={o['rotations']}"
    )
    t = Table(ident("child grant"), ident("entitlement"), ident("state"), ident("reference"))
    for ch in o["children"]:
        t.add_row(ch["grant_id"], ch["entitlement"], ch["state"], ch.get("reference") or "")
    print_table(client.console, t)


def request(
    entitlement: str,
    duration: str | None = typer.Option(None, help="ISO 8601 (PT15M) or seconds; default from the catalogue"),
    reason: str = typer.Option("", help="why you need it (required by most entitlements)"),
    ticket: str | None = typer.Option(None, help="change/incident ticket reference"),
    request_id: str | None = typer.Option(None, help="idempotency key: resubmitting returns the same grant"),
    break_glass: bool = typer.Option(
        False, "--break-glass", help="emergency access: issued now, alerted, reviewed after"
    ),
    incident: str | None = typer.Option(None, help="incident reference (required with --break-glass)"),
) -> None:
    """Ask for an entitlement from the catalogue."""
    body: dict[str, Any] = {"entitlement": entitlement, "reason": reason}
    if break_glass:
        body["break_glass"] = True
    if incident:
        body["incident"] = incident
    if duration is not None:
        body["duration"] = client.duration_value(duration)
    if ticket:
        body["ticket"] = ticket
    if request_id:
        body["request_id"] = request_id
    r = client.call("POST", "/v1/grants", json=body)
    if not client.print_json_if_asked(r):
        client.console.print(f"[bold]{r['grant_id']}[/bold] {r['state']}")


def _decide(grant_id: str, verb: str, body: dict[str, str]) -> None:
    """Approve or deny a grant, or an onboarding (its ID says which)."""
    if grant_id.startswith("onboarding-"):
        show_onboarding(client.call("POST", f"/v1/onboardings/{grant_id}/{verb}", json=body))
    else:
        show_grant(client.call("POST", f"/v1/grants/{grant_id}/{verb}", json=body))


def approve(grant_id: str, comment: str = typer.Option("", help="note recorded with your approval")) -> None:
    """Approve a pending grant or onboarding (you must be one of its approvers, and not its requester)."""
    _decide(grant_id, "approve", {"comment": comment})


def deny(grant_id: str, reason: str = typer.Option(..., help="why; recorded on the evidence chain")) -> None:
    """Deny a pending grant or onboarding."""
    _decide(grant_id, "deny", {"reason": reason})


def revoke(grant_id: str, reason: str = typer.Option(..., help="why; recorded on the evidence chain")) -> None:
    """End a grant now (requester, its approvers or admins); revocation is confirmed by read-back."""
    show_grant(client.call("POST", f"/v1/grants/{grant_id}/revoke", json={"reason": reason}))


def extend(
    grant_id: str,
    duration: str = typer.Option(..., help="how much longer: ISO 8601 (PT30M) or seconds"),
    reason: str = typer.Option(..., help="why; recorded on the evidence chain"),
) -> None:
    """Ask to extend your active grant (same approval rule; cumulative duration within the max)."""
    body = {"duration": client.duration_value(duration), "reason": reason}
    show_grant(client.call("POST", f"/v1/grants/{grant_id}/extend", json=body))


def review(
    grant_id: str,
    outcome: str = typer.Option(..., help="justified or not_justified"),
    notes: str = typer.Option("", help="what you checked (required for not_justified)"),
) -> None:
    """Record the post-hoc review of a break-glass grant."""
    show_grant(client.call("POST", f"/v1/grants/{grant_id}/review", json={"outcome": outcome, "notes": notes}))


def delegate(
    to: str = typer.Argument(..., help="who may approve on your behalf"),
    duration: str = typer.Option("P1D", help="window length from now: ISO 8601 or seconds"),
    reason: str = typer.Option(..., help="why (e.g. on leave)"),
) -> None:
    """Delegate your approval authority to someone for a time window."""
    body = {"delegate": to, "duration": client.duration_value(duration), "reason": reason}
    d = client.call("POST", "/v1/delegations", json=body)
    client.console.print(f"[bold]{d['delegation_id']}[/bold] {d['delegate']} may approve for you until {d['ends_at']}")


def onboard(
    template: str = typer.Argument(..., help="an onboarding template from the catalogue"),
    service: str = typer.Option(..., help="the service (non-human identity) being onboarded"),
    team: str = typer.Option(..., help="the owning team: the human group accountable for it"),
    environment: str = typer.Option(..., "--env", help="e.g. staging, production"),
    repository: str = typer.Option(..., "--repo", help="its source repository"),
    depends: list[str] = typer.Option([], "--depends", help="a system it depends on (repeatable)"),
    reason: str = typer.Option("", help="why"),
) -> None:
    """Onboard a service: its template's entitlements as child grants, all or nothing."""
    workload = {
        "service": service,
        "owning_team": team,
        "environment": environment,
        "repository": repository,
        "dependencies": list(depends),
    }
    r = client.call("POST", "/v1/onboardings", json={"template": template, "reason": reason, "workload": workload})
    client.console.print(f"[bold]{r['onboarding_id']}[/bold] {r['state']}")


def offboard(
    service: str,
    environment: str = typer.Option(..., "--env"),
    reason: str = typer.Option(..., help="why"),
) -> None:
    """Offboard a service: revoke every child grant and confirm each."""
    path = f"/v1/onboardings/onboarding-{service}-{environment}/offboard"
    show_onboarding(client.call("POST", path, json={"reason": reason}))


def onboarding(onboarding_id: str) -> None:
    """Show a service onboarding and its child grants."""
    show_onboarding(client.call("GET", f"/v1/onboardings/{onboarding_id}"))


def status(grant_id: str) -> None:
    """Show one grant."""
    show_grant(client.call("GET", f"/v1/grants/{grant_id}"))


def list_grants(
    state: str | None = typer.Option(None, help="only grants in this state"),
    requester: str | None = typer.Option(None, help="only grants of this requester"),
    break_glass: bool = typer.Option(False, "--break-glass", help="only break-glass grants"),
) -> None:
    """List grants."""
    wanted = {"state": state, "requester": requester, "break_glass": "true" if break_glass else None}
    rows = client.call("GET", "/v1/grants", params={k: v for k, v in wanted.items() if v})["grants"]
    if client.print_json_if_asked(rows):
        return
    t = Table(ident("grant"), ident("state"), ident("entitlement"), ident("requester"), ident("expires_at"))
    for r in client.shown(rows):
        t.add_row(r["grant_id"], r["state"], r["entitlement"], r["requester"], r.get("expires_at") or "")
    print_table(client.console, t)


def credential(grant_id: str, vault_addr: str | None = typer.Option(None, envvar="VAULT_ADDR")) -> None:
    """Fetch your grant's single-use wrapping token and unwrap it against Vault yourself; prints the token."""
    import hvac

    r = client.call("GET", f"/v1/grants/{grant_id}/credential")
    addr = vault_addr or client.dev().get("vault_addr") or r.get("vault_addr")
    try:
        unwrapped = hvac.Client(url=addr, token=r["wrapping_token"]).sys.unwrap()
    except Exception as e:
        raise client.fail(f"could not unwrap at {addr}: {e.__class__.__name__} (a wrapping token works once)") from None
    auth = unwrapped.get("auth")
    if not auth:  # wrapped data: database login, AppRole role-ID/secret-ID, STS keys
        client.err.print("credential (shown once; not stored anywhere):")
        print(json.dumps(unwrapped.get("data") or {}, indent=2))
        return
    policies, ttl = auth.get("policies"), auth.get("lease_duration")
    if not client.print_json_if_asked(
        {"grant_id": grant_id, "token": auth["client_token"], "policies": policies, "ttl": ttl}
    ):
        client.err.print(f"policies={policies} ttl={ttl}s (shown once; not stored anywhere)")
        print(auth["client_token"])


def events(grant_id: str) -> None:
    """Show a grant's identity events."""
    r = client.call("GET", f"/v1/grants/{grant_id}/events")
    if client.print_json_if_asked(r):
        return
    t = Table(ident("#"), ident("at"), ident("type"), ident("actor"), ident("role"), ident("hash (first 12)"))
    for e in client.shown(r["events"]):
        t.add_row(str(e["seq"]), e["at"], e["type"], e["actor"]["id"], e["actor"]["role"], e["hash"][:12])
    print_table(client.console, t)


def register(app: typer.Typer) -> None:
    """The grant and onboarding commands, in the order `--help` lists them."""
    for command in (request, approve, deny, revoke, extend, review, delegate, onboard, offboard, onboarding, status):
        app.command()(command)
    app.command("list")(list_grants)
    app.command()(credential)
    app.command()(events)
