"""The proxy: one forward() from a public path to the service that owns it. No business rule here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from gateway.routes import upstream_for
from gateway.upstreams import UPSTREAM_ERRORS, Upstreams, describe, upstream_failure
from services.common.errors import NotFound
from services.common.http import REQUEST_ID_HEADER, request_id_var
from services.common.messages import Text

log = logging.getLogger("duijie.gateway.proxy")

# What a service needs to know about the request, and nothing else (no cookies, no client Host).
FORWARDED_REQUEST_HEADERS = (
    "authorization", "accept", "accept-language", "content-type", "content-length",
    "if-match", "if-none-match", "idempotency-key",
)
# What a caller needs to know about the answer; hop-by-hop headers stay behind.
FORWARDED_RESPONSE_HEADERS = (
    "content-type", "content-length", "location", "etag", "retry-after", "idempotent-replayed",
    "content-disposition", "www-authenticate", "cache-control", "last-modified",
)
PROXIED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
NO_SUCH_PATH = Text("没有这个接口。", "No such endpoint.")

router = APIRouter()


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


def _upstream_target(request: Request) -> str:
    """The path and query exactly as the client encoded them."""
    raw_path: bytes | None = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(request.scope["path"])
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


async def _relay(response: httpx.Response, service: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except UPSTREAM_ERRORS as exc:
        # The status line is already sent: all that is left is to cut the body short.
        log.warning("upstream %s broke off a response: %s", service, describe(exc))
        raise
    finally:
        await response.aclose()


async def forward(request: Request, service: str) -> Response:
    """Send the request to `service` and stream its answer back untouched: status, body, relevant headers."""
    upstreams: Upstreams = request.app.state.upstreams
    client = upstreams.client(service)
    headers = {name: value for name in FORWARDED_REQUEST_HEADERS if (value := request.headers.get(name)) is not None}
    headers[REQUEST_ID_HEADER] = request_id_var.get()
    # The body is relayed as raw bytes, so ask for it uncompressed.
    headers["accept-encoding"] = "identity"
    upstream_request = client.build_request(
        request.method,
        client.base_url.copy_with(raw_path=_upstream_target(request).encode("latin-1")),
        headers=headers,
        content=request.stream() if _has_body(request) else None,
        timeout=upstreams.import_timeout if _is_import(request) else upstreams.timeout,
    )
    try:
        response = await client.send(upstream_request, stream=True)
    except UPSTREAM_ERRORS as exc:
        raise upstream_failure(service, exc) from exc
    headers = {name: response.headers[name] for name in FORWARDED_RESPONSE_HEADERS if name in response.headers}
    if _small(response):
        # Read whole and answered in one piece: a StreamingResponse's task group, disconnect listener and
        # async generator cost more than relaying a page of JSON. Still the upstream's bytes, untouched.
        try:
            body = await response.aread()
        except UPSTREAM_ERRORS as exc:
            raise upstream_failure(service, exc) from exc
        finally:
            await response.aclose()
        return Response(body, status_code=response.status_code, headers=headers)
    return StreamingResponse(
        _relay(response, service),
        status_code=response.status_code,
        headers=headers,
        background=BackgroundTask(response.aclose),
    )


def _is_import(request: Request) -> bool:
    """A spreadsheet import checks every row before it answers: 100k rows take tens of seconds."""
    return request.method == "POST" and request.scope["path"].endswith("/import")


MAX_BUFFERED = 1 << 20  # a larger answer (or one of unknown length: an export) is streamed


def _small(response: httpx.Response) -> bool:
    length = response.headers.get("content-length")
    return length is not None and length.isdigit() and int(length) <= MAX_BUFFERED


@router.api_route("/api/{path:path}", methods=PROXIED_METHODS, include_in_schema=False)
async def proxy(request: Request) -> Response:
    service = upstream_for(request.scope["path"])
    if service is None:
        raise NotFound(NO_SUCH_PATH)
    return await forward(request, service)
