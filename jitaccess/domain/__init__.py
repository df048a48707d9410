"""Pure model and rules: no I/O, safe to import inside the Temporal workflow sandbox."""
