"""One reply's generation: claim, stream from the provider with retries, deliver deltas, end it.

Runs on the worker process's event loop; hundreds of generations share it, the provider's HTTP
connection pool, the Redis pool, one cancel subscription and one heartbeat statement.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from core import metrics
from core.db import raw_connection
from core.events import EventBus, dialog_topic
from core.logging import request_id_var
from core.outbox import PendingTask
from core.redis import async_redis
from core.settings import get_settings
from core.unit_of_work import send_now
from models import ReplyStatus
from services.chat import replies
from services.chat.cancellation import CancelWatcher, cancel_requested_among, is_cancel_requested
from services.chat.delivery import DeltaPublisher, delivered_text, frames_from_replay
from services.providers import get_provider
from services.providers.base import ChatRequest, ProviderError, Usage
from services.providers.tokens import estimate_tokens

log = logging.getLogger("chatai.generation")


class _Cancelled(Exception):
    pass


@dataclass
class Runtime:
    """Per-process state shared by every generation on the loop."""

    bus: EventBus
    watcher: CancelWatcher = field(default_factory=CancelWatcher)
    running: dict[uuid.UUID, int] = field(default_factory=dict)
    heartbeat_task: asyncio.Task[None] | None = None

    def ensure_heartbeat(self) -> None:
        if self.heartbeat_task is None or self.heartbeat_task.done():
            self.heartbeat_task = asyncio.get_running_loop().create_task(self._heartbeat_loop())

    async def _heartbeat_loop(self) -> None:
        interval = get_settings().reply_heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                running = dict(self.running)
                async with raw_connection() as conn:
                    await replies.heartbeat(conn, running)
                # Also catches a cancel published before this process's subscription was ready.
                for reply_id in await cancel_requested_among(list(running)):
                    self.watcher.watch_existing(reply_id)
            except Exception:
                log.exception("heartbeat failed")


_runtimes: dict[int, Runtime] = {}


def runtime() -> Runtime:
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _runtimes:
        _runtimes[loop_id] = Runtime(bus=EventBus(async_client=async_redis()))
    return _runtimes[loop_id]


async def generate_reply(reply_id: uuid.UUID, attempt: int) -> str:
    """Generate one attempt of a reply; returns the outcome (a status, or ``skipped``)."""
    settings = get_settings()
    rt = runtime()
    async with raw_connection() as conn:
        job = await replies.claim(conn, reply_id, attempt)
    if job is None:
        return "skipped"
    rt.ensure_heartbeat()
    rt.running[reply_id] = attempt
    cancelled = rt.watcher.watch(reply_id)
    topic = dialog_topic(job.dialog_id)
    try:
        delivered = ""
        if job.resumed:
            delivered = delivered_text(
                frames_from_replay(await rt.bus.areplay(topic, "0", count=100_000)), reply_id
            )
        publisher = DeltaPublisher(rt.bus, topic, reply_id, settings.delta_coalesce_ms / 1000, delivered)
        if not job.resumed:
            # The request id lets one turn be followed from the API's log through the worker to here.
            started_data = {"reply_id": str(reply_id), "request_id": request_id_var.get()}
            await rt.bus.apublish(topic, "reply.started", started_data)
        if await is_cancel_requested(reply_id):
            cancelled.set()
        try:
            async with asyncio.timeout(settings.reply_time_limit_seconds):
                usage = await _stream_with_retries(job, publisher, cancelled)
        except _Cancelled:
            content = await publisher.finish()
            return await _end(
                rt, job, ReplyStatus.cancelled, content, "reply.cancelled", {"content": content}
            )
        except ProviderError as exc:
            metrics.LLM_PROVIDER_ERRORS.labels(exc.code).inc()
            await publisher.finish()
            error = {"code": exc.code, "message": exc.message}
            return await _end(rt, job, ReplyStatus.failed, publisher.text, "reply.failed", {"error": error})
        except TimeoutError:
            await publisher.finish()
            error = {"code": "timeout", "message": "The reply took longer than the time limit"}
            return await _end(rt, job, ReplyStatus.failed, publisher.text, "reply.failed", {"error": error})
        content = await publisher.finish()
        if usage is None:
            usage = Usage(sum(estimate_tokens(m["content"]) for m in job.messages), estimate_tokens(content))
        metrics.count_tokens(job.model, usage.prompt_tokens, usage.completion_tokens)
        result: dict[str, Any] = {
            "content": content,
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
            "cost_micros": None,
            "citations": job.citations,
        }
        return await _end(
            rt, job, ReplyStatus.completed, content, "reply.completed", result,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            citations=job.citations,
        )  # fmt: skip
    finally:
        rt.running.pop(reply_id, None)
        rt.watcher.unwatch(reply_id)


async def _stream_with_retries(
    job: replies.ClaimedReply, publisher: DeltaPublisher, cancelled: asyncio.Event
) -> Usage | None:
    settings = get_settings()
    provider = get_provider(job.provider, settings)
    request = ChatRequest(job.model, job.messages, job.temperature, job.max_tokens, job.passages)
    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, ProviderError) and exc.retryable),
        stop=stop_after_attempt(settings.llm_max_attempts),
        wait=wait_exponential_jitter(initial=settings.llm_retry_base_seconds, max=10),
        reraise=True,
        before_sleep=metrics.count_retried_provider_error,
    )
    async for attempt in retrying:
        with attempt:
            publisher.restart()
            usage: Usage | None = None
            started = time.monotonic()
            first = True
            async for item in provider.stream(request):
                if cancelled.is_set():
                    raise _Cancelled
                if isinstance(item, Usage):
                    usage = item
                else:
                    if first:
                        first = False
                        metrics.observe_first_token(job.model, time.monotonic() - started)
                    publisher.feed(item)
            log.debug("stream done in %.3fs", time.monotonic() - started)
            if cancelled.is_set():
                raise _Cancelled
            return usage
    return None


async def _end(
    rt: Runtime, job: replies.ClaimedReply, status: ReplyStatus, content: str,
    event_type: str, data: dict[str, Any], prompt_tokens: int | None = None,
    completion_tokens: int | None = None, citations: list[dict[str, Any]] | None = None,
) -> str:  # fmt: skip
    error = data.get("error") if status == ReplyStatus.failed else None
    async with raw_connection() as conn:
        finished = await replies.finish(
            conn, job, status, content, error=error, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, citations=citations,
        )  # fmt: skip
    if finished is None:
        return "lost"
    if finished.follow_up:
        tasks = [PendingTask(name, (str(job.reply_id),)) for name in finished.follow_up]
        await send_now(tasks)
    await rt.bus.apublish(dialog_topic(job.dialog_id), event_type, {"reply_id": str(job.reply_id), **data})
    return status.value
