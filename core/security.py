"""Password hashing (argon2id), access tokens (JWT) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.settings import get_settings

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class TokenError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AccessClaims:
    subject: uuid.UUID
    kind: str  # "user" or "widget"
    scope: dict[str, Any]
    jti: str = ""
    issued_at: float = 0.0  # fractional seconds, so "tokens issued before" cuts are exact
    expires_at: int = 0


def create_access_token(
    subject: uuid.UUID, kind: str = "user", ttl: int | None = None, **scope: Any
) -> tuple[str, int]:
    settings = get_settings()
    now = time.time()
    ttl = ttl or settings.access_token_ttl_seconds
    claims = {
        "sub": str(subject),
        "kind": kind,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": round(now, 3),
        "exp": int(now) + ttl,
        "jti": uuid.uuid4().hex,
        **scope,
    }
    token = jwt.encode(
        claims,
        settings.jwt_secret,
        algorithm=settings.jwt_algorithms[0],
        headers={"kid": settings.jwt_key_id},
    )
    return token, ttl


def _verification_key(token: str) -> str:
    """The secret of the token's ``kid``: the current key or one of the previous keys still accepted.

    A token without ``kid`` (issued before keys had ids) is checked against the current key.
    """
    settings = get_settings()
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise TokenError("unauthorized", "The access token is not valid") from exc
    if kid is None or kid == settings.jwt_key_id:
        return settings.jwt_secret
    if isinstance(kid, str) and kid in settings.jwt_previous_keys:
        return settings.jwt_previous_keys[kid]
    raise TokenError("unauthorized", "The access token is not valid")


def decode_access_token(token: str) -> AccessClaims:
    settings = get_settings()
    try:
        claims = jwt.decode(
            token,
            _verification_key(token),
            # Only the configured HMAC algorithms: never "none", never an algorithm the header picks.
            algorithms=list(settings.jwt_algorithms),
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token_expired", "The access token has expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("unauthorized", "The access token is not valid") from exc
    try:
        subject = uuid.UUID(claims.pop("sub"))
        jti, issued_at, expires_at = str(claims.pop("jti")), float(claims.pop("iat")), int(claims.pop("exp"))
    except (TypeError, ValueError) as exc:
        raise TokenError("unauthorized", "The access token is not valid") from exc
    kind = claims.pop("kind", "user")
    for standard in ("iss", "aud", "nbf"):
        claims.pop(standard, None)
    return AccessClaims(subject, kind, claims, jti=jti, issued_at=issued_at, expires_at=expires_at)


def new_refresh_token() -> tuple[str, str]:
    """A random refresh token and the hash stored for it (the token itself is never stored)."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_secret(secret: str) -> str:
    """What is stored of a random, high-entropy secret (refresh tokens, webhook secrets): its SHA-256,
    which needs no salt or stretching because the secret cannot be guessed."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_refresh_token(token: str) -> str:
    return hash_secret(token)
