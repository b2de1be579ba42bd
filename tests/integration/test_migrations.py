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


def test_every_assistant_keeps_a_priced_chat_model_and_a_prompt_version(databases: DatabaseFactory) -> None:
    """0013: models in use without a price of their own get one (the default row's), assistants set to an
    embedding model move to the default chat model, and each assistant's prompt becomes its first version."""
    name = databases.create_empty("mig")
    url = databases.url(name)
    owner = "00000000-0000-0000-0000-0000000000a1"
    try:
        config = alembic_config(url)
        command.upgrade(config, "0011")
        libpq = url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO users (id, email, password_hash, role, is_active)"
                " VALUES (%s, 'm@example.com', 'x', 'user', true)",
                (owner,),
            )
            for model in ("legacy-model", "all-MiniLM-L6-v2", "*"):
                conn.execute(
                    "INSERT INTO assistants (id, owner_id, name, system_prompt, model, temperature,"
                    " max_tokens, public_key, updated_at) VALUES (gen_random_uuid(), %s, %s, 'Be kind.', %s,"
                    " 0.7, 100, %s, now())",
                    (owner, model, model, f"pk_{model}"),
                )
        command.upgrade(config, "head")
        with psycopg.connect(libpq) as conn:
            models = dict(conn.execute("SELECT name, model FROM assistants").fetchall())
            prices = {
                row[0]: row[1:]
                for row in conn.execute(
                    "SELECT model, kind, input_micros_per_mtok, output_micros_per_mtok FROM prices"
                ).fetchall()
            }
            versions = conn.execute(
                "SELECT count(*) FROM assistants a JOIN assistant_prompts p ON p.id = a.prompt_version_id"
                " WHERE p.system_prompt = 'Be kind.'"
            ).fetchone()
        assert models == {
            "legacy-model": "legacy-model",
            "all-MiniLM-L6-v2": "gpt-4o-mini",
            "*": "gpt-4o-mini",
        }
        assert prices["legacy-model"] == prices["gpt-4o-mini"] == ("chat", 150_000, 600_000)
        assert prices["*"][0] == prices["all-MiniLM-L6-v2"][0] == "embedding"
        assert versions == (3,)
    finally:
        databases.drop(name)
