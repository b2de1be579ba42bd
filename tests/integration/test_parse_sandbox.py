"""Parsing in a child process under rlimits: a document that needs more memory than the child may use
fails as ``document_too_large`` and the calling process carries on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.settings import get_settings
from services.knowledge.parsing import DocumentTooLarge
from services.knowledge.sandbox import extract_text_isolated
from tests.fixtures.documents import make_docx, make_docx_bomb

MiB = 1024 * 1024


@pytest.fixture
def lifted_size_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only the child's memory limit stands between the bomb and the parser."""
    monkeypatch.setenv("CHATAI_DOCUMENT_MAX_UNPACKED_BYTES", str(4096 * MiB))
    monkeypatch.setenv("CHATAI_DOCUMENT_MAX_COMPRESSION_RATIO", "1e12")
    monkeypatch.setenv("CHATAI_PARSE_MEMORY_BYTES", str(300 * MiB))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_memory_limit_stops_a_bomb_that_passes_the_size_checks(lifted_size_limits: None) -> None:
    with pytest.raises(DocumentTooLarge, match="memory"):
        extract_text_isolated(make_docx_bomb(400 * MiB), "docx")
    # The same limits leave room for an ordinary document.
    assert extract_text_isolated(make_docx(["An ordinary paragraph."]), "docx") == "An ordinary paragraph."
