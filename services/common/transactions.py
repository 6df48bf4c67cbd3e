"""The request's session: opened before the handler, committed once after it, at the edge.

Handlers and services only flush. A POST with an Idempotency-Key stores its response in the
same commit as its effect, so a retry replays the first answer and changes nothing.

A handler that only reads asks for a `ReadSession` instead of a `DbSession`: its route then
opens a read-only session (no write lock on SQLite, no BEGIN/COMMIT round trips on PostgreSQL)
and has nothing to commit.

A read that queries past the ORM (see Database.driver_connection) asks for a `ReadDatabase`
and neither session: its route opens none, and the handler borrows a connection only while it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response, StreamingResponse

from services.common import idempotency
from services.common.db import Database
from services.common.errors import AppError
from services.common.identity import TokenVerifier, bearer_token

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _caller_of(request: Request) -> str | None:
    token = bearer_token(request)
    if token is None:
        return None
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return verifier.verify(token).subject
    except AppError:
        return None  # the handler itself answers 401


def _asks_for(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(sub.call is call or _asks_for(sub, call) for sub in dependant.dependencies)


class TransactionalRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if _asks_for(self.dependant, read_session) and not _asks_for(self.dependant, request_session):
            return self._read_only(handler)
        if _asks_for(self.dependant, read_database) and not _asks_for(self.dependant, request_session):
            return handler  # no session to open or commit: the handler reads through the Database itself

        async def run_in_transaction(request: Request) -> Response:
            db: Database = request.app.state.db
            raw_key = request.headers.get("idempotency-key") if request.method == "POST" else None
            key = idempotency.validated_key(raw_key) if raw_key is not None else None
            caller = _caller_of(request) if key else None
            fingerprint = await idempotency.fingerprint_of(request) if caller else ""
            async with db.session() as session:
                request.state.session = session
                if key and caller:
                    stored = await idempotency.find_record(
                        session, request.app.state.idempotency_model, caller=caller, key=key
                    )
                    if stored is not None:
                        return idempotency.replay(stored, fingerprint)
                try:
                    response = await handler(request)
                except BaseException:
                    await session.rollback()
                    raise
                if response.status_code >= 400:
                    await session.rollback()
                    return response
                if key and caller and not isinstance(response, StreamingResponse):
                    session.add(
                        idempotency.new_record(
                            request.app.state.idempotency_model,
                            caller=caller, key=key, fingerprint=fingerprint, response=response,
                        )
                    )
                try:
                    await session.commit()
                except IntegrityError:
                    await session.rollback()
                    if not (key and caller):
                        raise
                    # A concurrent request with the same key won the race: answer as it did.
                    async with db.session() as fresh:
                        stored = await idempotency.find_record(
                            fresh, request.app.state.idempotency_model, caller=caller, key=key
                        )
                    if stored is None:
                        raise
                    return idempotency.replay(stored, fingerprint)
                return response

        return run_in_transaction

    @staticmethod
    def _read_only(handler: Handler) -> Handler:
        async def run_read_only(request: Request) -> Response:
            db: Database = request.app.state.db
            async with db.read_session() as session:
                request.state.session = session
                return await handler(request)

        return run_read_only


# Both are `async def` though they never await: FastAPI runs a plain `def` dependency in its threadpool,
# a hop that under load waits for the GIL behind the event loop.
async def request_session(request: Request) -> AsyncSession:
    session: AsyncSession = request.state.session
    return session


async def read_session(request: Request) -> AsyncSession:
    session: AsyncSession = request.state.session
    return session


async def read_database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


DbSession = Annotated[AsyncSession, Depends(request_session)]
ReadSession = Annotated[AsyncSession, Depends(read_session)]
ReadDatabase = Annotated[Database, Depends(read_database)]
