"""jitaccess: just-in-time access fulfilment on Temporal with proven revocation."""

__version__ = "0.1.0"
