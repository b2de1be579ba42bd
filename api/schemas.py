"""Request and response bodies. Requests reject unknown fields rather than silently ignore them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    computed_field,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from services.conversations import visitor_view
from services.conversations.widget import normalize_origin, visitor_label

T = TypeVar("T")


def _origin(value: str) -> str:
    try:
        return normalize_origin(value)
    except ValueError as exc:
        raise PydanticCustomError("origin", str(exc)) from exc


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("not_null", "This field may be left out, but not set to null")
    return value


# A field of a partial update (PATCH) whose column always holds a value: it may be left out (None here
# means "unchanged"), but an explicit null is refused as 422 rather than reaching the database.
Omittable = Annotated[T | SkipJsonSchema[None], BeforeValidator(_not_null)]

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
    widget_messages_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    widget_messages_per_day: int | None = Field(default=None, ge=1, le=100_000_000)
    widget_daily_spend_cap_micros: int | None = Field(default=None, ge=0, le=10**15)
    widget_show_citations: bool = False


class AssistantPatch(Strict):
    name: Omittable[str] = Field(default=None, min_length=1, max_length=200)
    system_prompt: Omittable[str] = Field(default=None, max_length=32_000)
    model: Omittable[str] = Field(default=None, min_length=1, max_length=200)
    temperature: Omittable[float] = Field(default=None, ge=0, le=2)
    max_tokens: Omittable[int] = Field(default=None, ge=1, le=32_000)
    # Null resets these to the platform's defaults.
    llm_provider: Literal["openai", "offline"] | None = None
    retrieval_top_k: int | None = Field(default=None, ge=1, le=50)
    retrieval_min_score: float | None = Field(default=None, ge=-1, le=1)
    widget_allowed_origins: Omittable[WidgetOrigins] = None
    greeting: str | None = Field(default=None, min_length=1, max_length=4096)
    telegram_streaming: Omittable[bool] = None
    widget_messages_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    widget_messages_per_day: int | None = Field(default=None, ge=1, le=100_000_000)
    widget_daily_spend_cap_micros: int | None = Field(default=None, ge=0, le=10**15)
    widget_show_citations: Omittable[bool] = None


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
    # Unset budgets follow CHATAI_WIDGET_MESSAGES_PER_MINUTE / _PER_DAY; an unset cap means no cap.
    widget_messages_per_minute: int | None = None
    widget_messages_per_day: int | None = None
    widget_daily_spend_cap_micros: int | None = None
    widget_show_citations: bool = False
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
    # Where it was opened: app (console or /api), widget, telegram, or api (the /v1 API).
    source: str
    created_at: datetime
    # The operator holding the dialog; while set, the assistant does not answer on its own.
    operator_id: uuid.UUID | None = None
    # Read from the row, never shown: holding a visitor's id must not be needed to tell visitors apart.
    widget_end_user_id: uuid.UUID | None = Field(default=None, exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def via_widget(self) -> bool:
        return self.widget_end_user_id is not None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def visitor(self) -> str | None:
        """A widget dialog's visitor as an opaque label, stable across their visits."""
        return visitor_label(self.widget_end_user_id) if self.widget_end_user_id else None


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
    # A generated reply's settings, fixed when its message was accepted (None on other messages).
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None

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
            model=message.model,
            max_tokens=message.max_tokens,
            temperature=message.temperature,
        )

    def for_visitor(self, citation_titles: bool) -> MessageOut:
        """What an anonymous widget visitor sees of this message."""
        return MessageOut.model_validate(visitor_view.message(self.model_dump(), citation_titles))


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
    # The resume token of an earlier session (kept in the visitor's browser): continues their dialog.
    resume_token: str | None = Field(default=None, max_length=200)
    # Ignored: an end-user id no longer resumes anything (accepted so cached older scripts keep working).
    end_user_id: uuid.UUID | None = Field(default=None, deprecated=True)


class WidgetSessionOut(BaseModel):
    session_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    dialog_id: uuid.UUID
    resume_token: str
    greeting: str | None = None


class OperatorInvitationIn(Strict):
    email: EmailStr


class InvitationSentOut(BaseModel):
    # The same answer whoever the email belongs to, if anyone: it tells the owner nothing about accounts.
    status: Literal["invited"] = "invited"


class OperatorInvitationOut(Out):
    id: uuid.UUID
    assistant_id: uuid.UUID
    assistant_name: str
    created_at: datetime


class AssignedOperatorOut(Out):
    id: uuid.UUID
    email: str
    name: str | None
    created_at: datetime  # when they were assigned
