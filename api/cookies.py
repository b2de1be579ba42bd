"""Browser sessions: the token cookies set at login and the double-submit CSRF check.

The access and refresh tokens travel in HttpOnly cookies (script cannot read them); ``csrf_token`` is
readable so the dashboard can echo it in ``X-CSRF-Token``, which a cross-site form cannot do.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import Request, Response

from core.settings import get_settings
from services.errors import Forbidden

ACCESS_COOKIE = "chatai_access"
REFRESH_COOKIE = "chatai_refresh"
CSRF_COOKIE = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The refresh token is only ever sent to the endpoints that use it.
REFRESH_PATH = "/api/auth"


def set_session_cookies(response: Response, access_token: str, refresh_token: str) -> None:
    settings = get_settings()
    common: dict[str, Any] = {
        "secure": settings.cookie_secure,
        "samesite": settings.cookie_samesite,
        "domain": settings.cookie_domain,
    }
    response.set_cookie(
        ACCESS_COOKIE, access_token, max_age=settings.access_token_ttl_seconds, httponly=True, path="/",
        **common,
    )  # fmt: skip
    response.set_cookie(
        REFRESH_COOKIE, refresh_token, max_age=settings.refresh_token_ttl_seconds, httponly=True,
        path=REFRESH_PATH, **common,
    )  # fmt: skip
    response.set_cookie(
        CSRF_COOKIE, secrets.token_urlsafe(32), max_age=settings.refresh_token_ttl_seconds, httponly=False,
        path="/", **common,
    )  # fmt: skip


def clear_session_cookies(response: Response) -> None:
    domain = get_settings().cookie_domain
    response.delete_cookie(ACCESS_COOKIE, path="/", domain=domain)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH, domain=domain)
    response.delete_cookie(CSRF_COOKIE, path="/", domain=domain)


def check_csrf(request: Request) -> None:
    """A cookie-authenticated request that changes state must echo the CSRF cookie in the header."""
    if request.method in SAFE_METHODS:
        return
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not header or not hmac.compare_digest(cookie.encode(), header.encode()):
        raise Forbidden("The X-CSRF-Token header must match the csrf_token cookie", code="csrf_failed")
