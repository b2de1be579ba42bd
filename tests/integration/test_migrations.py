"""The schema comes from migrations alone: upgrade from empty, models and migrations agree, pgvector is on."""

from __future__ import annotations

import psycopg
from alembic import command
from packaging.version import Version

from core.db import to_libpq
from tests.fixtures.database import DatabaseFactory, alembic_config


def test_upgrade_from_empty_then_check_and_downgrade(databases: DatabaseFactory) -> None:
    name = databases.create_empty("mig")
    url = databases.url(name)
    try:
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.check(config)  # raises if the models differ from the migrated schema
        with psycopg.connect(to_libpq(url)) as conn:
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            # Compared as versions: as strings "0.10" would sort before "0.8".
            assert version is not None and Version(version[0]) >= Version("0.8")
        command.downgrade(config, "base")
        command.upgrade(config, "head")
    finally:
        databases.drop(name)
