"""Secrets at rest (Telegram bot tokens): Fernet with key rotation.

``CHATAI_TELEGRAM_TOKEN_KEYS`` lists Fernet keys, newest first: the first encrypts, every one decrypts,
so a new key can be put in front and old rows re-encrypted with ``rotate`` before the old key is dropped.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.settings import get_settings

__all__ = ["InvalidToken", "decrypt", "encrypt", "rotate"]


@lru_cache
def _box() -> MultiFernet:
    settings = get_settings()
    if settings.telegram_token_keys:
        keys = [k.strip() for k in settings.telegram_token_keys.split(",") if k.strip()]
    else:
        # No key configured: one derived from the JWT secret (which must be real outside development).
        digest = hashlib.sha256(b"chatai-secretbox:" + settings.jwt_secret.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
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
