"""Reads shared within one scan (providers.base.shared_reads), the token facts a Vault listing
remembers (vault_token.TokenFacts), the Vault client's session, and one scan at a time per worker."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from types import SimpleNamespace

import pytest

from jitaccess.activities.reconcile import ReconcileActivities
from jitaccess.ledger import Ledger
from jitaccess.providers.base import ProviderRegistry, pace, paced, read_shared, shared_reads
from jitaccess.providers.vault_token import TokenFacts, VaultClients, tagged_tokens, vault_session


class CountingVault:
    """Just enough of hvac.Client for tagged_tokens (adapter.list, auth.token.lookup_accessor,
    adapter.base_uri, token), counting the calls."""

    def __init__(self, tokens: dict[str, dict]) -> None:
        self.tokens, self.lists, self.lookups = tokens, 0, 0
        self.looked_up_at: list[float] = []
        self.token = "s.test"
        self.adapter = SimpleNamespace(base_uri="http://vault.test", list=self._list)
        self.auth = SimpleNamespace(token=SimpleNamespace(lookup_accessor=self._lookup))
        self._lock = threading.Lock()

    def _list(self, path: str) -> dict:
        with self._lock:
            self.lists += 1
        return {"data": {"keys": list(self.tokens)}}

    def _lookup(self, accessor: str) -> dict:
        with self._lock:
            self.lookups += 1
            self.looked_up_at.append(time.monotonic())
        return {"data": self.tokens[accessor]}


class FakeClients(VaultClients):
    def __init__(self, vault: CountingVault) -> None:
        super().__init__("http://vault.test", "s.test")
        self.vault = vault

    def get(self):  # type: ignore[override]
        return self.vault


def clients_with_three_kinds() -> FakeClients:
    return FakeClients(
        CountingVault(
            {
                "a1": {"meta": {"managed_by": "jitaccess", "grant_id": "g1"}, "policies": ["p"], "ttl": 60},
                "a2": {"meta": {"managed_by": "jitaccess:vault_database", "grant_id": "g2"}},
                "a3": {"meta": {"managed_by": "jitaccess:vault_approle", "grant_id": "g3"}},
                "root": {"meta": None, "policies": ["root"]},
            }
        )
    )


async def test_within_a_scan_the_vault_providers_list_the_tokens_once():
    clients = clients_with_three_kinds()
    kinds = ["jitaccess", "jitaccess:vault_database", "jitaccess:vault_approle"]
    with shared_reads():
        found = await asyncio.gather(*(asyncio.to_thread(tagged_tokens, clients, managed_by=k) for k in kinds))
    assert [[acc for acc, _ in f] for f in found] == [["a1"], ["a2"], ["a3"]]
    assert found[0][0][1] == {"meta": {"managed_by": "jitaccess", "grant_id": "g1"}, "policies": ["p"]}
    assert (clients.vault.lists, clients.vault.lookups) == (1, 4)


def test_every_listing_reads_the_accessors_afresh_and_looks_up_only_new_tokens():
    clients = clients_with_three_kinds()
    vault = clients.vault
    assert [acc for acc, _ in tagged_tokens(clients, managed_by="jitaccess", grant_id="g1")] == ["a1"]
    assert (vault.lists, vault.lookups) == (1, 4)
    # a1 revoked, a4 created: liveness comes from the new accessor list, facts only for a4 are read
    del vault.tokens["a1"]
    vault.tokens["a4"] = {"meta": {"managed_by": "jitaccess", "grant_id": "g1"}, "policies": ["p"]}
    assert [acc for acc, _ in tagged_tokens(clients, managed_by="jitaccess", grant_id="g1")] == ["a4"]
    assert (vault.lists, vault.lookups) == (2, 5)
    assert clients.facts.get("a1") is None  # pruned with the listing


def test_a_failed_shared_read_fails_every_caller_and_is_not_retried_within_the_scan():
    calls = []

    def boom() -> None:
        calls.append(1)
        raise RuntimeError("vault down")

    with shared_reads():
        for _ in range(2):
            with pytest.raises(RuntimeError, match="vault down"):
                read_shared("k", boom)
    assert len(calls) == 1


def test_the_vault_session_reads_the_environment_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "vault.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/our-ca.pem")
    monkeypatch.delenv("VAULT_CACERT", raising=False)
    monkeypatch.delenv("VAULT_CAPATH", raising=False)
    proxied = vault_session("https://vault.example:8200")
    assert not proxied.trust_env  # no os.environ scan (nor .netrc lookup) per request
    assert proxied.proxies.get("https") == "http://proxy.example:3128"
    assert proxied.verify == "/etc/ssl/our-ca.pem"
    assert vault_session("https://vault.internal:8200").proxies == {}  # NO_PROXY honoured
    monkeypatch.setenv("VAULT_CACERT", "/etc/vault/ca.pem")
    assert vault_session("https://vault.example:8200").verify == "/etc/vault/ca.pem"  # hvac's order first


class SlowListing:
    """A provider whose listing takes a while, counting the listings in flight at once."""

    def __init__(self) -> None:
        self.in_flight = self.most = 0
        self._lock = threading.Lock()

    def list_managed(self, grant_id: str | None = None) -> list:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        time.sleep(0.2)
        with self._lock:
            self.in_flight -= 1
        return []


async def test_a_worker_runs_one_reconciliation_scan_at_a_time(tmp_path):
    """The schedule's scan beside one asked for by hand: the second waits (and would then reuse the
    first's token facts) instead of holding a second snapshot and asking Vault everything again."""
    listing = SlowListing()
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db", upgrade=True)
    scans = ReconcileActivities(ProviderRegistry({"slow": listing}), ledger)  # type: ignore[dict-item]
    try:
        results = await asyncio.gather(scans.reconcile_scan(), scans.reconcile_scan())
    finally:
        ledger.close()
    assert [r.findings for r in results] == [[], []]
    assert listing.most == 1


def test_a_paced_listing_spaces_its_lookups():
    """Within `paced(10)` (a reconciliation scan), the four lookups of new tokens take their turns
    0.1 s apart."""
    clients = clients_with_three_kinds()
    started = time.monotonic()
    with paced(10):
        assert len(tagged_tokens(clients, managed_by="jitaccess")) == 1
    vault = clients.vault
    assert vault.lookups == 4 and vault.looked_up_at[-1] - started >= 0.3


class PacedListing:
    """A provider whose listing makes five paced calls of its own, noting when each went out."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def list_managed(self, grant_id: str | None = None) -> list:
        for _ in range(5):
            pace()
            self.calls.append(time.monotonic())
        return []


async def test_a_reconciliation_scan_runs_at_its_pace(tmp_path):
    listing = PacedListing()
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db", upgrade=True)
    scans = ReconcileActivities(ProviderRegistry({"paced": listing}), ledger, calls_per_second=20)  # type: ignore[dict-item]
    started = time.monotonic()
    try:
        assert (await scans.reconcile_scan()).findings == []
    finally:
        ledger.close()
    assert len(listing.calls) == 5 and listing.calls[-1] - started >= 4 / 20


def test_remembered_facts_are_not_walked_by_the_collector():
    """The facts of every held token stay for as long as the token lives; once the collector has
    looked at them none is an object a full pass walks (before: a dict, its metadata dict and the
    policies list per token)."""
    facts = TokenFacts()
    lookup = {"meta": {"managed_by": "jitaccess", "grant_id": "g1"}, "policies": ["default", "p"], "ttl": 60}
    assert facts.remember("a0", lookup) == {"meta": lookup["meta"], "policies": ["default", "p"]}
    gc.collect()
    before = len(gc.get_objects())
    for i in range(1, 1001):
        facts.remember(f"a{i}", {"meta": {"managed_by": "jitaccess", "grant_id": f"g{i}"}, "policies": ["p"]})
    gc.collect()  # a tuple is let go once a collection finds everything in it untracked:
    gc.collect()  # nested ones take a second look (in a worker, the young and then the older generation)
    assert len(gc.get_objects()) - before < 100  # the test's own bits, not 3,000 objects
    assert facts.get("a7") == {"meta": {"managed_by": "jitaccess", "grant_id": "g7"}, "policies": ["p"]}
