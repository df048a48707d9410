"""Sign-in at the API: real ID tokens from OpenBao for everyone; a table of bad tokens (signed with
real keys made here, by a local issuer the API also trusts) each refused with 401 naming the
problem; an unreachable issuer answered with 503; step-up for approvers; and the authentication
context on the evidence of every decision."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt
import pytest

from tests.e2e.conftest import serve_api
from tests.oidc_issuer import LocalIssuer


@pytest.fixture
async def world(settings):
    """The API trusting OpenBao (as everywhere) and a local issuer whose keys the tests hold."""
    li = LocalIssuer()
    li.add_key("unpublished", publish=False)
    s = settings.model_copy(update={"oidc_issuers": [*settings.oidc_issuers, li.entry()]})
    try:
        async with serve_api(s) as (api, ledger):
            api.ledger = ledger
            yield api, li
    finally:
        li.stop()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with(secret: bytes, claims: dict) -> str:
    """The classic forgery: HMAC keyed with the issuer's *public* key (PyJWT refuses to make it)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = _b64(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def _alg_none(claims: dict) -> str:
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{_b64(json.dumps(claims).encode())}."


def _tampered(token: str) -> str:
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["groups"] = [*claims["groups"], "jitaccess-admins"]
    return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"


async def test_bad_tokens_are_401_naming_the_problem_without_key_material(world, dev_idp):
    api, li = world
    now = int(time.time())
    real = dev_idp.id_token("alice")
    as_bob_at_openbao = li.claims(iss=dev_idp.token_issuer, aud="jitaccess-cli", username="bob", groups=["security"])
    cases = {
        "expired": (li.sign(exp=now - 3600, iat=now - 7200), "expired"),
        "not yet valid (nbf)": (li.sign(nbf=now + 3600), "not_yet_valid"),
        "issued in the future (iat)": (li.sign(iat=now + 3600, exp=now + 7200), "not_yet_valid"),
        "wrong audience": (li.sign(aud="another-api"), "wrong_audience"),
        "wrong issuer": (li.sign(iss="https://evil.example"), "unknown_issuer"),
        "unknown kid": (li.sign(kid="unpublished"), "unknown_kid"),
        "alg none": (_alg_none(li.claims()), "alg_not_allowed"),
        "HS256 keyed with the public key": (_hs256_with(li.public_pem(), li.claims()), "alg_not_allowed"),
        "another issuer's key (OpenBao's claims, local key)": (li.sign(as_bob_at_openbao), "unknown_kid"),
        "another issuer's key under OpenBao's kid": (
            jwt.encode(
                as_bob_at_openbao,
                li.keys["k1"],
                algorithm="RS256",
                headers={"kid": jwt.get_unverified_header(real)["kid"]},
            ),
            "bad_signature",
        ),
        "a real token with its groups changed": (_tampered(real), "bad_signature"),
        "garbled header": ("e30K!!." + real.split(".", 1)[1], "malformed_token"),
        "not a JWT": ("hello", "malformed_token"),
        "no sub": (li.sign(sub=None), "missing_claim"),
    }
    secrets_ = [li.jwk("k1")["n"], li.public_pem().decode().splitlines()[1]]
    async with httpx.AsyncClient(base_url=api.base) as c:
        for name, (token, problem) in cases.items():
            r = await c.get("/v1/catalog", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, (name, r.text)
            assert (r.json()["error"], r.json()["problem"]) == ("unauthenticated", problem), (name, r.text)
            challenge = r.headers["WWW-Authenticate"]
            assert challenge.startswith(
                f'Bearer realm="jitaccess", error="invalid_token", error_description="{problem}:'
            )
            for leaked in [*secrets_, token]:
                assert leaked not in r.text and leaked not in challenge, name
        r = await c.get("/v1/catalog")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="jitaccess"'
        assert r.json()["problem"] == "missing_token"
        r = await c.get("/v1/catalog", headers={"Authorization": f"Bearer {li.sign()}"})
        assert r.status_code == 200, r.text  # the local issuer's good token is accepted: the table tests the checks


async def test_an_unreachable_issuer_is_503_for_keys_not_yet_seen(world):
    api, li = world
    async with httpx.AsyncClient(base_url=api.base) as c:
        assert (await c.get("/v1/catalog", headers={"Authorization": f"Bearer {li.sign()}"})).status_code == 200
        li.add_key("k2")
        li.down = True
        r = await c.get("/v1/catalog", headers={"Authorization": f"Bearer {li.sign()}"})
        assert r.status_code == 200, r.text  # k1 is cached
        r = await c.get("/v1/catalog", headers={"Authorization": f"Bearer {li.sign(kid='k2')}"})
        assert r.status_code == 503 and r.json()["error"] == "idp_unavailable", r.text
        assert r.headers["Retry-After"] and "fail closed" in r.json()["message"]


async def test_step_up_is_required_of_approvers_and_satisfied_by_an_mfa_sign_in(world, dev_idp):
    """secrets-admin-mfa (example catalogue): approver_auth {max_age: PT15M, amr: [mfa]}."""
    api, _ = world
    body = {"entitlement": "secrets-admin-mfa", "duration": "PT10M", "reason": "rotate"}
    gid = (await api.call("alice", "POST", "/v1/grants", json=body)).json()["grant_id"]
    await api.wait_state("alice", gid, "awaiting_approval")
    r = await api.call("bob", "POST", f"/v1/grants/{gid}/approve", json={"comment": "password only"})
    assert r.status_code == 403 and r.json()["error"] == "step_up_required", r.text
    assert "amr) mfa" in r.json()["message"] and "--step-up" in r.json()["message"]
    api.step_up("bob")  # password + TOTP at OpenBao: amr [pwd, otp, mfa]
    r = await api.call("bob", "POST", f"/v1/grants/{gid}/approve", json={"comment": "with mfa"})
    assert r.status_code == 200, r.text
    await api.wait_state("alice", gid, "active")
    events = (await api.call("alice", "GET", f"/v1/grants/{gid}/events")).json()["events"]
    vote = next(e for e in events if e["type"] == "approval.granted")
    ctx = vote["data"]["command"]["body"]["actor"]["auth_context"]
    assert "mfa" in ctx["amr"] and ctx["acr"] == "mfa" and ctx["issuer"] == dev_idp.token_issuer


async def test_every_decision_records_how_its_author_signed_in(api, dev_idp):
    r = await api.call("alice", "POST", "/v1/grants", json={"entitlement": "secrets-admin", "reason": "x"})
    gid = r.json()["grant_id"]
    await api.wait_state("alice", gid, "awaiting_approval")
    assert (await api.call("bob", "POST", f"/v1/grants/{gid}/approve", json={})).status_code == 200
    await api.wait_state("alice", gid, "active")
    assert (await api.call("alice", "POST", f"/v1/grants/{gid}/revoke", json={"reason": "done"})).status_code == 200
    await api.wait_state("alice", gid, "revoked")
    d = await api.call("carol", "POST", "/v1/delegations", json={"delegate": "erin", "duration": "PT1H", "reason": "x"})
    assert d.status_code == 201, d.text

    events = (await api.call("alice", "GET", f"/v1/grants/{gid}/events")).json()["events"]
    decided = {e["type"]: e["data"]["command"]["body"] for e in events if "command" in e["data"]}
    assert {"approval.granted", "grant.revoke_requested"} <= set(decided), sorted(decided)
    who = {"approval.granted": "bob", "grant.revoke_requested": "alice"}
    for kind, body in decided.items():
        actor = body.get("actor") or body.get("requester")
        ctx = actor["auth_context"]
        assert ctx["issuer"] == dev_idp.token_issuer and ctx["token_hash"].startswith("sha256:"), kind
        assert ctx["amr"] == ["pwd"] and ctx["issued_at"] and ctx["expires_at"], kind
        if kind in who:
            assert actor["id"] == who[kind]
    request = next(e for e in events if e["type"] == "grant.requested")
    assert request["data"]["requester"]["auth_context"]["token_hash"].startswith("sha256:")  # the signed request's
    chain = api.ledger.events(d.json()["delegation_id"])
    assert chain[0].data["auth_context"]["issuer"] == dev_idp.token_issuer
    # the token itself is never stored: only its hash
    token = api.tokens["bob"]
    assert token not in json.dumps([e for e in events])
