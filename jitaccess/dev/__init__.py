"""Development-only helpers: the dev stack's identity provider (OpenBao) and how dev users sign in."""
