"""The matching service: read models of needs and offers, versioned rule sets, explained candidates, match runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.common.app import create_service_app
from services.matching.clients import Clients, TokenSource
from services.matching.config import MatchingSettings, get_settings
from services.matching.models import Change, IdempotencyRecord
from services.matching.readmodel import ReadModelCache
from services.matching.router import (
    audit,
    candidates,
    match_sagas,
    matches,
    notifications_router,
    reports_router,
    rulesets,
    runs,
    webhooks_router,
)
from services.matching.runner import MatchRunner
from services.matching.saga import Saga
from services.matching.sync import FeedSync
from services.matching.webhooks import WebhookSender
from services.matching.worker import Worker

log = logging.getLogger("duijie.matching")


def create_app(
    settings: MatchingSettings | None = None,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    tokens: TokenSource | None = None,
    run_gate: asyncio.Event | None = None,
) -> FastAPI:
    """`transports` replaces the network for named upstreams (needs, offers, gateway, webhooks) and `tokens`
    the gateway's service tokens: tests talk to in-process apps. `run_gate` holds match runs until it is set."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def background(app: FastAPI) -> AsyncIterator[None]:
        clients = Clients(settings, transports=transports, tokens=tokens)
        app.state.clients = clients
        sync = FeedSync(app.state.db, {"needs": clients.needs, "offers": clients.offers}, app.state.read_models, settings)
        app.state.sync = sync
        saga = Saga(app.state.db, clients, settings)
        app.state.saga = saga
        worker = Worker(app.state.db, saga, WebhookSender(app.state.db, clients.webhooks, settings), settings)
        app.state.worker = worker
        task: asyncio.Task[None] | None = None
        worker_task: asyncio.Task[None] | None = None
        try:
            try:
                await app.state.read_models.refresh()
            except Exception as exc:  # the database may come up later; the sync loop refreshes again
                log.warning("read models not loaded at start: %s: %s", type(exc).__name__, exc)
            if settings.sync_enabled:
                task = asyncio.create_task(sync.run(), name="matching-feed-sync")
            if settings.worker_enabled:
                # Its first pass at once: sagas a crash left unfinished are resumed at start-up.
                worker_task = asyncio.create_task(worker.run(), name="matching-worker")
            yield
        finally:
            for running in (task, worker_task):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await running
            await app.state.match_runner.aclose()
            await clients.aclose()

    app = create_service_app(
        name="matching",
        title="Duijie matching service",
        description=(
            "按规则打分、可解释的候选排序与全局最优分配。"
            "Scored, explained candidates and exact global allocation of offers to villages' needs."
        ),
        settings=settings,
        routers=[candidates, runs, matches, match_sagas, rulesets, audit, notifications_router, webhooks_router, reports_router],
        change_model=Change,
        idempotency_model=IdempotencyRecord,
        background=background,
    )
    app.state.read_models = ReadModelCache(app.state.db)
    app.state.match_runner = MatchRunner(app.state.db, app.state.read_models, gate=run_gate)
    return app
