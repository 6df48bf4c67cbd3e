"""Idempotency-Key: the first response to a key is stored in the same transaction as its effect."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, LargeBinary, String, UniqueConstraint, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from starlette.requests import Request
from starlette.responses import Response

from services.common.db import UtcDateTime, utcnow
from services.common.errors import ValidationFailed
from services.common.messages import Text

MAX_KEY_LENGTH = 200
REPLAYED_HEADERS = ("content-type", "location", "etag")


class IdempotencyRecordMixin:
    """Columns of a service's `idempotency_keys` table."""

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("caller", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    caller: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


def validated_key(raw: str) -> str:
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed(
            Text("Idempotency-Key 须为 1 到 {n} 个字符。", "Idempotency-Key must be 1 to {n} characters."),
            n=MAX_KEY_LENGTH,
        )
    return key


async def fingerprint_of(request: Request) -> str:
    # Keyed when the app holds a key (the gateway): there, bodies carry passwords, and a plain
    # SHA-256 of one stored in the database would be a fast-to-guess copy of the password.
    key: bytes | None = getattr(request.app.state, "idempotency_fingerprint_key", None)
    digest = hmac.new(key, digestmod=hashlib.sha256) if key else hashlib.sha256()
    for part in (request.method, request.url.path, request.url.query):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(await request.body())
    return digest.hexdigest()


async def find_record(
    session: AsyncSession, model: type[IdempotencyRecordMixin], *, caller: str, key: str
) -> IdempotencyRecordMixin | None:
    return (
        await session.scalars(select(model).where(model.caller == caller, model.key == key))
    ).one_or_none()


def new_record(
    model: type[IdempotencyRecordMixin], *, caller: str, key: str, fingerprint: str, response: Response
) -> IdempotencyRecordMixin:
    record = model()
    record.caller, record.key, record.fingerprint = caller, key, fingerprint
    record.status_code = response.status_code
    record.headers = {name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers}
    record.body = bytes(response.body)
    return record


def replay(record: IdempotencyRecordMixin, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise ValidationFailed(
            Text(
                "这个 Idempotency-Key 已用于另一个不同的请求；请换一个新的键。",
                "This Idempotency-Key was already used for a different request; use a new key.",
            )
        )
    headers = dict(record.headers)
    headers["idempotent-replayed"] = "true"
    media_type = headers.pop("content-type", None)
    return Response(record.body, status_code=record.status_code, headers=headers, media_type=media_type)
