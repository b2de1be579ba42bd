"""Hybrid retrieval: vector similarity and Postgres full text, ranked separately, fused by reciprocal rank.

Both rankings are scoped to one assistant (and its owner). The vector ranking uses the HNSW index with
pgvector 0.8's iterative index scan, so a filter that keeps a tiny share of the rows still yields
``candidates`` rows instead of the few that happened to be among the first ``ef_search`` neighbours.
The full-text ranking ORs the query's lexemes (a question rarely contains every word of its answer).
Each hit carries the fused score and its cosine similarity; ``min_score`` applies to the similarity.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import get_settings
from models.knowledge import Chunk
from services.knowledge import queries

RRF_K = 60

QueryEmbedder = Callable[[str], Awaitable[list[float]]]


@dataclass(frozen=True)
class Hit:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    filename: str
    text: str
    score: float  # reciprocal-rank fusion, scaled so a chunk ranked first by both rankings scores 1.0
    similarity: float  # cosine similarity to the query


def vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


async def configure_scan(session: AsyncSession) -> None:
    """Per-transaction HNSW settings: iterative scans so filtered searches return enough rows."""
    settings = get_settings()
    await session.execute(
        text(
            "SELECT set_config('hnsw.iterative_scan', :mode, true),"
            " set_config('hnsw.ef_search', :ef, true),"
            " set_config('hnsw.max_scan_tuples', :max_tuples, true)"
        ),
        {
            "mode": settings.retrieval_iterative_scan,
            "ef": str(settings.retrieval_ef_search),
            "max_tuples": str(settings.retrieval_max_scan_tuples),
        },
    )


async def has_chunks(session: AsyncSession, assistant_id: uuid.UUID) -> bool:
    return bool(await session.scalar(select(exists().where(Chunk.assistant_id == assistant_id))))


async def search(
    session: AsyncSession,
    owner_id: uuid.UUID,
    assistant_id: uuid.UUID,
    query: str,
    query_vector: Sequence[float],
    top_k: int,
    min_score: float,
) -> list[Hit]:
    settings = get_settings()
    await configure_scan(session)
    rows = await queries.search_chunks(
        session, owner_id, assistant_id, query, vector_literal(query_vector),
        candidates=max(settings.retrieval_candidates, top_k), top_k=top_k, rrf_k=RRF_K, min_score=min_score,
    )  # fmt: skip
    return [Hit(r.id, r.document_id, r.filename, r.text, float(r.score), float(r.similarity)) for r in rows]


async def retrieve(
    session: AsyncSession,
    owner_id: uuid.UUID,
    assistant_id: uuid.UUID,
    query: str,
    embed: QueryEmbedder,
    top_k: int | None = None,
    min_score: float | None = None,
) -> list[Hit] | None:
    """The best passages for ``query``, or ``None`` when the assistant has no knowledge base at all
    (then nothing is embedded, so assistants without documents never load a model)."""
    settings = get_settings()
    if not await has_chunks(session, assistant_id):
        return None
    vector = await embed(query)
    return await search(
        session,
        owner_id,
        assistant_id,
        query,
        vector,
        top_k or settings.retrieval_top_k,
        settings.retrieval_min_score if min_score is None else min_score,
    )
