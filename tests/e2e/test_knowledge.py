"""The knowledge base through the real processes: uploads over HTTP, an embeddings worker with the real
MiniLM model, statuses over the WebSocket, hybrid search, cited offline answers, tenant isolation
(including a filtered HNSW search for a tenant holding 0.1 % of the rows), and a worker killed mid-document.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from core.db import to_libpq
from tests.fixtures.api import Account, WsClient, new_assistant, open_dialog, poll_reply, post_message, signup
from tests.fixtures.documents import encrypt_pdf, make_docx, make_html, make_pdf
from tests.fixtures.processes import ROOT
from tests.fixtures.stack import Stack, running_stack

MAX_UPLOAD = 300_000

REFUNDS = (
    "Refund policy. Customers who return an unused item receive their money back within five business "
    "days. Refunds go to the original payment card."
)
SHIPPING = (
    "Shipping. Parcels leave our warehouse in Rotterdam every weekday at noon and usually arrive within "
    "two days anywhere in the Netherlands."
)
PASSWORD = (
    "Account security. To change your password, open Settings, choose Security and press the Reset "
    "button; a confirmation link is emailed to you."
)
CAT = "Office life. The office cat is called Whiskers and sleeps on the warm printer all afternoon."


@pytest.fixture(scope="module")
def kb_stack(stack_env: dict[str, str], log_dir: object) -> Iterator[Stack]:
    env = {
        **stack_env,
        "CHATAI_LLM_PROVIDER": "offline",
        "CHATAI_OFFLINE_TOKEN_DELAY_MS": "0",
        "CHATAI_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "CHATAI_CHUNK_TOKENS": "48",
        "CHATAI_CHUNK_OVERLAP_TOKENS": "8",
        "CHATAI_EMBEDDING_BATCH_SIZE": "8",
        "CHATAI_EMBEDDINGS_CONCURRENCY": "1",
        "CHATAI_LLM_CONCURRENCY": "20",
        "CHATAI_DOCUMENT_SILENCE_SECONDS": "3",
        # The first search waits for the queries worker to load the model: slow on a busy 2-core machine.
        "CHATAI_QUERY_EMBEDDING_TIMEOUT_SECONDS": "90",
        # The llm worker loads the model on its first answer with knowledge, after the claim and before
        # its first heartbeat: seconds, or tens of seconds on a busy machine.
        "CHATAI_REPLY_SILENCE_SECONDS": "120",
        "HF_HUB_OFFLINE": "1",
    }
    with running_stack(env, log_dir, workers=("llm", "embeddings", "queries"), beat=True) as system:  # type: ignore[arg-type]
        yield system


@pytest.fixture
async def http(kb_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=kb_stack.base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def libpq(database_url: str) -> str:
    return to_libpq(database_url)


async def upload(
    http: httpx.AsyncClient, account: Account, assistant_id: str, name: str, data: bytes
) -> httpx.Response:
    return await http.post(
        f"/api/assistants/{assistant_id}/documents", files={"file": (name, data)}, headers=account.headers
    )


async def statuses_until_done(ws: WsClient, document_ids: set[str], timeout: float = 90) -> dict[str, list]:
    """``document.status`` events per document until each is ``ready`` or ``failed``."""
    seen: dict[str, list[dict[str, Any]]] = {d: [] for d in document_ids}
    pending = set(document_ids)
    async with asyncio.timeout(timeout):
        while pending:
            frame = await ws.recv(timeout)
            data = frame.get("data", {})
            if frame.get("type") != "document.status" or data.get("document_id") not in seen:
                continue
            seen[data["document_id"]].append(data)
            if data["status"] in ("ready", "failed"):
                pending.discard(data["document_id"])
    return seen


async def index(
    http: httpx.AsyncClient, stack: Stack, account: Account, assistant_id: str, files: dict[str, bytes]
) -> dict[str, dict[str, Any]]:
    """Upload ``files`` and wait for each to finish; returns name → the document as GET shows it."""
    async with WsClient(stack.ws_url, account.access_token) as ws:
        await ws.subscribe("user")
        ids = {}
        for name, data in files.items():
            r = await upload(http, account, assistant_id, name, data)
            assert r.status_code == 202, r.text
            assert r.json()["status"] == "queued" and r.json()["filename"] == name
            ids[name] = r.json()["id"]
        events = await statuses_until_done(ws, set(ids.values()))
    out = {}
    for name, doc_id in ids.items():
        r = await http.get(f"/api/documents/{doc_id}", headers=account.headers)
        assert r.status_code == 200, r.text
        out[name] = {**r.json(), "events": events[doc_id]}
    return out


async def search(
    http: httpx.AsyncClient, account: Account, assistant_id: str, query: str, top_k: int | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"query": query} | ({"top_k": top_k} if top_k else {})
    return await http.post(f"/api/assistants/{assistant_id}/search", json=body, headers=account.headers)


async def test_each_type_is_indexed_and_searchable(http: httpx.AsyncClient, kb_stack: Stack) -> None:
    alice = await signup(http, "alice")
    assistant_id = await new_assistant(http, alice)
    files = {
        "refunds.txt": REFUNDS.encode(),
        "shipping.md": f"# Shipping\n\n{SHIPPING}\n".encode(),
        "security.html": make_html("Security", [PASSWORD]),
        "office.pdf": make_pdf(CAT),
        "warranty.docx": make_docx(["Warranty.", "Every kettle carries a warranty of three years."]),
    }
    docs = await index(http, kb_stack, alice, assistant_id, files)
    for name, doc in docs.items():
        statuses = [e["status"] for e in doc["events"]]
        assert statuses[0] == "queued" and statuses[-1] == "ready", (name, statuses)
        assert "parsing" in statuses and "embedding" in statuses, (name, statuses)
        assert doc["status"] == "ready" and doc["chunk_count"] >= 1 and doc["error"] is None, doc
        assert doc["progress"] == 1.0
    assert docs["office.pdf"]["content_type"] == "pdf" and docs["warranty.docx"]["content_type"] == "docx"
    assert docs["security.html"]["content_type"] == "html" and docs["shipping.md"]["content_type"] == "md"

    r = await http.get(f"/api/assistants/{assistant_id}/documents", headers=alice.headers)
    assert {d["filename"] for d in r.json()["items"]} == set(files)

    # Paraphrased questions (few shared words) find the right document first.
    questions = {
        "How many days until I get my money back after sending something back?": "refunds.txt",
        "When will my package be delivered?": "shipping.md",
        "I forgot my login secret, how do I set a new one?": "security.html",
        "What is the name of the pet in the workplace?": "office.pdf",
        "How long is the guarantee on a kettle?": "warranty.docx",
    }
    for question, expected in questions.items():
        r = await search(http, alice, assistant_id, question)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert items, question
        assert items[0]["document_id"] == docs[expected]["id"], (question, items[0])
        assert set(items[0]) >= {"document_id", "chunk_id", "text", "score"}
    r = await search(http, alice, assistant_id, "refunds", top_k=1)
    assert len(r.json()["items"]) == 1


async def test_offline_answer_cites_the_right_document(http: httpx.AsyncClient, kb_stack: Stack) -> None:
    bob = await signup(http, "bob")
    assistant_id = await new_assistant(http, bob, llm_provider="offline", retrieval_top_k=2)
    docs = await index(
        http, kb_stack, bob, assistant_id, {"refunds.txt": REFUNDS.encode(), "office.pdf": make_pdf(CAT)}
    )
    dialog_id = await open_dialog(http, bob, assistant_id)

    posted = await post_message(http, bob, dialog_id, "How long does it take to get my money back?")
    reply = await poll_reply(http, bob, posted["reply"]["id"], timeout=60)
    assert reply["status"] == "completed", reply
    assert reply["citations"] and reply["citations"][0]["document_id"] == docs["refunds.txt"]["id"]
    assert "five business days" in reply["content"] and "(from refunds.txt)" in reply["content"]

    posted = await post_message(http, bob, dialog_id, "Which football club won the league in 1974?")
    reply = await poll_reply(http, bob, posted["reply"]["id"], timeout=60)
    assert reply["status"] == "completed" and reply["citations"] == []
    assert "found nothing in the knowledge base" in reply["content"]


async def test_malformed_and_oversized_files_fail_cleanly(http: httpx.AsyncClient, kb_stack: Stack) -> None:
    carol = await signup(http, "carol")
    assistant_id = await new_assistant(http, carol)
    r = await upload(http, carol, assistant_id, "huge.txt", b"a" * (MAX_UPLOAD + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = await upload(http, carol, assistant_id, "huge.txt", b"word " * (MAX_UPLOAD // 2))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    r = await upload(http, carol, assistant_id, "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_type"
    r = await upload(http, carol, assistant_id, "notes.docx", b"PK\x03\x04 an archive with other files")
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_type"

    docx = make_docx(["Some text"])
    docs = await index(
        http, kb_stack, carol, assistant_id,
        {
            "empty.txt": b"",
            "locked.pdf": encrypt_pdf(make_pdf("Top secret")),
            "broken.docx": docx[: len(docx) // 2],
            "whitespace.md": b"   \n\n  \t\n",
        },
    )  # fmt: skip
    errors = {name: doc["error"] for name, doc in docs.items()}
    assert all(doc["status"] == "failed" for doc in docs.values()), docs
    assert "empty" in errors["empty.txt"]
    assert "encrypted" in errors["locked.pdf"]
    assert "damaged" in errors["broken.docx"]
    assert "no text" in errors["whitespace.md"]
    assert docs["locked.pdf"]["events"][-1]["error"] == errors["locked.pdf"]


async def test_tenants_never_see_each_others_documents(
    http: httpx.AsyncClient, kb_stack: Stack, libpq: str
) -> None:
    dave = await signup(http, "dave")
    eve = await signup(http, "eve")
    dave_assistant = await new_assistant(http, dave)
    eve_assistant = await new_assistant(http, eve)
    docs = await index(http, kb_stack, dave, dave_assistant, {"refunds.txt": REFUNDS.encode()})
    await index(http, kb_stack, eve, eve_assistant, {"office.pdf": make_pdf(CAT)})
    doc_id = docs["refunds.txt"]["id"]

    assert (await http.get(f"/api/documents/{doc_id}", headers=eve.headers)).status_code == 404
    assert (await http.delete(f"/api/documents/{doc_id}", headers=eve.headers)).status_code == 404
    r = await http.get(f"/api/assistants/{dave_assistant}/documents", headers=eve.headers)
    assert r.status_code == 404
    assert (await search(http, eve, dave_assistant, "refund")).status_code == 404
    assert (await upload(http, eve, dave_assistant, "x.txt", b"hello")).status_code == 404
    r = await search(http, eve, eve_assistant, "How do refunds work? money back refund", top_k=10)
    assert r.status_code == 200
    assert all(item["document_id"] != doc_id for item in r.json()["items"])

    # Deleting takes the chunks and the stored file.
    key_path = ROOT / "tests" / "artifacts" / "test_knowledge" / "files" / "documents" / dave.user_id / doc_id
    assert key_path.exists()
    assert (await http.delete(f"/api/documents/{doc_id}", headers=dave.headers)).status_code == 204
    assert (await http.get(f"/api/documents/{doc_id}", headers=dave.headers)).status_code == 404
    with psycopg.connect(libpq) as conn:
        left = conn.execute("SELECT count(*) FROM chunks WHERE document_id = %s", (doc_id,)).fetchone()
    assert left == (0,)
    assert not key_path.exists()


def _seed_tenant_rows(libpq: str, owner_id: str, assistant_id: str, rows: int, seed: float) -> None:
    document_id = str(uuid.uuid4())
    with psycopg.connect(libpq) as conn:
        conn.execute("SELECT setseed(%s)", (seed,))
        conn.execute(
            "INSERT INTO documents (id, owner_id, assistant_id, filename, content_type, size_bytes,"
            " storage_key, status, progress, chunk_count, attempt, updated_at)"
            " VALUES (%s, %s, %s, 'synthetic.txt', 'txt', 0, 'none', 'ready', 1, %s, 1, now())",
            (document_id, owner_id, assistant_id, rows),
        )
        conn.execute(
            """
            INSERT INTO chunks (id, owner_id, assistant_id, document_id, position, text, token_count,
                                embedding_model, embedding)
            SELECT gen_random_uuid(), %s, %s, %s, g, 'synthetic row ' || g, 3, 'synthetic',
                   (SELECT array_agg(random() - 0.5)::vector(384) FROM generate_series(1, 384) WHERE g > 0)
            FROM generate_series(1, %s) AS g
            """,
            (owner_id, assistant_id, document_id, rows),
        )


async def test_filtered_hnsw_returns_k_rows_for_a_tenant_with_a_tenth_of_a_percent(
    http: httpx.AsyncClient, kb_stack: Stack, libpq: str
) -> None:
    big = await signup(http, "big")
    tiny = await signup(http, "tiny")
    big_assistant = await new_assistant(http, big)
    tiny_assistant = await new_assistant(http, tiny)
    _seed_tenant_rows(libpq, big.user_id, big_assistant, 9_990, 0.1)
    _seed_tenant_rows(libpq, tiny.user_id, tiny_assistant, 10, 0.2)
    query = "[" + ",".join("0.01" if i % 2 else "-0.02" for i in range(384)) + "]"
    vector_sql = (
        "SELECT id FROM chunks WHERE assistant_id = %s AND owner_id = %s"
        " ORDER BY embedding <=> %s::vector LIMIT 10"
    )
    args = (tiny_assistant, tiny.user_id, query)
    with psycopg.connect(libpq) as conn:
        conn.execute("ANALYZE chunks")
        exact = {row[0] for row in conn.execute(vector_sql, args)}
        assert len(exact) == 10
        # Only the HNSW index may serve the query (the b-tree indexes go for this transaction).
        conn.execute("DROP INDEX ix_chunks_assistant_id")
        conn.execute("DROP INDEX ix_chunks_owner_id")
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + vector_sql, args))
        assert "ix_chunks_embedding_hnsw" in plan, plan
        conn.execute("SET LOCAL hnsw.iterative_scan = off")
        without = list(conn.execute(vector_sql, args))
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        conn.execute("SET LOCAL hnsw.ef_search = 100")
        conn.execute("SET LOCAL hnsw.max_scan_tuples = 50000")
        filtered = {row[0] for row in conn.execute(vector_sql, args)}
        conn.rollback()
    assert len(without) < 10, "without iterative scans the filter starves the HNSW candidates"
    assert filtered == exact, "iterative scans find every one of the tenant's nearest rows"

    # Through the API: the tiny tenant gets top_k rows, all its own; the big one never sees them.
    r = await search(http, tiny, tiny_assistant, "synthetic row", top_k=10)
    assert r.status_code == 200
    assert all(i["text"].startswith("synthetic") for i in r.json()["items"])
    with psycopg.connect(libpq) as conn:
        conn.execute("UPDATE assistants SET retrieval_min_score = -1 WHERE id = %s", (tiny_assistant,))
    r = await search(http, tiny, tiny_assistant, "synthetic row", top_k=10)
    items = r.json()["items"]
    assert len(items) == 10
    with psycopg.connect(libpq) as conn:
        owners = conn.execute(
            "SELECT DISTINCT owner_id::text FROM chunks WHERE id = ANY(%s::uuid[])",
            ([i["chunk_id"] for i in items],),
        ).fetchall()
    assert owners == [(tiny.user_id,)]


async def test_killed_embedding_worker_is_finished_by_a_retry_without_duplicates(
    http: httpx.AsyncClient, kb_stack: Stack, libpq: str
) -> None:
    frank = await signup(http, "frank")
    assistant_id = await new_assistant(http, frank)
    paragraphs = [f"Section {i}. {REFUNDS} {SHIPPING} {PASSWORD} Note number {i}." for i in range(120)]
    data = "\n\n".join(paragraphs).encode()
    async with WsClient(kb_stack.ws_url, frank.access_token) as ws:
        await ws.subscribe("user")
        r = await upload(http, frank, assistant_id, "long.txt", data)
        doc_id = r.json()["id"]
        async with asyncio.timeout(90):
            while True:
                frame = await ws.recv(90)
                d = frame.get("data", {})
                if d.get("document_id") == doc_id and d["status"] == "embedding" and d["progress"] > 0:
                    break
        workers = [c for c in kb_stack.children if c.name.startswith("worker-embeddings")]
        for worker in workers:
            worker.kill()
        r = await http.get(f"/api/documents/{doc_id}", headers=frank.headers)
        assert r.json()["status"] == "embedding"
        kb_stack.start_worker("embeddings")
        events = await statuses_until_done(ws, {doc_id}, timeout=120)

    statuses = [e["status"] for e in events[doc_id]]
    assert statuses[-1] == "ready", statuses
    assert "queued" in statuses, "the reaper handed the document to a new attempt"
    doc = (await http.get(f"/api/documents/{doc_id}", headers=frank.headers)).json()
    with psycopg.connect(libpq) as conn:
        count, distinct, attempt = conn.execute(
            "SELECT count(*), count(DISTINCT position), (SELECT attempt FROM documents WHERE id = %s)"
            " FROM chunks WHERE document_id = %s",
            (doc_id, doc_id),
        ).fetchone()
    assert doc["status"] == "ready" and doc["chunk_count"] == count == distinct > 20
    assert attempt == 2


def test_api_process_never_imports_torch() -> None:
    code = (
        "import sys, api.app, workers.app, tasks.embeddings, tasks.llm; api.app.create_app();"
        " assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'torch loaded'"
    )
    env = {"CHATAI_ENV": "test", "CHATAI_JWT_SECRET": "x" * 40, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
