"""Indexing charges: embedding a document is held and charged like a reply, at the embedding model's price.

Keys, on the document and its indexing run (``upload``, or the re-index run's id): ``embed-hold:<doc>:<run>``,
``embed-hold-more:…``, ``embed-charge:…``, ``embed-release:…``, ``embed-release-more:…``. The hold is placed
when the document is accepted (the upload) or taken by a re-index run, from an estimate of its tokens. A
file's size does not bound its text (a compressed DOCX or PDF holds far more), so once the worker has
extracted and chunked the text, and before it embeds anything, the hold is raised to the cost of those chunks
(the ``more`` hold); a balance that cannot cover that fails the document. When the indexing ends, a billing
task charges the tokens of the chunks it wrote (never more than the holds) and releases the holds in one
booking, exactly once. A failed indexing is charged nothing. A price of zero (the local model's, by
default) books nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import get_settings
from models import Chunk, Document, DocumentStatus, TransactionKind, UsageRecord
from services.billing import holds, ledger, pricing, queries
from services.billing.ledger import Entry

log = logging.getLogger("chatai.billing")

BYTES_PER_TOKEN = 4  # plain text; parsed formats (pdf, docx) hold less text than their size, so this bounds
_RUN_NAMESPACE = uuid.UUID("0f6f4c0e-6a53-4d0c-9a8e-3f1f3f0c9b71")


def _run_label(run_id: uuid.UUID | None) -> str:
    return str(run_id) if run_id else "upload"


HOLD_PREFIX, RELEASE_PREFIX = "embed-hold:", "embed-release:"


def hold_key(document_id: uuid.UUID, run_id: uuid.UUID | None) -> str:
    return f"{HOLD_PREFIX}{document_id}:{_run_label(run_id)}"


def charge_key(document_id: uuid.UUID, run_id: uuid.UUID | None) -> str:
    return f"embed-charge:{document_id}:{_run_label(run_id)}"


def release_key(document_id: uuid.UUID, run_id: uuid.UUID | None) -> str:
    return f"{RELEASE_PREFIX}{document_id}:{_run_label(run_id)}"


def more_hold_key(document_id: uuid.UUID, run_id: uuid.UUID | None) -> str:
    return f"embed-hold-more:{document_id}:{_run_label(run_id)}"


def more_release_key(document_id: uuid.UUID, run_id: uuid.UUID | None) -> str:
    return f"embed-release-more:{document_id}:{_run_label(run_id)}"


def upload_token_estimate(size_bytes: int) -> int:
    """An upper estimate of the tokens embedding a file sends: its text, plus what chunk overlaps repeat."""
    settings = get_settings()
    step = max(1, settings.chunk_tokens - settings.chunk_overlap_tokens)
    text_tokens = -(-size_bytes // BYTES_PER_TOKEN)
    return -(-text_tokens * settings.chunk_tokens // step) + settings.chunk_tokens


async def hold_for_indexing(
    session: AsyncSession,
    owner_id: uuid.UUID,
    document_id: uuid.UUID,
    run_id: uuid.UUID | None,
    tokens: int,
) -> int:
    """Hold the cost of embedding ``tokens`` with the configured model; 0 (nothing held) when it is free."""
    settings = get_settings()
    if not settings.billing_enabled:
        return 0
    price = await pricing.price_for(session, settings.embedding_model)
    amount = pricing.cost_micros(price, tokens, 0)
    if amount <= 0:
        return 0
    await holds.place_hold(
        session,
        owner_id,
        amount,
        hold_key(document_id, run_id),
        str(document_id),
        what="indexing this document",
    )
    return amount


async def hold_for_extracted_text(
    session: AsyncSession, owner_id: uuid.UUID, document_id: uuid.UUID, run_id: uuid.UUID | None, tokens: int
) -> None:
    """Raise the run's hold to the cost of embedding ``tokens`` (its chunks), before any is embedded.

    Raises ``InsufficientBalance`` (nothing written) when the available balance does not cover the rest.
    Idempotent per run: a retried attempt finds the hold already raised."""
    settings = get_settings()
    if not settings.billing_enabled:
        return
    price = await pricing.price_for(session, settings.embedding_model)
    needed = pricing.cost_micros(price, tokens, 0)
    base = await ledger.find(session, hold_key(document_id, run_id))
    if base is None:  # nothing was held (the price was zero then): this becomes the run's hold
        if needed > 0:
            await holds.place_hold(
                session, owner_id, needed, hold_key(document_id, run_id), str(document_id),
                what=f"indexing this document's {tokens} tokens of text",
            )  # fmt: skip
        return
    if needed <= base.amount_micros or await ledger.find(session, more_hold_key(document_id, run_id)):
        return
    await holds.place_hold(
        session, owner_id, needed - base.amount_micros, more_hold_key(document_id, run_id), str(document_id),
        what=f"indexing this document's {tokens} tokens of text",
    )  # fmt: skip


async def has_open_hold(session: AsyncSession, document_id: uuid.UUID, run_id: uuid.UUID | None) -> bool:
    return await ledger.find(session, hold_key(document_id, run_id)) is not None


@dataclass(frozen=True)
class IndexingSettlement:
    outcome: str  # settled | already_settled | no_hold | not_finished
    charged_micros: int = 0


async def settle_indexing(
    session: AsyncSession, document_id: uuid.UUID, run_id: uuid.UUID | None
) -> IndexingSettlement:
    """Charge the indexing run's tokens and release its hold, exactly once."""
    hold = await ledger.find(session, hold_key(document_id, run_id))
    if hold is None:
        return IndexingSettlement("no_hold")
    if await ledger.find(session, release_key(document_id, run_id)) is not None:
        return IndexingSettlement("already_settled")
    document = await session.get(Document, document_id)
    active = (DocumentStatus.queued, DocumentStatus.parsing, DocumentStatus.embedding)
    if document is not None and document.index_run_id == run_id and document.status in active:
        return IndexingSettlement("not_finished")
    tokens = 0
    if document is not None and document.status == DocumentStatus.ready:
        tokens = int(
            await session.scalar(
                select(func.coalesce(func.sum(Chunk.token_count), 0)).where(Chunk.document_id == document_id)
            )
            or 0
        )
    model = (document.embedding_model if document else None) or get_settings().embedding_model
    price = await pricing.price_for(session, model)
    cost = pricing.cost_micros(price, tokens, 0)
    more = await ledger.find(session, more_hold_key(document_id, run_id))
    held = hold.amount_micros + (more.amount_micros if more else 0)
    charge = min(cost, held)
    if charge < cost:
        log.warning("indexing %s cost %d, more than its holds %d; charged those", document_id, cost, charge)
    reference = str(document_id)
    entries = [
        Entry(TransactionKind.release, -hold.amount_micros, release_key(document_id, run_id), reference)
    ]
    if more is not None:
        more_release = more_release_key(document_id, run_id)
        entries.append(Entry(TransactionKind.release, -more.amount_micros, more_release, reference))
    if charge > 0:
        entries.insert(0, Entry(TransactionKind.charge, -charge, charge_key(document_id, run_id), reference))
    booking = await ledger.book(session, hold.owner_id, entries)
    if not booking.created:
        return IndexingSettlement("already_settled")
    if tokens:
        # One usage row per indexing run: the upload's is keyed on the document, a re-index's on both.
        subject = document_id if run_id is None else uuid.uuid5(_RUN_NAMESPACE, f"{document_id}:{run_id}")
        await session.execute(
            pg_insert(UsageRecord)
            .values(
                owner_id=hold.owner_id, kind="embedding", subject_id=subject, model=model,
                prompt_tokens=tokens, completion_tokens=0, cost_micros=charge, currency=price.currency,
            )
            .on_conflict_do_nothing(index_elements=[UsageRecord.subject_id])
        )  # fmt: skip
    await session.flush()
    return IndexingSettlement("settled", charge)


async def stale_indexing_holds(
    session: AsyncSession, limit: int = 500
) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
    """(document, run) of open indexing holds older than the sweep period; settling tells which ended."""
    settings = get_settings()
    now = datetime.now(UTC)
    newest = now - timedelta(seconds=settings.billing_hold_sweep_seconds)
    oldest = now - timedelta(days=7)
    keys = await queries.stale_indexing_holds(
        session, oldest, newest, limit, hold_prefix=HOLD_PREFIX, release_prefix=RELEASE_PREFIX
    )
    out = []
    for key in keys:
        _, document, run = key.split(":", 2)
        out.append((uuid.UUID(document), None if run == "upload" else uuid.UUID(run)))
    return out
