"""Evidence for auditors, read straight from the ledger (no API, no Temporal): the offline
verifier's loading side, per-grant evidence bundles, SIEM exports and the governance report.
The pure rules live in jitaccess.domain.evidence and jitaccess.domain.merkle."""
