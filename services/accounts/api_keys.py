"""API keys: an owner's servers call the ``/v1`` API with one, on the owner's behalf and balance.

A key is ``cak_`` plus random text; only its first characters (the lookup prefix, shown in lists) and a
SHA-256 of the whole key are stored. The key is random enough that a fast hash is safe, and the prefix
finds the row without scanning. A revoked key stops working at once: requests check the row, and
open ``/v1`` streams follow the key's event topic, where revocation publishes ``api_key.revoked``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.events import EventBus
from core.redis import async_redis
from models import ApiKey, Assistant, User
from services import assistants
from services.accounts import audit
from services.errors import NotFound, Unauthorized
from services.pagination import Page, newest_first, page_of

KEY_PREFIX = "cak_"
LOOKUP_CHARS = 12  # "cak_" and 8 random characters
API_KEY_CREATED = "api_key_created"
API_KEY_REVOKED = "api_key_revoked"
REVOKED_EVENT = "api_key.revoked"
# last_used_at is written at most this often per key, so busy keys do not contend on their row.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def key_topic(key_id: uuid.UUID) -> str:
    return f"api-key:{key_id}"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    row: ApiKey
    key: str  # shown once


@dataclass(frozen=True)
class KeyHolder:
    """Who a valid key acts for: its owner, optionally confined to one assistant."""

    key_id: uuid.UUID
    owner: User
    assistant_id: uuid.UUID | None


async def create(
    session: AsyncSession, owner: User, name: str, assistant_id: uuid.UUID | None, ip: str | None = None
) -> CreatedKey:
    if assistant_id is not None:
        await assistants.get_owned(session, owner, assistant_id)  # 404 for another tenant's
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(owner_id=owner.id, name=name, assistant_id=assistant_id, prefix=key[:LOOKUP_CHARS],
                 key_hash=_hash(key))  # fmt: skip
    session.add(row)
    await session.flush()
    details = {"prefix": row.prefix, "assistant_id": str(assistant_id) if assistant_id else None}
    audit.record(session, API_KEY_CREATED, actor_id=owner.id, subject=str(row.id), ip=ip, details=details)
    return CreatedKey(row, key)


async def list_active(session: AsyncSession, owner: User, limit: int, cursor: str | None) -> Page[ApiKey]:
    query = select(ApiKey).where(ApiKey.owner_id == owner.id, ApiKey.revoked_at.is_(None))
    query = newest_first(query, ApiKey.created_at, ApiKey.id, limit, cursor)
    return page_of((await session.scalars(query)).all(), limit)


async def revoke(session: AsyncSession, owner: User, key_id: uuid.UUID, ip: str | None = None) -> None:
    row = await session.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.owner_id == owner.id, ApiKey.revoked_at.is_(None))
    )
    if row is None:
        raise NotFound("API key not found")
    row.revoked_at = datetime.now(UTC)
    audit.record(session, API_KEY_REVOKED, actor_id=owner.id, subject=str(row.id), ip=ip,
                 details={"prefix": row.prefix})  # fmt: skip
    await session.flush()
    # Open streams of the key end on this event; it is retained, so a stream that subscribes after the
    # commit still sees it.
    topic, bus = key_topic(row.id), EventBus(async_client=async_redis())
    outbox.after_commit(session, lambda: bus.apublish(topic, REVOKED_EVENT, {"api_key_id": str(key_id)}))


async def authenticate(session: AsyncSession, key: str) -> KeyHolder:
    """The holder of a valid, unrevoked key of an active account; 401 ``invalid_api_key`` otherwise."""
    invalid = Unauthorized("Incorrect API key provided", code="invalid_api_key")
    if not key.startswith(KEY_PREFIX) or len(key) <= LOOKUP_CHARS:
        raise invalid
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.owner_id)
            .where(ApiKey.prefix == key[:LOOKUP_CHARS], ApiKey.revoked_at.is_(None), User.is_active)
        )
    ).first()
    if row is None or not hmac.compare_digest(row[0].key_hash, _hash(key)):
        raise invalid
    api_key, owner = row
    now = datetime.now(UTC)
    if api_key.last_used_at is None or api_key.last_used_at < now - LAST_USED_RESOLUTION:
        await session.execute(
            update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
    return KeyHolder(api_key.id, owner, api_key.assistant_id)


async def usable_assistants(session: AsyncSession, holder: KeyHolder) -> list[Assistant]:
    query = select(Assistant).where(Assistant.owner_id == holder.owner.id)
    if holder.assistant_id is not None:
        query = query.where(Assistant.id == holder.assistant_id)
    return list((await session.scalars(query.order_by(Assistant.created_at, Assistant.id))).all())


async def usable_assistant(session: AsyncSession, holder: KeyHolder, model: str) -> Assistant:
    """The assistant named by ``model`` if the key may use it; 404 ``model_not_found`` otherwise (an
    unknown id, another tenant's assistant, or one the key is not for look the same)."""
    not_found = NotFound(f"The model '{model}' does not exist or you do not have access to it",
                         code="model_not_found")  # fmt: skip
    try:
        assistant_id = uuid.UUID(model)
    except ValueError:
        raise not_found from None
    if holder.assistant_id is not None and assistant_id != holder.assistant_id:
        raise not_found
    assistant = await session.scalar(
        select(Assistant).where(Assistant.id == assistant_id, Assistant.owner_id == holder.owner.id)
    )
    if assistant is None:
        raise not_found
    return assistant
