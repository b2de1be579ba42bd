"""Decompression bombs through the real upload endpoint and a real embeddings worker: each fails with
``document_too_large`` without a retry, and the same worker goes on to index the next document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e.test_knowledge import index, new_assistant
from tests.fixtures.api import signup
from tests.fixtures.documents import make_docx_bomb, make_pdf_stream_bomb, make_pdf_with_pages
from tests.fixtures.stack import Stack, running_stack

MiB = 1024 * 1024
MAX_PAGES = 200
MAX_UNPACKED = 20 * MiB


@pytest.fixture(scope="module")
def bomb_stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_LLM_PROVIDER": "offline",
        "CHATAI_EMBEDDINGS_CONCURRENCY": "1",
        "CHATAI_DOCUMENT_MAX_PAGES": str(MAX_PAGES),
        "CHATAI_DOCUMENT_MAX_UNPACKED_BYTES": str(MAX_UNPACKED),
        "CHATAI_PARSE_MEMORY_BYTES": str(512 * MiB),
        "CHATAI_PARSE_CPU_SECONDS": "30",
        "HF_HUB_OFFLINE": "1",
    }
    with running_stack(env, log_dir, workers=("embeddings",)) as system:  # type: ignore[arg-type]
        yield system


@pytest.fixture
async def http(bomb_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=bomb_stack.base_url, timeout=120) as client:
        yield client


async def test_bombs_fail_as_too_large_and_the_worker_indexes_the_next_document(
    http: httpx.AsyncClient, bomb_stack: Stack
) -> None:
    owner = await signup(http, "bomber")
    assistant_id = await new_assistant(http, owner)
    bombs = {
        "expands.docx": make_docx_bomb(100 * MiB),
        "pages.pdf": make_pdf_with_pages(MAX_PAGES * 10),
        "stream.pdf": make_pdf_stream_bomb(60 * MiB),
    }
    assert all(len(data) < MiB for data in bombs.values()), {n: len(d) for n, d in bombs.items()}
    docs = await index(http, bomb_stack, owner, assistant_id, bombs)
    for name, doc in docs.items():
        assert doc["status"] == "failed" and doc.get("error_code") == "document_too_large", (name, doc)
        assert doc["events"][-1].get("error_code") == "document_too_large", doc["events"]
        # Never retried: one pass through parsing, straight to failed.
        statuses = [e["status"] for e in doc["events"]]
        assert statuses.count("parsing") == 1 and "embedding" not in statuses, (name, statuses)
    assert "pages" in docs["pages.pdf"]["error"] and "unpack" in docs["stream.pdf"]["error"]

    worker = next(c for c in bomb_stack.children if c.name.startswith("worker-embeddings"))
    assert worker.proc.poll() is None
    after = await index(http, bomb_stack, owner, assistant_id, {"next.txt": b"Kettles boil water fast."})
    assert after["next.txt"]["status"] == "ready" and after["next.txt"]["error_code"] is None
    assert "WorkerLostError" not in worker.log_text() and "Retry in" not in worker.log_text()
