"""One grant's evidence bundle: self-contained, checkable without jitaccess's database.

`OUT/<grant_id>/`:
- `events.json` — the grant's identity events (its whole hash chain, as stored);
- `checkpoint.json` — the newest signed checkpoint of the ledger's log;
- `proof.json` — for every event, its log position, leaf hash and RFC 9162 audit path to that
  checkpoint's root, and the checkpoint key's ID (and public key when given);
- `report.html` — who asked and why, which rule and policy version decided, who approved with
  what authority (and the command signature), what exactly was granted, when it became usable,
  when and how its removal was confirmed, any residual window;
- `README.txt` — how to check it (`jitaccess evidence verify-bundle`, or any RFC 9162 tool).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jitaccess.domain import merkle
from jitaccess.domain.commands import SignerRole, public_key_id, public_key_text
from jitaccess.domain.events import IdentityEvent, verify_chain
from jitaccess.domain.evidence import (
    Checkpoint,
    checkpoint_problem,
    event_leaf_hash,
)
from jitaccess.domain.evidence_verify import verify_evidence
from jitaccess.evidence.story import grant_story
from jitaccess.ledger import Ledger
from jitaccess.ledger.evidence_log import inclusion_proofs, latest_checkpoint

HASHING = (
    "RFC 9162 Merkle tree (SHA-256): leaf = SHA-256(0x00 || canonical JSON of the whole event), "
    "node = SHA-256(0x01 || left || right); canonical JSON = keys sorted, no spaces, UTF-8"
)


class BundleError(RuntimeError):
    pass


def _proven_inclusion(ledger: Ledger, events: list[IdentityEvent], cp: Checkpoint) -> list[dict[str, Any]]:
    """Each logged event's audit path to the checkpoint's root, checked against the events as the
    ledger holds them now (BundleError otherwise): a bundle never carries a proof that fails."""
    by_id = {e.event_id: e for e in events}
    inclusion = []
    for inc in inclusion_proofs(ledger, list(by_id), cp):
        ev = by_id[inc.event_id]
        path = [bytes.fromhex(p) for p in inc.proof]
        leaf = event_leaf_hash(ev)
        if leaf != inc.leaf_hash or not merkle.verify_inclusion(
            bytes.fromhex(leaf), inc.log_index, cp.tree_size, path, bytes.fromhex(cp.root_hash)
        ):
            raise BundleError(
                f"{ev.event_id} is not in checkpoint #{cp.number} as the ledger holds it now: "
                "run `jitaccess evidence verify --ledger ...`"
            )
        inclusion.append(
            {"event_id": ev.event_id, "log_index": inc.log_index, "leaf_hash": leaf, "audit_path": inc.proof}
        )
    return inclusion


def export_bundle(ledger: Ledger, grant_id: str, out: Path, *, public_key: Ed25519PublicKey | None = None) -> Path:
    events = ledger.events(grant_id)
    if not events:
        raise BundleError(f"the ledger holds no event for {grant_id}")
    cp = latest_checkpoint(ledger)
    notes: list[str] = []
    inclusion: list[dict[str, Any]] = []
    if cp is None:
        notes.append("the ledger has no signed checkpoint yet: run `jitaccess evidence checkpoint`")
    else:
        if public_key is not None and (problem := checkpoint_problem(cp, {public_key_id(public_key): public_key})):
            raise BundleError(f"the ledger's latest checkpoint #{cp.number} does not verify: {problem}")
        inclusion = _proven_inclusion(ledger, events, cp)
        missing = [e.event_id for e in events if e.event_id not in {i["event_id"] for i in inclusion}]
        if missing:
            notes.append(f"{len(missing)} event(s) are newer than checkpoint #{cp.number}: " + ", ".join(missing))
    proof = {
        "grant_id": grant_id,
        "hashing": HASHING,
        "checkpoint_number": cp.number if cp else None,
        "tree_size": cp.tree_size if cp else None,
        "root_hash": cp.root_hash if cp else None,
        "public_key_id": cp.key_id if cp else None,
        "public_key": public_key_text(public_key) if public_key is not None else None,
        "inclusion": inclusion,
        "not_yet_checkpointed": [e.event_id for e in events if e.event_id not in {i["event_id"] for i in inclusion}],
    }
    directory = out / grant_id
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "events.json").write_text(json.dumps([e.model_dump(mode="json") for e in events], indent=2) + "\n")
    (directory / "proof.json").write_text(json.dumps(proof, indent=2) + "\n")
    if cp is not None:
        (directory / "checkpoint.json").write_text(json.dumps(cp.model_dump(mode="json"), indent=2) + "\n")
    story = grant_story(events)
    chain = verify_chain(grant_id, events)
    (directory / "report.html").write_text(
        render_html(story, events, chain.model_dump(mode="json"), cp, proof, notes, ledger.grant(grant_id))
    )
    (directory / "README.txt").write_text(README.format(grant_id=grant_id, key_id=cp.key_id if cp else "(none)"))
    return directory


README = """Evidence bundle for {grant_id}

events.json      the grant's identity events: one SHA-256 hash chain (hash = SHA-256 of the canonical
                 JSON of the event without `hash`; prev_hash links each event to the one before)
checkpoint.json  a checkpoint of the ledger's global log, signed (Ed25519) by key {key_id}
proof.json       each event's position in that log and its RFC 9162 audit path to the checkpoint's root
report.html      the grant, in words

Check it, with the checkpoint public key obtained from its owner (not from this bundle):
    jitaccess evidence verify-bundle . --public-key checkpoint.pub [--command-key api.pub]
or with any RFC 9162 implementation: leaf = SHA-256(0x00 || canonical JSON of the event), the
audit path and tree size in proof.json, the root in checkpoint.json; the signature covers the bytes
"jitaccess checkpoint v1\\n" + canonical JSON of checkpoint.json without "signature".
"""


def verify_bundle(
    directory: Path, public_key: Ed25519PublicKey, command_keys: Sequence[Ed25519PublicKey] = ()
) -> dict[str, Any]:
    """Check a bundle on its own: the chain, the checkpoint's signature, every inclusion proof
    against the checkpoint's signed root, and the signed commands."""
    problems: list[str] = []
    notes: list[str] = []
    events = [IdentityEvent.model_validate(e) for e in json.loads((directory / "events.json").read_text())]
    proof = json.loads((directory / "proof.json").read_text())
    grant_id = proof["grant_id"]
    chain = verify_chain(grant_id, events)
    if not chain.ok:
        problems.append(f"chain: {chain.first_broken or grant_id}: {chain.problem}")
    cp_file = directory / "checkpoint.json"
    if not cp_file.exists():
        problems.append("no checkpoint in the bundle: nothing proves these events are in the ledger's log")
    else:
        cp = Checkpoint.model_validate_json(cp_file.read_text())
        problem = checkpoint_problem(cp, {public_key_id(public_key): public_key})
        if problem:
            problems.append(f"checkpoint #{cp.number}: {problem}")
        by_id = {e.event_id: e for e in events}
        proven = set()
        for inc in proof["inclusion"]:
            ev = by_id.get(inc["event_id"])
            if ev is None:
                problems.append(f"{inc['event_id']}: has a proof but is not in events.json (removed from the bundle)")
                continue
            leaf = bytes.fromhex(event_leaf_hash(ev))
            path = [bytes.fromhex(p) for p in inc["audit_path"]]
            if not merkle.verify_inclusion(leaf, inc["log_index"], cp.tree_size, path, bytes.fromhex(cp.root_hash)):
                problems.append(
                    f"{ev.event_id}: not included in checkpoint #{cp.number} at position {inc['log_index']} "
                    "(the event or its proof was changed)"
                )
            proven.add(ev.event_id)
        unproven = [e.event_id for e in events if e.event_id not in proven]
        if unproven:
            notes.append(f"{len(unproven)} event(s) not covered by the bundle's checkpoint: " + ", ".join(unproven))
    if command_keys:
        report = verify_evidence(events, [], [], command_keys=[(k, SignerRole.api) for k in command_keys])
        problems += [f.line() for f in report.findings if f.kind.value == "bad_command"]
        notes.append(f"{report.commands_verified} signed command(s) re-verified")
    return {"grant_id": grant_id, "ok": not problems, "problems": problems, "notes": notes}


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evidence: {{ s.grant_id }}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em} h2{font-size:1.1em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;width:100%} td,th{border:1px solid #ddd;padding:.3em .5em;text-align:left;
vertical-align:top;font-size:.9em} th{background:#f4f4f4} code{font-size:.85em;word-break:break-all}
.ok{color:#070}.bad{color:#b00}.note{color:#850}
</style></head><body>
<h1>Evidence report — {{ s.grant_id }}</h1>
<p>Final state: <b>{{ grant.state if grant else (s.last_event.type if s.last_event else "unknown") }}</b>.
Hash chain: {% if chain.ok %}<span class="ok">verifies ({{ chain.events }} events)</span>{% else %}
<span class="bad">BROKEN at {{ chain.first_broken }}: {{ chain.problem }}</span>{% endif %}.
{% if cp %}Included in signed checkpoint <b>#{{ cp.number }}</b> of the ledger's log
({{ cp.tree_size }} events, {{ cp.issued_at }}), key <code>{{ cp.key_id }}</code>.{% endif %}</p>
{% for n in notes %}<p class="note">{{ n }}</p>{% endfor %}

<h2>Who asked, and why</h2>
{% if s.requested %}<table>
<tr><th>requester</th><td>{{ s.requested.by }} ({{ s.requested.kind }}; groups {{ (s.requested.groups or [])|join(", ") }})</td></tr>
<tr><th>entitlement</th><td>{{ s.requested.entitlement }}</td></tr>
<tr><th>duration asked</th><td>{{ s.requested.duration_seconds }} s</td></tr>
<tr><th>reason</th><td>{{ s.requested.reason }}</td></tr>
<tr><th>ticket / incident</th><td>{{ s.requested.ticket or "—" }} / {{ s.requested.incident or "—" }}</td></tr>
<tr><th>break-glass</th><td>{{ "yes" if s.requested.break_glass else "no" }}</td></tr>
{% if s.requested.workload %}<tr><th>workload</th><td><code>{{ s.requested.workload|tojson }}</code></td></tr>{% endif %}
<tr><th>at</th><td>{{ s.requested.at }}</td></tr></table>{% else %}<p class="bad">no grant.requested event</p>{% endif %}

<h2>Which rule and policy version decided</h2>
{% if s.decision %}<table>
<tr><th>outcome</th><td>{{ s.decision.outcome }}</td></tr>
<tr><th>rule</th><td><code>{{ s.decision.rule }}</code></td></tr>
<tr><th>policy version</th><td><code>{{ s.decision.policy_version }}</code></td></tr>
{% if s.decision.auto_rule %}<tr><th>auto-approval rule</th><td>{{ s.decision.auto_rule }}</td></tr>{% endif %}
{% if s.decision.reason_codes %}<tr><th>reason codes</th><td>{{ s.decision.reason_codes|join(", ") }}</td></tr>{% endif %}
{% if s.decision.approver_groups %}<tr><th>approvers required</th><td>{{ s.decision.min_approvals }} of {{ s.decision.approver_groups|join(", ") }}</td></tr>{% endif %}
<tr><th>at</th><td>{{ s.decision.at }}</td></tr></table>{% endif %}

<h2>Who approved, with what authority</h2>
{% if s.approvals %}<table><tr><th>approver</th><th>authority</th><th>comment</th><th>at</th><th>signed command</th></tr>
{% for a in s.approvals %}<tr><td>{{ a.approver }}</td><td>{{ a.authority }}</td><td>{{ a.comment }}</td><td>{{ a.at }}</td>
<td>{% if a.command %}key <code>{{ a.command.key_id }}</code> ({{ a.command.role }}), signed {{ a.command.issued_at }},
nonce <code>{{ a.command.nonce }}</code>, signature <code>{{ a.command.signature }}</code>{% else %}unsigned{% endif %}</td></tr>
{% endfor %}</table>
{% elif s.approved %}<p>{{ "Break-glass: active at once, for post-hoc review" if s.approved.break_glass else ("Auto-approved by rule " ~ (s.approved.auto_rule or s.approved.rule)) }} at {{ s.approved.at }}.</p>
{% else %}<p>Not approved.</p>{% endif %}
{% for d in s.denials %}<p class="bad">Denied by {{ d.by }} at {{ d.at }}: {{ d.reason }}</p>{% endfor %}

<h2>What exactly was granted</h2>
{% if s.issued %}<table>
<tr><th>provider</th><td>{{ s.issued.provider }}</td></tr>
<tr><th>reference</th><td><code>{{ s.issued.reference }}</code></td></tr>
<tr><th>details</th><td><code>{{ s.issued.details|tojson }}</code></td></tr>
<tr><th>grant expires</th><td>{{ s.issued.expires_at }}</td></tr>
<tr><th>provider-side expiry</th><td>{{ s.issued.provider_expires_at }}</td></tr>
<tr><th>issued at</th><td>{{ s.issued.at }}</td></tr></table>{% else %}<p>Nothing was issued.</p>{% endif %}

<h2>When it became usable</h2>
<p>{% if s.usable_at %}Verified live at the target at <b>{{ s.usable_at }}</b> ({{ s.usable_read_back }}){% if s.delivered_at %};
handed to the requester (response-wrapped, single use) at {{ s.delivered_at }}{% endif %}.{% else %}Never verified usable.{% endif %}</p>
{% for x in s.extensions %}<p>{{ x.type }} by {{ x.by }} at {{ x.at }}</p>{% endfor %}

<h2>When and how its removal was confirmed</h2>
{% if s.ended %}<p>Ended: {{ s.ended.how }} at {{ s.ended.at }}{% if s.ended.by %} by {{ s.ended.by }}{% endif %}{% if s.ended.reason %} ({{ s.ended.reason }}){% endif %}.</p>{% endif %}
{% if s.removal %}<p>Removal confirmed by reading the target back at <b>{{ s.removal.confirmed_at }}</b>:
{{ s.removal.read_back }} (attempts {{ s.removal.attempts }}{% if s.removal.already_gone %}; already gone — the provider's own TTL ended it{% endif %}){% if s.removal.lag_seconds is not none %};
{{ s.removal.lag_seconds }} s after the end{% endif %}.{% if s.retries %} {{ s.retries }} retried attempt(s).{% endif %}</p>
{% else %}<p class="note">No confirmed removal on the chain.</p>{% endif %}

<h2>Residual window</h2>
<p>{% if s.residual %}{{ s.residual|join("; ") }}{% else %}None: nothing stayed valid after the confirmed removal.{% endif %}</p>
{% if s.review %}<h2>Post-hoc review</h2><p>{{ s.review.by }} at {{ s.review.at }}: <code>{{ s.review|tojson }}</code></p>{% endif %}

<h2>The chain</h2>
<table><tr><th>#</th><th>at</th><th>type</th><th>actor</th><th>role</th><th>hash</th><th>log position</th></tr>
{% for e in events %}<tr><td>{{ e.seq }}</td><td>{{ e.at }}</td><td>{{ e.type }}</td><td>{{ e.actor.id }}</td>
<td>{{ e.actor.role.value }}</td><td><code>{{ e.hash[:16] }}…</code></td><td>{{ positions.get(e.event_id, "not yet") }}</td></tr>{% endfor %}
</table>
<h2>How to check this</h2>
<p>{{ hashing }}. Checkpoint root <code>{{ proof.root_hash }}</code> over {{ proof.tree_size }} events,
key <code>{{ proof.public_key_id }}</code>. Run <code>jitaccess evidence verify-bundle DIR --public-key KEY</code> with the
checkpoint public key obtained from its owner — see README.txt.</p>
</body></html>
"""


def render_html(
    story: dict[str, Any],
    events: Sequence[IdentityEvent],
    chain: dict[str, Any],
    cp: Checkpoint | None,
    proof: dict[str, Any],
    notes: list[str],
    grant: dict[str, Any] | None,
) -> str:
    env = jinja2.Environment(autoescape=True)
    context = {"s": story, "events": events, "chain": chain, "cp": cp, "proof": proof, "notes": notes, "grant": grant}
    positions = {i["event_id"]: i["log_index"] for i in proof["inclusion"]}
    return env.from_string(TEMPLATE).render(context, positions=positions, hashing=HASHING)
