from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import DEFAULT_JWT_SECRET, Settings, refuse_exposed_development

FERNET_KEY = "x0u9Zy4Gp9mQ0T8c3Qj6dX2b5H1uY7kL2sV4wE6rT8A="
PRODUCTION = {"env": "production", "jwt_secret": "x" * 40, "telegram_token_keys": FERNET_KEY}


def test_default_jwt_secret_is_refused_outside_development() -> None:
    assert Settings(env="development", jwt_secret=DEFAULT_JWT_SECRET).jwt_secret == DEFAULT_JWT_SECRET
    for env in ("production", "test"):
        with pytest.raises(ValidationError, match="CHATAI_JWT_SECRET"):
            Settings(env=env, jwt_secret=DEFAULT_JWT_SECRET)


def test_signup_credit_defaults_by_environment() -> None:
    assert Settings(**PRODUCTION).signup_credit_micros == 0
    assert Settings(env="development").signup_credit_micros == 5_000_000


def test_conventional_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/chatai")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/2")
    monkeypatch.setenv("CELERY_BROKER_URL", "amqp://guest@mq.example//")
    monkeypatch.setenv("CHATAI_PORT", "9000")
    settings = Settings()
    assert settings.database_url == "postgresql://db.example/chatai"
    assert settings.broker_url == "amqp://guest@mq.example//"
    assert settings.port == 9000
    assert settings.visibility_timeout_seconds > settings.reply_time_limit_seconds


def test_secrets_shorter_than_32_bytes_are_refused_outside_development() -> None:
    for env in ("production", "test"):
        with pytest.raises(ValidationError, match="CHATAI_JWT_SECRET must be at least 32 bytes"):
            Settings(**{**PRODUCTION, "env": env, "jwt_secret": "s" * 31})
        with pytest.raises(ValidationError, match=r"CHATAI_JWT_PREVIOUS_KEYS\[k0\]"):
            Settings(**{**PRODUCTION, "env": env, "jwt_previous_keys": {"k0": "short"}})
        assert Settings(**{**PRODUCTION, "env": env, "jwt_secret": "s" * 32}).jwt_secret == "s" * 32
    assert Settings(env="development", jwt_secret="short").jwt_secret == "short"


def test_production_needs_bot_token_keys_of_its_own() -> None:
    with pytest.raises(ValidationError, match="CHATAI_TELEGRAM_TOKEN_KEYS"):
        Settings(**{**PRODUCTION, "telegram_token_keys": None})


def test_an_unset_env_refuses_the_development_secret_on_a_non_loopback_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHATAI_ENV", raising=False)
    monkeypatch.delenv("CHATAI_JWT_SECRET", raising=False)
    for host in ("0.0.0.0", "10.1.2.3", "::", "chat.example.com"):
        with pytest.raises(ValidationError, match="CHATAI_ENV unset"):
            Settings(_env_file=None, host=host)
        with pytest.raises(ValueError, match="CHATAI_ENV unset"):
            refuse_exposed_development(Settings(_env_file=None), host)
    for host in ("127.0.0.1", "::1", "localhost"):
        refuse_exposed_development(Settings(_env_file=None), host)
    # Chosen on purpose, or with a real secret, it starts.
    refuse_exposed_development(Settings(_env_file=None, env="development"), "0.0.0.0")
    refuse_exposed_development(Settings(_env_file=None, jwt_secret="r" * 40), "0.0.0.0")
