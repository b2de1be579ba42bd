from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import DEFAULT_JWT_SECRET, Settings


def test_default_jwt_secret_is_refused_outside_development() -> None:
    assert Settings(env="development", jwt_secret=DEFAULT_JWT_SECRET).jwt_secret == DEFAULT_JWT_SECRET
    for env in ("production", "test"):
        with pytest.raises(ValidationError, match="CHATAI_JWT_SECRET"):
            Settings(env=env, jwt_secret=DEFAULT_JWT_SECRET)


def test_signup_credit_defaults_by_environment() -> None:
    assert Settings(env="production", jwt_secret="x" * 40).signup_credit_micros == 0
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
