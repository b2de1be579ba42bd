"""Bodies of the OpenAI-compatible ``/v1`` API (OpenAI's chat completions format).

Unknown fields are ignored rather than refused, as OpenAI's clients send many optional ones (``user``,
``top_p``, ``seed``...) that an assistant's own settings decide here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas import _storable


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    @field_validator("content")
    @classmethod
    def _storable_text(cls, value: str | list[TextPart] | None) -> str | list[TextPart] | None:
        _storable(value if not isinstance(value, list) else [part.text for part in value])
        return value

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    messages: Annotated[list[ChatMessageIn], Field(min_length=1, max_length=1000)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=32_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32_000)
    n: int = Field(default=1, ge=1, le=1)


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "chatai"


class ModelListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class CompletionMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class CompletionChoiceOut(BaseModel):
    index: int
    message: CompletionMessageOut
    finish_reason: str


class CompletionUsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionOut(BaseModel):
    """The answer when not streamed; a stream sends ``chat.completion.chunk`` objects as SSE instead."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoiceOut]
    usage: CompletionUsageOut
