"""Bodies of the API keys endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from api.schemas import Out, Strict


class ApiKeyIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    # Set: the key may use this assistant only.
    assistant_id: uuid.UUID | None = None


class ApiKeyOut(Out):
    id: uuid.UUID
    name: str
    assistant_id: uuid.UUID | None
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class CreatedApiKeyOut(Out):
    id: uuid.UUID
    name: str
    assistant_id: uuid.UUID | None
    prefix: str
    key: str  # appears in this response only
    created_at: datetime
