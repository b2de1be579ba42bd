"""CORS for the endpoints the widget calls from its host pages, whatever their origin.

The widget authenticates with its session token in ``Authorization``, never with cookies, so these answers
allow any origin without credentials (``*``): a page can read only what its own token reaches. Origins
listed for the dashboard keep their credentialed CORS from ``CORSMiddleware`` further in.
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import get_settings

_WIDGET_PATHS = re.compile(r"^/api/(widget/[^/]+/sessions|dialogs/[^/]+(/messages)?|messages/[^/]+)$")
_PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key, X-Request-ID",
    "Access-Control-Max-Age": "600",
}


class WidgetCorsMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app
        self.dashboard_origins = set(get_settings().cors_allow_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _WIDGET_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or origin in self.dashboard_origins:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await Response(status_code=204, headers=_PREFLIGHT_HEADERS)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = "*"
                response_headers["Access-Control-Expose-Headers"] = "Retry-After, X-Request-ID"
            await send(message)

        await self.app(scope, receive, send_with_cors)
