"""The `catalog-init` one-shot of docker-compose.yml, as the catalog's owner (never the superuser):
create the catalog's tables (the lakehouse's bookkeeping, pyiceberg's catalog, governance), then
apply deploy/postgres/sql/serving-grants.sql for the serving role LAKEHOUSE_SERVING_PG_USER. Run on
every `docker-compose up` before the code server, `serve` and `dashboard` start; idempotent.

    python deploy/catalog_init.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

GRANTS = Path(__file__).resolve().parent / "postgres" / "sql" / "serving-grants.sql"


def create_tables(url: str) -> None:
    """Every table a lakehouse process opens, as the lakehouse creates them itself."""
    from pyiceberg.catalog.sql import SqlCatalogBaseTable

    from lakehouse.governance.store import GovernanceDB
    from lakehouse.storage.catalog import CatalogDB, schema_change

    catalog = CatalogDB(url)
    GovernanceDB(url)
    with schema_change(catalog.engine) as conn:  # whatever the table format: serving reads either
        SqlCatalogBaseTable.metadata.create_all(conn)


def grant_serving(url: str, role: str, grants: Path = GRANTS) -> None:
    """serving-grants.sql for `role`, in one transaction."""
    from lakehouse.storage.catalog import CatalogDB

    raw = CatalogDB(url).engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("SELECT set_config('lakehouse.serving_role', %s, true)", (role,))
            cur.execute(grants.read_text())
        raw.commit()
    finally:
        raw.close()


def main() -> int:
    from lakehouse.core.settings import LakehouseSettings, redacted_url

    settings = LakehouseSettings.from_env()
    url = settings.catalog_uri
    if not url.startswith("postgresql"):
        print(
            f"catalog-init: {redacted_url(url)} is no PostgreSQL catalog: nothing to grant", file=sys.stderr
        )
        return 1
    role = os.environ.get("LAKEHOUSE_SERVING_PG_USER", "").strip()
    if not role:
        print("catalog-init: set LAKEHOUSE_SERVING_PG_USER, the serving role", file=sys.stderr)
        return 1
    create_tables(url)
    grant_serving(url, role)
    print(f"catalog-init: tables of {redacted_url(url)} ready; grants for {role} applied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
