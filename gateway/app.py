"""The gateway: sign-in and users, the proxy to the services, and one OpenAPI for all of them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gateway import openapi, proxy, service
from gateway.config import GatewaySettings, get_settings
from gateway.models import IdempotencyRecord
from gateway.router import router, token_router
from gateway.upstreams import Upstreams
from gateway.web import WEB_ROUTERS
from gateway.web.api import PublicApi
from gateway.web.pages import install_page_handlers
from services.common.app import assemble_app, database_for

STATIC_DIR = Path(__file__).parent / "web" / "static"


def create_app(
    settings: GatewaySettings | None = None,
    *,
    upstream_transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """`upstream_transports` replaces the network for named services (tests talk to in-process apps)."""
    settings = settings or get_settings()
    database = database_for(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstreams = Upstreams(settings, upstream_transports)
        app.state.public_api = PublicApi(app)
        try:
            await service.bootstrap_admin(database, settings.bootstrap_credentials)
            yield
        finally:
            await app.state.public_api.aclose()
            await app.state.upstreams.aclose()
            await database.dispose()

    app = assemble_app(
        name="gateway",
        title="对接 Duijie",
        description="村级需求与社会组织资源精准对接平台。Matching what villages need with what social organisations can give.",
        settings=settings,
        database=database,
        idempotency_model=IdempotencyRecord,
        lifespan=lifespan,
        # The proxy first: every /api request (most of the traffic) matches it at once instead of after
        # each page's route; it claims nothing outside /api/.
        routers=[proxy.router, token_router, router, openapi.router, *WEB_ROUTERS],
        # /openapi.json and /docs are the merged ones (gateway/openapi.py), not FastAPI's defaults.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    # Idempotency fingerprints are keyed: a user's creation request carries their password.
    app.state.idempotency_fingerprint_key = hmac.new(
        settings.private_pem.encode(), b"duijie idempotency fingerprint", hashlib.sha256
    ).digest()
    app.state.csrf_key = hmac.new(settings.private_pem.encode(), b"duijie csrf", hashlib.sha256).digest()
    install_page_handlers(app)
    app.state.openapi = openapi.MergedOpenAPI(app.openapi, ttl_seconds=settings.openapi_cache_seconds)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
