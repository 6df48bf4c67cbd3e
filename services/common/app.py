"""The one way a Duijie service app is assembled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query

from services.common import feeds, ops
from services.common.db import Database
from services.common.errors import install_error_handlers
from services.common.http import RequestContextMiddleware
from services.common.idempotency import IdempotencyRecordMixin
from services.common.identity import ServiceCaller, TokenVerifier
from services.common.settings import ServiceSettings
from services.common.transactions import DbSession, TransactionalRoute

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def changes_router(change_model: type[feeds.ChangeMixin]) -> APIRouter:
    router = APIRouter(route_class=TransactionalRoute, tags=["internal"])

    @router.get("/internal/changes", response_model=feeds.ChangePage)
    async def list_changes(
        session: DbSession,
        _caller: ServiceCaller,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=2000)] = 500,
    ) -> feeds.ChangePage:
        return await feeds.read_changes(session, change_model, after=after, limit=limit)

    return router


def create_service_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    change_model: type[feeds.ChangeMixin],
    idempotency_model: type[IdempotencyRecordMixin],
    background: Lifespan | None = None,
) -> FastAPI:
    database = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        echo=settings.sql_echo,
        session_class=feeds.OutboxSession,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background is None:
            yield
        else:
            async with background(app):
                yield
        await database.dispose()

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.service_name = name
    app.state.settings = settings
    app.state.db = database
    app.state.idempotency_model = idempotency_model
    app.state.token_verifier = TokenVerifier(
        settings.jwt_public_key, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    app.add_middleware(RequestContextMiddleware, service=name)
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(changes_router(change_model))
    for router in routers:
        app.include_router(router)
    return app
