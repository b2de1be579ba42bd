"""JSON logs with the ids that let one chat turn be followed across processes."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
task_id_var: ContextVar[str | None] = ContextVar("task_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
dialog_id_var: ContextVar[str | None] = ContextVar("dialog_id", default=None)

_CONTEXT = {
    "request_id": request_id_var,
    "task_id": task_id_var,
    "user_id": user_id_var,
    "dialog_id": dialog_id_var,
}


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT.items():
            if getattr(record, name, None) is None:
                value = var.get()
                if value is not None:
                    setattr(record, name, value)
        return True


# Secrets that must never reach a log line, whatever logged them (a message, an argument, an exception,
# a repr of a request): each match keeps its first group and loses the rest.
_SECRETS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)((?:authorization|cookie|x-csrf-token|api[_-]?key|secret|password|token)"
        r"[\\\"']*\s*[:=]\s*[\\\"']*)[^\s\\\"',;}&]{4,}"
    ),
    re.compile(r"()eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),  # JWTs
    re.compile(r"()\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,}"),  # Stripe keys
    re.compile(r"()\bsk-[A-Za-z0-9_-]{16,}"),  # OpenAI-style API keys
    re.compile(r"()\bcak_[A-Za-z0-9_-]{16,}"),  # our own API keys (/v1)
    re.compile(r"()(?<![0-9])\d{6,12}:[A-Za-z0-9_-]{30,}"),  # Telegram bot tokens
]


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + "[REDACTED]", text)
    return text


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines with secrets replaced by ``[REDACTED]``, applied to the finished line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str = "INFO", process: str = "chatai") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            static_fields={"process_kind": process},
        )
    )
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "openai", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
