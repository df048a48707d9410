"""The web console in a real browser: Debian's headless Chromium driven by Playwright, against the
real API (uvicorn), worker, Temporal and OpenBao. People sign in at OpenBao's own login page (the
dev identity provider's authorize endpoint: authorization code + PKCE), never with a token handed
in. One browser for the module; each person gets their own browser context (cookies).

Screenshots of the main pages are written to the test's temporary directory; with
JITACCESS_UPDATE_SCREENSHOTS=1 they are also copied to docs/screenshots/ (commit-ready)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from jitaccess.config.settings import EXAMPLES
from jitaccess.dev.identity import DevIdentity
from tests.conftest import stack_settings
from tests.e2e.conftest import Api, serve_api

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright (dev extra) drives the browser")

CHROMIUM = os.environ.get("JITACCESS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs it)"),
    MODULE_LOOP,
]


@dataclass
class World:
    api: Api
    idp: DevIdentity
    browser: object
    shots: Path
    grants: dict[str, str] = field(default_factory=dict)
    pages: dict[str, object] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.api.base

    async def sign_in(self, user: str, *, width: int = 1280, height: int = 860, keep: bool = True):
        """A fresh browser context for `user`, signed in at OpenBao's login page (userpass)."""
        ctx = await self.browser.new_context(viewport={"width": width, "height": height})
        page = await ctx.new_page()
        await page.goto(self.base + "/")
        await page.get_by_role("link", name="Sign in").click()
        await page.wait_for_url("**/ui/vault/**")  # the identity provider's own page
        await page.locator("select[data-test-select='auth-method']").select_option("userpass")
        await page.fill("input[name=username]", user)
        await page.fill("input[name=password]", self.idp.users[user].password or "")
        await page.click("button#auth-submit")
        await page.wait_for_url(self.base + "/**", timeout=30_000)
        await page.wait_for_selector("#whoami")
        assert await page.inner_text("#whoami") == user
        if keep:
            self.pages[user] = page
        return page

    async def shot(self, page, name: str, full: bool = True) -> None:
        path = self.shots / f"{name}.png"
        await page.screenshot(path=str(path), full_page=full)
        if os.environ.get("JITACCESS_UPDATE_SCREENSHOTS") == "1":
            SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, SHOTS / path.name)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory, temporal_server, openbao, dev_idp, catalogue_file, command_keys):
    from playwright.async_api import async_playwright

    tmp = tmp_path_factory.mktemp("console")
    (tmp / "users.yaml").write_text((EXAMPLES / "users.yaml").read_text())
    settings = stack_settings(
        tmp,
        temporal_server,
        openbao,
        command_keys,
        "test-console",
        catalogue_file=catalogue_file,
        users_file=tmp / "users.yaml",
        oidc_issuers=dev_idp.issuers,
    )
    shots = tmp / "shots"
    shots.mkdir()
    async with serve_api(settings) as (api, ledger), async_playwright() as pw:
        api.ledger = ledger
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield World(api=api, idp=dev_idp, browser=browser, shots=shots)
        finally:
            await browser.close()


async def test_request_approve_reveal(world: World):
    alice = await world.sign_in("alice")
    await world.shot(alice, "my-access-empty", full=False)

    # alice requests an approval-required entitlement; a bad duration first: the API's message by the field
    await alice.goto(world.base + "/request?entitlement=secrets-admin")
    await world.shot(alice, "request")
    await alice.select_option("#entitlement", "secrets-admin")
    await alice.fill("#duration", "PT9H")
    await alice.fill("#reason", "rotate the signing key")
    await alice.get_by_role("button", name="Request access").click()
    err = alice.locator("#duration-error")
    await err.wait_for()
    assert "exceeds the maximum" in await err.inner_text()
    assert await alice.get_attribute("#duration", "aria-invalid") == "true"
    await alice.fill("#duration", "PT10M")
    await alice.fill("#ticket", "CHG-7")
    await alice.get_by_role("button", name="Request access").click()
    await alice.wait_for_url("**/grants/grant-*")
    gid = alice.url.rsplit("/", 1)[1]
    world.grants["approval"] = gid
    assert await alice.locator("h1").inner_text() == gid
    await alice.locator(".state-awaiting_approval").first.wait_for()

    # bob signs in, finds it in his inbox, approves with a comment
    bob = await world.sign_in("bob")
    await bob.goto(world.base + "/approvals")
    card = bob.locator(f"#inbox-{gid}")
    await card.wait_for()
    text = await card.inner_text()
    assert "alice" in text and "rotate the signing key" in text and "10m" in text and "CHG-7" in text
    assert "entitlement:secrets-admin/approval" in text
    await world.shot(bob, "approvals")
    await card.get_by_label("Comment (optional)").fill("ok for CHG-7")
    await card.get_by_role("button", name="Approve").click()
    await bob.wait_for_url("**/approvals")
    assert "approve: done" in await bob.locator(".flash.ok").inner_text()
    await bob.locator("#inbox-empty").wait_for()

    # alice's grant page, still open since she asked, turns active by itself (htmx polling)
    await alice.locator(".state-active").first.wait_for(timeout=30_000)
    assert alice.url.endswith(f"/grants/{gid}")
    # on "My access": time left, and the credential revealed once
    await alice.goto(world.base + "/access")
    row = alice.locator(f"#row-{gid}")
    await row.locator(".state-active").wait_for(timeout=30_000)
    assert "m" in await alice.locator(f"#left-{gid}").inner_text()  # time left, e.g. "9m 58s"
    await world.shot(alice, "my-access")
    await row.get_by_role("button", name=f"Reveal the credential of {gid} (once)").click()
    await alice.wait_for_selector("#wrapping-token")
    token = await alice.input_value("#wrapping-token")
    assert token and token in await alice.inner_text("#cmd-token")
    assert "export VAULT_TOKEN" in await alice.inner_text("#cmd-token")
    await world.shot(alice, "credential", full=False)
    # the wrapping token is real: it unwraps (once) into a token for the entitlement's policy
    async with httpx.AsyncClient(base_url=world.idp.vault_addr) as vault:
        r = await vault.post("/v1/sys/wrapping/unwrap", headers={"X-Vault-Token": token})
    assert r.status_code == 200, r.text
    assert "jit-platform-admin" in r.json()["auth"]["policies"]

    # a second reveal is refused (the workflow hands it over once)
    await alice.goto(world.base + "/access")
    await alice.locator(f"#row-{gid}").get_by_role("button", name=f"Reveal the credential of {gid} (once)").click()
    await alice.wait_for_url(f"**/grants/{gid}")
    assert "already_delivered" in await alice.locator(".flash.error").inner_text()

    # the grant page: timeline with actors and roles, chain verified, Temporal link only when configured
    timeline = await alice.locator("table.timeline").inner_text()
    for needle in ("grant.requested", "policy.decided", "approval.granted", "credential.issued", "bob", "approver"):
        assert needle in timeline
    assert (await alice.locator("#chain-result").inner_text()).startswith("Chain verified")
    await world.shot(alice, "grant")

    # phone width: the same page, no horizontal page scroll
    phone = await world.sign_in("alice", width=390, height=844, keep=False)
    await phone.goto(world.base + f"/grants/{gid}")
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    await world.shot(phone, "grant-phone", full=False)
    await phone.context.close()


async def test_dave_cannot_see_alices_grant(world: World):
    gid = world.grants.get("approval") or pytest.skip("needs the grant of the first test")
    dave = await world.sign_in("dave")
    await dave.goto(world.base + f"/grants/{gid}")
    assert "no grant" in await dave.locator("main").inner_text()
    await dave.goto(world.base + "/access")
    assert gid not in await dave.locator("main").inner_text()
    await dave.goto(world.base + "/approvals")
    assert gid not in await dave.locator("main").inner_text()
    # and no audit for a requester
    r = await dave.request.get(world.base + "/audit")
    assert r.status == 403


async def test_post_without_csrf_token_is_refused(world: World):
    gid = world.grants.get("approval") or pytest.skip("needs the grant of the first test")
    bob = world.pages.get("bob") or await world.sign_in("bob")
    # bob is signed in (his session cookie goes along) but the form lacks the CSRF token
    r = await bob.request.post(world.base + f"/grants/{gid}/revoke", form={"reason": "csrf"})
    assert r.status == 403 and "CSRF" in await r.text()
    r = await bob.request.post(
        world.base + f"/grants/{gid}/revoke", form={"reason": "csrf", "csrf_token": "not-the-token"}
    )
    assert r.status == 403
    # nothing happened to the grant
    g = await world.api.call("alice", "GET", f"/v1/grants/{gid}")
    assert g.json()["state"] == "active"
    # a notification link only opens the page: a GET never decides anything
    r = await bob.request.get(world.base + f"/grants/{gid}/approve")
    assert r.status in (404, 405)


async def test_break_glass_review_by_carol(world: World):
    alice = world.pages.get("alice") or await world.sign_in("alice")
    await alice.goto(world.base + "/request?entitlement=secrets-admin")
    await alice.select_option("#entitlement", "secrets-admin")
    await alice.fill("#duration", "PT3S")
    await alice.fill("#reason", "prod is down")
    await alice.check("#break_glass")
    await alice.get_by_role("button", name="Request access").click()
    err = alice.locator("#incident-error")  # break-glass needs an incident: said by the field
    await err.wait_for()
    assert "incident" in await err.inner_text()
    await alice.check("#break_glass")
    await alice.fill("#incident", "INC-7")
    await alice.get_by_role("button", name="Request access").click()
    await alice.wait_for_url("**/grants/grant-*")
    gid = alice.url.rsplit("/", 1)[1]
    await world.api.wait_state("alice", gid, "pending_review", timeout=60)

    carol = await world.sign_in("carol")
    await carol.goto(world.base + "/reviews")
    row = carol.locator("tr", has_text=gid)
    await row.wait_for()
    assert "INC-7" in await row.inner_text()
    await world.shot(carol, "reviews", full=False)
    await row.get_by_role("link", name=gid).click()
    await carol.wait_for_url(f"**/grants/{gid}#review")
    review = carol.locator("#review")
    await review.get_by_label("Justified", exact=True).check()
    await review.get_by_label("Notes").fill("INC-7 confirmed")
    await world.shot(carol, "review")
    await review.get_by_role("button", name="Record review").click()
    await carol.wait_for_url(f"**/grants/{gid}")
    await carol.locator(".state-reviewed").wait_for()
    timeline = await carol.locator("table.timeline").inner_text()
    assert "review.completed" in timeline and "reviewer" in timeline

    # the auditor finds it and downloads its evidence as JSON lines
    ivan = await world.sign_in("ivan")
    await ivan.goto(world.base + "/audit?break_glass=true&requester=alice&go=1")
    assert gid in await ivan.locator("table").inner_text()
    await world.shot(ivan, "audit", full=False)
    async with ivan.expect_download() as dl:
        await ivan.get_by_role("link", name="Download their evidence (JSON lines)").click()
    path = await (await dl.value).path()
    lines = Path(path).read_text().splitlines()
    assert lines and all(f'"grant_id":"{gid}"' in ln for ln in lines)
    assert any('"type":"review.completed"' in ln for ln in lines)


async def test_sign_out_ends_the_session(world: World):
    page = await world.sign_in("frank")
    cookies = await page.context.cookies()
    sid = next(c for c in cookies if c["name"] == "jitaccess_session")
    assert sid["httpOnly"] and sid["sameSite"] == "Lax"
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("heading", name="Signed out").wait_for()
    # the old session ID is dead on the server, not only forgotten by this browser
    async with httpx.AsyncClient(base_url=world.base, cookies={"jitaccess_session": sid["value"]}) as c:
        r = await c.get("/access")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_step_up_prompt_when_the_entitlement_requires_it(world: World):
    r = await world.api.call(
        "alice", "POST", "/v1/grants", json={"entitlement": "secrets-admin-mfa", "duration": "PT5M", "reason": "mfa"}
    )
    gid = r.json()["grant_id"]
    await world.api.wait_state("alice", gid, "awaiting_approval")
    bob = world.pages.get("bob") or await world.sign_in("bob")
    await bob.goto(world.base + "/approvals")
    card = bob.locator(f"#inbox-{gid}")
    prompt = card.locator(".flash.warn")
    assert "mfa" in await prompt.inner_text()  # what is missing, in the domain's words
    assert "step_up=1" in (await prompt.get_by_role("link").get_attribute("href") or "")
    # approving without the step-up is refused by the workflow's rule, and said so
    await card.get_by_role("button", name="Approve").click()
    await bob.wait_for_url("**/approvals")
    assert "step_up_required" in await bob.locator(".flash.error").inner_text()
    g = await world.api.call("alice", "GET", f"/v1/grants/{gid}")
    assert g.json()["state"] == "awaiting_approval"
