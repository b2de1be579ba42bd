"""Secrets at rest (Telegram bot tokens): Fernet with key rotation, on keys of their own.

``CHATAI_TELEGRAM_TOKEN_KEYS`` lists Fernet keys, newest first: the first encrypts, every one decrypts,
so a new key can be put in front and old rows re-encrypted with ``rotate`` before the old key is dropped.
Production requires the setting. In development and tests, unset means one key generated into
``CHATAI_DATA_DIR/telegram-token.key`` on first use (every process of one data dir shares it).

Nothing is derived from the JWT secret any more, so rotating that key leaves every bot decryptable.
Rows written when the key was derived from it still decrypt while
``CHATAI_TELEGRAM_TOKEN_LEGACY_KEYS`` is on (the default): the keys derived from the current and the
previous JWT secrets come last, for decryption only. ``chatai rotate-bot-tokens`` re-encrypts every
row under the first key; after it, turn the legacy keys off.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.settings import Settings, get_settings

__all__ = ["InvalidToken", "decrypt", "encrypt", "rotate"]

KEY_FILE = "telegram-token.key"


def _generated_key(data_dir: Path) -> str:
    """The data dir's own key, created once; a process that loses the race reads the winner's."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = data_dir / f".{KEY_FILE}.{os.getpid()}"
        draft.write_bytes(Fernet.generate_key())
        draft.chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)  # atomic: fails if another process got there first
        draft.unlink()
    return path.read_text().strip()


def legacy_keys(settings: Settings) -> list[str]:
    """The keys earlier versions derived from the JWT secrets (decryption only)."""
    secrets = [settings.jwt_secret, *settings.jwt_previous_keys.values()]
    return [
        base64.urlsafe_b64encode(hashlib.sha256(b"chatai-secretbox:" + s.encode()).digest()).decode()
        for s in secrets
    ]


@lru_cache
def _box() -> MultiFernet:
    settings = get_settings()
    if settings.telegram_token_keys:
        keys = [k.strip() for k in settings.telegram_token_keys.split(",") if k.strip()]
    else:  # development and tests only: the settings refuse this in production
        keys = [_generated_key(settings.data_dir)]
    if settings.telegram_token_legacy_keys:
        keys += legacy_keys(settings)
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> bytes:
    return _box().encrypt(plaintext.encode())


def decrypt(ciphertext: bytes) -> str:
    return _box().decrypt(ciphertext).decode()


def rotate(ciphertext: bytes) -> bytes:
    """The same secret encrypted under the current first key."""
    return _box().rotate(ciphertext)


def reset() -> None:
    _box.cache_clear()
