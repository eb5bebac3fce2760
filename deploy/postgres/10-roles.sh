#!/bin/sh
# Run once by the postgres image on an empty data volume (docker-compose.yml mounts deploy/postgres
# as /docker-entrypoint-initdb.d; the image runs the *.sh files at its top level and ignores sql/),
# as the superuser: the lakehouse's roles and databases, from sql/roles.sql. Only the postgres
# container holds the superuser's password; the roles' passwords are set here once (change one later
# with ALTER ROLE ... PASSWORD, then in the environment of the services that use it).
# Connection settings come from libpq's environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner="$LAKEHOUSE_PG_USER" -v owner_password="$LAKEHOUSE_PG_PASSWORD" \
    -v dagster="$DAGSTER_PG_USER" -v dagster_password="$DAGSTER_PG_PASSWORD" \
    -v serving="$LAKEHOUSE_SERVING_PG_USER" -v serving_password="$LAKEHOUSE_SERVING_PG_PASSWORD" \
    -v catalog_db="$LAKEHOUSE_PG_DB" -v dagster_db="$DAGSTER_PG_DB" \
    -f "${LAKEHOUSE_INITDB_DIR:-/docker-entrypoint-initdb.d}/sql/roles.sql"
