"""Sniff a file's kind from its bytes and turn it into plain text.

The kind comes from the content (magic bytes, the zip's member names), never from the file name; the
name only tells Markdown from plain text, which no content can. Parsers import lazily so the API, which
only sniffs, stays light.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["txt", "md", "html", "pdf", "docx"]

_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<!--)", re.IGNORECASE)
_HTML_TAGS = re.compile(rb"<(p|div|h[1-6]|ul|ol|li|table|span|a|br|title)[\s>/]", re.IGNORECASE)


class UnsupportedType(Exception):
    pass


class ParseError(Exception):
    """The document cannot be turned into text; the message is shown to the owner, the code to programs."""

    code = "unreadable_document"


class DocumentTooLarge(ParseError):
    """The document expands past a limit (pages, characters, unpacked bytes, memory or CPU): a
    decompression bomb or simply too big. Indexing it again would fail again, so it is never retried."""

    code = "document_too_large"


@dataclass(frozen=True)
class ParseLimits:
    max_pages: int
    max_chars: int
    max_unpacked_bytes: int
    max_compression_ratio: float

    @classmethod
    def from_settings(cls) -> ParseLimits:
        from core.settings import get_settings

        s = get_settings()
        return cls(
            s.document_max_pages,
            s.document_max_chars,
            s.document_max_unpacked_bytes,
            s.document_max_compression_ratio,
        )


# Members this small are never refused for their ratio: a short XML part compresses well by nature.
RATIO_EXEMPT_BYTES = 1024 * 1024


def sniff(data: bytes, filename: str = "") -> Kind:
    """The document kind of ``data``; raises ``UnsupportedType`` for anything else."""
    head = data[:4096]
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        # Member names are stored in plain text in each local header, so even a damaged docx shows them.
        if b"word/" in data and b"[Content_Types].xml" in data:
            return "docx"
        raise UnsupportedType("Zip archives other than Word documents (.docx) are not supported")
    text = _decode(head, strict=False)
    if text is None:
        raise UnsupportedType("Binary files are not supported; upload txt, md, html, pdf or docx")
    if _HTML_START.match(head) or len(_HTML_TAGS.findall(head)) >= 2:
        return "html"
    return "md" if filename.lower().endswith((".md", ".markdown")) else "txt"


def _decode(data: bytes, *, strict: bool = True) -> str | None:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # A sniffed prefix may end inside a multi-byte character.
        if not strict and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8-sig")
        return None


def extract_text(data: bytes, kind: Kind | str, limits: ParseLimits | None = None) -> str:
    """The document's text, cleaned; raises ``ParseError`` with a readable reason. ``kind`` is the
    stored sniffed kind (one of ``Kind``); any other reads as plain text.

    Run it through ``services.knowledge.sandbox`` on untrusted files: the limits here refuse what can be
    measured before it is expanded; the sandbox's rlimits catch the rest.
    """
    limits = limits or ParseLimits.from_settings()
    if not data:
        raise ParseError("The file is empty")
    try:
        if kind == "pdf":
            text = _pdf_text(data, limits)
        elif kind == "docx":
            check_zip(data, limits)
            text = _docx_text(data)
        elif kind == "html":
            text = _html_text(_text_or_fail(data))
        else:
            text = _text_or_fail(data)
    except ParseError:
        raise
    except MemoryError as exc:
        raise DocumentTooLarge("The document needs more memory to read than it may use") from exc
    except Exception as exc:  # parsers raise many kinds of errors on damaged files
        raise ParseError(f"The {kind} file could not be read: {exc}") from exc
    _check_chars(len(text), limits)
    text = clean(text)
    if not text:
        raise ParseError("The document contains no text")
    return text


def _check_chars(count: int, limits: ParseLimits) -> None:
    if count > limits.max_chars:
        raise DocumentTooLarge(f"The document has more than {limits.max_chars} characters of text")


def check_zip(data: bytes, limits: ParseLimits) -> None:
    """Refuse a zip whose members would unpack past the limits, from their declared sizes (reading a
    member stops at its declared size, so a header that lies cannot unpack more)."""
    import zipfile

    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except zipfile.BadZipFile as exc:
        raise ParseError("The Word document is damaged and cannot be opened") from exc
    total = 0
    for member in members:
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_EXEMPT_BYTES and ratio > limits.max_compression_ratio:
            raise DocumentTooLarge(
                f"The document's part {member.filename} expands {int(ratio)} times "
                f"(more than {limits.max_compression_ratio:g})"
            )
    if total > limits.max_unpacked_bytes:
        raise DocumentTooLarge(f"The document unpacks to more than {limits.max_unpacked_bytes} bytes")


def _text_or_fail(data: bytes) -> str:
    text = _decode(data)
    if text is None:
        raise ParseError("The file is not valid UTF-8 text")
    return text


def _pdf_text(data: bytes, limits: ParseLimits) -> str:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("The PDF is encrypted (password protected)")
        if len(reader.pages) > limits.max_pages:
            raise DocumentTooLarge(f"The PDF has more than {limits.max_pages} pages")
        parts: list[str] = []
        unpacked = chars = 0
        for page in reader.pages:
            contents = page.get_contents()
            # Decoded once here (pypdf keeps it for the extraction): a small stream can inflate hugely.
            unpacked += len(contents.get_data()) if contents is not None else 0
            if unpacked > limits.max_unpacked_bytes:
                raise DocumentTooLarge(
                    f"The PDF's pages unpack to more than {limits.max_unpacked_bytes} bytes"
                )
            parts.append(page.extract_text() or "")
            chars += len(parts[-1])
            _check_chars(chars, limits)
        return "\n\n".join(parts)
    except FileNotDecryptedError as exc:
        raise ParseError("The PDF is encrypted (password protected)") from exc
    except PdfReadError as exc:
        raise ParseError(f"The PDF is damaged: {exc}") from exc


def _docx_text(data: bytes) -> str:
    import zipfile

    from docx import Document

    try:
        document = Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ParseError("The Word document is damaged and cannot be opened") from exc
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text for cell in row.cells))
    return "\n\n".join(parts)


def _html_text(html: str) -> str:
    import html2text

    converter = html2text.HTML2Text()
    converter.ignore_links = True
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.body_width = 0
    return converter.handle(html)


_SPACES = re.compile(r"[ \t\u00a0\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def clean(text: str) -> str:
    """Normalise whitespace: single spaces, paragraphs separated by one blank line."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()
