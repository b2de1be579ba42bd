"""The one place that names queues, routes tasks to them and says how each queue's workers run.

Services send tasks by name through ``TASKS``; each worker's ``-Q`` and pool come from ``QUEUES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class QueueSpec:
    name: str
    pool: Literal["threads", "prefork", "solo"]
    concurrency: int
    prefetch_multiplier: int
    description: str


QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        # Each llm task only waits on the worker's event loop, so one process holds hundreds.
        QueueSpec("llm", "threads", 200, 1, "generate replies (streaming), RAG retrieval"),
        QueueSpec("embeddings", "prefork", 2, 1, "parse, chunk, embed, index documents"),
        QueueSpec("telegram", "threads", 50, 1, "handle updates, send replies within Telegram's limits"),
        QueueSpec("billing", "threads", 8, 4, "charge usage into the ledger, exactly once"),
        QueueSpec("analytics", "prefork", 1, 1, "rollups and scheduled maintenance"),
        # The API's search waits on these: a small pool of its own, never behind replies or documents.
        QueueSpec("queries", "threads", 4, 1, "embed search queries for the API"),
    )
}


class TASKS:
    """Task names; modules under ``tasks/`` register them, callers send them by these names."""

    generate_reply = "chatai.llm.generate_reply"
    reap_replies = "chatai.llm.reap_replies"
    embed_query = "chatai.queries.embed_query"
    index_document = "chatai.embeddings.index_document"
    reap_documents = "chatai.embeddings.reap_documents"
    reindex_next = "chatai.embeddings.reindex_next"
    settle_reply = "chatai.billing.settle_reply"
    settle_indexing = "chatai.billing.settle_indexing"
    sweep_holds = "chatai.billing.sweep_holds"
    reconcile_balances = "chatai.billing.reconcile_balances"
    telegram_handle_updates = "chatai.telegram.handle_updates"
    telegram_deliver = "chatai.telegram.deliver_chat"
    telegram_reply_finished = "chatai.telegram.reply_finished"
    telegram_stream_reply = "chatai.telegram.stream_reply"
    telegram_sweep_sends = "chatai.telegram.sweep_sends"
    telegram_check_webhooks = "chatai.telegram.check_webhooks"
    telegram_sync_webhook = "chatai.telegram.sync_webhook"
    rollup_hourly = "chatai.analytics.rollup_hourly"
    rollup_daily = "chatai.analytics.rollup_daily"
    retention_cleanup = "chatai.analytics.retention_cleanup"
    # One per queue, sent by the canary with that queue as its routing; see services/operations/canary.py.
    canary_ping = "chatai.canary.ping"


# Task name → queue. A task missing here has no queue, which the tests refuse.
ROUTES: dict[str, str] = {
    TASKS.generate_reply: "llm",
    TASKS.reap_replies: "llm",
    TASKS.embed_query: "queries",
    TASKS.index_document: "embeddings",
    TASKS.reap_documents: "embeddings",
    TASKS.reindex_next: "embeddings",
    TASKS.settle_reply: "billing",
    TASKS.settle_indexing: "billing",
    TASKS.sweep_holds: "billing",
    TASKS.reconcile_balances: "billing",
    TASKS.telegram_handle_updates: "telegram",
    TASKS.telegram_deliver: "telegram",
    TASKS.telegram_reply_finished: "telegram",
    TASKS.telegram_stream_reply: "telegram",
    TASKS.telegram_sweep_sends: "telegram",
    TASKS.telegram_check_webhooks: "telegram",
    TASKS.telegram_sync_webhook: "telegram",
    TASKS.rollup_hourly: "analytics",
    TASKS.rollup_daily: "analytics",
    TASKS.retention_cleanup: "analytics",
    # The canary sends it to every queue explicitly; this is where it goes when sent without one.
    TASKS.canary_ping: "analytics",
}


def queue_for(task_name: str) -> str:
    return ROUTES[task_name]
