#!/bin/sh
# First start of the compose PostgreSQL: one role and database for the jitaccess ledger, one role
# for Temporal (its auto-setup creates the `temporal` and `temporal_visibility` databases).
# Passwords come from the mounted secret files (python -m jitaccess.ops.make_secrets).
set -eu
ledger_pw=$(cat /run/secrets/jitaccess_db_password)
temporal_pw=$(cat /run/secrets/temporal_db_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v ledger_pw="$ledger_pw" -v temporal_pw="$temporal_pw" <<'SQL'
CREATE ROLE jitaccess LOGIN PASSWORD :'ledger_pw';
CREATE DATABASE jitaccess OWNER jitaccess;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_pw';
SQL
