"""The embeddable chat: anonymous sessions, the script, and the iframe page."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse

from api.deps import SessionDep
from api.ratelimits import client_ip, enforce
from api.schemas import WidgetSessionIn, WidgetSessionOut
from core.settings import get_settings
from services.conversations import widget

router = APIRouter(tags=["widget"])

SCRIPT = Path(__file__).resolve().parent.parent / "static" / "widget.js"
PAGE_OPTIONS = ("title", "greeting", "color", "text-color")


def _own_origins(request: Request) -> tuple[str, ...]:
    """The API's own origins (as reached, and as published): where the iframe page comes from."""
    origins = []
    for url in (str(request.base_url), get_settings().public_base_url):
        try:
            origins.append(widget.normalize_origin(url.rstrip("/")))
        except ValueError:
            continue
    return tuple(origins)


@router.post(
    "/api/widget/{public_key}/sessions", status_code=status.HTTP_201_CREATED, response_model=WidgetSessionOut
)
async def open_session(
    public_key: str,
    request: Request,
    session: SessionDep,
    body: Annotated[WidgetSessionIn | None, Body()] = None,
    origin: Annotated[str | None, Header()] = None,
) -> WidgetSessionOut:
    settings = get_settings()
    await enforce(settings.rate_limit_widget_sessions_per_ip, "widget-ip", client_ip(request))
    await enforce(settings.rate_limit_widget_sessions_per_assistant, "widget-assistant", public_key[:100])
    resume = body.resume_token if body is not None else None
    opened = await widget.open_session(session, public_key, origin, _own_origins(request), resume)
    return WidgetSessionOut(
        session_token=opened.token,
        token_type="bearer",
        expires_in=opened.expires_in,
        dialog_id=opened.dialog_id,
        resume_token=opened.resume_token,
        greeting=opened.greeting,
    )


@router.get("/widget.js", include_in_schema=False)
async def widget_script() -> FileResponse:
    return FileResponse(
        SCRIPT,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/widget/{public_key}", include_in_schema=False)
async def widget_page(
    public_key: str,
    request: Request,
    session: SessionDep,
    title: Annotated[str | None, Query(max_length=100)] = None,
    greeting: Annotated[str | None, Query(max_length=500)] = None,
    color: Annotated[str | None, Query(max_length=40)] = None,
    text_color: Annotated[str | None, Query(alias="text-color", max_length=40)] = None,
) -> HTMLResponse:
    assistant = await widget.enabled_assistant(session, public_key)
    ancestors = " ".join(assistant.widget_allowed_origins) or "'none'"
    options = dict(zip(PAGE_OPTIONS, (title, greeting, color, text_color), strict=True))
    attributes = "".join(
        f' data-{name}="{html.escape(value)}"' for name, value in options.items() if value is not None
    )
    page = _PAGE.format(
        key=html.escape(public_key), attributes=attributes, title=html.escape(title or "Chat")
    )
    policy = (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; "
        f"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": policy, "Cache-Control": "no-store"})


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>html,body{{margin:0;height:100%;background:#fff}}</style>
</head>
<body>
<script src="/widget.js" data-public-key="{key}" data-mode="page"{attributes}></script>
</body>
</html>
"""
