"""Use cases between the entrypoints (API, CLI, console) and the workflows and ledger.

Each use case works over the small async ports in `ports` (workflows, evidence, delegations,
clock) and raises a domain `Refusal` / `RequestRefused`, `NotFound`, `UpdateFailed` or `RunFailed`
(`errors`); `use_cases.build_use_cases` builds them all. Adapters live with the entrypoint
(jitaccess.api.gateway, jitaccess.api.stores); fakes in tests/unit/service_fakes.py."""
