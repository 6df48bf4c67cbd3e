"""The services behind the gateway: one pooled HTTP client each, and what their failures mean to a caller."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway.config import GatewaySettings
from services.common.errors import AppError, ServiceUnavailable
from services.common.messages import Text

log = logging.getLogger("duijie.gateway.upstreams")


class BadGateway(AppError):
    status, code = 502, "bad-gateway"
    title = Text("后端服务无法连接", "Upstream service unreachable")


class GatewayTimeout(AppError):
    status, code = 504, "gateway-timeout"
    title = Text("后端服务响应超时", "Upstream service timed out")


NOT_DEPLOYED = Text("服务“{service}”尚未部署。", "The {service} service is not deployed.")
UNREACHABLE = Text("暂时无法连接服务“{service}”，请稍后重试。", "The {service} service cannot be reached; try again shortly.")
TIMED_OUT = Text("服务“{service}”未能及时响应，请稍后重试。", "The {service} service did not answer in time; try again shortly.")

# Everything a call to an upstream can raise that means "it did not answer": httpx's own errors,
# and what httpx-aiohttp lets through unmapped (a bare TimeoutError, an aiohttp or socket error).
UPSTREAM_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, aiohttp.ClientError, TimeoutError, OSError)


def _timed_out(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        # httpx-aiohttp maps every aiohttp connection error, a refused connection included, to
        # httpx.ConnectTimeout: the original error says whether time really ran out.
        return isinstance(cause, TimeoutError)
    return isinstance(exc, httpx.TimeoutException)


def describe(exc: BaseException) -> str:
    """For logs: the original error too, since httpx-aiohttp renames it."""
    cause = exc.__cause__
    suffix = f" (from {type(cause).__name__})" if cause is not None else ""
    return f"{type(exc).__name__}{suffix}: {exc}"


def upstream_failure(service: str, exc: BaseException) -> AppError:
    """502 when the service cannot be reached, 504 when it did not answer in time."""
    log.warning("upstream %s failed: %s", service, describe(exc))
    if _timed_out(exc):
        return GatewayTimeout(TIMED_OUT, service=service)
    return BadGateway(UNREACHABLE, service=service)


class Upstreams:
    """One pooled client per deployed service, opened in the app's lifespan and closed at shutdown."""

    def __init__(
        self, settings: GatewaySettings, transports: Mapping[str, httpx.AsyncBaseTransport] | None = None
    ) -> None:
        transports = transports or {}
        self.timeout = httpx.Timeout(
            connect=settings.connect_timeout, read=settings.read_timeout, write=settings.read_timeout,
            pool=settings.pool_timeout,
        )
        self.import_timeout = httpx.Timeout(
            connect=settings.connect_timeout, read=settings.import_timeout, write=settings.import_timeout,
            pool=settings.pool_timeout,
        )
        limits = httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_connections,
        )
        self._clients: dict[str, httpx.AsyncClient] = {}
        for name, url in settings.upstream_urls().items():
            transport = transports.get(name)
            if url is None and transport is None:
                continue  # not deployed
            self._clients[name] = httpx.AsyncClient(
                base_url=url or f"http://{name}",
                transport=transport or AiohttpTransport(limits=limits),
                timeout=self.timeout,
                # Service-to-service calls never go through an HTTP proxy named in the environment.
                trust_env=False,
                follow_redirects=False,
            )

    @property
    def names(self) -> list[str]:
        return list(self._clients)

    def client(self, service: str) -> httpx.AsyncClient:
        client = self._clients.get(service)
        if client is None:
            raise ServiceUnavailable(NOT_DEPLOYED, service=service)
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
