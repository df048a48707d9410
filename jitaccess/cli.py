"""The `jitaccess` CLI: a client of the HTTP API, plus `dev up`, `worker` and `api` to run the pieces.

The commands live by topic: grants and onboardings (jitaccess.cli_grants), reconciliation, catalogue
and evidence verification over the API (cli_admin), running and setting up the pieces (cli_ops),
the ledger read directly (jitaccess.evidence.cli) and signing in (cli_auth); what they share (the
global options, the API client) is jitaccess.cli_client. This module puts them together, in the
order `--help` lists them.
"""

from __future__ import annotations

import typer

from jitaccess import cli_admin, cli_auth, cli_grants, cli_ops
from jitaccess import cli_client as client
from jitaccess.evidence import cli as evidence_cli

app = typer.Typer(help="Just-in-time access: request, approve, fetch, revoke, and prove it.", no_args_is_help=True)


@app.callback()
def main(
    as_user: str | None = typer.Option(None, "--as", help="act as this dev user (signs in at the dev stack's IdP)"),
    api: str | None = typer.Option(None, "--api", envvar="JITACCESS_API", help="API base URL"),
    as_json: bool = typer.Option(False, "--json", help="print raw JSON"),
) -> None:
    client.ctx.user, client.ctx.api, client.ctx.json = as_user, api, as_json


app.add_typer(cli_ops.dev_app, name="dev")
app.add_typer(cli_admin.evidence_app, name="evidence")
app.add_typer(cli_ops.db_app, name="db")
app.add_typer(cli_ops.keys_app, name="keys")
app.add_typer(cli_admin.catalog_app, name="catalog")
app.add_typer(cli_auth.auth_app, name="auth")
cli_grants.register(app)  # request, approve, ..., events
cli_admin.register(app)  # reconcile
cli_ops.register(app)  # worker, api
evidence_cli.register(app, cli_admin.evidence_app)  # evidence checkpoint / public-key / export / ..., export, report


if __name__ == "__main__":
    app()
