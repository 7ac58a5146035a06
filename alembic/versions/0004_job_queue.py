"""job queue (procrastinate schema)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:20:00

Creates the tables, types, functions and triggers of the procrastinate job queue by running the
installed procrastinate's own `schema.sql`. That file belongs to one procrastinate version, hence
the `procrastinate>=3.10,<3.11` pin in pyproject.toml and the checksum check below: a different
schema would make fresh databases differ from upgraded ones. Upgrading procrastinate means a new
migration that applies procrastinate's migration files (`procrastinate/sql/migrations/*.sql`)
between the two versions, and freezing the SQL this migration runs.

Its objects all start with `procrastinate_`; alembic/env.py keeps them out of autogenerate.
"""

import hashlib
from collections.abc import Sequence

from alembic import op
from sqlalchemy.util import await_only

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# sha256 of procrastinate 3.10.0's sql/schema.sql.
SCHEMA_SHA256 = "c70ec4b400a60ad9592787653aae5ae77ae41bf801d56b5bd2712751a07f2009"


def _schema_sql() -> str:
    from procrastinate.schema import SchemaManager

    sql = SchemaManager.get_schema()
    digest = hashlib.sha256(sql.encode("utf-8")).hexdigest()
    if digest != SCHEMA_SHA256:
        import procrastinate

        raise RuntimeError(
            f"procrastinate {procrastinate.__version__} ships a different schema than the one "
            "migration 0004 was written for (procrastinate 3.10.0). Install the pinned version "
            "(pip install -e .) or see this migration's docstring for how to upgrade."
        )
    return sql


def _execute_script(sql: str) -> None:
    """Run a multi-statement script (with $$-quoted function bodies) on the migration's
    connection, inside its transaction. asyncpg's prepared statements take one command only, so
    the script goes through the driver's simple-query `execute()`."""
    bind = op.get_bind()
    driver_connection = bind.connection.driver_connection
    if bind.dialect.driver == "asyncpg":
        await_only(driver_connection.execute(sql))  # type: ignore[union-attr]
    else:  # psycopg and psycopg2 accept several statements in one execute()
        bind.exec_driver_sql(sql)


def upgrade() -> None:
    _execute_script(_schema_sql())


# Everything named procrastinate_* in the current schema: tables (their triggers and indexes go
# with them), then functions and procedures, then enum and composite types. Found in the catalog
# rather than listed, so a downgrade also removes what a later procrastinate version added.
DROP_ALL = r"""
DO $$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT c.oid::regclass AS name
        FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p')
          AND c.relname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS %s CASCADE', obj.name);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS name
        FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.proname LIKE 'procrastinate\_%'
    LOOP
        EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', obj.name);
    END LOOP;
    FOR obj IN
        SELECT t.oid::regtype AS name
        FROM pg_type t
        LEFT JOIN pg_class c ON c.oid = t.typrelid
        WHERE t.typnamespace = current_schema()::regnamespace
          AND t.typname LIKE 'procrastinate\_%'
          AND (t.typtype = 'e' OR (t.typtype = 'c' AND c.relkind = 'c'))
    LOOP
        EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', obj.name);
    END LOOP;
END;
$$;
"""


def downgrade() -> None:
    _execute_script(DROP_ALL)
