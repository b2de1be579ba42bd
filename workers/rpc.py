"""Query embeddings for the API: a task on the small ``queries`` queue embeds the text and pushes the
vector to a short-lived Redis list the API waits on (BLPOP), so the API process never imports torch."""

from __future__ import annotations

import time
import uuid

import orjson

from core.outbox import PendingTask
from core.queues import TASKS
from core.redis import async_redis, sync_redis
from core.settings import get_settings
from core.unit_of_work import send_now
from services.errors import Unavailable

REPLY_PREFIX = "chatai:rpc:embed:"
REPLY_TTL_SECONDS = 60
BLPOP_STEP_SECONDS = 1


async def embed_query(text: str) -> list[float]:
    timeout = get_settings().query_embedding_timeout_seconds
    key = f"{REPLY_PREFIX}{uuid.uuid4().hex}"
    task = PendingTask(TASKS.embed_query, (text, key), {"expires": timeout})
    await send_now([task])
    deadline = time.monotonic() + timeout
    answer = None
    # Short waits: a connection's socket timeout must not cut a long BLPOP (a worker's first query
    # loads the model, which takes seconds).
    while answer is None and time.monotonic() < deadline:
        answer = await async_redis().blpop([key], timeout=BLPOP_STEP_SECONDS)
    if answer is None:
        raise Unavailable("No worker answered the search in time; try again")
    payload = orjson.loads(answer[1])
    if "error" in payload:
        raise Unavailable(f"The search could not embed the query: {payload['error']}")
    return payload["vector"]


def answer_embed_query(text: str, reply_key: str) -> None:
    from services.knowledge.embedding import EmbeddingError, get_embedder

    try:
        body: dict[str, object] = {"vector": get_embedder().embed([text])[0]}
    except EmbeddingError as exc:
        body = {"error": str(exc)}
    client = sync_redis()
    with client.pipeline() as pipe:
        pipe.rpush(reply_key, orjson.dumps(body))
        pipe.expire(reply_key, REPLY_TTL_SECONDS)
        pipe.execute()
