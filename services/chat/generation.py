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
from core.loop_local import LoopLocal
from core.outbox import PendingTask
from core.redis import async_redis
from core.settings import get_settings
from core.unit_of_work import send_now
from models import ReplyStatus
from services.chat import replies
from services.chat.cancellation import CancelWatcher, cancel_requested_among, is_cancel_requested
from services.chat.delivery import DeltaPublisher, coalesce_window, delivered_text, frames_from_replay
from services.providers import get_provider
from services.providers.base import ChatRequest, ProviderError, Usage
from services.providers.tokens import estimate_tokens

log = logging.getLogger("chatai.generation")


class _Cancelled(Exception):
    pass


@dataclass
class _Progress:
    """What the provider did for this reply across its attempts: whether it began answering (from then on
    it has read the prompt, which is paid for even if the reply then fails or is cancelled), and the usage
    it reported, if it got that far."""

    answered: bool = False
    usage: Usage | None = None


@dataclass
class Runtime:
    """Per-process state shared by every generation on the loop."""

    bus: EventBus
    watcher: CancelWatcher = field(default_factory=CancelWatcher)
    running: dict[uuid.UUID, int] = field(default_factory=dict)
    heartbeat_task: asyncio.Task[None] | None = None

    def coalesce_window(self) -> float:
        """The delta window for the load of the moment: more generations, fewer and larger events."""
        settings = get_settings()
        return coalesce_window(
            settings.delta_coalesce_ms, settings.delta_coalesce_max_ms, settings.delta_coalesce_busy_replies,
            len(self.running),
        )  # fmt: skip

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


_runtimes = LoopLocal(lambda: Runtime(bus=EventBus(async_client=async_redis())))


def runtime() -> Runtime:
    return _runtimes.get()


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
        publisher = DeltaPublisher(rt.bus, topic, reply_id, rt.coalesce_window, delivered)
        if not job.resumed:
            # The request id lets one turn be followed from the API's log through the worker to here.
            started_data = {"reply_id": str(reply_id), "request_id": request_id_var.get()}
            await rt.bus.apublish(topic, "reply.started", started_data)
        if await is_cancel_requested(reply_id):
            cancelled.set()
        progress = _Progress()
        try:
            async with asyncio.timeout(settings.reply_time_limit_seconds):
                await _stream_with_retries(job, publisher, cancelled, progress)
        except _Cancelled:
            content = await publisher.finish()
            return await _end(
                rt, job, ReplyStatus.cancelled, content, "reply.cancelled", {"content": content},
                usage=_partial_usage(job, progress, content),
            )  # fmt: skip
        except ProviderError as exc:
            metrics.LLM_PROVIDER_ERRORS.labels(exc.code).inc()
            await publisher.finish()
            error = {"code": exc.code, "message": exc.message}
            return await _end(
                rt, job, ReplyStatus.failed, publisher.text, "reply.failed", {"error": error},
                usage=_partial_usage(job, progress, publisher.text),
            )  # fmt: skip
        except TimeoutError:
            await publisher.finish()
            error = {"code": "timeout", "message": "The reply took longer than the time limit"}
            return await _end(
                rt, job, ReplyStatus.failed, publisher.text, "reply.failed", {"error": error},
                usage=_partial_usage(job, progress, publisher.text),
            )  # fmt: skip
        content = await publisher.finish()
        usage = progress.usage or _estimated_usage(job, content)
        metrics.count_tokens(job.model, usage.prompt_tokens, usage.completion_tokens)
        result: dict[str, Any] = {
            "content": content,
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
            "cost_micros": None,
            "citations": job.citations,
        }
        return await _end(
            rt, job, ReplyStatus.completed, content, "reply.completed", result,
            usage=usage, citations=job.citations,
        )  # fmt: skip
    finally:
        rt.running.pop(reply_id, None)
        rt.watcher.unwatch(reply_id)


def _estimated_usage(job: replies.ClaimedReply, content: str) -> Usage:
    return Usage(sum(estimate_tokens(m["content"]) for m in job.messages), estimate_tokens(content))


def _partial_usage(job: replies.ClaimedReply, progress: _Progress, content: str) -> Usage | None:
    """The tokens a reply that ended early pays for: none if the provider never began answering (it
    refused or was unreachable), else its prompt (as reported, or estimated) and the text up to the end."""
    if not progress.answered:
        return None
    return progress.usage or _estimated_usage(job, content)


async def _stream_with_retries(
    job: replies.ClaimedReply, publisher: DeltaPublisher, cancelled: asyncio.Event, progress: _Progress
) -> None:
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
            progress.usage = None
            started = time.monotonic()
            first = True
            async for item in provider.stream(request):
                progress.answered = True
                if cancelled.is_set():
                    raise _Cancelled
                if isinstance(item, Usage):
                    progress.usage = item
                else:
                    if first:
                        first = False
                        metrics.observe_first_token(job.model, time.monotonic() - started)
                    publisher.feed(item)
            log.debug("stream done in %.3fs", time.monotonic() - started)
            if cancelled.is_set():
                raise _Cancelled
            return


async def _end(
    rt: Runtime, job: replies.ClaimedReply, status: ReplyStatus, content: str,
    event_type: str, data: dict[str, Any], usage: Usage | None = None,
    citations: list[dict[str, Any]] | None = None,
) -> str:  # fmt: skip
    error = data.get("error") if status == ReplyStatus.failed else None
    async with raw_connection() as conn:
        finished = await replies.finish(
            conn, job, status, content, error=error,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None, citations=citations,
        )  # fmt: skip
    if finished is None:
        return "lost"
    tasks = [PendingTask(name, (str(job.reply_id),)) for name in finished.follow_up]
    if finished.settle:
        tasks += await replies.settlement_tasks(job.reply_id)
    if tasks:
        await send_now(tasks)
    await rt.bus.apublish(dialog_topic(job.dialog_id), event_type, {"reply_id": str(job.reply_id), **data})
    return status.value
