"""Worker process wiring: the one place that builds adapters."""
