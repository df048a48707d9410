"""Issue 8: the authorization matrix. Every operation of the OpenAPI document × every role × every
object it acts on, from ONE table (`TABLE`), each case asserting allowed or refused with the
refusal's status. A new endpoint without a row fails `test_every_operation_is_in_the_table`.

Reads: a single object the caller may not read is 404 (its existence is not confirmed), a list
leaves it out. Mutations: refused by the workflow validators / API with the rule's status.

Speed: the objects are created once per module (a real API, worker, Temporal and OpenBao). An
expected-refused case acts on one shared object per kind and state; an expected-allowed mutation
gets a fresh object of its own, created up front, all at once. A case that was expected to be
refused but went through is a finding: it fails, and its shared object is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from jitaccess.api import create_app
from jitaccess.config import Settings
from jitaccess.config.settings import EXAMPLES
from jitaccess.dev.seed import seed_dev_approle
from tests.conftest import stack_settings
from tests.e2e.conftest import Api, serve_api
from tests.support import eventually

MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

# -- who ------------------------------------------------------------------------------------------
# role -> dev user (jitaccess/config/examples/users.yaml). `delegate` holds an active delegation from
# frank (so acts as a platform-leads approver); grace is also in security-leads, the escalation group
# of secrets-admin, so she reads the break-glass grant in her own right.
ROLES: dict[str, str | None] = {
    "requester": "alice",
    "other_requester": "dave",
    "approver": "frank",
    "delegate": "grace",
    "reviewer": "carol",
    "auditor": "ivan",
    "admin": "erin",
    "service": "deploy-bot",
    "anonymous": None,
}
ALIAS = {
    "req": "requester",
    "other": "other_requester",
    "appr": "approver",
    "del": "delegate",
    "rev": "reviewer",
    "aud": "auditor",
    "adm": "admin",
    "svc": "service",
}

# -- what -----------------------------------------------------------------------------------------
# own:         alice's grant of matrix-approval (approved by platform-leads: frank)
# others:      dave's grant of matrix-approval
# break_glass: alice's break-glass grant of secrets-admin (reviewers and approvers: security = carol)
# child:       the secrets-readonly child grant of deploy-bot's onboarding (auto-approved)
# onboarding:  deploy-bot's batch-job onboarding (owning team platform-leads)
# delegation:  the chain of frank's delegation to grace
# run:         the chain of a reconciliation run carol started
# -:           the operation acts on no object
# Each operation names the state it needs the object in ("active" objects also serve reads).
MATRIX_ENTITLEMENT = {
    "id": "matrix-approval",
    "description": "authz matrix: a vault token approved by platform-leads, extendable",
    "provider": {"type": "vault_token", "params": {"policies": ["jit-platform-read"]}},
    "default_duration": "PT30M",
    "max_duration": "PT2H",
    "min_duration": "PT1S",
    "requester_groups": ["platform"],
    "approval": {"approver_groups": ["platform-leads"], "timeout": "PT4H"},
    "reason_required": True,
}

OK, LISTED, HIDDEN = "ok", "listed", "hidden"


def allow(roles: str, refused: int | str = 403, **other: int) -> dict[str, int | str]:
    """Every role's expected outcome: OK for `roles` (space-separated aliases), `other` per role,
    `refused` for the rest; anonymous is always 401."""
    ok = {ALIAS.get(r, r) for r in roles.split()}
    named = {ALIAS.get(k, k): v for k, v in other.items()}
    out: dict[str, int | str] = {}
    for role in ROLES:
        if role == "anonymous":
            out[role] = 401
        else:
            out[role] = OK if role in ok else named.get(role, refused)
    return out


def listed(roles: str) -> dict[str, int | str]:
    return {r: (LISTED if v == OK else HIDDEN if v != 401 else v) for r, v in allow(roles).items()}


# who reads each object (jitaccess.domain.access.READ_RULES)
READERS = {
    "own": "req appr del aud adm",  # requester; platform-leads decide it (grace by delegation)
    "others": "other appr del aud adm",
    "break_glass": "req rev del aud adm",  # reviewers/approvers (security); escalation (security-leads)
    "child": "svc aud adm",  # the onboarding's requester; auto-approved, so no approvers
    "onboarding": "svc appr del aud adm",  # owning team platform-leads (grace by delegation)
    "delegation": "appr del aud adm",  # its delegator and its delegate
    "run": "rev aud adm",  # reconciliation groups (security), who started it
}
GRANTS = ("own", "others", "break_glass", "child")
CHAINS = (*GRANTS, "onboarding", "delegation", "run")  # what /events and /evidence read


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # as in the OpenAPI document
    expect: dict[str, dict[str, int | str]]  # object -> role -> outcome
    state: str = "active"  # the state the object must be in
    consumes: bool = False  # an allowed call uses the object up (a fresh one per allowed case)
    body: dict[str, Any] | None = None
    query: str = ""  # may name {requester} / {break_glass} of the object
    name: str = ""

    @property
    def id(self) -> str:
        return self.name or f"{self.method} {self.path}"


def reads(kinds=GRANTS, refused: int = 404) -> dict[str, dict[str, int | str]]:
    return {k: allow(READERS[k], refused) for k in kinds}


TABLE: tuple[Op, ...] = (
    Op("GET", "/healthz", {"-": {r: OK for r in ROLES}}),
    Op("GET", "/v1/catalog", {"-": allow("req other appr del rev aud adm svc")}),
    Op(
        "POST",
        "/v1/grants",
        {"-": allow("req other svc")},  # the rest are in none of the requester groups: policy_denied
        body={"entitlement": "matrix-approval", "duration": "PT30M", "reason": "matrix"},
    ),
    Op("GET", "/v1/grants", {k: listed(READERS[k]) for k in GRANTS}, query="limit=1000"),
    Op(
        "GET",
        "/v1/grants",
        {k: listed(READERS[k]) for k in GRANTS},
        query="requester={requester}&break_glass={break_glass}&limit=1000",
        name="GET /v1/grants?requester=&break_glass=",  # a filter names someone else: still scoped
    ),
    Op("GET", "/v1/grants/{grant_id}", reads()),
    Op("GET", "/v1/grants/{grant_id}/events", reads(CHAINS)),
    Op("GET", "/v1/grants/{grant_id}/evidence", reads(CHAINS)),
    Op(
        "POST",
        "/v1/grants/{grant_id}/approve",
        {"own": allow("appr del"), "others": allow("appr del"), "break_glass": allow("", 409)},
        state="pending",
        consumes=True,
        body={"comment": "matrix"},
    ),
    Op(
        "POST",
        "/v1/grants/{grant_id}/deny",
        {"own": allow("appr del"), "others": allow("appr del"), "break_glass": allow("", 409)},
        state="pending",
        consumes=True,
        body={"reason": "matrix"},
    ),
    Op(
        "POST",
        "/v1/grants/{grant_id}/revoke",
        # requester, the entitlement's approver groups (no delegation), admins
        {"own": allow("req appr adm"), "others": allow("other appr adm"), "break_glass": allow("req rev adm")},
        consumes=True,
        body={"reason": "matrix"},
    ),
    Op(
        "POST",
        "/v1/grants/{grant_id}/extend",
        {"own": allow("req"), "others": allow("other"), "break_glass": allow("req")},
        consumes=True,
        body={"duration": "PT5M", "reason": "matrix"},
    ),
    Op(
        "POST",
        "/v1/grants/{grant_id}/review",
        # only a break-glass grant pending review can be reviewed, by its reviewers, never its requester
        {"own": allow("", 409), "others": allow("", 409), "break_glass": allow("rev")},
        state="review",
        consumes=True,
        body={"outcome": "justified", "notes": "matrix"},
    ),
    Op(
        "GET",
        "/v1/grants/{grant_id}/credential",
        {"own": allow("req"), "others": allow("other"), "break_glass": allow("req")},
        consumes=True,
    ),
    Op(
        "POST",
        "/v1/delegations",
        {"-": allow("appr del rev")},  # only an approver (any approver or escalation group) may delegate
        body={"delegate": "bob", "duration": "PT1H", "reason": "matrix"},
    ),
    Op("GET", "/v1/delegations", {"-": allow("req other appr del rev aud adm svc")}),
    Op("POST", "/v1/onboardings", {"-": allow("svc")}, body={}),  # batch-job: its automation only
    Op("GET", "/v1/onboardings/{oid}", reads(("onboarding",))),
    Op(
        "POST",
        "/v1/onboardings/{oid}/approve",
        # production, stages in sequence: the owning team first (frank owns deploy-bot, which that
        # stage allows; grace by his delegation), security (carol) only after it
        {"onboarding": allow("appr del")},
        state="pending",
        consumes=True,
        body={"comment": "matrix"},
    ),
    Op(
        "POST",
        "/v1/onboardings/{oid}/deny",
        {"onboarding": allow("appr del")},
        state="pending",
        consumes=True,
        body={"reason": "matrix"},
    ),
    Op(
        "POST",
        "/v1/onboardings/{oid}/offboard",
        {"onboarding": allow("svc appr adm")},  # the requesting automation, the owning team, admins
        consumes=True,
        body={"reason": "matrix"},
    ),
    Op("POST", "/v1/reconciliation/runs", {"-": allow("rev adm")}, body={"dry_run": True}),
    Op("GET", "/v1/reconciliation/last", {"-": allow("rev aud adm")}),
    Op("GET", "/v1/evidence/verify", {"-": allow("aud adm")}),
    # the Temporal UI's codec endpoint (jitaccess.api.codec_server): auditors and admins decode, admins encode
    Op("POST", "/codec/decode", {"-": allow("aud adm")}, body={"payloads": []}),
    Op("POST", "/codec/encode", {"-": allow("adm")}, body={"payloads": []}),
)

CASES = [
    pytest.param(op, obj, role, want, id=f"{op.id} | {obj} | {role}")
    for op in TABLE
    for obj, by_role in op.expect.items()
    for role, want in by_role.items()
]


def test_every_operation_is_in_the_table_and_every_role_in_every_row():
    app = create_app(Settings(users_file=None))
    documented = {(m.upper(), p) for p, item in app.openapi()["paths"].items() for m in item}
    tabled = {(op.method, op.path) for op in TABLE}
    assert documented - tabled == set(), "operations with no row in the authorization matrix"
    assert tabled - documented == set(), "rows for operations the API no longer has"
    for op in TABLE:
        documented_errors = set(app.openapi()["paths"][op.path][op.method.lower()]["responses"])
        for obj, by_role in op.expect.items():
            assert set(by_role) == set(ROLES), (op.id, obj)
            for role, want in by_role.items():  # every refusal the matrix expects is in the OpenAPI document
                assert not isinstance(want, int) or str(want) in documented_errors, (op.id, obj, role, want)


# -- the world: the API and its objects, once per module ---------------------------------------------
@dataclass
class World:
    api: Api
    shared: dict[tuple[str, str], str] = field(default_factory=dict)
    fresh: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    requester: dict[str, str] = field(default_factory=dict)  # object id -> requester
    fixed: dict[str, str] = field(default_factory=dict)  # chains made once: delegation, run
    clients: dict[str | None, httpx.AsyncClient] = field(default_factory=dict)  # one keep-alive client per user

    async def call(self, user: str | None, method: str, path: str, **kw) -> httpx.Response:
        if user not in self.clients:
            self.clients[user] = self.api.as_(user)
        return await self.clients[user].request(method, path, **kw)

    results: Counter = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(6))
    n: itertools.count = field(default_factory=itertools.count)

    async def ok(self, user: str, method: str, path: str, **kw) -> dict:
        r = await self.call(user, method, path, **kw)
        assert r.status_code < 300, f"setup: {user} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    async def until(self, path: str, *states: str, timeout: float = 60) -> dict:
        async def reached() -> dict:
            body = await self.ok("erin", "GET", path)
            assert body["state"] in states, f"setup: {path} stayed {body['state']}, wanted {states}"
            assert "onboarding" in path or self.api._in_ledger(body["grant_id"], body["events"]), "not stored yet"
            return body

        return await eventually(reached, timeout, f"setup: {path} in {states}", interval=0.2)

    async def grant(self, kind: str, state: str) -> str:
        async with self.gate:
            if kind == "break_glass":
                body = {"entitlement": "secrets-admin", "duration": "PT20M", "reason": "matrix", "incident": "INC-9"}
                gid = (await self.ok("alice", "POST", "/v1/grants", json={**body, "break_glass": True}))["grant_id"]
                await self.until(f"/v1/grants/{gid}", "active")
                if state == "review":
                    await self.ok("alice", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "matrix"})
                    await self.until(f"/v1/grants/{gid}", "pending_review")
                self.requester[gid] = "alice"
                return gid
            user = "alice" if kind == "own" else "dave"
            body = {"entitlement": "matrix-approval", "duration": "PT30M", "reason": "matrix"}
            gid = (await self.ok(user, "POST", "/v1/grants", json=body))["grant_id"]
            self.requester[gid] = user
            await self.until(f"/v1/grants/{gid}", "awaiting_approval")
            if state in ("active", "review"):
                await self.ok("frank", "POST", f"/v1/grants/{gid}/approve", json={})
                await self.until(f"/v1/grants/{gid}", "active")
            return gid

    async def onboarding(self, state: str) -> str:
        async with self.gate:
            env = "staging" if state == "active" else "production"  # staging is pre-approved for deploy-bot
            body = onboarding_body(f"mx-{next(self.n)}-{secrets.token_hex(3)}", env)
            oid = (await self.ok("deploy-bot", "POST", "/v1/onboardings", json=body))["onboarding_id"]
            self.requester[oid] = "deploy-bot"
            await self.until(f"/v1/onboardings/{oid}", "active" if state == "active" else "awaiting_approval")
            return oid

    async def make(self, kind: str, state: str) -> str:
        if kind in self.fixed:
            return self.fixed[kind]
        if kind == "onboarding":
            return await self.onboarding(state)
        if kind == "child":
            o = await self.onboarding("active")
            o = await self.ok("erin", "GET", f"/v1/onboardings/{o}")
            gid = next(ch["grant_id"] for ch in o["children"] if ch["entitlement"] == "secrets-readonly")
            await self.until(f"/v1/grants/{gid}", "active")
            self.requester[gid] = "deploy-bot"
            return gid
        return await self.grant(kind, state)

    async def obj(self, op: Op, kind: str, want: int | str) -> str:
        key = (kind, op.state)
        if op.consumes and want == OK:
            pool = self.fresh.get(key) or []
            return pool.pop() if pool else await self.make(kind, op.state)
        if key not in self.shared:
            self.shared[key] = await self.make(kind, op.state)
        return self.shared[key]


def onboarding_body(service: str, env: str) -> dict:
    return {
        "template": "batch-job",
        "reason": "matrix",
        "workload": {"service": service, "owning_team": "platform-leads", "environment": env, "repository": "r"},
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory, temporal_server, openbao, catalogue_file, command_keys):
    tmp = tmp_path_factory.mktemp("authz")
    catalogue = yaml.safe_load(catalogue_file.read_text())
    catalogue["entitlements"].append(MATRIX_ENTITLEMENT)
    (tmp / "catalogue.yaml").write_text(yaml.safe_dump(catalogue))
    (tmp / "users.yaml").write_text((EXAMPLES / "users.yaml").read_text())  # the directory (sign-in: OpenBao)
    settings = stack_settings(
        tmp,
        temporal_server,
        openbao,
        command_keys,
        "test-authz",
        catalogue_file=tmp / "catalogue.yaml",
        users_file=tmp / "users.yaml",
    )
    seed_dev_approle(openbao.address, openbao.extra["root_token"])
    async with serve_api(settings) as (api, ledger):
        api.ledger = ledger
        w = World(api)
        d = await w.ok(
            "frank", "POST", "/v1/delegations", json={"delegate": "grace", "duration": "P1D", "reason": "mx"}
        )
        run = await w.ok("carol", "POST", "/v1/reconciliation/runs", json={"dry_run": True})  # /last has a report
        w.fixed = {"delegation": d["delegation_id"], "run": run["chain_id"]}
        # every object the cases need, all at once: one shared per kind and state, one fresh per
        # expected-allowed consuming case
        need: Counter = Counter()
        for op in TABLE:
            for kind, by_role in op.expect.items():
                if kind == "-":
                    continue
                need[(kind, op.state)] += 0
                if op.consumes:
                    need[(kind, op.state)] += sum(1 for v in by_role.values() if v == OK)
        keys = list(need)
        made = await asyncio.gather(
            *(w.make(*key) for key in keys), *(w.make(*key) for key, n in need.items() for _ in range(n))
        )
        w.shared = dict(zip(keys, made[: len(keys)]))
        rest = iter(made[len(keys) :])
        w.fresh = {key: [next(rest) for _ in range(n)] for key, n in need.items()}
        yield w
        for client in w.clients.values():
            await client.aclose()
        total = sum(w.results.values())
        print(f"\nauthz matrix: {total} cases, {len(w.findings)} forbidden-but-allowed: {w.findings}")


# -- the cases -----------------------------------------------------------------------------------
@MODULE_LOOP
@pytest.mark.parametrize("op, obj, role, want", CASES)
async def test_matrix(world: World, op: Op, obj: str, role: str, want: int | str):
    user = ROLES[role]
    oid = "" if obj == "-" else await world.obj(op, obj, want)
    path = op.path.replace("{grant_id}", oid).replace("{oid}", oid)
    if op.query:
        bg = "true" if obj == "break_glass" else "false"
        path += "?" + op.query.format(requester=world.requester.get(oid, ""), break_glass=bg)
    body = op.body
    if op.path == "/v1/onboardings" and op.method == "POST":
        body = onboarding_body(f"mx-new-{next(world.n)}-{secrets.token_hex(3)}", "production")
    r = await world.call(user, op.method, path, **({"json": body} if body is not None else {}))
    world.results[(op.id, obj, role)] += 1

    if want in (LISTED, HIDDEN):
        assert r.status_code == 200, r.text
        shown = oid in {g["grant_id"] for g in r.json()["grants"]}
        got: int | str = LISTED if shown else HIDDEN
    else:
        got = OK if r.status_code < 300 else r.status_code
    if got != want and got in (OK, LISTED):
        world.findings.append(f"{op.id} | {obj} | {role}")
        if op.consumes:  # the shared object was used up: the next case gets a new one
            with contextlib.suppress(KeyError):
                del world.shared[(obj, op.state)]
    assert got == want, f"{role} ({user}) {op.method} {path}: wanted {want}, got {r.status_code} {r.text[:300]}"
    if want == 404:
        assert r.json()["error"] == "not_found"  # the same answer as for no such object


@MODULE_LOOP
async def test_the_finding_as_reported(world: World):
    """deploy-bot asked for alice's break-glass grants by name and got them (200 with her reasons)."""
    r = await world.call("deploy-bot", "GET", "/v1/grants?requester=alice&break_glass=true")
    assert r.status_code == 200 and r.json()["grants"] == []
    bg = world.shared[("break_glass", "active")]
    for path in (f"/v1/grants/{bg}", f"/v1/grants/{bg}/events", f"/v1/grants/{bg}/evidence"):
        r = await world.call("deploy-bot", "GET", path)
        assert r.status_code == 404 and "INC-9" not in r.text, path
        # indistinguishable from a grant that does not exist
        none = await world.call("deploy-bot", "GET", path.replace(bg, "grant-does-not-exist"))
        assert (none.status_code, none.json()["error"]) == (404, "not_found")
    assert (await world.call("deploy-bot", "GET", "/v1/evidence/verify")).status_code == 403


@MODULE_LOOP
async def test_requesting_someone_elses_running_onboarding_does_not_show_it(world: World):
    """An onboarding's ID is its service and environment: asking again for a running one used to
    answer with it (children, references) to anyone whose request passed the policy."""
    oid = world.shared[("onboarding", "active")]
    o = await world.ok("erin", "GET", f"/v1/onboardings/{oid}")
    body = {**onboarding_body(o["workload"]["service"], "staging"), "template": "payments-api"}
    body["workload"]["owning_team"] = "platform"
    r = await world.call("alice", "POST", "/v1/onboardings", json=body)
    assert (r.status_code, r.json()["error"]) == (409, "already_onboarding"), r.text
    assert "children" not in r.text and o["children"][0]["grant_id"] not in r.text
    again = await world.call(
        "deploy-bot", "POST", "/v1/onboardings", json=onboarding_body(o["workload"]["service"], "staging")
    )
    assert again.status_code == 202 and again.json()["onboarding_id"] == oid  # its own retry still lands on it
