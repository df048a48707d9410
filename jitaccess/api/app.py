"""The HTTP API. Every call is authenticated; decisions go to the grant's workflow
as updates, whose validators answer with the rule that refused them."""

from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from ulid import ULID

from jitaccess import console
from jitaccess.api import auth, codec_server, errors, ops_routes
from jitaccess.api.errors import ApiError, responses
from jitaccess.api.gateway import TemporalGrantStarter, TemporalOnboardingRuns
from jitaccess.api.models import CommentBody, DelegationBody, ExtendBody, GrantRequestBody, ReasonBody, ReviewBody
from jitaccess.config import Settings, load_catalogue, load_users
from jitaccess.domain import contracts as c
from jitaccess.domain.access import (
    ReadFacts,
    Viewer,
    chain_facts,
    grant_facts,
    may_read,
    may_verify_all,
    onboarding_facts,
    sees_everything,
    viewer_for,
)
from jitaccess.domain.delegation import current_delegations
from jitaccess.domain.events import IdentityEvent
from jitaccess.domain.grant import ActionInput, ExtendInput, Grant, Refusal, ReviewInput
from jitaccess.domain.onboarding import OnboardingRequest
from jitaccess.domain.policy import AccessRequest, evaluate_extension
from jitaccess.domain.principals import Principal
from jitaccess.domain.reconciliation import ReconcileInput, ReconciliationReport, chain_id
from jitaccess.domain.states import GrantState
from jitaccess.ledger import Ledger
from jitaccess.ops import metrics
from jitaccess.service.delegations import DelegationRequest, Delegations
from jitaccess.service.grants import GrantRequests, RequestRefused
from jitaccess.service.onboardings import Onboardings
from jitaccess.service.ports import SystemClock
from jitaccess.workers.common import connect, grant_options
from jitaccess.workflows.grant import GrantWorkflow
from jitaccess.workflows.onboarding import ServiceOnboardingWorkflow
from jitaccess.workflows.reconciliation import ReconciliationWorkflow

REFUSAL_STATUS = {"forbidden": 403, "conflict": 409, "gone": 410, "invalid": 422}


class ReconcileRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dry_run: bool = False  # report only: revoke nothing, signal no grant


def grant_view(g: Grant) -> dict[str, Any]:
    view = g.model_dump(mode="json", exclude={"decision", "admin_groups"})
    d = g.decision
    view["decision"] = {
        "outcome": d.outcome.value,
        "rule": d.rule,
        "policy_version": d.policy_version,
        "reason_codes": list(d.reason_codes),
        "messages": list(d.messages),
        "approver_groups": list(d.approver_groups),
        "min_approvals": d.min_approvals,
    }
    view["approvals_required"] = g.approvals_required
    view["approvals"] = [v.model_dump(mode="json") for v in g.approvals]
    rnd = g.pending_round()
    view["pending_approval"] = rnd.pending() if rnd else []
    return view


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    settings = settings or Settings()
    catalogue = load_catalogue(settings.catalogue_file)
    users = load_users(settings.users_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.client = client or await connect(settings)
        app.state.ledger = Ledger(settings.ledger_url)
        yield
        app.state.ledger.close()

    # FastAPIOffline: FastAPI with /docs (Swagger UI) and /redoc served from assets vendored in the
    # fastapi-offline package (FastAPI's self-hosting recipe), so the docs work with no CDN
    app = FastAPIOffline(
        title="jitaccess",
        version="0.1.0",
        description="Just-in-time access: request, approve, issue, expire, and prove revocation.",
        lifespan=lifespan,
    )
    errors.install(app)

    # -- authentication: OIDC bearer JWTs (jitaccess.api.auth); `users` is only a directory -------
    auth.install(app)
    app.state.authenticator = authenticate = auth.authenticator_for(settings, users)
    Me = Annotated[Principal, Depends(authenticate)]
    ops_routes.install(app, settings, catalogue.version)  # /readyz, /metrics, tracing (jitaccess.ops)
    codec_server.install(app, settings, authenticate)  # /codec/decode, /codec/encode for the Temporal UI
    # the web console at / (jitaccess.console): a client of these same routes, in-process
    app.include_router(console.router(settings))
    app.mount("/static", StaticFiles(directory=console.STATIC_DIR), name="console-static")

    def tc(request: Request) -> Client:
        return request.app.state.client

    def ledger(request: Request) -> Ledger:
        return request.app.state.ledger

    def expect_id(kind: str, wid: str) -> None:
        """A grant route takes only grant IDs, an onboarding route only onboarding IDs: anything
        else (the other kind, a delegation or reconciliation chain, junk) is 404 before any call."""
        if not wid.startswith(f"{kind}-") or len(wid) > 200 or not wid.isprintable():
            raise ApiError(404, "not_found", f"no {kind} {wid[:80]!r}: {kind} IDs look like {kind}-...")

    async def status_of(handle: WorkflowHandle, query=GrantWorkflow.status) -> Any:
        try:
            return await handle.query(query)
        except RPCError as e:
            if e.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):  # none, or not an ID at all
                raise ApiError(404, "not_found", f"no grant {handle.id[:80]}") from None
            raise

    # -- read scope (jitaccess.domain.access): an object the caller may not read does not exist ------
    def hidden(oid: str) -> ApiError:
        """What a caller who may not read `oid` gets: exactly the answer for no such object."""
        return ApiError(404, "not_found", f"no grant {oid[:80]}")

    def onboardings(request: Request) -> Onboardings:
        return Onboardings(
            catalogue,
            TemporalOnboardingRuns(tc(request), settings),
            SystemClock(),
            settings.admin_groups,
            grant_options(settings),
            # a service principal may name its declared owner's team: resolve the owner from the directory
            owner_of=lambda me: users[me.owner].principal(me.owner) if me.owner and me.owner in users else None,
        )

    def viewer(request: Request, me: Principal) -> Viewer:
        """The caller with the approval authority lent to them now (delegators as they are now)."""
        made = ledger(request).delegations(delegate=me.id)
        if users:  # the directory knows everyone: a delegator counts with their current groups
            made = current_delegations(made, lambda uid: users[uid].principal(uid) if uid in users else None)
        return viewer_for(
            me,
            admin_groups=settings.admin_groups,
            auditor_groups=settings.auditor_groups,
            delegations=made,
            now=datetime.now(UTC),
        )

    def row_facts(row: dict[str, Any]) -> ReadFacts:
        """A ledger row's read facts; a row written before facts were recorded: its requester only."""
        if row.get("scope"):
            return ReadFacts.model_validate(row["scope"])
        return ReadFacts(object_id=row["grant_id"], requester=row["requester"], break_glass=bool(row["break_glass"]))

    def public_row(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k != "scope"}

    async def chain_readable(request: Request, v: Viewer, chain: str) -> list[IdentityEvent]:
        """The chain's events if `v` may read it; 404 (as for an unknown grant) otherwise."""
        lg = ledger(request)
        evs = lg.events(chain)
        row = lg.grant(chain)
        if row is not None and row.get("scope"):
            facts = row_facts(row)
        elif evs:  # an onboarding, delegation or reconciliation chain (or an old row): facts from the chain
            recon = chain.startswith("reconciliation-")
            facts = chain_facts(chain, evs, settings.reconciliation_groups if recon else ())
        elif chain.startswith("grant-"):  # a grant whose first events are not stored yet
            facts = grant_facts(await status_of(tc(request).get_workflow_handle(chain)))
        else:
            facts = None
        if facts is None or not may_read(v, facts):
            raise hidden(chain)
        return evs

    async def update(
        request: Request,
        grant_id: str,
        method,
        actor: Principal,
        comment: str = "",
        arg: Any = None,
        query=GrantWorkflow.status,
    ) -> Any:
        handle = tc(request).get_workflow_handle(grant_id)
        if arg is None:
            arg = ActionInput(actor=actor, comment=comment)
        try:
            return await handle.execute_update(method, arg)
        except WorkflowUpdateFailedError as e:
            cause = e.cause
            if isinstance(cause, ApplicationError) and cause.type == c.REFUSAL:
                kind, rule = (list(cause.details) + ["conflict", "refused"])[:2]
                raise ApiError(REFUSAL_STATUS.get(kind, 409), rule, cause.message, grant_id=grant_id) from None
            raise ApiError(409, "update_failed", f"grant {grant_id}: {cause or e}") from None
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            # either no such grant, or its workflow has ended: say which, with the final state
            g = await status_of(handle, query)
            raise ApiError(
                409,
                "wrong_state",
                f"grant {grant_id} has ended ({g.state.value}); no further decisions are possible",
                state=g.state.value,
                grant_id=grant_id,
            ) from None

    # -- routes -------------------------------------------------------------------------
    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict[str, Any]:
        return {"status": "ok", "policy_version": catalogue.version, "task_queue": settings.task_queue}

    @app.get("/v1/catalog", tags=["catalogue"], responses=responses(401))
    async def catalog(me: Me) -> dict[str, Any]:
        return {
            "policy_version": catalogue.version,
            "entitlements": [
                {**e.model_dump(mode="json"), "you_may_request": me.in_any(e.requester_groups)}
                for e in catalogue.entitlements
            ],
        }

    @app.post("/v1/grants", status_code=202, tags=["grants"], responses=responses(401, 403, 409, 422))
    async def request_grant(body: GrantRequestBody, me: Me, request: Request, response: Response) -> dict[str, Any]:
        requests = GrantRequests(
            catalogue,
            TemporalGrantStarter(tc(request), settings),
            SystemClock(),
            settings.admin_groups,
            grant_options(settings),
        )
        try:
            out = await requests.request(me, AccessRequest(**body.model_dump()))
        except RequestRefused as r:
            raise ApiError(REFUSAL_STATUS[r.kind.value], r.rule, r.message, **r.details) from None
        response.headers["Location"] = f"/v1/grants/{out.grant_id}"
        return {"grant_id": out.grant_id, "state": out.grant.state.value, "grant": grant_view(out.grant)}

    @app.get("/v1/grants", tags=["grants"], responses=responses(401, 403, 422))
    async def list_grants(
        me: Me,
        request: Request,
        state: Annotated[GrantState | None, Query()] = None,
        requester: Annotated[str | None, Query(max_length=200)] = None,
        break_glass: Annotated[bool | None, Query()] = None,
        entitlement: Annotated[str | None, Query(max_length=80)] = None,
        since: Annotated[datetime | None, Query(description="requested at or after (ISO 8601)")] = None,
        until: Annotated[datetime | None, Query(description="requested before (ISO 8601)")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        v = viewer(request, me)
        rows = ledger(request).grants(
            state=state.value if state else None,
            requester=requester,
            break_glass=break_glass,
            entitlement=entitlement,
            since=since,
            until=until,
            limit=limit,
            visible=None if sees_everything(v) else lambda row: may_read(v, row_facts(row)),
        )
        return {"grants": [public_row(r) for r in rows], "count": len(rows)}

    @app.get("/v1/grants/{grant_id}", tags=["grants"], responses=responses(401, 403, 404, 422))
    async def get_grant(grant_id: str, me: Me, request: Request) -> dict[str, Any]:
        expect_id("grant", grant_id)
        v = viewer(request, me)
        try:
            g: Grant = await status_of(tc(request).get_workflow_handle(grant_id))
        except ApiError as e:
            # Temporal history retention is short; the ledger is the archive
            row = ledger(request).grant(grant_id) if e.status == 404 else None
            if row is None:
                raise
            if not may_read(v, row_facts(row)):
                raise hidden(grant_id) from None
            return {
                **public_row(row),
                "source": "ledger",
                "note": "workflow history no longer retained; summary from the ledger",
            }
        if not may_read(v, grant_facts(g)):
            raise hidden(grant_id)
        return grant_view(g)

    def decision_by(request: Request, me: Principal, comment: str) -> ActionInput:
        """An approver's decision, with the delegations made to them (the workflow checks their windows)."""
        delegations = ledger(request).delegations(delegate=me.id)
        if users:  # each delegator as configured now: one who lost the approver groups no longer counts
            delegations = current_delegations(
                delegations, lambda uid: users[uid].principal(uid) if uid in users else None
            )
        return ActionInput(actor=me, comment=comment, delegations=delegations)

    @app.post("/v1/grants/{grant_id}/approve", tags=["decisions"], responses=responses(401, 403, 404, 409, 422))
    async def approve(grant_id: str, me: Me, request: Request, body: CommentBody | None = None) -> dict[str, Any]:
        expect_id("grant", grant_id)
        arg = decision_by(request, me, (body or CommentBody()).comment)
        return grant_view(await update(request, grant_id, GrantWorkflow.approve, me, arg=arg))

    @app.post("/v1/grants/{grant_id}/deny", tags=["decisions"], responses=responses(401, 403, 404, 409, 422))
    async def deny(grant_id: str, body: ReasonBody, me: Me, request: Request) -> dict[str, Any]:
        expect_id("grant", grant_id)
        arg = decision_by(request, me, body.reason)
        return grant_view(await update(request, grant_id, GrantWorkflow.deny, me, arg=arg))

    @app.post("/v1/grants/{grant_id}/extend", tags=["decisions"], responses=responses(401, 403, 404, 409, 422))
    async def extend(grant_id: str, body: ExtendBody, me: Me, request: Request) -> dict[str, Any]:
        expect_id("grant", grant_id)
        g = await status_of(tc(request).get_workflow_handle(grant_id))
        if body.duration is None:
            raise ApiError(422, "invalid_request", "duration: give how much longer, ISO 8601 like PT30M or seconds")
        if g.decision.entitlement is None:
            raise ApiError(409, "wrong_state", f"grant {grant_id} was never allowed; there is nothing to extend")
        # the grant's own rules (its decision's snapshot of the entitlement), so the version recorded
        # is the one whose rules were applied, not the catalogue's current one
        d = evaluate_extension(g.decision, me, g.duration, body.duration, datetime.now(UTC), g.decision.policy_version)
        arg = ExtendInput(actor=me, reason=body.reason, decision=d)
        return grant_view(await update(request, grant_id, GrantWorkflow.extend, me, arg=arg))

    @app.post("/v1/grants/{grant_id}/review", tags=["decisions"], responses=responses(401, 403, 404, 409, 422))
    async def review(grant_id: str, body: ReviewBody, me: Me, request: Request) -> dict[str, Any]:
        expect_id("grant", grant_id)
        arg = ReviewInput(actor=me, outcome=body.outcome, notes=body.notes)
        return grant_view(await update(request, grant_id, GrantWorkflow.review, me, arg=arg))

    @app.post("/v1/delegations", status_code=201, tags=["decisions"], responses=responses(401, 403, 422))
    async def delegate(body: DelegationBody, me: Me, request: Request) -> dict[str, Any]:
        delegations = Delegations(catalogue, ledger(request), SystemClock(), users.keys())
        req = DelegationRequest(body.delegate, body.reason, body.starts_at, body.ends_at, body.duration)
        try:
            d = await run_in_threadpool(delegations.delegate, me, req)  # the ledger write leaves the event loop
        except Refusal as e:
            raise ApiError(REFUSAL_STATUS[e.kind.value], e.rule, e.message) from None
        return d.model_dump(mode="json")

    # -- service onboarding (non-human identities) --------------------------------------------
    @app.post("/v1/onboardings", status_code=202, tags=["onboarding"], responses=responses(401, 403, 409, 422))
    async def onboard(body: OnboardingRequest, me: Me, request: Request) -> dict[str, Any]:
        try:
            o = await onboardings(request).onboard(
                me, body, lambda o: may_read(viewer(request, me), onboarding_facts(o))
            )
        except RequestRefused as r:
            raise ApiError(REFUSAL_STATUS[r.kind.value], r.rule, r.message, **r.details) from None
        return {"onboarding_id": o.onboarding_id, "state": o.state.value, "onboarding": o.model_dump(mode="json")}

    @app.get("/v1/onboardings/{oid}", tags=["onboarding"], responses=responses(401, 403, 404, 422))
    async def get_onboarding(oid: str, me: Me, request: Request) -> dict[str, Any]:
        expect_id("onboarding", oid)
        o = await status_of(tc(request).get_workflow_handle(oid), ServiceOnboardingWorkflow.status)
        if not may_read(viewer(request, me), onboarding_facts(o)):
            raise hidden(oid)  # as for an unknown onboarding
        return o.model_dump(mode="json")

    @app.post("/v1/onboardings/{oid}/approve", tags=["onboarding"], responses=responses(401, 403, 404, 409, 422))
    async def approve_onboarding(oid: str, me: Me, request: Request, body: CommentBody | None = None) -> dict[str, Any]:
        expect_id("onboarding", oid)
        arg = decision_by(request, me, (body or CommentBody()).comment)
        o = await update(
            request, oid, ServiceOnboardingWorkflow.approve, me, arg=arg, query=ServiceOnboardingWorkflow.status
        )
        return o.model_dump(mode="json")

    @app.post("/v1/onboardings/{oid}/deny", tags=["onboarding"], responses=responses(401, 403, 404, 409, 422))
    async def deny_onboarding(oid: str, body: ReasonBody, me: Me, request: Request) -> dict[str, Any]:
        expect_id("onboarding", oid)
        arg = decision_by(request, me, body.reason)
        o = await update(
            request, oid, ServiceOnboardingWorkflow.deny, me, arg=arg, query=ServiceOnboardingWorkflow.status
        )
        return o.model_dump(mode="json")

    @app.post("/v1/onboardings/{oid}/offboard", tags=["onboarding"], responses=responses(401, 403, 404, 409, 422))
    async def offboard(oid: str, body: ReasonBody, me: Me, request: Request) -> dict[str, Any]:
        expect_id("onboarding", oid)
        try:
            going, is_going = await onboardings(request).current_run(oid)
        except RequestRefused as r:
            raise ApiError(REFUSAL_STATUS[r.kind.value], r.rule, r.message) from None
        oid = going if is_going else oid
        o = await update(
            request, oid, ServiceOnboardingWorkflow.offboard, me, body.reason, query=ServiceOnboardingWorkflow.status
        )
        return o.model_dump(mode="json")

    @app.get("/v1/delegations", tags=["decisions"], responses=responses(401))
    async def list_delegations(me: Me, request: Request) -> dict[str, Any]:
        lg = ledger(request)
        return {
            "to_me": [d.model_dump(mode="json") for d in lg.delegations(delegate=me.id)],
            "from_me": [d.model_dump(mode="json") for d in lg.delegations(delegator=me.id)],
        }

    @app.post("/v1/grants/{grant_id}/revoke", tags=["decisions"], responses=responses(401, 403, 404, 409, 422))
    async def revoke(grant_id: str, body: ReasonBody, me: Me, request: Request) -> dict[str, Any]:
        expect_id("grant", grant_id)
        return grant_view(await update(request, grant_id, GrantWorkflow.revoke, me, body.reason))

    @app.get("/v1/grants/{grant_id}/credential", tags=["grants"], responses=responses(401, 403, 404, 409, 410, 422))
    async def credential(grant_id: str, me: Me, request: Request, response: Response) -> dict[str, Any]:
        expect_id("grant", grant_id)
        h = await update(request, grant_id, GrantWorkflow.claim_credential, me, "")
        response.headers["Cache-Control"] = "no-store"
        return {
            "grant_id": grant_id,
            "wrapping_token": h.wrapping_token,
            "expires_at": h.expires_at.isoformat(),
            "vault_addr": settings.vault_addr,
            "how": "single use: unwrap it yourself (`vault unwrap` / `bao unwrap` / `jitaccess credential`)",
        }

    @app.get("/v1/grants/{grant_id}/events", tags=["evidence"], responses=responses(401, 403, 404, 422))
    async def events(grant_id: str, me: Me, request: Request) -> dict[str, Any]:
        evs = await chain_readable(request, viewer(request, me), grant_id)  # 404 if none or not theirs
        return {"grant_id": grant_id, "events": [e.model_dump(mode="json") for e in evs]}

    @app.get("/v1/grants/{grant_id}/evidence", tags=["evidence"], responses=responses(401, 403, 404, 422))
    async def evidence(grant_id: str, me: Me, request: Request) -> dict[str, Any]:
        lg = ledger(request)
        evs = await chain_readable(request, viewer(request, me), grant_id)  # 404 if none or not theirs
        if not evs:
            raise ApiError(404, "not_found", f"no evidence recorded for {grant_id}")
        verification = lg.verify(grant_id)
        metrics.chain_verification_failed("api", 0 if verification.ok else 1)
        from jitaccess.evidence.api import grant_log_proof

        return {
            "grant_id": grant_id,
            "verification": verification.model_dump(mode="json"),
            "events": [e.model_dump(mode="json") for e in evs],
            "log": grant_log_proof(lg, grant_id),  # inclusion in the newest signed checkpoint
        }

    # -- reconciliation ---------------------------------------------------------------------
    def may_reconcile(me: Principal) -> None:
        allowed = tuple(settings.admin_groups) + tuple(settings.reconciliation_groups)
        if not me.in_any(allowed):
            raise ApiError(
                403,
                "not_reconciler",
                f"reconciliation is for members of {', '.join(allowed)}; {me.id} is in none of them",
            )

    @app.post("/v1/reconciliation/runs", tags=["reconciliation"], responses=responses(401, 403, 422, 500))
    async def run_reconciliation(me: Me, request: Request, body: ReconcileRunBody | None = None) -> dict[str, Any]:
        """Run reconciliation now (admins / security) and return its report."""
        may_reconcile(me)
        run_id = str(ULID()).lower()
        inp = ReconcileInput(
            dry_run=(body or ReconcileRunBody()).dry_run,
            run_id=run_id,
            requested_by=me.id,
            requested_by_kind=me.kind.value,
        )
        try:
            report: ReconciliationReport = await tc(request).execute_workflow(
                ReconciliationWorkflow.run,
                inp,
                id=chain_id(run_id),
                task_queue=settings.task_queue,
                execution_timeout=timedelta(minutes=30),
            )
        except WorkflowFailureError as e:
            raise ApiError(
                500, "reconciliation_failed", f"reconciliation run {run_id} failed: {e.cause or e}"
            ) from None
        return report.model_dump(mode="json")

    @app.get("/v1/reconciliation/last", tags=["reconciliation"], responses=responses(401, 403, 404))
    async def last_reconciliation(me: Me, request: Request) -> dict[str, Any]:
        """The last completed run's report: findings and what was done about each."""
        if not viewer(request, me).auditor:
            may_reconcile(me)
        report = ledger(request).last_reconciliation_report()
        if report is None:
            raise ApiError(404, "not_found", "no reconciliation run has completed yet")
        return report

    @app.get("/v1/evidence/verify", tags=["evidence"], responses=responses(401, 403))
    async def verify_all(me: Me, request: Request) -> dict[str, Any]:
        """Verify every chain in the ledger (auditors and admins)."""
        if not may_verify_all(viewer(request, me)):
            raise ApiError(
                403,
                "not_auditor",
                f"verifying every chain is for auditors ({', '.join(settings.auditor_groups)}) and admins "
                f"({', '.join(settings.admin_groups)}); {me.id} is neither: verify one grant at "
                "/v1/grants/{id}/evidence",
            )
        results = [v.model_dump(mode="json") for v in ledger(request).verify_all()]
        broken = [r for r in results if not r["ok"]]
        metrics.chain_verification_failed("api", len(broken))
        from jitaccess.evidence.api import ledger_evidence

        log = ledger_evidence(ledger(request), settings)  # the offline verifier: log, checkpoints, commands
        return {
            "ok": not broken and log["ok"],
            "grants": len(results),
            "broken": broken,
            "results": results,
            "log": log,
        }

    return app
