"""Request and response bodies. Requests reject unknown fields rather than silently ignore them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, computed_field, model_validator
from pydantic_core import PydanticCustomError

from services.widget import normalize_origin

T = TypeVar("T")


def _origin(value: str) -> str:
    try:
        return normalize_origin(value)
    except ValueError as exc:
        raise PydanticCustomError("origin", str(exc)) from exc


WidgetOrigins = Annotated[list[Annotated[str, AfterValidator(_origin)]], Field(max_length=50)]


def _storable(value: Any) -> None:
    """Text Postgres can store: no NUL character, no unpaired surrogate (from a JSON ``\\ud800``)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("text must be valid Unicode") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    elif isinstance(value, list):
        for item in value:
            _storable(item)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        # Refused as 422 here rather than failing in the database as a 5xx.
        _storable(data)
        return data


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


# Auth and users
class RegisterIn(Strict):
    email: EmailStr
    password: str = Field(min_length=8, max_length=256)
    name: str | None = Field(default=None, max_length=200)


class LoginIn(Strict):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutIn(Strict):
    refresh_token: str | None = Field(default=None, max_length=512)


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserOut(Out):
    id: uuid.UUID
    email: str
    name: str | None
    role: str
    created_at: datetime


# Assistants
class AssistantIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    system_prompt: str | None = Field(default=None, max_length=32_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=32_000)
    llm_provider: Literal["openai", "offline"] | None = None
    retrieval_top_k: int | None = Field(default=None, ge=1, le=50)
    retrieval_min_score: float | None = Field(default=None, ge=-1, le=1)
    widget_allowed_origins: WidgetOrigins | None = None
    greeting: str | None = Field(default=None, min_length=1, max_length=4096)
    telegram_streaming: bool = False


class AssistantPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    system_prompt: str | None = Field(default=None, max_length=32_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=32_000)
    llm_provider: Literal["openai", "offline"] | None = None
    retrieval_top_k: int | None = Field(default=None, ge=1, le=50)
    retrieval_min_score: float | None = Field(default=None, ge=-1, le=1)
    widget_allowed_origins: WidgetOrigins | None = None
    greeting: str | None = Field(default=None, min_length=1, max_length=4096)
    telegram_streaming: bool = False


class AssistantOut(Out):
    id: uuid.UUID
    name: str
    system_prompt: str
    model: str
    temperature: float
    max_tokens: int
    llm_provider: str | None
    retrieval_top_k: int | None = None
    retrieval_min_score: float | None = None
    public_key: str
    widget_allowed_origins: list[str] = []
    greeting: str | None = None
    telegram_streaming: bool = False
    created_at: datetime


# Dialogs and messages
class DialogIn(Strict):
    assistant_id: uuid.UUID
    title: str | None = Field(default=None, max_length=300)


class DialogOut(Out):
    id: uuid.UUID
    assistant_id: uuid.UUID
    title: str | None
    status: str
    created_at: datetime
    # Set on dialogs opened through the widget: the anonymous visitor, stable across their visits.
    widget_end_user_id: uuid.UUID | None = None
    # The operator holding the dialog; while set, the assistant does not answer on its own.
    operator_id: uuid.UUID | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def via_widget(self) -> bool:
        return self.widget_end_user_id is not None


class MessageIn(Strict):
    content: str = Field(min_length=1, max_length=16_000)


class UsageOut(BaseModel):
    prompt_tokens: int | None
    completion_tokens: int | None


class MessageOut(BaseModel):
    id: uuid.UUID
    dialog_id: uuid.UUID
    role: str
    content: str
    status: str
    error: dict[str, Any] | None
    usage: UsageOut
    cost_micros: int | None
    citations: list[dict[str, Any]]
    created_at: datetime
    completed_at: datetime | None
    # The operator who wrote an assistant message by hand; None for generated replies.
    author_id: uuid.UUID | None = None

    @classmethod
    def of(cls, message: Any) -> MessageOut:
        return cls(
            id=message.id,
            dialog_id=message.dialog_id,
            role=message.role.value,
            content=message.content,
            status=message.status.value,
            error=message.error,
            usage=UsageOut(prompt_tokens=message.prompt_tokens, completion_tokens=message.completion_tokens),
            cost_micros=message.cost_micros,
            citations=message.citations or [],
            created_at=message.created_at,
            completed_at=message.completed_at,
            author_id=message.author_id,
        )


class PostedUserMessage(BaseModel):
    id: uuid.UUID
    role: Literal["user"] = "user"
    content: str
    created_at: datetime


class QueuedReply(BaseModel):
    id: uuid.UUID
    role: Literal["assistant"] = "assistant"
    status: str


class PostMessageOut(BaseModel):
    message: PostedUserMessage
    # None while an operator holds the dialog: no reply is queued then.
    reply: QueuedReply | None


# Knowledge base
class DocumentQueuedOut(BaseModel):
    id: uuid.UUID
    filename: str
    status: str


class DocumentOut(Out):
    id: uuid.UUID
    assistant_id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    status: str
    progress: float
    chunk_count: int
    error: str | None
    error_code: str | None
    created_at: datetime


class SearchIn(Strict):
    query: str = Field(min_length=1, max_length=4000)
    top_k: int | None = Field(default=None, ge=1, le=50)


class SearchHitOut(BaseModel):
    document_id: uuid.UUID
    chunk_id: uuid.UUID
    filename: str
    text: str
    score: float
    similarity: float


class SearchOut(BaseModel):
    items: list[SearchHitOut]


# Widget
class WidgetSessionIn(Strict):
    # The visitor's id from an earlier session (kept in their browser): continues their dialog.
    end_user_id: uuid.UUID | None = None


class WidgetSessionOut(BaseModel):
    session_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    dialog_id: uuid.UUID
    end_user_id: uuid.UUID
    greeting: str | None = None


class AssignedOperatorOut(Out):
    id: uuid.UUID
    email: str
    name: str | None
    created_at: datetime  # when they were assigned
