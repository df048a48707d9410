"""The Temporal search attributes a grant keeps current (visibility queries such as
`Requester='alice' AND GrantState='active'`). Pure: names, types and the values of one grant."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jitaccess.domain.grant import Grant

# name -> Temporal type (registered by `dev up`, the compose `temporal-setup` service, the tests)
SEARCH_ATTRIBUTES: dict[str, str] = {
    "Requester": "Keyword",
    "Entitlement": "Keyword",
    "GrantState": "Keyword",
    "BreakGlass": "Bool",
    "Provider": "Keyword",
}


def grant_search_values(g: Grant) -> dict[str, str | bool]:
    """What a grant's search attributes say now (the provider only once the entitlement names one)."""
    values: dict[str, str | bool] = {
        "Requester": g.requester.id,
        "Entitlement": g.entitlement,
        "GrantState": g.state.value,
        "BreakGlass": bool(g.break_glass),
    }
    if g.provider:
        values["Provider"] = g.provider
    return values
