-- The lakehouse's PostgreSQL roles and databases, run by the superuser (deploy/postgres/10-roles.sh,
-- psql variables: owner, dagster, serving and their *_password, catalog_db, dagster_db). Idempotent.
--
--   owner     owns the catalog database (LAKEHOUSE_PG_DB): the code server and the runs it starts
--             (builds, maintenance, policy and passwords: `docker-compose exec code-server lakehouse
--             ...`) and the catalog-init one-shot, which creates the tables and runs
--             serving-grants.sql. It is also a member of `dagster`: the runs write Dagster's event
--             log with the same connection password (libpq's PGPASSWORD is one per process), and
--             in Dagster's database its sessions act as `dagster`, so what they create is dagster's.
--   dagster   owns Dagster's database (DAGSTER_PG_DB): the webserver and the daemon, nothing else.
--   serving   `lakehouse serve` and `lakehouse dashboard`: CONNECT to the catalog database only;
--             what it may read and write there is serving-grants.sql's (run once the tables exist).
-- None of them is a superuser or may create roles or databases; PUBLIC may not connect to either
-- database nor use their public schemas.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY[:'owner', :'dagster', :'serving']) AS r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec

ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
    PASSWORD :'owner_password';
ALTER ROLE :"dagster" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'dagster_password';
ALTER ROLE :"serving" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    NOINHERIT PASSWORD :'serving_password' CONNECTION LIMIT 64;
GRANT :"dagster" TO :"owner";

SELECT format('CREATE DATABASE %I OWNER %I', :'catalog_db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'catalog_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'dagster_db', :'dagster')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dagster_db') \gexec
ALTER DATABASE :"catalog_db" OWNER TO :"owner";
ALTER DATABASE :"dagster_db" OWNER TO :"dagster";
REVOKE ALL ON DATABASE :"catalog_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"dagster_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"catalog_db" TO :"owner";
GRANT CONNECT ON DATABASE :"catalog_db" TO :"serving";
GRANT CONNECT, TEMPORARY ON DATABASE :"dagster_db" TO :"dagster";
ALTER ROLE :"owner" IN DATABASE :"dagster_db" SET role TO :'dagster';
-- the server's own databases are the superuser's
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;

\connect :"catalog_db"
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"owner";
GRANT USAGE ON SCHEMA public TO :"serving";

\connect :"dagster_db"
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO :"dagster";
