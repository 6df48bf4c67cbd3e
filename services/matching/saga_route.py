"""Idempotency-Key for requests that run a saga in transactions of their own (approve, cancel).

TransactionalRoute stores a key's response in the request's one transaction; a saga commits several
times before it answers, so here the key is claimed first, in a transaction of its own, with an
"in progress" marker: a repeat of the key while the first request still runs gets a 409, a repeat after
it gets the first answer replayed (2xx, and the 409 of a saga that ended `failed`, are final answers;
other errors release the key for a retry). A marker left by a process that died is taken over after
`STALE_AFTER`. Endpoints on this route get no request session (`DbSession`): they open their own.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from services.common import idempotency
from services.common.db import Database, utcnow
from services.common.errors import AppError, Conflict, problem_response
from services.common.idempotency import IdempotencyRecordMixin
from services.common.identity import TokenVerifier, bearer_token
from services.common.messages import Text
from services.matching.lifecycle import MatchFailed

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
IN_PROGRESS = 0
STALE_AFTER = timedelta(minutes=5)
STILL_RUNNING = Text("使用同一 Idempotency-Key 的请求仍在处理中，请稍后再试。",
                     "A request with this Idempotency-Key is still being processed; try again shortly.")


def _caller_of(request: Request) -> str | None:
    token = bearer_token(request)
    if token is None:
        return None
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return verifier.verify(token).subject
    except AppError:
        return None


class SagaRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def run_once(request: Request) -> Response:
            raw_key = request.headers.get("idempotency-key") if request.method == "POST" else None
            key = idempotency.validated_key(raw_key) if raw_key is not None else None
            caller = _caller_of(request) if key else None
            if key is None or caller is None:
                return await handler(request)
            db: Database = request.app.state.db
            model: type[IdempotencyRecordMixin] = request.app.state.idempotency_model
            fingerprint = await idempotency.fingerprint_of(request)
            replayed = await _claim(db, model, caller=caller, key=key, fingerprint=fingerprint)
            if replayed is not None:
                return replayed
            try:
                response = await handler(request)
            except MatchFailed as failed:
                response = problem_response(failed, request)
            except BaseException:
                await _forget(db, model, caller=caller, key=key)
                raise
            if response.status_code < 400 or _is_failed_saga(response):
                await _store(db, model, caller=caller, key=key, fingerprint=fingerprint, response=response)
            else:
                await _forget(db, model, caller=caller, key=key)
            return response

        return run_once


def _is_failed_saga(response: Response) -> bool:
    """The 409 that ends an approval as `failed` is a final answer, to be replayed like a success."""
    return response.status_code == MatchFailed.status and f"/problems/{MatchFailed.code}".encode() in bytes(response.body)


async def _claim(
    db: Database, model: type[IdempotencyRecordMixin], *, caller: str, key: str, fingerprint: str
) -> Response | None:
    """None when this request now owns the key; else the first answer to replay (or a 409 while it runs)."""
    async with db.transaction() as session:
        record = await idempotency.find_record(session, model, caller=caller, key=key)
        if record is None:
            marker = model()
            marker.caller, marker.key, marker.fingerprint = caller, key, fingerprint
            marker.status_code, marker.headers, marker.body, marker.created_at = IN_PROGRESS, {}, b"", utcnow()
            try:
                async with session.begin_nested():
                    session.add(marker)
                    await session.flush()
                return None
            except IntegrityError:
                record = await idempotency.find_record(session, model, caller=caller, key=key)
                if record is None:
                    raise
        if record.status_code != IN_PROGRESS:
            return idempotency.replay(record, fingerprint)
        if record.fingerprint != fingerprint:
            idempotency.replay(record, fingerprint)  # raises the 422 of a key reused for another request
        if record.created_at < utcnow() - STALE_AFTER:
            record.created_at = utcnow()  # its request died long ago: this one takes over
            return None
        raise Conflict(STILL_RUNNING)


async def _store(
    db: Database, model: type[IdempotencyRecordMixin], *, caller: str, key: str, fingerprint: str, response: Response
) -> None:
    answer = idempotency.new_record(model, caller=caller, key=key, fingerprint=fingerprint, response=response)
    async with db.transaction() as session:
        record = await idempotency.find_record(session, model, caller=caller, key=key)
        if record is None:
            session.add(answer)
            return
        record.status_code, record.headers, record.body = answer.status_code, answer.headers, answer.body


async def _forget(db: Database, model: type[IdempotencyRecordMixin], *, caller: str, key: str) -> None:
    async with db.transaction() as session:
        table: Any = model
        await session.execute(
            delete(table).where(table.caller == caller, table.key == key, table.status_code == IN_PROGRESS)
        )
