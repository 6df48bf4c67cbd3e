"""The one way a Duijie service app is assembled."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from sqlalchemy.orm import Session

from services.common import feeds, ops
from services.common.db import Database
from services.common.errors import install_error_handlers
from services.common.http import RequestContextMiddleware
from services.common.idempotency import IdempotencyRecordMixin
from services.common.identity import ServiceCaller, TokenVerifier
from services.common.settings import ServiceSettings
from services.common.transactions import ReadSession, TransactionalRoute

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
MAX_SEQ = 2**63 - 1


def changes_router(change_model: type[feeds.ChangeMixin]) -> APIRouter:
    router = APIRouter(route_class=TransactionalRoute, tags=["internal"])

    @router.get("/internal/changes", response_model=feeds.ChangePage)
    async def list_changes(
        session: ReadSession,
        _caller: ServiceCaller,
        # Bounded by BIGINT: a larger number cannot be a sequence and would reach the driver as a 500.
        after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
        limit: Annotated[int, Query(ge=1, le=2000)] = 500,
    ) -> feeds.ChangePage:
        return await feeds.read_changes(session, change_model, after=after, limit=limit)

    return router


def database_for(settings: ServiceSettings, *, session_class: type[Session] = Session) -> Database:
    """The app's database, sized by its settings."""
    return Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        echo=settings.sql_echo,
        session_class=session_class,
    )


def _frozen_after_startup(lifespan: Lifespan) -> Lifespan:
    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            # Everything loaded by now (modules, models, schemas, routes) lives as long as the app.
            # Left in the collector's oldest generation, each full collection walked all of it again:
            # under load that was a fifth of a read's time. Frozen, collections see only request garbage.
            gc.freeze()
            try:
                yield
            finally:
                gc.unfreeze()  # an app stopped inside a longer-lived process (tests) can be collected

    return run


def assemble_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    database: Database,
    idempotency_model: type[IdempotencyRecordMixin],
    lifespan: Lifespan,
    routers: Sequence[APIRouter],
    **fastapi_options: Any,
) -> FastAPI:
    """What every Duijie app shares: state, request context, problem+json errors, health and metrics.

    Services get theirs through create_service_app; the gateway, which has no change feed,
    assembles its own from this.
    """
    app = FastAPI(
        title=title, description=description, version="0.1.0", lifespan=_frozen_after_startup(lifespan),
        **fastapi_options,
    )
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
    for router in routers:
        app.include_router(router)
    return app


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
    database = database_for(settings, session_class=feeds.OutboxSession)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background is None:
            yield
        else:
            async with background(app):
                yield
        await database.dispose()

    return assemble_app(
        name=name,
        title=title,
        description=description,
        settings=settings,
        database=database,
        idempotency_model=idempotency_model,
        lifespan=lifespan,
        routers=[changes_router(change_model), *routers],
    )
