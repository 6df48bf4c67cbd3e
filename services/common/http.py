"""HTTP conventions shared by every service: request-id, locale, metrics, ETags, cursors."""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from fastapi import Request
from prometheus_client import Counter, Histogram
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.errors import PreconditionFailed, PreconditionRequired, ValidationFailed
from services.common.messages import Text, current_locale, locale_from_header

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_BYTES = REQUEST_ID_HEADER.encode()
request_id_var: ContextVar[str] = ContextVar("request_id", default="")

REQUESTS = Counter("duijie_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram(
    "duijie_http_request_seconds", "HTTP request latency", ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestContextMiddleware:
    """Request-id in and out, the caller's language, and Prometheus metrics, in one ASGI pass."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        # The metrics' children by their labels: prometheus_client's labels() validates and locks on every call.
        self._latency: dict[tuple[str, str], Any] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_language = None
        for name, value in scope["headers"]:  # only the two it reads, not a dict of every header
            if name == _REQUEST_ID_BYTES:
                request_id = value.decode("latin-1")
            elif name == b"accept-language":
                accept_language = value.decode("latin-1")
        request_id_token = request_id_var.set((request_id or uuid.uuid4().hex)[:100])
        locale_token = current_locale.set(locale_from_header(accept_language))
        status_holder = [500]
        started = time.perf_counter()

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((REQUEST_ID_HEADER.encode(), request_id_var.get().encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        finally:
            route, method, status = getattr(scope.get("route"), "path", "unmatched"), scope["method"], status_holder[0]
            latency = self._latency.get((method, route))
            if latency is None:
                latency = self._latency[method, route] = LATENCY.labels(self.service, method, route)
            latency.observe(time.perf_counter() - started)
            requests = self._requests.get((method, route, status))
            if requests is None:
                requests = self._requests[method, route, status] = REQUESTS.labels(self.service, method, route, str(status))
            requests.inc()
            request_id_var.reset(request_id_token)
            current_locale.reset(locale_token)


# --- optimistic concurrency -------------------------------------------------------------

def etag_for(version: int) -> str:
    return f'"{version}"'


def required_version(request: Request) -> int:
    """The version named by If-Match: 428 when absent, 412 when it cannot be a version of ours."""
    header = request.headers.get("if-match")
    if header is None:
        raise PreconditionRequired(
            Text("修改前请先读取记录，并在 If-Match 中带上它的 ETag。",
                 "Read the record first and send its ETag in If-Match.")
        )
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise PreconditionFailed(Text("If-Match 与当前版本不符。", "If-Match does not match the current version."))
    return int(value)


def check_version(expected: int, actual: int) -> None:
    if expected != actual:
        raise PreconditionFailed(
            Text("记录已被他人修改（当前版本 {actual}），请刷新后重试。",
                 "Someone changed this record (now version {actual}); reload and try again."),
            actual=actual,
        )


# --- cursor pagination ------------------------------------------------------------------

T = TypeVar("T")
MAX_PAGE = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([str(value) for value in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != size or not all(isinstance(v, str) for v in values):
        raise ValidationFailed(
            Text("cursor 无效：请使用上一页返回的 next_cursor。", "Invalid cursor: use the next_cursor of the previous page.")
        )
    return values


# Every list is newest first and pages by (created_at, id): one cursor shape for all of them.
Keyset = tuple[datetime, uuid.UUID]


class _Keyed(Protocol):
    id: uuid.UUID
    created_at: datetime


Keyed = TypeVar("Keyed", bound=_Keyed)


def decode_keyset(cursor: str | None) -> Keyset | None:
    """The position a `next_cursor` points at; a hand-made or naive-time cursor is a clear 422, never a 500."""
    if not cursor:
        return None
    created_at, row_id = decode_cursor(cursor, 2)
    try:
        position = datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except ValueError:
        position = None
    if position is None or position[0].tzinfo is None:
        decode_cursor("", 2)  # raises the same clear error as any other bad cursor
    return position


def keyset_page(rows: list[Keyed], limit: int) -> tuple[list[Keyed], str | None]:
    """`rows` holds one more than a page when another page follows."""
    page = rows[:limit]
    more = len(rows) > limit
    return page, keyset_cursor(page[-1].created_at, page[-1].id) if more else None


def keyset_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """The `next_cursor` of a page whose last row is (created_at, row_id)."""
    return encode_cursor([created_at.isoformat(), row_id])
