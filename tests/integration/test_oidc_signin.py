"""Sign-in against a real identity provider: OpenBao issues the ID tokens (jitaccess.dev.identity),
the API's validator (jitaccess.api.auth) checks them through discovery and JWKS."""

from __future__ import annotations

import secrets

import httpx
import jwt
import pytest

from jitaccess.api.auth import AuthProblem, IdpUnavailable, TokenValidator
from jitaccess.config import UserEntry
from jitaccess.dev.identity import APPROLE, USERPASS, WORKLOAD_ROLE, rotate_key, seed_dev_identity
from jitaccess.dev.servers import start_openbao
from jitaccess.domain.principals import ActorKind
from tests.oidc_issuer import LocalIssuer


def kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


async def test_people_and_workloads_get_the_principal_their_issuer_entry_says(dev_idp):
    v = TokenValidator(dev_idp.issuers)
    alice = await v.principal(dev_idp.id_token("alice"))
    assert (alice.id, alice.kind, set(alice.groups)) == ("alice", ActorKind.human, {"platform", "oncall"})
    ctx = alice.auth_context
    assert ctx is not None and ctx.issuer == dev_idp.token_issuer and ctx.audience == "jitaccess-cli"
    assert ctx.amr == ("pwd",) and ctx.acr is None and ctx.subject != "alice"  # sub: OpenBao's entity ID
    assert ctx.token_hash.startswith("sha256:") and ctx.token_hash_of == "token"  # OpenBao sets no jti

    bot = await v.principal(dev_idp.id_token("deploy-bot"))  # AppRole sign-in: no person involved
    assert (bot.id, bot.kind, bot.owner) == ("deploy-bot", ActorKind.service, "frank")
    assert set(bot.groups) == {"platform", "platform-automation"}

    bob = await v.principal(dev_idp.id_token("bob", step_up=True))  # password + TOTP (OpenBao login MFA)
    assert bob.kind is ActorKind.human and bob.auth_context is not None
    assert "mfa" in bob.auth_context.amr and bob.auth_context.acr == "mfa"


async def test_the_kind_comes_from_the_issuer_entry_never_from_the_token(dev_idp):
    """A person's OpenBao login may not mint a workload's token (ACL policy), and a token a person
    holds is a person's: the same claims under the human audience make a human principal."""
    alice = dev_idp.users["alice"]
    async with httpx.AsyncClient(base_url=dev_idp.vault_addr) as c:
        login = (await c.post(f"/v1/auth/{USERPASS}/login/alice", json={"password": alice.password})).json()
        token = login["auth"]["client_token"]
        r = await c.get(f"/v1/identity/oidc/token/{WORKLOAD_ROLE}", headers={"X-Vault-Token": token})
        assert r.status_code == 403, r.text
        bot = dev_idp.users["deploy-bot"]
        r = await c.post(f"/v1/auth/{APPROLE}/login", json={"role_id": bot.role_id, "secret_id": "wrong"})
        assert r.status_code in (400, 403), r.text
    only_humans = TokenValidator([e for e in dev_idp.issuers if e.kind == "human"])
    with pytest.raises(AuthProblem) as e:
        await only_humans.principal(dev_idp.id_token("deploy-bot"))
    assert e.value.problem == "wrong_audience"


async def test_key_rotation_at_the_issuer_needs_no_new_sign_in(dev_idp, openbao):
    v = TokenValidator(dev_idp.issuers, min_refresh=0)
    before = dev_idp.id_token("carol")
    await v.principal(before)
    fetched = v.fetches
    # twice: OpenBao publishes the next key ahead of time, the second rotation signs with one that
    # was not in the key set the validator holds
    rotate_key(openbao.address, openbao.extra["root_token"])
    rotate_key(openbao.address, openbao.extra["root_token"])
    after = dev_idp.id_token("dave")
    assert kid(after) != kid(before)
    assert (await v.principal(after)).id == "dave"  # unknown kid: key set fetched again, no 401
    assert v.fetches == fetched + 1
    assert (await v.principal(before)).id == "carol"  # the old key stays published for its verification TTL


async def test_idp_down_cached_keys_work_until_their_cache_expires_then_503(tmp_path):
    root = "idp-" + secrets.token_hex(6)
    srv = start_openbao(tmp_path, root_token=root)
    try:
        idp = seed_dev_identity(srv.address, root, {"alice": UserEntry(groups=("platform",))})
        clock = [0.0]
        v = TokenValidator(idp.issuers, jwks_ttl=600, monotonic=lambda: clock[0])
        token = idp.id_token("alice")
        assert (await v.principal(token)).id == "alice"
    finally:
        srv.stop()
    clock[0] = 599
    assert (await v.principal(token)).id == "alice"  # the IdP is gone; its keys are still cached
    clock[0] = 601
    with pytest.raises(IdpUnavailable) as e:
        await v.principal(token)
    assert "unreachable" in e.value.message


async def test_a_key_the_validator_has_not_seen_fails_closed_while_the_idp_is_down():
    li = LocalIssuer()
    try:
        v = TokenValidator([li.entry()], min_refresh=0)
        assert (await v.principal(li.sign())).id == "mallory"
        li.add_key("k2")
        li.down = True
        assert (await v.principal(li.sign())).id == "mallory"  # k1: cached
        with pytest.raises(IdpUnavailable):
            await v.principal(li.sign(kid="k2"))  # needs a fetch: 503, never a guess
        li.down = False
        assert (await v.principal(li.sign(kid="k2"))).id == "mallory"
    finally:
        li.stop()


async def test_unknown_kids_do_not_make_the_validator_hammer_the_issuer():
    li = LocalIssuer()
    try:
        v = TokenValidator([li.entry()], min_refresh=60)
        await v.principal(li.sign())
        li.add_key("made-up", publish=False)
        for _ in range(20):
            with pytest.raises(AuthProblem) as e:
                await v.principal(li.sign(kid="made-up"))
            assert e.value.problem == "unknown_kid"
        assert v.fetches == 2  # the first, and one for the first unknown kid: no more within min_refresh
    finally:
        li.stop()


async def test_required_claims_and_groups_from_the_directory():
    """Google Workspace style: only the hosted domain's accounts; the tokens carry no groups, the
    directory (users.yaml) does."""
    li = LocalIssuer()
    try:
        v = TokenValidator([li.entry(required_claims={"hd": "example.com"}, groups_claim=None)])
        directory = {"mallory": ("platform",)}
        p = await v.principal(li.sign(hd="example.com"), groups_of=lambda uid: directory.get(uid, ()))
        assert p.groups == ("platform",)  # not the token's `groups` claim: this issuer's entry says none
        with pytest.raises(AuthProblem) as e:
            await v.principal(li.sign(hd="gmail.com"))
        assert e.value.problem == "claim_mismatch"
    finally:
        li.stop()
