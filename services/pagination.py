"""Keyset pagination with opaque cursors (``?limit=&cursor=``)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, TypeVarTuple

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from services.errors import ServiceError

T = TypeVar("T")
MAX_LIMIT = 200


@dataclass
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


def _encode(created_at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(created), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServiceError("The cursor is not valid", code="bad_request") from exc


# The columns a query selects: paging keeps them.
Columns = TypeVarTuple("Columns")


def newest_first(
    query: Select[*Columns], created_col: InstrumentedAttribute[Any], id_col: InstrumentedAttribute[Any],
    limit: int, cursor: str | None,
) -> Select[*Columns]:  # fmt: skip
    if cursor:
        created, row_id = _decode(cursor)
        query = query.where(or_(created_col < created, and_(created_col == created, id_col < row_id)))
    return query.order_by(created_col.desc(), id_col.desc()).limit(limit + 1)


def page_of(rows: Sequence[Any], limit: int) -> Page[Any]:
    if len(rows) > limit:
        last = rows[limit - 1]
        return Page(rows[:limit], _encode(last.created_at, last.id))
    return Page(rows, None)
