"""The knowledge base's statements (services/knowledge/queries.py), each against real rows."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.knowledge import queries
from services.knowledge.retrieval import vector_literal
from tests.fixtures.queries import rows_of

DIMENSIONS = 384


def axis(i: int, j: int | None = None) -> list[float]:
    """A unit vector along axis ``i``, or halfway between axes ``i`` and ``j``."""
    vector = [0.0] * DIMENSIONS
    if j is None:
        vector[i] = 1.0
    else:
        vector[i] = vector[j] = 0.5**0.5
    return vector


async def search(session: AsyncSession, owner: uuid.UUID, assistant: uuid.UUID, query: str, **kw: object):  # type: ignore[no-untyped-def]
    options = {"candidates": 50, "top_k": 10, "rrf_k": 60, "min_score": 0.0, **kw}
    return await queries.search_chunks(session, owner, assistant, query, vector_literal(axis(0)), **options)  # type: ignore[arg-type]


async def test_search_fuses_both_rankings_within_one_assistant(orm: AsyncSession) -> None:
    rows = await rows_of(orm)
    owner = await rows.user()
    assistant, sibling = await rows.assistant(owner), await rows.assistant(owner)
    stranger = await rows.user()
    theirs = await rows.assistant(stranger)
    doc = await rows.document(owner, assistant)
    both = await rows.chunk(owner, assistant, doc, "the refund policy lasts thirty days", axis(0))
    near = await rows.chunk(owner, assistant, doc, "shipping takes a week", axis(0, 1))
    words = await rows.chunk(owner, assistant, doc, "refund forms are online", axis(2))
    far = await rows.chunk(owner, assistant, doc, "our office is in Lisbon", axis(3))
    for other_owner, other_assistant in ((owner, sibling), (stranger, theirs)):
        other_doc = await rows.document(other_owner, other_assistant)
        await rows.chunk(other_owner, other_assistant, other_doc, "the refund policy", axis(0))

    hits = await search(orm, owner, assistant, "refund policy")
    ids = [h.id for h in hits]
    assert ids[0] == both, "first in both rankings"
    assert set(ids) == {both, near, words, far}, "only this assistant's chunks"
    assert ids.index(near) < ids.index(far) and ids.index(words) < ids.index(far)
    first = hits[0]
    assert first.document_id == doc and first.filename == "f.txt"
    assert abs(float(first.score) - 1.0) < 1e-9 and abs(float(first.similarity) - 1.0) < 1e-6

    close = await search(orm, owner, assistant, "refund policy", min_score=0.5)
    assert {h.id for h in close} == {both, near}, "min_score applies to the cosine similarity"
    assert len(await search(orm, owner, assistant, "refund", top_k=2)) == 2
    assert await search(orm, stranger, assistant, "refund") == [], "the owner is part of the scope"


async def test_stalled_reindex_runs_are_quiet_runs_with_documents_waiting(orm: AsyncSession) -> None:
    rows = await rows_of(orm)
    owner = await rows.user()
    assistant = await rows.assistant(owner)
    stalled, busy, recent, done = (uuid.uuid4() for _ in range(4))
    await rows.document(owner, assistant, "ready", reindex_run_id=stalled)
    await rows.document(owner, assistant, "ready", index_run_id=stalled)
    await rows.document(owner, assistant, "ready", reindex_run_id=busy)
    await rows.document(owner, assistant, "parsing", index_run_id=busy)
    await rows.document(owner, assistant, "ready", reindex_run_id=recent)
    await rows.document(owner, assistant, "failed", index_run_id=done)
    quiet = (
        "UPDATE documents SET updated_at = now() - interval '1 hour' WHERE reindex_run_id IS DISTINCT FROM :r"
    )
    await orm.execute(text(quiet), {"r": recent})
    quiet_since = (await orm.scalar(text("SELECT now()"))) - timedelta(minutes=30)
    assert await queries.stalled_reindex_runs(orm, quiet_since) == [stalled]
