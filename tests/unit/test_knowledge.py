"""Pure pieces of the knowledge base: sniffing, parsing, chunking, the knowledge prompt, offline answers."""

from __future__ import annotations

import itertools

import pytest

from services.chat.prompt import knowledge_block
from services.knowledge.chunking import chunk_text
from services.knowledge.parsing import ParseError, UnsupportedType, extract_text, sniff
from services.knowledge.storage import LocalFileStorage
from services.providers.base import ChatRequest, ContextPassage
from services.providers.offline import NOTHING_MATCHES, OfflineProvider
from tests.fixtures.documents import encrypt_pdf, make_docx, make_html, make_pdf


def test_kind_comes_from_the_content_not_the_name() -> None:
    assert sniff(make_pdf("x"), "notes.txt") == "pdf"
    assert sniff(make_docx(["x"]), "notes.pdf") == "docx"
    assert sniff(make_html("t", ["p"]), "page.txt") == "html"
    assert sniff(b"# Title\n\nbody", "readme.md") == "md"
    assert sniff(b"plain words", "readme.pdf") == "txt"
    for data in (b"\x89PNG\r\n\x1a\n\x00\x00", b"PK\x03\x04 other zip", b"\x7fELF\x02\x01\x00"):
        with pytest.raises(UnsupportedType):
            sniff(data, "file.txt")


def test_parsers_extract_clean_text_and_fail_readably() -> None:
    assert extract_text(make_pdf("Line one.\nLine two."), "pdf") == "Line one.\nLine two."
    assert extract_text(make_docx(["A.", "B."]), "docx") == "A.\n\nB."
    html = extract_text(make_html("Title", ["Para  one.", "Para two."]), "html")
    assert "Para one." in html and "ignored" not in html and "color" not in html
    cases = {
        b"": "empty",
        encrypt_pdf(make_pdf("secret")): "encrypted",
        make_docx(["x"])[:5000]: "damaged",
        b"  \n\t\n ": "no text",
        b"%PDF-1.4 garbage": "PDF is damaged",
    }
    for data, reason in cases.items():
        kind = sniff(data) if data.strip() else "txt"
        with pytest.raises(ParseError, match=reason):
            extract_text(data, kind)


def test_chunks_respect_the_budget_and_overlap() -> None:
    text = "\n\n".join(f"Sentence {i} is about topic {i % 5}. It has a second part {i}." for i in range(60))
    chunks = chunk_text(text, max_tokens=60, overlap_tokens=15)
    assert len(chunks) > 5 and [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.token_count <= 66 for c in chunks)  # estimates of parts and whole differ by rounding
    for before, after in itertools.pairwise(chunks):
        assert after.text.split(". ")[0] in before.text, "each chunk starts with the end of the previous"
    assert chunk_text("One sentence.") == chunk_text("One sentence.", 200, 40)
    long_word_run = "word " * 1000
    assert all(c.token_count <= 60 for c in chunk_text(long_word_run, 60, 10))


def test_knowledge_block_fits_the_budget() -> None:
    passages = [("a.txt", "alpha " * 50), ("b.txt", "beta " * 50), ("c.txt", "gamma " * 50)]
    block, used = knowledge_block(passages, 240)
    assert used == 2 and "[1] (a.txt)" in block and "[2] (b.txt)" in block and "c.txt" not in block
    assert knowledge_block(passages, 5) == ("", 0)


async def test_offline_quotes_sources_or_says_nothing_matches() -> None:
    provider = OfflineProvider(token_delay_ms=0)
    messages = [{"role": "user", "content": "refunds?"}]
    request = ChatRequest("m", messages, 0, 500, (ContextPassage("Refunds take 5 days.", "policy.pdf"),))  # type: ignore[arg-type]
    text = "".join([p async for p in provider.stream(request) if isinstance(p, str)])
    assert text.endswith('[1] "Refunds take 5 days." (from policy.pdf)')
    empty = ChatRequest("m", messages, 0, 500, ())  # type: ignore[arg-type]
    text = "".join([p async for p in provider.stream(empty) if isinstance(p, str)])
    assert text.endswith(NOTHING_MATCHES)


def test_local_storage_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    storage = LocalFileStorage(tmp_path)
    storage.put("documents/u/d", b"data")
    assert storage.get("documents/u/d") == b"data"
    storage.delete("documents/u/d")
    storage.delete("documents/u/d")
    with pytest.raises(FileNotFoundError):
        storage.get("documents/u/d")
    with pytest.raises(ValueError):
        storage.put("../escape", b"x")
