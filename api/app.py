"""The FastAPI application factory: ``uvicorn --factory api.app:create_app``."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.admission import install_admission
from api.console import mount_console
from api.errors import install_error_handlers
from api.middleware import RequestIdMiddleware
from api.openapi_links import install_links
from api.routers import (
    admin_ops,
    admin_users,
    analytics,
    api_keys,
    assistants,
    auth,
    billing,
    billing_admin,
    dialogs,
    health,
    knowledge,
    knowledge_admin,
    metrics,
    operators,
    telegram,
    v1,
    widget,
    ws,
)
from api.security import install_security
from api.widget_cors import WidgetCorsMiddleware
from api.ws_hub import Hub
from core.db import async_engine
from core.logging import configure_logging
from core.metrics import HttpMetricsMiddleware, register_api_collectors
from core.queues import QUEUES
from core.settings import get_settings, refuse_exposed_development


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub = Hub()
    app.state.hub = hub
    await hub.start()
    try:
        yield
    finally:
        await hub.stop()
        await async_engine().dispose()


def listen_host(argv: list[str]) -> str:
    """The address uvicorn was told to listen on (its ``--host``), else ``CHATAI_HOST``."""
    for i, arg in enumerate(argv):
        if arg == "--host" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--host="):
            return arg.split("=", 1)[1]
    return os.environ.get("UVICORN_HOST") or get_settings().host


def create_app() -> FastAPI:
    settings = get_settings()
    refuse_exposed_development(settings, listen_host(sys.argv))
    configure_logging(settings.log_level, process="api")
    app = FastAPI(
        title="ChatAI",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_security(app)
    install_admission(app)
    app.add_middleware(WidgetCorsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    # Outermost, so a request's duration includes every other middleware.
    app.add_middleware(HttpMetricsMiddleware)
    register_api_collectors(settings.broker_url, QUEUES)
    routers = (
        health,
        metrics,
        auth,
        assistants,
        dialogs,
        ws,
        knowledge,
        knowledge_admin,
        billing,
        billing_admin,
        admin_users,
        telegram,
        analytics,
        admin_ops,
        widget,
        operators,
        api_keys,
        v1,
    )
    for module in routers:
        app.include_router(module.router)
    install_links(app)
    mount_console(app)
    return app
