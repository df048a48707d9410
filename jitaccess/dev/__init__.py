"""Development-only: the embedded dev stack (servers, seeding) and its identity provider (OpenBao,
jitaccess.dev.identity) with the way dev users sign in to it. Never used by production code."""
