"""The OpenAI-compatible API: ``base_url=<API>/v1`` for any OpenAI client, authenticated by API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.completions import CompletionResponse, stream_response
from api.deps import SessionDep
from api.openai_schemas import ChatCompletionIn, ChatCompletionOut, ModelListOut, ModelOut
from api.ratelimits import enforce
from core.logging import request_id_var, user_id_var
from core.settings import get_settings
from services.accounts import api_keys
from services.accounts.api_keys import KeyHolder
from services.errors import Unauthorized
from services.openai_compat import turns
from services.openai_compat.responses import CompletionEvents

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
_api_key = HTTPBearer(auto_error=False, scheme_name="ApiKey", description="An API key, cak_…")


async def key_holder(
    session: SessionDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key)]
) -> KeyHolder:
    if credentials is None:
        raise Unauthorized("No API key provided (Authorization: Bearer cak_…)", code="invalid_api_key")
    holder = await api_keys.authenticate(session, credentials.credentials)
    user_id_var.set(str(holder.owner.id))
    await enforce(get_settings().rate_limit_api_key, "api-key", str(holder.key_id))
    return holder


KeyHolderDep = Annotated[KeyHolder, Depends(key_holder)]


@router.get("/models", response_model=ModelListOut)
async def list_models(holder: KeyHolderDep, session: SessionDep) -> ModelListOut:
    usable = await api_keys.usable_assistants(session, holder)
    return ModelListOut(data=[ModelOut(id=str(a.id), created=int(a.created_at.timestamp())) for a in usable])


@router.post(
    "/chat/completions",
    response_model=ChatCompletionOut,
    responses={200: {"content": {"text/event-stream": {}}, "description": "chunks when stream is true"}},
)
async def chat_completions(
    body: ChatCompletionIn, holder: KeyHolderDep, session: SessionDep, request: Request
) -> Response:
    request_data = turns.CompletionRequest(
        model=body.model,
        messages=[(m.role, m.text) for m in body.messages],
        temperature=body.temperature,
        max_tokens=body.max_completion_tokens or body.max_tokens,
    )
    started = await turns.start(session, holder, request_data, request_id_var.get())
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    events = CompletionEvents(started.reply_id, body.model, include_usage)
    # Answered once the unit of work has committed and the generation is sent.
    hub = request.app.state.hub
    if body.stream:
        return stream_response(hub, holder, started, events)
    return CompletionResponse(hub, holder, started, events)
