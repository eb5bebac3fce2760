-- What the serving role (`lakehouse serve`, `lakehouse dashboard`) may do in the catalog database.
-- Run by the catalog's owner once its tables exist (deploy/catalog_init.py, the catalog-init
-- one-shot, on every `docker-compose up`), in one transaction; idempotent. The role's name is the
-- session setting lakehouse.serving_role (catalog_init.py sets it; with psql:
-- psql -c "SET lakehouse.serving_role = 'lakehouse_serving'" -f serving-grants.sql).
--
-- It reads what a governed query reads: the catalog's bookkeeping (the lakehouse.* system tables),
-- pyiceberg's catalog, the governance tables, and the login verifiers of gov_credentials (the MySQL
-- handshake is checked against SHA1(SHA1(password)), so whoever checks logins holds them; it cannot
-- write them). It writes the audit and nothing else, and only forward:
--   gov_access_log   INSERT an attempt; complete an attempt still 'started' once (UPDATE of its
--                    outcome columns only, row security: from 'started' to another status); read
--                    only what the chain needs (id, row_hash, status). No DELETE, no TRUNCATE, no
--                    rewrite of a completed row or of who/what/when.
--   gov_access_ends  INSERT a completion; read the last entry's id and hash. Nothing else.
--   gov_project_settings  read; INSERT only the audit's two marks (the key's fingerprint, where
--                    completions start), never a project setting (masking on/off is one).
-- The audit key it holds lets it compute the chain's HMACs, so the chain cannot protect the trail
-- from this role; these grants do. Workers and leases (the writers' coordination) it cannot see.
DO $grants$
DECLARE
    serving text := current_setting('lakehouse.serving_role');
    readable text[] := ARRAY[
        'lakehouse_tables', 'lakehouse_files', 'lakehouse_conflicts', 'lakehouse_builds',
        'lakehouse_key_changes', 'lakehouse_build_failures', 'lakehouse_partition_days',
        'lakehouse_snapshot_pins', 'lakehouse_connections', 'lakehouse_datascan_tasks',
        'lakehouse_datascan_tables', 'lakehouse_datascan_conflicts',
        'iceberg_tables', 'iceberg_namespace_properties',
        'gov_roles', 'gov_users', 'gov_role_members', 'gov_grants', 'gov_masking_policies',
        'gov_masking_bindings', 'gov_policy_changes', 'gov_project_settings', 'gov_credentials'];
    audit_marks text[] := ARRAY['lakehouse.audit.key_fingerprint', 'lakehouse.audit.ends_from'];
    t text;
BEGIN
    IF serving IS NULL OR serving = '' THEN
        RAISE EXCEPTION 'set lakehouse.serving_role to the serving role''s name first';
    END IF;
    IF to_regclass('public.gov_access_log') IS NULL OR to_regclass('public.gov_access_ends') IS NULL
        OR to_regclass('public.gov_project_settings') IS NULL THEN
        RAISE EXCEPTION 'the governance tables do not exist yet: open the catalog first (catalog_init.py)';
    END IF;
    -- start from nothing: what an earlier release granted and this one does not is gone
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', serving);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', serving);
    FOREACH t IN ARRAY readable LOOP
        IF to_regclass(format('public.%I', t)) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON public.%I TO %I', t, serving);
        END IF;
    END LOOP;

    -- the access audit: append, complete once, read the chain's links
    EXECUTE format('GRANT SELECT (id, row_hash, status) ON gov_access_log TO %I', serving);
    EXECUTE format('GRANT INSERT (at, user_name, roles, kind, tables, masked_columns, rows, status, '
                   'reason, statement, finished_at, prev_id, prev_hash, row_hash, end_hash) '
                   'ON gov_access_log TO %I', serving);
    EXECUTE format('GRANT UPDATE (finished_at, tables, masked_columns, rows, status, reason, end_hash) '
                   'ON gov_access_log TO %I', serving);
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I',
                   pg_get_serial_sequence('gov_access_log', 'id'), serving);
    ALTER TABLE gov_access_log ENABLE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS lakehouse_serving_read ON gov_access_log;
    DROP POLICY IF EXISTS lakehouse_serving_append ON gov_access_log;
    DROP POLICY IF EXISTS lakehouse_serving_complete ON gov_access_log;
    EXECUTE format('CREATE POLICY lakehouse_serving_read ON gov_access_log FOR SELECT TO %I USING (true)', serving);
    EXECUTE format('CREATE POLICY lakehouse_serving_append ON gov_access_log FOR INSERT TO %I WITH CHECK (true)', serving);
    EXECUTE format('CREATE POLICY lakehouse_serving_complete ON gov_access_log FOR UPDATE TO %I '
                   'USING (status = %L) WITH CHECK (status <> %L)', serving, 'started', 'started');

    -- the chain of completions: append, read the last link
    EXECUTE format('GRANT SELECT (id, entry_hash) ON gov_access_ends TO %I', serving);
    EXECUTE format('GRANT INSERT (attempt_id, prev_id, prev_hash, entry_hash) ON gov_access_ends TO %I', serving);
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I',
                   pg_get_serial_sequence('gov_access_ends', 'id'), serving);

    -- project settings: read all; insert the audit's marks only
    EXECUTE format('GRANT INSERT ON gov_project_settings TO %I', serving);
    ALTER TABLE gov_project_settings ENABLE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS lakehouse_serving_read ON gov_project_settings;
    DROP POLICY IF EXISTS lakehouse_serving_audit_marks ON gov_project_settings;
    EXECUTE format('CREATE POLICY lakehouse_serving_read ON gov_project_settings FOR SELECT TO %I USING (true)', serving);
    EXECUTE format('CREATE POLICY lakehouse_serving_audit_marks ON gov_project_settings FOR INSERT TO %I '
                   'WITH CHECK (namespace = %L AND key = ANY (%L::text[]))', serving, '', audit_marks);
END
$grants$;
