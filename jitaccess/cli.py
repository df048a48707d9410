"""The `jitaccess` CLI: a client of the HTTP API, plus `dev up`, `worker` and `api` to run the pieces.

Where it finds the API: --api / JITACCESS_API, else .jitaccess/dev.json written by `jitaccess dev up`.
Its token: --as USER signs a dev user in at the dev stack's identity provider; else JITACCESS_TOKEN;
else the sign-in cached by `jitaccess auth login` (jitaccess.cli_auth), refreshed when needed.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from jitaccess.cli_tables import approval_rule, break_glass, duration, ident, print_table, text
from jitaccess.textsafe import markup_safe

app = typer.Typer(help="Just-in-time access: request, approve, fetch, revoke, and prove it.", no_args_is_help=True)
dev_app = typer.Typer(help="The embedded development stack.", no_args_is_help=True)
evidence_app = typer.Typer(
    help="Evidence: verify chains and signed checkpoints, make checkpoints, export bundles.", no_args_is_help=True
)
app.add_typer(dev_app, name="dev")
app.add_typer(evidence_app, name="evidence")
db_app = typer.Typer(help="The ledger database: schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(help="Keys: the Temporal payload key ring.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
err = Console(stderr=True)

DEV_DIR = Path(os.environ.get("JITACCESS_DEV_DIR", ".jitaccess"))


class Ctx:
    user: str | None = None
    api: str | None = None
    json: bool = False


ctx = Ctx()


@app.callback()
def main(
    as_user: str | None = typer.Option(None, "--as", help="act as this dev user (signs in at the dev stack's IdP)"),
    api: str | None = typer.Option(None, "--api", envvar="JITACCESS_API", help="API base URL"),
    as_json: bool = typer.Option(False, "--json", help="print raw JSON"),
) -> None:
    ctx.user, ctx.api, ctx.json = as_user, api, as_json


def _dev() -> dict[str, Any]:
    path = DEV_DIR / "dev.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {markup_safe(message)}")
    return typer.Exit(code)


def _shown(v: Any) -> Any:
    """An API answer made safe to print: its strings (reasons, notes, IDs: other users' text) with
    Rich markup and control characters escaped, so they show as written and cannot forge output."""
    if isinstance(v, str):
        return markup_safe(v)
    if isinstance(v, dict):
        return {k: _shown(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_shown(x) for x in v]
    return v


def _client() -> httpx.Client:
    dev = _dev()
    base = ctx.api or dev.get("api_url")
    if not base:
        raise _fail("no API: pass --api URL, set JITACCESS_API, or run `jitaccess dev up` in this directory")
    from jitaccess.cli_auth import SignInError, current_token, dev_token

    try:
        if ctx.user:
            token = dev_token(dev, ctx.user)
        else:
            token = os.environ.get("JITACCESS_TOKEN") or current_token(dev)
    except SignInError as e:
        raise _fail(str(e)) from None
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _send(method: str, path: str, **kw: Any) -> httpx.Response:
    with _client() as c:
        try:
            return c.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise _fail(f"cannot reach the API at {c.base_url}: {e.__class__.__name__}") from None


def _call(method: str, path: str, **kw: Any) -> dict[str, Any]:
    r = _send(method, path, **kw)
    if r.status_code == 401 and ctx.user:
        # a dev sign-in cached from an earlier run of the stack (its OpenBao, and so its signing
        # keys, are new at every start): sign in afresh once and retry
        from jitaccess.cli_auth import SignInError, dev_sign_in

        try:
            dev_sign_in(_dev(), ctx.user)
        except SignInError as e:
            raise _fail(str(e)) from None
        r = _send(method, path, **kw)
    try:
        body = r.json()
    except ValueError:
        body = {"message": r.text}
    if r.status_code >= 400:
        raise _fail(
            f"{r.status_code} {body.get('error', '')}: {body.get('message', r.text)}", 2 if r.status_code < 500 else 1
        )
    return body


def _show_grant(g: dict[str, Any]) -> None:
    if ctx.json:
        console.print_json(data=g)
        return
    g = _shown(g)
    t = Table(show_header=False, box=None)
    for key in (
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
    ):
        if g.get(key) not in (None, ""):
            t.add_row(f"[bold]{key}[/bold]", str(g[key]))
    t.add_row("[bold]requester[/bold]", g["requester"]["id"])
    d = g.get("decision", {})
    t.add_row("[bold]decision[/bold]", f"{d.get('outcome')} by {d.get('rule')} ({d.get('policy_version')})")
    if d.get("reason_codes"):
        t.add_row("[bold]reason codes[/bold]", ", ".join(d["reason_codes"]))
    if g.get("approvals_required"):
        votes = (
            ", ".join(
                v["approver"] + (f" (by {v['actor']})" if v.get("on_behalf_of") else "") for v in g.get("approvals", [])
            )
            or "none yet"
        )
        t.add_row("[bold]approvals[/bold]", f"{len(g.get('approvals', []))}/{g['approvals_required']}: {votes}")
    if g.get("pending_approval"):
        t.add_row(
            "[bold]waiting for[/bold]",
            "; ".join(
                f"{p['stage']}: {p['have']}/{p['need']} from {', '.join(p['groups'])}" for p in g["pending_approval"]
            ),
        )
    if g.get("extension"):
        e = g["extension"]
        t.add_row("[bold]extension[/bold]", f"+{e['extension_seconds']}s {e['status']}")
    if g.get("review"):
        t.add_row(
            "[bold]review[/bold]", f"{g['review']['outcome']} by {g['review']['reviewer']}: {g['review']['notes']}"
        )
    elif g.get("review_deadline"):
        t.add_row(
            "[bold]review due[/bold]",
            g["review_deadline"] + (" (OVERDUE, escalated)" if g.get("review_escalated") else ""),
        )
    if g.get("credential"):
        t.add_row("[bold]credential ref[/bold]", f"{g['credential']['reference']} {g['credential'].get('details', {})}")
    if g.get("drift"):
        t.add_row(
            "[bold red]drift[/bold red]", f"{g['drift']['detail']} (reconciliation run {g['drift'].get('run_id')})"
        )
    console.print(t)


@app.command()
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
        body["duration"] = int(duration) if duration.isdigit() else duration
    if ticket:
        body["ticket"] = ticket
    if request_id:
        body["request_id"] = request_id
    r = _call("POST", "/v1/grants", json=body)
    if ctx.json:
        console.print_json(data=r)
    else:
        console.print(f"[bold]{r['grant_id']}[/bold] {r['state']}")


@app.command()
def approve(grant_id: str, comment: str = typer.Option("", help="note recorded with your approval")) -> None:
    """Approve a pending grant or onboarding (you must be one of its approvers, and not its requester)."""
    if grant_id.startswith("onboarding-"):
        _show_onboarding(_call("POST", f"/v1/onboardings/{grant_id}/approve", json={"comment": comment}))
        return
    _show_grant(_call("POST", f"/v1/grants/{grant_id}/approve", json={"comment": comment}))


@app.command()
def deny(grant_id: str, reason: str = typer.Option(..., help="why; recorded on the evidence chain")) -> None:
    """Deny a pending grant or onboarding."""
    if grant_id.startswith("onboarding-"):
        _show_onboarding(_call("POST", f"/v1/onboardings/{grant_id}/deny", json={"reason": reason}))
        return
    _show_grant(_call("POST", f"/v1/grants/{grant_id}/deny", json={"reason": reason}))


@app.command()
def revoke(grant_id: str, reason: str = typer.Option(..., help="why; recorded on the evidence chain")) -> None:
    """End a grant now (requester, its approvers or admins); revocation is confirmed by read-back."""
    _show_grant(_call("POST", f"/v1/grants/{grant_id}/revoke", json={"reason": reason}))


@app.command()
def extend(
    grant_id: str,
    duration: str = typer.Option(..., help="how much longer: ISO 8601 (PT30M) or seconds"),
    reason: str = typer.Option(..., help="why; recorded on the evidence chain"),
) -> None:
    """Ask to extend your active grant (same approval rule; cumulative duration within the max)."""
    body = {"duration": int(duration) if duration.isdigit() else duration, "reason": reason}
    _show_grant(_call("POST", f"/v1/grants/{grant_id}/extend", json=body))


@app.command()
def review(
    grant_id: str,
    outcome: str = typer.Option(..., help="justified or not_justified"),
    notes: str = typer.Option("", help="what you checked (required for not_justified)"),
) -> None:
    """Record the post-hoc review of a break-glass grant."""
    _show_grant(_call("POST", f"/v1/grants/{grant_id}/review", json={"outcome": outcome, "notes": notes}))


@app.command()
def delegate(
    to: str = typer.Argument(..., help="who may approve on your behalf"),
    duration: str = typer.Option("P1D", help="window length from now: ISO 8601 or seconds"),
    reason: str = typer.Option(..., help="why (e.g. on leave)"),
) -> None:
    """Delegate your approval authority to someone for a time window."""
    body = {"delegate": to, "duration": int(duration) if duration.isdigit() else duration, "reason": reason}
    d = _call("POST", "/v1/delegations", json=body)
    console.print(f"[bold]{d['delegation_id']}[/bold] {d['delegate']} may approve for you until {d['ends_at']}")


@app.command()
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
    body = {
        "template": template,
        "reason": reason,
        "workload": {
            "service": service,
            "owning_team": team,
            "environment": environment,
            "repository": repository,
            "dependencies": list(depends),
        },
    }
    r = _call("POST", "/v1/onboardings", json=body)
    console.print(f"[bold]{r['onboarding_id']}[/bold] {r['state']}")


@app.command()
def offboard(
    service: str,
    environment: str = typer.Option(..., "--env"),
    reason: str = typer.Option(..., help="why"),
) -> None:
    """Offboard a service: revoke every child grant and confirm each."""
    o = _call("POST", f"/v1/onboardings/onboarding-{service}-{environment}/offboard", json={"reason": reason})
    _show_onboarding(o)


@app.command()
def onboarding(onboarding_id: str) -> None:
    """Show a service onboarding and its child grants."""
    _show_onboarding(_call("GET", f"/v1/onboardings/{onboarding_id}"))


def _show_onboarding(o: dict[str, Any]) -> None:
    if ctx.json:
        console.print_json(data=o)
        return
    o = _shown(o)
    console.print(
        f"[bold]{o['onboarding_id']}[/bold] {o['state']}  template={o['template']} "
        f"owner={o['workload']['owning_team']} ends_at={o.get('ends_at')} rotations={o['rotations']}"
    )
    t = Table(ident("child grant"), ident("entitlement"), ident("state"), ident("reference"))
    for ch in o["children"]:
        t.add_row(ch["grant_id"], ch["entitlement"], ch["state"], ch.get("reference") or "")
    print_table(console, t)


@app.command()
def status(grant_id: str) -> None:
    """Show one grant."""
    _show_grant(_call("GET", f"/v1/grants/{grant_id}"))


@app.command("list")
def list_grants(
    state: str | None = typer.Option(None, help="only grants in this state"),
    requester: str | None = typer.Option(None, help="only grants of this requester"),
    break_glass: bool = typer.Option(False, "--break-glass", help="only break-glass grants"),
) -> None:
    """List grants."""
    params = {
        k: v
        for k, v in {"state": state, "requester": requester, "break_glass": "true" if break_glass else None}.items()
        if v
    }
    rows = _call("GET", "/v1/grants", params=params)["grants"]
    if ctx.json:
        console.print_json(data=rows)
        return
    rows = _shown(rows)
    t = Table(ident("grant"), ident("state"), ident("entitlement"), ident("requester"), ident("expires_at"))
    for r in rows:
        t.add_row(r["grant_id"], r["state"], r["entitlement"], r["requester"], r.get("expires_at") or "")
    print_table(console, t)


@app.command()
def credential(grant_id: str, vault_addr: str | None = typer.Option(None, envvar="VAULT_ADDR")) -> None:
    """Fetch your grant's single-use wrapping token and unwrap it against Vault yourself; prints the token."""
    import hvac

    r = _call("GET", f"/v1/grants/{grant_id}/credential")
    addr = vault_addr or _dev().get("vault_addr") or r.get("vault_addr")
    try:
        unwrapped = hvac.Client(url=addr, token=r["wrapping_token"]).sys.unwrap()
    except Exception as e:
        raise _fail(f"could not unwrap at {addr}: {e.__class__.__name__} (a wrapping token works once)") from None
    auth = unwrapped.get("auth")
    if auth:  # a Vault token
        if ctx.json:
            console.print_json(
                data={
                    "grant_id": grant_id,
                    "token": auth["client_token"],
                    "policies": auth.get("policies"),
                    "ttl": auth.get("lease_duration"),
                }
            )
        else:
            err.print(
                f"policies={auth.get('policies')} ttl={auth.get('lease_duration')}s (shown once; not stored anywhere)"
            )
            print(auth["client_token"])
    else:  # wrapped data: database login, AppRole role-ID/secret-ID, STS keys
        err.print("credential (shown once; not stored anywhere):")
        print(json.dumps(unwrapped.get("data") or {}, indent=2))


@app.command()
def events(grant_id: str) -> None:
    """Show a grant's identity events."""
    r = _call("GET", f"/v1/grants/{grant_id}/events")
    if ctx.json:
        console.print_json(data=r)
        return
    t = Table(ident("#"), ident("at"), ident("type"), ident("actor"), ident("role"), ident("hash (first 12)"))
    for e in _shown(r["events"]):
        t.add_row(str(e["seq"]), e["at"], e["type"], e["actor"]["id"], e["actor"]["role"], e["hash"][:12])
    print_table(console, t)


@evidence_app.command("verify")
def evidence_verify(
    grant_id: str | None = typer.Argument(None),
    all_: bool = typer.Option(False, "--all", help="every grant in the ledger"),
    ledger: str | None = typer.Option(None, "--ledger", help="verify offline, straight from this ledger URL"),
    public_key: list[Path] = typer.Option([], "--public-key", help="checkpoint public key file (offline)"),
    checkpoints: Path | None = typer.Option(None, "--checkpoints", help="exported checkpoints directory (offline)"),
    command_key: list[Path] = typer.Option([], "--command-key", help="API public key file(s): signed commands"),
    worker_key: list[Path] = typer.Option([], "--worker-key", help="worker public key file(s): signed signals"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Recompute hash chains and name the first broken link. With --ledger: offline, no API — also the
    global log's Merkle tree, the signed checkpoints and the signed commands (exit 1 on any finding)."""
    if ledger:
        from jitaccess.evidence.cli import offline_verify

        json_out = as_json or ctx.json
        return offline_verify(grant_id, all_, ledger, public_key, checkpoints, command_key, worker_key, json_out)
    if bool(grant_id) == all_:
        raise _fail("give a GRANT_ID or --all", 2)
    results = (
        _call("GET", "/v1/evidence/verify")["results"]
        if all_
        else [_call("GET", f"/v1/grants/{grant_id}/evidence")["verification"]]
    )
    t = Table(ident("grant"), ident("events"), ident("chain"), text("first broken link"))
    for v in results:
        t.add_row(
            v["grant_id"],
            str(v["events"]),
            "[green]ok[/green]" if v["ok"] else "[red]BROKEN[/red]",
            f"{v['first_broken'] or ''} {v['problem'] or ''}".strip(),
        )
    print_table(console, t)
    broken = [v for v in results if not v["ok"]]
    console.print(f"{len(results) - len(broken)} of {len(results)} chains verify")
    if broken:
        raise typer.Exit(1)


@app.command()
def reconcile(
    dry_run: bool = typer.Option(False, "--dry-run", help="report only: revoke nothing, signal no grant"),
    last: bool = typer.Option(False, "--last", help="show the last run's report instead of running one"),
) -> None:
    """Compare every target with the grants now (admins / security): orphaned, drifted and mismatched access."""
    r = (
        _call("GET", "/v1/reconciliation/last")
        if last
        else _call("POST", "/v1/reconciliation/runs", json={"dry_run": dry_run})
    )
    if ctx.json:
        console.print_json(data=r)
        return
    colour = {"orphan": "red", "drift": "yellow", "mismatch": "magenta"}
    t = Table(
        ident("kind"),
        ident("provider"),
        ident("grant"),
        ident("reference"),
        text("detail"),
        text("remediation"),
        title=f"reconciliation {r['run_id']}{' (dry run)' if r['dry_run'] else ''}",
    )
    for f in r["findings"]:
        rem = f.get("remediation") or {}
        t.add_row(
            f"[{colour.get(f['kind'], 'white')}]{f['kind']}[/]",
            f["provider"],
            f["grant_id"] or "-",
            f.get("reference") or "",
            f["detail"],
            f"{rem.get('action', '')} {rem.get('detail', '')}".strip(),
        )
    print_table(console, t)
    for p in r.get("providers", []):
        extra = f" [red]error: {p['error']}[/red]" if p.get("error") else (f" ({p['note']})" if p.get("note") else "")
        console.print(f"  {p['provider']}: {p['listed']} managed object(s){extra}")
    for note in r.get("notes", []):
        console.print(f"  [dim]{note}[/dim]")
    counts = r.get("counts", {})
    order = ["orphan", "drift", "mismatch", "remediated", "failed"]
    shown = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    console.print(", ".join(f"{k}: {counts[k]}" for k in shown) + f"  (evidence chain {r['chain_id']})")
    if r.get("error"):
        raise _fail(r["error"])


catalog_app = typer.Typer(help="The catalogue: what you can ask for; `check` a catalogue file.")
app.add_typer(catalog_app, name="catalog")


@catalog_app.callback(invoke_without_command=True)
def catalog(context: typer.Context) -> None:
    """List the entitlements you can ask for (`catalog check [FILE]` checks a catalogue file)."""
    if context.invoked_subcommand is not None:
        return
    r = _call("GET", "/v1/catalog")
    if ctx.json:
        console.print_json(data=r)
        return
    t = Table(
        ident("id"),
        text("description"),
        ident("default"),
        ident("max"),
        text("approval"),
        text("break-glass"),
        ident("you may request"),
        title=f"catalogue {r['policy_version']}",
    )
    for e in r["entitlements"]:
        t.add_row(
            e["id"],
            e["description"],
            duration(e.get("default_duration")),
            duration(e.get("max_duration")),
            approval_rule(e),
            break_glass(e),
            "yes" if e["you_may_request"] else "no",
        )
    print_table(console, t)


@catalog_app.command("check")
def catalog_check(
    file: Path | None = typer.Argument(None, help="catalogue YAML (default: JITACCESS_CATALOGUE_FILE)"),
) -> None:
    """Check a catalogue file as workers and the API load it, every provider's params included:
    OK with its policy version, or each problem naming the entitlement and field (exit 1)."""
    from jitaccess.config import Settings, load_catalogue
    from jitaccess.config.settings import ConfigError

    path = file or Settings().catalogue_file
    try:
        cat = load_catalogue(path)
    except ConfigError as e:
        first, *problems = str(e).splitlines()
        err.print(f"[red]error:[/red] {markup_safe(first)}", soft_wrap=True)
        for line in problems:
            err.print(f"  {markup_safe(line)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    what = f"{len(cat.entitlements)} entitlements, policy version {cat.version}"
    console.print(f"OK: {markup_safe(str(path))}: {what}", highlight=False, soft_wrap=True)


@dev_app.command("up")
def dev_up(
    directory: Path = typer.Option(DEV_DIR, "--dir", help="where state, logs and dev.json go"),
    random_ports: bool = typer.Option(False, help="use free random ports instead of 7233/8233/8200/8000"),
) -> None:
    """Start Temporal, OpenBao, the worker and the API on this machine; Ctrl-C stops them."""
    from jitaccess.devup import dev_up as run

    asyncio.run(run(directory, random_ports))
    os._exit(0)  # sdk-python #300


@app.command()
def worker() -> None:
    """Run a grant worker (settings from JITACCESS_* environment)."""
    from jitaccess.workers.main import main as run

    run()


@app.command()
def api(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the HTTP API (settings from JITACCESS_* environment)."""
    import uvicorn

    from jitaccess.api import create_app

    uvicorn.run(create_app(), host=host, port=port)


def _ledger_url(url: str | None) -> str:
    if url:
        return url
    from jitaccess.config import Settings

    return Settings().ledger_url


@db_app.command("upgrade")
def db_upgrade(
    url: str | None = typer.Option(None, "--url", help="ledger URL (default: JITACCESS_LEDGER_URL)"),
) -> None:
    """Create or migrate the ledger's schema to the newest version (idempotent; safe from several
    processes at once). Run it before starting workers and the API on a new version."""
    from jitaccess.ledger.migrate import LedgerSchemaError, upgrade

    try:
        res = upgrade(_ledger_url(url))
    except (LedgerSchemaError, ValueError) as e:
        raise _fail(str(e)) from None
    if res.changed:
        console.print(f"ledger {res.url}: schema {res.before or 'none'} -> {res.after}")
    else:
        console.print(f"ledger {res.url}: schema {res.after}, already current")


@db_app.command("current")
def db_current(
    url: str | None = typer.Option(None, "--url", help="ledger URL (default: JITACCESS_LEDGER_URL)"),
) -> None:
    """Print the ledger's schema version and the version this jitaccess needs (exit 1 if they differ)."""
    from jitaccess.ledger.migrate import HEAD, current

    rev = current(_ledger_url(url))
    console.print(f"ledger schema {rev or 'none'}; this jitaccess needs {HEAD}")
    if rev != HEAD:
        raise typer.Exit(1)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Print a new payload key (stdout) and how to put it in front of the ring (stderr)."""
    from jitaccess.config import Settings
    from jitaccess.workers.codec import key_id, new_key

    key = new_key()
    ring = [key_id(k) for k in Settings().payload_key_ring()]
    print(key, flush=True)
    err.print(
        f"new payload key {key_id(key)} (printed above; a secret: store it where the other keys are).\n"
        f"current ring (key ids, first encrypts): {', '.join(ring) or 'none: encryption is off'}\n"
        "1. give every worker and the API the new key at the END of the ring (decrypt only), restart them:\n"
        "     JITACCESS_PAYLOAD_KEYS=<current keys>,<new key>\n"
        "2. when all run with it, PREPEND it instead (it now encrypts), restart them again:\n"
        "     JITACCESS_PAYLOAD_KEYS=<new key>,<current keys>\n"
        "   (one step would let an upgraded process write payloads the others cannot read yet: refused)\n"
        "3. drop an old key only when nothing encrypted with it is still needed: no running workflow\n"
        "   started or signalled under it, no schedule created under it (re-create the reconciliation\n"
        "   schedule), and no history you want to read within Temporal's retention.",
        highlight=False,
        soft_wrap=True,
    )


@keys_app.command("new-signing-key")
def keys_new_signing_key() -> None:
    """Print a new Ed25519 command signing key (stdout) and its public key (stderr), for
    JITACCESS_COMMAND_SIGNING_KEY / _WORKER_SIGNING_KEY and the *_PUBLIC_KEYS lists (docs/operations.md)."""
    from jitaccess.domain.commands import CommandSigner, SignerRole, new_private_key_text, public_key_text

    key = new_private_key_text()
    print(key, flush=True)
    public = public_key_text(CommandSigner.from_text(key, SignerRole.api).public_key)
    err.print(f"public key (add it to the verifiers' *_PUBLIC_KEYS list before switching): {public}", highlight=False)


def _register_evidence() -> None:
    from jitaccess.evidence.cli import register

    register(app, evidence_app)


_register_evidence()  # evidence checkpoint / public-key / export / verify-bundle, export, report


def _register_auth() -> None:
    from jitaccess.cli_auth import register

    register(app, _dev, lambda: ctx.user)


_register_auth()  # auth login / print-token / status / logout


if __name__ == "__main__":
    app()
