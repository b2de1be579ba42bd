"""Sniff a file's kind from its bytes and turn it into plain text.

The kind comes from the content (magic bytes, the zip's member names), never from the file name; the
name only tells Markdown from plain text, which no content can. Parsers import lazily so the API, which
only sniffs, stays light.
"""

from __future__ import annotations

import io
import re
from typing import Literal

Kind = Literal["txt", "md", "html", "pdf", "docx"]

_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<!--)", re.IGNORECASE)
_HTML_TAGS = re.compile(rb"<(p|div|h[1-6]|ul|ol|li|table|span|a|br|title)[\s>/]", re.IGNORECASE)


class UnsupportedType(Exception):
    pass


class ParseError(Exception):
    """The document cannot be turned into text; the message is shown to the owner."""


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


def extract_text(data: bytes, kind: Kind | str) -> str:
    """The document's text, cleaned; raises ``ParseError`` with a readable reason. ``kind`` is the
    stored sniffed kind (one of ``Kind``); any other reads as plain text."""
    if not data:
        raise ParseError("The file is empty")
    try:
        if kind == "pdf":
            text = _pdf_text(data)
        elif kind == "docx":
            text = _docx_text(data)
        elif kind == "html":
            text = _html_text(_text_or_fail(data))
        else:
            text = _text_or_fail(data)
    except ParseError:
        raise
    except Exception as exc:  # parsers raise many kinds of errors on damaged files
        raise ParseError(f"The {kind} file could not be read: {exc}") from exc
    text = clean(text)
    if not text:
        raise ParseError("The document contains no text")
    return text


def _text_or_fail(data: bytes) -> str:
    text = _decode(data)
    if text is None:
        raise ParseError("The file is not valid UTF-8 text")
    return text


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("The PDF is encrypted (password protected)")
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
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
