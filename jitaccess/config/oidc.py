"""Which OpenID Connect issuers the API trusts (`JITACCESS_OIDC_ISSUERS`, a JSON list).

One entry per (issuer, audience): the API accepts a bearer JWT only when its `iss` and `aud` match
an entry, it is signed by a key from that issuer's JWKS (found through discovery) with an allowed
algorithm, and `exp`/`nbf`/`iat` hold within the clock skew. What kind of principal the token
stands for (a person or a workload) is the entry's `kind`: never a claim in the token.

    JITACCESS_OIDC_ISSUERS='[{"issuer": "https://example.okta.com/oauth2/default",
                              "audience": "api://jitaccess", "groups_claim": "groups",
                              "subject_claim": "email", "kind": "human"}]'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Public-key algorithms only: an HMAC algorithm would make the issuer's *public* key a shared
# secret (the classic "HS256 signed with the public key" forgery); `none` is no signature at all.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class OidcIssuer(BaseModel):
    """One trusted issuer and audience, and how its tokens map onto a principal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1, description="exactly the `iss` claim, e.g. https://login.example.com")
    audience: tuple[str, ...] = Field(min_length=1, description="accepted `aud` values (the API's client ID)")
    kind: Literal["human", "service"] = "human"
    subject_claim: str = "sub"  # the principal's ID: `sub`, or e.g. `email` / `preferred_username`
    # a list of group names (or a space/comma separated string; a dotted path reaches into objects,
    # e.g. Keycloak's `realm_access.roles`); null: the IdP sends none (Google), groups come from the
    # directory (JITACCESS_USERS_FILE) by principal ID
    groups_claim: str | None = "groups"
    owner_claim: str | None = None  # a workload's accountable owner, when the IdP carries it
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    # claims that must have exactly these values, e.g. {"hd": "example.com"} for Google Workspace
    # (only your domain's accounts), {"tid": "<tenant-id>"} for a multi-tenant Entra app
    required_claims: dict[str, str] = {}
    name: str = ""  # a label for messages and evidence; defaults to the issuer URL
    discovery_url: str | None = None  # default: <issuer>/.well-known/openid-configuration
    jwks_uri: str | None = None  # skip discovery and use this JWKS

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return (v,) if isinstance(v, str) else v

    @field_validator("issuer", "discovery_url", "jwks_uri")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return v

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in v if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(
                f"algorithms {bad} are not allowed: use public-key algorithms only ({', '.join(ASYMMETRIC_ALGORITHMS)})"
            )
        if not v:
            raise ValueError("at least one algorithm")
        return v

    @property
    def label(self) -> str:
        """How messages name this issuer: its configured name, else its URL."""
        return self.name or self.issuer

    @property
    def discovery(self) -> str:
        """The OpenID discovery document's URL: as configured, else the issuer's well-known one."""
        return self.discovery_url or self.issuer.rstrip("/") + "/.well-known/openid-configuration"
