"""The ``queries`` queue: search queries embedded for the API, which never loads a model."""

from __future__ import annotations

from core.queues import TASKS
from tasks import TRANSIENT
from workers.app import celery_app


@celery_app.task(name=TASKS.embed_query, autoretry_for=TRANSIENT, max_retries=2)
def embed_query(text: str, reply_key: str) -> None:
    """Embed a search query and push the vector to ``reply_key``, where the API waits for it."""
    from workers.rpc import answer_embed_query

    answer_embed_query(text, reply_key)
