#!/bin/sh
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d), after it
# created POSTGRES_DB (the lakehouse catalog) for POSTGRES_USER: Dagster's instance database beside
# it, DAGSTER_PG_DB, owned by the same role. Connection settings come from libpq's environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v db="$DAGSTER_PG_DB" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
