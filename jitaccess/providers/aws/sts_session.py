"""STS role sessions (`aws_sts_session`).

Assume the entitlement's role for min(grant time, role max) (at least 900 s) with a session
policy, SourceIdentity = requester and a `grant_id` session tag. The keys are proven with
get_caller_identity and go to the requester only response-wrapped by Vault. STS sessions cannot
be deleted: revocation writes an inline deny policy on the role for this grant's sessions
("revoke older sessions", scoped by the grant_id tag), confirmed by reading that policy back.
The residual window is the STS expiration (`expires_at`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from jitaccess.domain.credentials import IssuedCredential, ProviderGrant, WrappedHandover
from jitaccess.domain.provider_params import ROLE_ARN, STS_MAX_SECONDS, STS_MIN_SECONDS, StsSessionParams
from jitaccess.providers.aws.clients import AwsClients, aws_name, call, is_error, resolvable_or_none, translate
from jitaccess.providers.base import PerGrantCredentials, ProviderError, grant_params, remaining_ttl
from jitaccess.providers.vault_token import VaultWrapper

REVOCATION_POLICY_PREFIX = "jitaccess-revoked-"
CLOCK_SKEW = timedelta(minutes=5)  # margin between our clock and AWS's for the revocation cut-off
ASSUME_CALL_MARGIN = timedelta(seconds=1)  # time AssumeRole may take to answer: the session starts then


def role_session_name(grant_id: str) -> str:
    """RoleSessionName from the grant ID: 2-64 characters of [\\w+=,.@-]; long IDs keep a hash suffix."""
    name = re.sub(r"[^\w+=,.@-]", "-", grant_id)
    if len(name) > 64:
        name = name[:51] + "-" + hashlib.sha256(grant_id.encode()).hexdigest()[:12]
    return name if len(name) >= 2 else f"g-{name}"


def revocation_policy_name(grant_id: str) -> str:
    """The role inline policy that denies one grant's sessions (names: 128 chars of [\\w+=,.@-])."""
    safe = re.sub(r"[^\w+=,.@-]", "-", grant_id)
    if len(safe) > 128 - len(REVOCATION_POLICY_PREFIX):
        safe = safe[:80] + "-" + hashlib.sha256(grant_id.encode()).hexdigest()[:16]
    return REVOCATION_POLICY_PREFIX + safe


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v.astimezone(UTC)
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return None
    return None


def _as_list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


class StsRoleSessionProvider(PerGrantCredentials):
    """params: StsSessionParams {role_arn, session_policy?: IAM policy dict, max_session_seconds?:
    900..43200 (default 3600)}.

    Revocation writes one inline policy per revoked grant on the role,
    `jitaccess-revoked-<grant id>`, with a single statement

        Deny * on * when aws:PrincipalTag/grant_id == <grant id>
                     and aws:TokenIssueTime < <revocation time + clock-skew margin>
                     and aws:CurrentTime   < <STS expiry + margin>

    Scoped by the grant tag, not by SourceIdentity: denying the requester's sessions
    would also cut off their other, still-active grants on the same role. One document
    per grant means concurrent revocations on several workers never overwrite each
    other's statements (no read-modify-write of a shared document). The aws:CurrentTime
    bound says when every session the statement targets has expired: each revocation
    deletes such lapsed documents, so the role's inline-policy size stays bounded by the
    revocations whose sessions are still live (an early revocation at most; a grant that
    simply expired leaves a document for a few seconds to 15 minutes).
    """

    name = "aws_sts_session"
    params_model = StsSessionParams

    def __init__(
        self,
        clients: AwsClients,
        wrapper: VaultWrapper | None,
        *,
        roles: Iterable[str] = (),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._clients = clients
        self._wrapper = wrapper
        self._now = now
        self._roles: set[str] = set(roles)  # role ARNs whose revocation documents list_managed reads
        self._roles_lock = threading.Lock()

    @property
    def _iam(self) -> Any:
        return self._clients.client("iam")

    @staticmethod
    def duration_seconds(ttl_seconds: int, max_session_seconds: int, role_max_seconds: int = STS_MAX_SECONDS) -> int:
        """min(remaining grant time, entitlement max, role max), but at least STS's 900 s."""
        return max(STS_MIN_SECONDS, min(ttl_seconds, max_session_seconds, role_max_seconds))

    @staticmethod
    def _assumed_arn(role_arn: str, account: str, role_name: str, session: str) -> str:
        partition = role_arn.split(":")[1]
        return f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{session}"

    # -- the port ----------------------------------------------------------------------------
    def issue(
        self, grant: ProviderGrant, *, wrap_ttl: timedelta, first_attempt: bool = True
    ) -> tuple[IssuedCredential, WrappedHandover]:
        # A retry mints a fresh session: a session minted by an earlier attempt whose reply was
        # lost was never handed to anyone (its keys lived only in that attempt's memory).
        params = grant_params(StsSessionParams, grant)
        source_identity = aws_name(grant.principal, "SourceIdentity (the requester id)", 64, min_len=2)
        if self._wrapper is None:
            raise ProviderError(
                "aws_sts_session needs Vault to response-wrap the keys; none configured", retryable=False
            )
        with self._roles_lock:
            self._roles.add(params.role_arn)
        role_max = self._role_max_seconds(params)
        # STS counts the duration from its own answer and a session cannot be shortened after: count
        # the grant's remaining time at the last moment, less a margin for the call itself (rounded
        # down). STS's 900 s minimum may still force a later end, recorded below as the residual window.
        remaining = remaining_ttl(grant, self._now() + ASSUME_CALL_MARGIN)
        duration = self.duration_seconds(remaining, params.max_session_seconds, role_max)
        resp = self._assume(grant, params, source_identity, duration)
        keys, user = resp["Credentials"], resp["AssumedRoleUser"]
        expires = _parse_time(keys["Expiration"])
        assert expires is not None
        ident = self._prove(keys, user["Arn"])
        handover = self._wrapper.wrap(
            {
                "aws_access_key_id": keys["AccessKeyId"],
                "aws_secret_access_key": keys["SecretAccessKey"],
                "aws_session_token": keys["SessionToken"],
                "expiration": _iso(expires),
                "assumed_role_arn": user["Arn"],
                "region": self._clients.region,
            },
            wrap_ttl,
        )
        del keys, resp
        # keys valid after the grant's expiry: revocation denies them, but they only stop existing then
        residual = (
            max(0, math.ceil((expires - grant.expires_at).total_seconds())) if grant.expires_at is not None else None
        )
        details = {
            "kind": "sts role session",
            "role_arn": params.role_arn,
            "session_name": role_session_name(grant.grant_id),
            "assumed_role_id": user.get("AssumedRoleId"),
            "source_identity": source_identity,
            "session_tags": {"grant_id": grant.grant_id},
            "duration_seconds": duration,
            "issued_at": _iso(expires - timedelta(seconds=duration)),
            "session_policy": params.session_policy,
            "verified_caller": ident.get("Arn"),
            "residual_seconds": residual,  # STS expiry past the grant's (the 900 s minimum), if any
        }
        cred = IssuedCredential(
            provider=self.name, grant_id=grant.grant_id, reference=user["Arn"], details=details, expires_at=expires
        )
        return cred, handover

    def _role_max_seconds(self, params: StsSessionParams) -> int:
        """The role's MaxSessionDuration; ProviderError (not retryable) when the role does not exist."""
        try:
            role = self._iam.get_role(RoleName=params.role_name)["Role"]
        except Exception as e:
            if is_error(e, "NoSuchEntity"):
                raise ProviderError(f"role {params.role_arn} does not exist", retryable=False) from e
            raise translate(e, "read the role") from e
        return int(role.get("MaxSessionDuration") or 3600)

    def _assume(self, grant: ProviderGrant, params: StsSessionParams, source_identity: str, duration: int) -> Any:
        kwargs: dict[str, Any] = {
            "RoleArn": params.role_arn,
            "RoleSessionName": role_session_name(grant.grant_id),
            "DurationSeconds": duration,
            "SourceIdentity": source_identity,
            "Tags": [{"Key": "grant_id", "Value": grant.grant_id}],
            "TransitiveTagKeys": ["grant_id"],
        }
        if params.session_policy is not None:
            kwargs["Policy"] = json.dumps(params.session_policy, separators=(",", ":"))
        return call("assume the role", self._clients.client("sts").assume_role, **kwargs)

    def _prove(self, keys: dict[str, Any], session_arn: str) -> dict[str, Any]:
        """Prove the keys before handing them over: they must authenticate as this very session."""
        try:
            ident: dict[str, Any] = self._clients.client_with_keys(
                "sts", keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"]
            ).get_caller_identity()
        except Exception as e:
            raise translate(e, "authenticate with the new session's keys") from e
        if ident.get("Arn") != session_arn:
            raise ProviderError(
                f"the new session's keys authenticate as {ident.get('Arn')!r}, expected {session_arn!r}"
            )
        return ident

    def extend(self, cred: IssuedCredential, ttl_seconds: int) -> IssuedCredential:
        raise ProviderError(
            "aws_sts_session: an STS session's expiration is fixed when it is issued and cannot be extended; "
            "request a new grant",
            retryable=False,
        )

    def expected_credential(self, grant: ProviderGrant) -> IssuedCredential | None:
        """The session ARN is deterministic (role + session name from the grant ID). After a failed
        issue an AssumeRole whose reply was lost may have minted a session: clean-up revokes
        every session of this grant issued up to now (a deny for the grant's tag) and confirms
        the deny by reading it back."""

        def expected() -> IssuedCredential:
            params = grant_params(StsSessionParams, grant)
            role_arn, max_s = params.role_arn, params.max_session_seconds
            session = role_session_name(grant.grant_id)
            now = self._now()
            # any such session was issued before now, for at most max_session_seconds
            return IssuedCredential(
                provider=self.name,
                grant_id=grant.grant_id,
                reference=self._assumed_arn(role_arn, params.account_id, params.role_name, session),
                details={
                    "kind": "sts role session",
                    "role_arn": role_arn,
                    "session_name": session,
                    "issued_at": _iso(now),
                    "duration_seconds": max_s,
                    "note": "whatever an interrupted issue may have minted: issued before now, lives at most max_session_seconds",
                },
                expires_at=now + timedelta(seconds=max_s),
            )

        return resolvable_or_none(expected)

    def _role_name(self, cred: IssuedCredential) -> str:
        m = ROLE_ARN.match(cred.details.get("role_arn", ""))
        if m is None:
            raise ProviderError(f"credential {cred.reference} has no valid role_arn", retryable=False)
        return m.group(2)

    def _read_revocation(self, role_name: str, grant_id: str) -> dict | None:
        """The grant's revocation document on the role; None if absent (or the role is gone)."""
        return self._read_policy(role_name, revocation_policy_name(grant_id))

    def _read_policy(self, role_name: str, name: str) -> dict | None:
        try:
            doc = self._iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        except Exception as e:
            if is_error(e, "NoSuchEntity"):
                return None
            raise translate(e, "read the role's revocation policy") from e
        return json.loads(doc) if isinstance(doc, str) else doc  # botocore decodes IAM documents already

    @staticmethod
    def _statement_covers(st: dict, grant_id: str, issued_at: datetime | None, expires_at: datetime | None) -> bool:
        """Does this statement deny everything to the grant's session issued at `issued_at`
        for as long as it lives?"""
        if (
            st.get("Effect") != "Deny"
            or "*" not in _as_list(st.get("Action"))
            or "*" not in _as_list(st.get("Resource"))
        ):
            return False
        cond = st.get("Condition") or {}
        if grant_id not in _as_list((cond.get("StringEquals") or {}).get("aws:PrincipalTag/grant_id")):
            return False
        dates = cond.get("DateLessThan") or {}
        cutoff, until = _parse_time(dates.get("aws:TokenIssueTime")), _parse_time(dates.get("aws:CurrentTime"))
        if cutoff is None or (issued_at is not None and not issued_at < cutoff):
            return False
        if "aws:CurrentTime" in dates and (until is None or (expires_at is not None and until < expires_at)):
            return False
        return True

    def _covering(self, doc: dict | None, cred: IssuedCredential) -> dict | None:
        if not doc:
            return None
        issued_at = _parse_time(cred.details.get("issued_at"))
        for st in _as_list(doc.get("Statement") or []):
            if isinstance(st, dict) and self._statement_covers(st, cred.grant_id, issued_at, cred.expires_at):
                return st
        return None

    def _expired(self, cred: IssuedCredential) -> bool:
        return cred.expires_at is not None and self._now() > cred.expires_at + CLOCK_SKEW

    def _policy_names(self, role_name: str) -> list[str]:
        """The role's inline policy names; [] when the role is gone (and its documents with it)."""
        try:
            names: list[str] = []
            for page in self._iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
                names.extend(page.get("PolicyNames") or [])
            return names
        except Exception as e:
            if is_error(e, "NoSuchEntity"):
                return []
            raise translate(e, "list the role's inline policies") from e

    def _prune(self, role_name: str, keep: str) -> list[str]:
        """Delete revocation documents whose sessions have all expired (their aws:CurrentTime bound passed)."""
        now, pruned = self._now(), []
        names = self._policy_names(role_name)
        for name in names:
            if not name.startswith(REVOCATION_POLICY_PREFIX) or name == keep:
                continue
            doc = self._read_policy(role_name, name)
            if doc is None:  # another worker pruned it first
                continue
            try:
                bounds = [
                    _parse_time(((st.get("Condition") or {}).get("DateLessThan") or {}).get("aws:CurrentTime"))
                    for st in _as_list(doc.get("Statement") or [])
                    if isinstance(st, dict)
                ]
                if bounds and all(b is not None and b < now for b in bounds):
                    self._iam.delete_role_policy(RoleName=role_name, PolicyName=name)
                    pruned.append(name)
            except Exception as e:
                if is_error(e, "NoSuchEntity"):  # another worker pruned it first
                    continue
                raise translate(e, "prune lapsed revocation policies") from e
        return pruned

    def revoke(self, cred: IssuedCredential) -> bool:
        """Deny the grant's sessions issued before now (+ skew margin); False when there is nothing
        left to deny: already denied, or every session of the grant has expired on its own."""
        role_name = self._role_name(cred)
        with self._roles_lock:
            self._roles.add(cred.details["role_arn"])
        if self._expired(cred):
            return False
        if self._covering(self._read_revocation(role_name, cred.grant_id), cred):
            return False
        now = self._now()
        until = (cred.expires_at or now + timedelta(seconds=STS_MAX_SECONDS)) + CLOCK_SKEW
        statement = {
            "Sid": "JitaccessRevokedGrant",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:PrincipalTag/grant_id": cred.grant_id},
                # sessions of this grant issued before the revocation (a margin for clock skew:
                # no session of a revoked grant is ever issued afterwards), until all have expired
                "DateLessThan": {"aws:TokenIssueTime": _iso(now + CLOCK_SKEW), "aws:CurrentTime": _iso(until)},
            },
        }
        name = revocation_policy_name(cred.grant_id)
        self._prune(role_name, keep=name)
        try:
            self._iam.put_role_policy(
                RoleName=role_name,
                PolicyName=name,
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":")),
            )
        except Exception as e:
            if is_error(e, "NoSuchEntity"):
                return False  # the role is gone: its sessions have no permissions left
            raise translate(e, "write the revocation policy on the role") from e
        return True

    def verify_revoked(self, cred: IssuedCredential) -> tuple[bool, str]:
        role_name = self._role_name(cred)
        name = revocation_policy_name(cred.grant_id)
        st = self._covering(self._read_revocation(role_name, cred.grant_id), cred)
        expiry = _iso(cred.expires_at) if cred.expires_at else "unknown"
        if st is not None:
            dates = st["Condition"]["DateLessThan"]
            return True, (
                f"get_role_policy({role_name}, {name}): Deny * for sessions tagged grant_id={cred.grant_id} "
                f"issued before {dates['aws:TokenIssueTime']} (in force until {dates.get('aws:CurrentTime')}); "
                f"the STS credentials would have expired on their own at {expiry}"
            )
        if self._expired(cred):
            return True, f"STS session expired on its own at {expiry} (no deny needed)"
        if not self._role_exists(role_name):
            return True, f"role {role_name} no longer exists: its sessions have no permissions"
        return False, (
            f"get_role_policy({role_name}, {name}): no deny statement for grant {cred.grant_id}; session live until {expiry}"
        )

    def _role_exists(self, role_name: str) -> bool:
        try:
            self._iam.get_role(RoleName=role_name)
            return True
        except Exception as e:
            if is_error(e, "NoSuchEntity"):
                return False
            raise translate(e, "read the role") from e

    def verify_active(self, cred: IssuedCredential) -> tuple[bool, str]:
        role_name = self._role_name(cred)
        if cred.expires_at is None or self._now() >= cred.expires_at:
            return False, f"STS session {cred.reference} has expired ({cred.expires_at})"
        if not self._role_exists(role_name):
            return False, f"role {role_name} does not exist"
        if self._covering(self._read_revocation(role_name, cred.grant_id), cred):
            return False, f"role {role_name} carries a revocation deny for grant {cred.grant_id}"
        return True, (
            f"keys authenticated as {cred.details.get('verified_caller')} (get_caller_identity); role {role_name} "
            f"exists with no revocation deny for grant {cred.grant_id}; STS expiry {_iso(cred.expires_at)}"
        )

    def list_managed(self, grant_id: str | None = None) -> list[IssuedCredential]:
        """STS cannot list a role's live sessions, so the only thing at AWS that names a grant is
        its revocation document. Returns those grants (for the roles this worker knows: the
        `roles` given at construction plus any it has used), each as the deterministic session
        reference; live, unrevoked sessions are found through the grants' own records, not here."""
        found = []
        with self._roles_lock:
            roles = sorted(self._roles)
        for role_arn in roles:
            m = ROLE_ARN.match(role_arn)
            if m is None:
                continue
            account, role_name = m.group(1), m.group(2)
            for name in self._policy_names(role_name):
                if not name.startswith(REVOCATION_POLICY_PREFIX):
                    continue
                doc = self._read_policy(role_name, name)
                for st in _as_list((doc or {}).get("Statement") or []):
                    cond = (st.get("Condition") or {}) if isinstance(st, dict) else {}
                    dates = cond.get("DateLessThan") or {}
                    for gid in _as_list((cond.get("StringEquals") or {}).get("aws:PrincipalTag/grant_id")):
                        if not isinstance(gid, str) or (grant_id and gid != grant_id):
                            continue
                        until = _parse_time(dates.get("aws:CurrentTime"))
                        found.append(
                            IssuedCredential(
                                provider=self.name,
                                grant_id=gid,
                                reference=self._assumed_arn(role_arn, account, role_name, role_session_name(gid)),
                                details={
                                    "kind": "sts role session (revoked)",
                                    "role_arn": role_arn,
                                    "session_name": role_session_name(gid),
                                    "revocation_policy": name,
                                    "not_issued_after": dates.get("aws:TokenIssueTime"),
                                },
                                expires_at=until - CLOCK_SKEW if until else None,
                            )
                        )
        return found
