"""Operations: metrics, tracing, readiness, SIEM severity, and the deployment helpers
(OpenBao first-start init/unseal, Temporal namespace setup) the compose file and tests share."""
