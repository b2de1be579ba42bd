"""Pure pieces of the Telegram integration: message splitting and encrypted tokens with key rotation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from core import secretbox
from core.settings import get_settings
from services.telegram.splitting import MAX_MESSAGE_CHARS, split_message

SENTENCE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit."


def test_short_text_is_one_part_and_blank_text_none() -> None:
    assert split_message("  hello  ") == ["hello"]
    assert split_message(" \n ") == []


def test_long_text_splits_on_paragraphs_first() -> None:
    paragraphs = ["A" * 3000, "B" * 3000, "C" * 100]
    parts = split_message("\n\n".join(paragraphs))
    assert parts == [paragraphs[0], "B" * 3000 + "\n\n" + "C" * 100]


def test_a_long_paragraph_splits_on_sentences() -> None:
    text = " ".join([SENTENCE] * 170)  # about 9,700 characters, no paragraph breaks
    parts = split_message(text)
    assert len(parts) == 3
    assert all(len(p) <= MAX_MESSAGE_CHARS for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(parts) == text


def test_text_without_boundaries_is_cut_at_the_limit() -> None:
    parts = split_message("x" * 9000)
    assert [len(p) for p in parts] == [4096, 4096, 808]


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("CHATAI_TELEGRAM_TOKEN_KEYS", old)
    get_settings.cache_clear()
    secretbox.reset()
    yield [old, new]
    get_settings.cache_clear()
    secretbox.reset()


def test_tokens_are_encrypted_and_keys_rotate(keys: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = keys
    token = "123456:ABCdefGhIJKlmNoPQRstuVWXyz0123456789"
    sealed = secretbox.encrypt(token)
    assert token.encode() not in sealed
    assert secretbox.decrypt(sealed) == token

    # A new key goes first: old rows still decrypt, and rotate re-encrypts them under the new key.
    monkeypatch.setenv("CHATAI_TELEGRAM_TOKEN_KEYS", f"{new},{old}")
    get_settings.cache_clear()
    secretbox.reset()
    assert secretbox.decrypt(sealed) == token
    rotated = secretbox.rotate(sealed)
    monkeypatch.setenv("CHATAI_TELEGRAM_TOKEN_KEYS", new)
    get_settings.cache_clear()
    secretbox.reset()
    assert secretbox.decrypt(rotated) == token
    with pytest.raises(secretbox.InvalidToken):
        secretbox.decrypt(sealed)


def _reload() -> None:
    get_settings.cache_clear()
    secretbox.reset()


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.delenv("CHATAI_TELEGRAM_TOKEN_KEYS", raising=False)
    monkeypatch.setenv("CHATAI_DATA_DIR", str(tmp_path))
    _reload()
    yield tmp_path
    _reload()


def test_token_keys_are_not_derived_from_the_jwt_secret(
    no_keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "123456:ABCdefGhIJKlmNoPQRstuVWXyz0123456789"
    sealed = secretbox.encrypt(token)
    # Rotating the signing key leaves every bot token readable.
    monkeypatch.setenv("CHATAI_JWT_SECRET", "a-completely-new-signing-secret-of-40-bytes")
    _reload()
    assert secretbox.decrypt(sealed) == token
    # Without configured keys (development, tests) the key is the data dir's own, made once.
    assert (no_keys / secretbox.KEY_FILE).stat().st_mode & 0o077 == 0


def test_tokens_sealed_with_the_old_derived_key_still_open_until_rotated(
    keys: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "123456:ABCdefGhIJKlmNoPQRstuVWXyz0123456789"
    legacy = Fernet(secretbox.legacy_keys(get_settings())[0]).encrypt(token.encode())
    assert secretbox.decrypt(legacy) == token
    rotated = secretbox.rotate(legacy)
    monkeypatch.setenv("CHATAI_TELEGRAM_TOKEN_LEGACY_KEYS", "false")
    _reload()
    assert secretbox.decrypt(rotated) == token
    with pytest.raises(secretbox.InvalidToken):
        secretbox.decrypt(legacy)
