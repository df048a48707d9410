"""The pure comparison behind reconciliation: orphans, drift, mismatches, and what is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jitaccess.domain.credentials import IssuedCredential
from jitaccess.domain.reconciliation import (
    FindingKind,
    GrantRecord,
    Inventory,
    ReconciliationReport,
    Remediation,
    Remedy,
    Snapshot,
    candidates,
    chain_id,
    compare,
    listed_live,
    needs_read_back,
)


def token(gid: str, acc: str, policies=("jit-platform-read",), requester="alice") -> IssuedCredential:
    return IssuedCredential(
        provider="vault_token",
        grant_id=gid,
        reference=acc,
        details={"policies": list(policies), "requester": requester, "kind": "vault token accessor"},
    )


def issued(gid: str, acc: str, policies=("jit-platform-read",)) -> IssuedCredential:
    return IssuedCredential(
        provider="vault_token",
        grant_id=gid,
        reference=acc,
        details={"policies": list(policies), "ttl_seconds": 900, "kind": "vault token accessor"},
    )


def active(
    gid: str, acc: str, *, read_back_ok=True, policies=("jit-platform-read",), provider_cred=None
) -> GrantRecord:
    return GrantRecord(
        grant_id=gid,
        state="active",
        provider="vault_token",
        requester="alice",
        credential=provider_cred or issued(gid, acc, policies),
        read_back_ok=read_back_ok,
        read_back="lookup-accessor: token live" if read_back_ok else "lookup-accessor: invalid accessor",
    )


def snap(listed, grants, provider="vault_token", error=None, extra_inventories=()) -> Snapshot:
    return Snapshot(
        inventories=[Inventory(provider=provider, listed=listed, error=error), *extra_inventories],
        grants={g.grant_id: g for g in grants},
    )


def kinds(c):
    return [(f.kind.value, f.grant_id, f.reference) for f in c.findings]


def test_everything_in_order_yields_no_findings():
    c = compare(snap([token("grant-a", "acc-a")], [active("grant-a", "acc-a")]))
    assert c.findings == []
    assert c.providers[0].listed == 1 and c.providers[0].orphan_detection


def test_token_of_unknown_grant_is_an_orphan_to_revoke():
    c = compare(snap([token("grant-ghost", "acc-g", requester="mallory")], []))
    [f] = c.findings
    assert (f.kind, f.remedy, f.grant_id, f.reference) == (FindingKind.orphan, Remedy.revoke, "grant-ghost", "acc-g")
    assert "unknown" in f.detail and f.grant_state is None
    assert f.credential is not None and f.credential.reference == "acc-g"  # what the revoke activity acts on


def test_token_of_an_ended_grant_is_an_orphan():
    ended = GrantRecord(
        grant_id="grant-old", state="revoked", provider="vault_token", credential=issued("grant-old", "acc-o")
    )
    [f] = compare(snap([token("grant-old", "acc-o")], [ended])).findings
    assert f.kind is FindingKind.orphan and "revoked" in f.detail and f.issued_reference == "acc-o"


def test_token_without_a_grant_id_is_an_orphan():
    [f] = compare(snap([token("", "acc-x")], [])).findings
    assert f.kind is FindingKind.orphan and "no grant ID" in f.detail


def test_a_closed_or_terminated_workflow_holds_no_access():
    g = GrantRecord(grant_id="grant-t", state="workflow terminated", source="workflow")
    assert kinds(compare(snap([token("grant-t", "acc-t")], [g]))) == [("orphan", "grant-t", "acc-t")]


def test_grants_being_issued_or_revoked_are_left_alone():
    for state in ("issuing", "revoking", "revocation_failing"):
        g = GrantRecord(
            grant_id="grant-b",
            state=state,
            provider="vault_token",
            credential=issued("grant-b", "acc-b"),
            read_back_ok=False,
        )
        assert compare(snap([token("grant-b", "acc-b"), token("grant-b", "acc-other")], [g])).findings == [], state
        # issuing with no credential recorded yet: the token is the one being issued
        g2 = GrantRecord(grant_id="grant-b", state=state)
        assert compare(snap([token("grant-b", "acc-b")], [g2])).findings == [], state


def test_uncertain_state_is_never_acted_on():
    g = GrantRecord(grant_id="grant-u", state=None, uncertain=True, note="status query failed")
    c = compare(snap([token("grant-u", "acc-u")], [g]))
    assert c.findings == [] and any("grant-u" in n and "left alone" in n for n in c.notes)


def test_active_grant_whose_token_is_gone_is_drift():
    c = compare(snap([], [active("grant-d", "acc-d", read_back_ok=False)]))
    [f] = c.findings
    assert (f.kind, f.remedy, f.grant_id, f.reference) == (FindingKind.drift, Remedy.signal_grant, "grant-d", "acc-d")
    assert "acc-d" in f.detail and "invalid accessor" in f.detail and f.grant_state == "active"


def test_drift_from_the_listing_alone_without_a_read_back():
    c = compare(snap([], [active("grant-d", "acc-d", read_back_ok=None)]))
    assert kinds(c) == [("drift", "grant-d", "acc-d")]


def database_lease() -> tuple[IssuedCredential, IssuedCredential]:
    """A vault_database grant's credential (the lease) and the owner token that holds it."""
    cred = IssuedCredential(
        provider="vault_database",
        grant_id="grant-db",
        reference="database/creds/r/lease1",
        details={"kind": "database lease", "role": "r", "token_accessor": "owner-acc"},
    )
    owner = IssuedCredential(
        provider="vault_database",
        grant_id="grant-db",
        reference="owner-acc",
        details={"kind": "owner token", "role": "r", "requester": "alice"},
    )
    return cred, owner


def test_drift_from_the_read_back_even_when_the_object_is_listed():
    # e.g. vault_database: the owner token lives but the lease / database user was removed by hand
    cred, owner = database_lease()
    g = GrantRecord(
        grant_id="grant-db",
        state="active",
        requester="alice",
        credential=cred,
        read_back_ok=False,
        read_back="pg_roles has no role",
    )
    [f] = compare(snap([owner], [g], provider="vault_database")).findings
    assert f.kind is FindingKind.drift and "pg_roles" in f.detail and f.reference == "database/creds/r/lease1"


def test_vault_database_matches_the_owner_token_by_the_issued_token_accessor():
    cred, owner = database_lease()
    g = GrantRecord(grant_id="grant-db", state="active", requester="alice", credential=cred, read_back_ok=True)
    assert compare(snap([owner], [g], provider="vault_database")).findings == []
    # the owner token gone: drift, although the lease reference never appears in a listing
    assert kinds(compare(snap([], [g], provider="vault_database"))) == [
        ("drift", "grant-db", "database/creds/r/lease1")
    ]


def test_extra_token_with_extra_policies_for_an_active_grant_is_a_mismatch_to_revoke():
    listed = [
        token("grant-a", "acc-a"),
        token("grant-a", "acc-evil", policies=("jit-platform-read", "jit-platform-admin")),
    ]
    c = compare(snap(listed, [active("grant-a", "acc-a")]))
    [f] = c.findings
    assert (f.kind, f.remedy, f.reference) == (FindingKind.mismatch, Remedy.revoke, "acc-evil")
    assert f.issued_reference == "acc-a"
    assert f.expected == {"policies": ["jit-platform-read"]}
    assert f.observed == {"policies": ["jit-platform-admin", "jit-platform-read"]}
    assert "extra ['jit-platform-admin']" in f.detail


def test_extra_token_with_the_same_access_is_a_duplicate_orphan():
    listed = [token("grant-a", "acc-a"), token("grant-a", "acc-dup")]
    [f] = compare(snap(listed, [active("grant-a", "acc-a")])).findings
    assert (f.kind, f.remedy, f.reference) == (FindingKind.orphan, Remedy.revoke, "acc-dup")
    assert "duplicate" in f.detail


def test_extra_token_naming_another_requester_is_a_mismatch():
    listed = [token("grant-a", "acc-a"), token("grant-a", "acc-m", requester="mallory")]
    [f] = compare(snap(listed, [active("grant-a", "acc-a")])).findings
    assert f.kind is FindingKind.mismatch and f.observed == {"requester": "mallory"}


def test_the_issued_credential_itself_differing_is_a_mismatch_alert_not_a_revoke_nor_drift():
    # e.g. an AppRole whose token_policies were widened by hand: every secret-ID of it now grants more
    cred = IssuedCredential(
        provider="vault_approle",
        grant_id="grant-s",
        reference="sid-acc",
        details={"kind": "approle", "role_name": "payments-api", "policies": ["jit-payments-read"]},
    )
    seen = cred.model_copy(update={"details": {**cred.details, "policies": ["jit-payments-read", "root-ish"]}})
    g = GrantRecord(
        grant_id="grant-s", state="active", credential=cred, read_back_ok=False, read_back="the role's policies differ"
    )
    [f] = compare(snap([seen], [g], provider="vault_approle")).findings
    assert (f.kind, f.remedy, f.reference) == (FindingKind.mismatch, Remedy.alert, "sid-acc")


def test_a_token_tagged_with_a_grant_of_another_provider_is_not_its_credential():
    db = IssuedCredential(
        provider="vault_database", grant_id="grant-db", reference="lease", details={"token_accessor": "o"}
    )
    g = GrantRecord(grant_id="grant-db", state="active", credential=db, read_back_ok=True)
    owner = IssuedCredential(provider="vault_database", grant_id="grant-db", reference="o", details={})
    c = compare(
        snap(
            [token("grant-db", "acc-tok")],
            [g],
            extra_inventories=[Inventory(provider="vault_database", listed=[owner])],
        )
    )
    [f] = c.findings
    assert (f.kind, f.provider, f.reference, f.remedy) == (
        FindingKind.mismatch,
        "vault_token",
        "acc-tok",
        Remedy.revoke,
    )
    assert f.observed["provider"] == "vault_token"


def test_a_failed_listing_yields_no_findings_for_that_provider():
    c = compare(snap([], [active("grant-d", "acc-d", read_back_ok=False)], error="vault unreachable"))
    assert c.findings == []
    assert c.providers[0].error == "vault unreachable" and not c.providers[0].orphan_detection
    assert any("listing failed" in n for n in c.notes)


def test_shared_target_providers_are_skipped_for_orphans_but_checked_for_drift():
    member = IssuedCredential(
        provider="aws_iam_group",
        grant_id="grant-i",
        reference="1:group/g:member/alice",
        details={"group": "g", "user_name": "alice"},
    )
    ok = GrantRecord(grant_id="grant-i", state="active", credential=member, read_back_ok=True)
    # list_managed of shared targets is empty: no drift from "not listed", no orphans
    c = compare(snap([], [ok], provider="aws_iam_group"))
    assert c.findings == [] and c.providers[0].orphan_detection is False and "shared target" in c.providers[0].note
    gone = ok.model_copy(update={"read_back_ok": False, "read_back": "not a member of g"})
    assert kinds(compare(snap([], [gone], provider="aws_iam_group"))) == [
        ("drift", "grant-i", "1:group/g:member/alice")
    ]


def test_sts_revocation_documents_are_not_orphans():
    doc = IssuedCredential(
        provider="aws_sts_session",
        grant_id="grant-old",
        reference="arn:aws:sts::1:assumed-role/r/grant-old",
        details={"kind": "sts role session (revoked)"},
    )
    assert compare(snap([doc], [], provider="aws_sts_session")).findings == []


def test_a_grant_whose_provider_is_not_configured_is_noted_not_judged():
    g = active("grant-x", "acc-x", read_back_ok=None)
    c = compare(Snapshot(inventories=[], grants={"grant-x": g}))
    assert c.findings == [] and any("not configured" in n for n in c.notes)


def test_findings_are_sorted_and_candidates_name_their_grants():
    listed = [token("grant-z", "acc-z"), token("grant-a", "acc-a"), token("grant-a", "acc-a2", policies=("x",))]
    grants = [active("grant-a", "acc-a"), active("grant-d", "acc-d", read_back_ok=False)]
    c = compare(snap(listed, grants))
    assert kinds(c) == [
        ("orphan", "grant-z", "acc-z"),
        ("drift", "grant-d", "acc-d"),
        ("mismatch", "grant-a", "acc-a2"),
    ]
    assert candidates(c) == ["grant-a", "grant-d", "grant-z"]
    assert compare(snap(list(reversed(listed)), list(reversed(grants)))) == c  # deterministic


def test_finding_evidence_holds_no_credential_object_and_report_counts():
    [f] = compare(snap([token("grant-ghost", "acc-g")], [])).findings
    ev = f.evidence()
    assert "credential" not in ev and ev["reference"] == "acc-g" and ev["kind"] == "orphan"
    done = f.model_copy(update={"remediation": Remediation(action="revoked", confirmed=True, detail="gone")})
    r = ReconciliationReport(run_id="r1", chain_id=chain_id("r1"), dry_run=False, started_at="t", findings=[done])
    assert r.count() == {"orphan": 1, "drift": 0, "mismatch": 0, "remediated": 1, "failed": 0}
    assert chain_id("r1") == "reconciliation-r1" and chain_id("reconciliation-r1") == "reconciliation-r1"


def test_a_token_the_listing_found_live_is_not_read_back_again():
    """vault_token's listing looks every token up: a listed issued token is proved live already."""
    listed = Inventory(provider="vault_token", listed=[token("grant-a", "acc-a")])
    live = listed_live([listed])
    unread = active("grant-a", "acc-a", read_back_ok=None)
    assert not needs_read_back(unread, live)
    assert compare(snap(listed.listed, [unread])).findings == []


def test_a_token_the_listing_missed_is_still_read_back_and_is_drift():
    live = listed_live([Inventory(provider="vault_token", listed=[token("grant-b", "acc-b")])])
    assert needs_read_back(active("grant-a", "acc-a", read_back_ok=None), live)
    # another grant's token with the same reference is not this grant's
    assert needs_read_back(active("grant-b", "acc-a", read_back_ok=None), live)


def test_listings_that_do_not_read_objects_back_still_read_back():
    failed = Inventory(provider="vault_token", listed=[token("grant-a", "acc-a")], error="vault unreachable")
    assert needs_read_back(active("grant-a", "acc-a", read_back_ok=None), listed_live([failed]))
    owner = IssuedCredential(
        provider="vault_database",
        grant_id="grant-d",
        reference="owner-acc",
        details={"role": "ro", "requester": "alice"},
    )
    db = GrantRecord(
        grant_id="grant-d",
        state="active",
        credential=IssuedCredential(
            provider="vault_database", grant_id="grant-d", reference="lease-1", details={"token_accessor": "owner-acc"}
        ),
    )
    # the owner token is listed, but the lease and the database user are only seen by the read-back
    assert needs_read_back(db, listed_live([Inventory(provider="vault_database", listed=[owner])]))


def test_grants_not_active_are_never_read_back():
    live: set[tuple[str, str, str]] = set()
    revoking = active("grant-a", "acc-a").model_copy(update={"state": "revoking"})
    no_cred = GrantRecord(grant_id="grant-n", state="active")
    assert not needs_read_back(revoking, live) and not needs_read_back(no_cred, live)


def test_a_grant_at_its_expiry_whose_token_its_ttl_ended_is_not_drift():
    """Vault's TTL ends the token at the grant's expiry (rounded down to the second), a moment
    before the workflow records the revocation: that is the design working, not drift."""
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    ending = active("grant-e", "acc-e", read_back_ok=False).model_copy(
        update={"expires_at": now + timedelta(seconds=1)}
    )
    gone_early = active("grant-d", "acc-d", read_back_ok=False).model_copy(
        update={"expires_at": now + timedelta(minutes=10)}
    )
    c = compare(snap([], [ending, gone_early]).model_copy(update={"taken_at": now}))
    assert kinds(c) == [("drift", "grant-d", "acc-d")]
    # without the time of the read (older callers) every missing token is judged
    assert len(compare(snap([], [ending, gone_early])).findings) == 2
