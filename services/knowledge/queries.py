"""The knowledge base's hand-written SQL: the hybrid search and the reindex chain's recovery. Each
statement is tested directly in tests/integration/test_knowledge_queries.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from models import DocumentStatus

_SEARCH = text(
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


# Runs with documents waiting, none indexing and no change since ``quiet_since``.
_STALLED_REINDEX_RUNS = text(
    """
    SELECT DISTINCT w.reindex_run_id FROM documents w
    WHERE w.reindex_run_id IS NOT NULL AND w.status = CAST(:ready AS document_status)
      AND NOT EXISTS (
          SELECT 1 FROM documents d
          WHERE (d.index_run_id = w.reindex_run_id OR d.reindex_run_id = w.reindex_run_id)
            AND (d.status = ANY(CAST(:indexing AS document_status[])) OR d.updated_at > :quiet_since)
      )
    LIMIT 100
    """
)
_INDEXING = [DocumentStatus.queued.value, DocumentStatus.parsing.value, DocumentStatus.embedding.value]


async def search_chunks(
    session: AsyncSession, owner_id: uuid.UUID, assistant_id: uuid.UUID, query: str, vector: str,
    *, candidates: int, top_k: int, rrf_k: int, min_score: float,
) -> Sequence[Row[uuid.UUID, uuid.UUID, str, str, float, float]]:  # fmt: skip
    """Rows of (id, document_id, filename, text, score, similarity), best first; ``vector`` is a
    pgvector literal."""
    params = {
        "q": vector, "query_text": query, "owner_id": owner_id, "assistant_id": assistant_id,
        "n": candidates, "k": top_k, "rrf_k": rrf_k, "min_score": min_score,
    }  # fmt: skip
    return (await session.execute(_SEARCH, params)).all()


async def stalled_reindex_runs(session: AsyncSession, quiet_since: datetime) -> list[uuid.UUID]:
    params = {"ready": DocumentStatus.ready.value, "indexing": _INDEXING, "quiet_since": quiet_since}
    return [run for (run,) in await session.execute(_STALLED_REINDEX_RUNS, params)]
