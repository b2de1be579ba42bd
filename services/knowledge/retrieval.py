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


_SEARCH_SQL = text(
    """
    WITH vec AS MATERIALIZED (
        SELECT id, embedding <=> CAST(:q AS vector) AS distance
        FROM chunks
        WHERE assistant_id = :assistant_id AND owner_id = :owner_id
        ORDER BY embedding <=> CAST(:q AS vector)
        LIMIT :n
    ),
    vec_ranked AS (
        SELECT id, row_number() OVER (ORDER BY distance) AS rank FROM vec
    ),
    query AS (
        SELECT replace(plainto_tsquery('english', :query_text)::text, ' & ', ' | ')::tsquery AS q
    ),
    fts AS (
        SELECT c.id, row_number() OVER (ORDER BY ts_rank_cd(c.tsv, query.q) DESC, c.id) AS rank
        FROM chunks c, query
        WHERE c.assistant_id = :assistant_id AND c.owner_id = :owner_id AND c.tsv @@ query.q
        ORDER BY ts_rank_cd(c.tsv, query.q) DESC, c.id
        LIMIT :n
    ),
    fused AS (
        SELECT id, sum(1.0 / (:rrf_k + rank)) AS rrf
        FROM (SELECT id, rank FROM vec_ranked UNION ALL SELECT id, rank FROM fts) AS ranks
        GROUP BY id
    )
    SELECT c.id, c.document_id, d.filename, c.text,
           f.rrf * (:rrf_k + 1) / 2.0 AS score,
           1 - (c.embedding <=> CAST(:q AS vector)) AS similarity
    FROM fused f
    JOIN chunks c ON c.id = f.id
    JOIN documents d ON d.id = c.document_id
    WHERE 1 - (c.embedding <=> CAST(:q AS vector)) >= :min_score
    ORDER BY f.rrf DESC, similarity DESC
    LIMIT :k
    """
)


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
    rows = await session.execute(
        _SEARCH_SQL,
        {
            "q": vector_literal(query_vector),
            "query_text": query,
            "owner_id": owner_id,
            "assistant_id": assistant_id,
            "n": max(settings.retrieval_candidates, top_k),
            "k": top_k,
            "rrf_k": RRF_K,
            "min_score": min_score,
        },
    )
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
