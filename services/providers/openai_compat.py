"""Chat completions from any OpenAI-compatible endpoint, through the ``openai`` SDK on aiohttp.

One provider per process serves every concurrent generation over one connection pool. The stream is
read raw (SSE lines parsed with orjson) rather than as the SDK's typed chunks: the typed stream costs
several times more CPU per chunk, and CPU per chunk bounds how many streams one process holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2
import openai
import orjson

from services.providers.base import (
    ChatRequest,
    ProviderError,
    Usage,
    auth_failed,
    bad_request,
    unavailable,
)

MAX_CONNECTIONS = 1000
NO_KEY = "no-key"
# The SDK's own retry policy treats these as transient too (request timeout, lock timeout).
_RETRYABLE_4XX = frozenset({408, 409, 429})


class OpenAICompatibleProvider:
    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        timeout = openai.Timeout(read_timeout, connect=connect_timeout)
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            # Never the SDK's fallback to OPENAI_API_KEY: settings are the one source. Self-hosted endpoints
            # often need no key, but the SDK insists on one, so they get a placeholder.
            api_key=api_key or NO_KEY,
            max_retries=0,  # the caller retries, with its own backoff and attempt budget
            timeout=timeout,
            http_client=openai.DefaultAioHttpClient(
                timeout=timeout, limits=httpx2.Limits(max_connections=MAX_CONNECTIONS)
            ),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | Usage]:
        usage: Usage | None = None
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                model=request.model,
                # The messages go in as they are, in the body's extras (which replace the field): the SDK
                # otherwise walks every message of the history through its TypedDict transform, which
                # cost more CPU than the rest of the request with a long conversation. Ours are plain
                # {role, content} dicts already.
                messages=[],
                extra_body={"messages": request.messages},
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                stream=True,
                stream_options={"include_usage": True},
            ) as response:
                finished = False
                async for data in _sse_data(response.iter_bytes()):
                    if data == b"[DONE]":
                        finished = True
                        break
                    chunk = orjson.loads(data)
                    if "error" in chunk:
                        raise _stream_error(chunk["error"])
                    for choice in chunk.get("choices") or ():
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield content
                        if choice.get("finish_reason"):
                            finished = True
                    if chunk.get("usage"):
                        usage = Usage(chunk["usage"]["prompt_tokens"], chunk["usage"]["completion_tokens"])
                if not finished:
                    raise unavailable("The language model's stream ended before the reply was complete.")
        except openai.APIStatusError as exc:
            raise _status_error(exc) from exc
        except openai.APITimeoutError as exc:
            raise unavailable("The language model did not answer in time.") from exc
        except openai.APIConnectionError as exc:
            raise unavailable("Could not connect to the language model.") from exc
        except httpx2.TimeoutException as exc:
            raise unavailable("The language model stopped sending in time.") from exc
        except (httpx2.TransportError, aiohttp.ClientError) as exc:
            raise unavailable("The connection to the language model was lost mid-reply.") from exc
        except orjson.JSONDecodeError as exc:
            raise unavailable("The language model sent a malformed stream.") from exc
        if usage is not None:
            yield usage

    async def aclose(self) -> None:
        await self._client.close()


async def _sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The payloads of an SSE stream's ``data:`` lines, split from the raw bytes (orjson reads bytes, so
    nothing is decoded twice; a line may span chunks)."""
    pending = b""
    async for chunk in chunks:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if pending.startswith(b"data:"):
        yield pending[5:].strip()


def _status_error(exc: openai.APIStatusError) -> ProviderError:
    status = exc.status_code
    message = f"The language model answered {status}: {_error_message(exc.body) or exc.message}"
    if status in (401, 403):
        return auth_failed(message)
    if status >= 500 or status in _RETRYABLE_4XX:
        return unavailable(message, retry_after=_retry_after(exc.response.headers))
    return bad_request(message)


def _stream_error(error: Any) -> ProviderError:
    return unavailable(f"The language model failed mid-reply: {_error_message({'error': error}) or error}")


def _error_message(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, str):
                return message
    return None


def _retry_after(headers: httpx2.Headers) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue  # an HTTP date; rare for LLM APIs, and the caller's backoff covers it
    return None
