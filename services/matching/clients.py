"""What matching reads from the other services, and how it calls them.

Only the fields matching uses are declared here (no import of the needs or offers code): the change
feeds' records, and the gateway's service-token answer. One pooled httpx client per upstream, built in
the app's lifespan, with explicit timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field

from services.common.http import REQUEST_ID_HEADER, request_id_var
from services.matching.config import MatchingSettings

log = logging.getLogger("duijie.matching.clients")

UPSTREAMS = ("needs", "offers", "gateway")


# --- the records of the change feeds ---------------------------------------------------------------

class _Record(BaseModel):
    # Fields the producers add later are ignored; those declared here are the contract matching relies on.
    model_config = ConfigDict(extra="ignore")


class NeedRecord(_Record):
    """`Need.feed_data()` of the needs service, as far as matching reads it."""

    id: uuid.UUID
    title: str = ""
    category: str
    kind: str
    unit: str
    quantity: Decimal
    committed: Decimal = Decimal(0)
    delivered: Decimal = Decimal(0)
    beneficiaries: int = 0
    beneficiary_groups: list[str] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)
    urgency: int = 3
    needed_by: date
    village_code: str
    lat: float | None = None
    lon: float | None = None
    status: str
    version: int = 1
    # The need's creation time in the needs service: when it was posted (reports).
    posted_at: datetime | None = Field(default=None, validation_alias="created_at")


class OfferRecord(_Record):
    """`Offer.feed_data()` of the offers service, as far as matching reads it."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    title: str = ""
    categories: list[str] = Field(default_factory=list)
    kind: str
    unit: str
    quantity: Decimal
    reserved: Decimal = Decimal(0)
    delivered: Decimal = Decimal(0)
    available: Decimal
    region_codes: list[str] = Field(default_factory=list)
    radius_km: float | None = None
    lat: float | None = None
    lon: float | None = None
    available_from: date | None = None
    available_until: date | None = None
    beneficiary_groups: list[str] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)
    status: str
    version: int = 1


class OrganisationRecord(_Record):
    id: uuid.UUID
    name: str = ""
    grade: int | None = None
    region_codes: list[str] = Field(default_factory=list)
    verified: bool = False
    version: int = 1


class PairingRecord(_Record):
    id: uuid.UUID
    organisation_id: uuid.UUID
    village_code: str
    status: str
    version: int = 1


class ChangeRecord(_Record):
    seq: int
    entity: str
    entity_id: str
    op: str
    data: dict[str, Any]
    created_at: datetime


class ChangePage(_Record):
    items: list[ChangeRecord]
    last_seq: int


class ServiceToken(_Record):
    access_token: str
    expires_in: int


# --- errors ---------------------------------------------------------------------------------------

class UpstreamError(Exception):
    """An upstream did not give a usable answer; the caller logs and retries."""


class TransientUpstreamError(UpstreamError):
    """A timeout, a refused connection or a 5xx: the same idempotent call may be tried again."""


class UpstreamRefused(Exception):
    """A business refusal (a 4xx other than 401): trying again would not help.

    `detail_zh` / `detail_en` are the upstream's problem detail; both hold the same text unless the
    upstream sent both languages (`detail_zh`, `detail_en` members of its problem+json)."""

    def __init__(self, status: int, detail_zh: str, detail_en: str) -> None:
        super().__init__(f"{status}: {detail_en}")
        self.status = status
        self.detail_zh = detail_zh
        self.detail_en = detail_en


# --- service credentials --------------------------------------------------------------------------

class TokenSource(Protocol):
    async def token(self) -> str: ...

    def invalidate(self) -> None: ...


class StaticToken:
    """A fixed token (tests, or a deployment that injects one)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token

    def invalidate(self) -> None:
        pass


class ServiceTokenProvider:
    """A service token from the gateway's OAuth2 client-credentials grant, cached and renewed before expiry.

    Renewed when less than a fifth of its lifetime (at most 60 s) is left, or when an upstream refused it.
    The secret is sent only in the form body, and never logged.
    """

    def __init__(self, gateway: httpx.AsyncClient, *, client_id: str, client_secret: str) -> None:
        self._gateway = gateway
        self._client_id = client_id
        self._client_secret = client_secret
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token is not None and time.monotonic() < self._renew_at:
                return self._token
            issued = await self._fetch()
            margin = min(60.0, issued.expires_in / 5)
            self._token, self._renew_at = issued.access_token, time.monotonic() + issued.expires_in - margin
            return self._token

    def invalidate(self) -> None:
        self._token, self._renew_at = None, 0.0

    async def _fetch(self) -> ServiceToken:
        if not self._client_secret:
            raise UpstreamError("DUIJIE_MATCHING_SERVICE_CLIENT_SECRET is not set: cannot ask the gateway for a service token")
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret}
        try:
            response = await self._gateway.post("/auth/service-token", data=form, headers=_request_headers())
        except httpx.HTTPError as exc:
            raise UpstreamError(f"gateway unreachable for a service token: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise UpstreamError(f"gateway refused the service token request with {response.status_code}")
        try:
            return ServiceToken.model_validate_json(response.content)
        except ValueError as exc:
            raise UpstreamError("gateway answered the service token request with something else than a token") from exc


def _request_headers() -> dict[str, str]:
    headers = {"accept": "application/json"}
    request_id = request_id_var.get()
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    return headers


# --- the feeds ------------------------------------------------------------------------------------

class FeedClient:
    """One upstream's change feed, read with service credentials."""

    def __init__(self, name: str, client: httpx.AsyncClient, tokens: TokenSource) -> None:
        self.name = name
        self._client = client
        self._tokens = tokens

    async def changes(self, *, after: int, limit: int) -> ChangePage:
        for attempt in range(2):
            headers = {**_request_headers(), "authorization": f"Bearer {await self._tokens.token()}"}
            try:
                response = await self._client.get("/internal/changes", params={"after": after, "limit": limit}, headers=headers)
            except httpx.HTTPError as exc:
                raise UpstreamError(f"{self.name} feed unreachable: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 401 and attempt == 0:
                self._tokens.invalidate()  # expired or rotated key: one fresh token, then give up
                continue
            if response.status_code != 200:
                raise UpstreamError(f"{self.name} feed answered {response.status_code}")
            try:
                return ChangePage.model_validate_json(response.content)
            except ValueError as exc:
                raise UpstreamError(f"{self.name} feed answered with an unreadable page") from exc
        raise UpstreamError(f"{self.name} feed refused the service token")


class HoldsClient:
    """The internal endpoints of needs and offers that the approval saga and deliveries call.

    Every call is idempotent by match id (reserve, commit and release) or cumulative (delivered), so a
    call whose answer was lost may be sent again. 2xx → the answer; 401 → one fresh token, then a
    transient error; other 4xx → UpstreamRefused; 5xx, timeouts, connection errors → TransientUpstreamError.
    """

    def __init__(self, name: str, client: httpx.AsyncClient, tokens: TokenSource, path: str, hold: str) -> None:
        self.name = name
        self._client = client
        self._tokens = tokens
        self._path = path  # /internal/offers or /internal/needs
        self._hold = hold  # reservations or commitments

    async def hold(self, entity_id: uuid.UUID, match_id: uuid.UUID, quantity: Decimal) -> dict[str, Any]:
        return await self._post(f"{self._path}/{entity_id}/{self._hold}", {"match_id": str(match_id), "quantity": str(quantity)})

    async def release(self, entity_id: uuid.UUID, match_id: uuid.UUID) -> dict[str, Any]:
        return await self._post(f"{self._path}/{entity_id}/{self._hold}/{match_id}/release", None)

    async def delivered(self, entity_id: uuid.UUID, match_id: uuid.UUID, total: Decimal) -> dict[str, Any]:
        return await self._post(f"{self._path}/{entity_id}/{self._hold}/{match_id}/delivered", {"delivered_total": str(total)})

    async def _post(self, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        for attempt in range(2):
            headers = {**_request_headers(), "authorization": f"Bearer {await self._tokens.token()}",
                       "accept-language": "zh-CN"}
            try:
                response = await self._client.post(path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise TransientUpstreamError(f"{self.name} unreachable: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 401 and attempt == 0:
                self._tokens.invalidate()
                continue
            if response.status_code < 300:
                try:
                    answer: dict[str, Any] = response.json()
                except ValueError as exc:
                    raise TransientUpstreamError(f"{self.name} answered {path} with something else than JSON") from exc
                return answer
            if response.status_code >= 500 or response.status_code in (401, 403, 408, 429):
                # 401/403: our credentials are wrong or expired; the worker tries again later, never a refusal.
                raise TransientUpstreamError(f"{self.name} answered {response.status_code} to {path}")
            raise _refusal(response)
        raise TransientUpstreamError(f"{self.name} refused the service token")


def _refusal(response: httpx.Response) -> UpstreamRefused:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
    return UpstreamRefused(response.status_code, str(body.get("detail_zh") or detail), str(body.get("detail_en") or detail))


class Clients:
    """The pooled HTTP clients of the matching service, opened in the lifespan and closed at shutdown."""

    def __init__(
        self,
        settings: MatchingSettings,
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        transports = transports or {}
        timeout = httpx.Timeout(
            connect=settings.connect_timeout, read=settings.read_timeout, write=settings.read_timeout,
            pool=settings.pool_timeout,
        )
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=10)
        self.http: dict[str, httpx.AsyncClient] = {
            name: httpx.AsyncClient(
                base_url=url, transport=transports.get(name), timeout=timeout, limits=limits,
                trust_env=False, follow_redirects=False,
            )
            for name, url in settings.upstream_urls().items()
        }
        self.tokens: TokenSource = tokens or ServiceTokenProvider(
            self.http["gateway"], client_id=settings.service_client_id,
            client_secret=settings.service_client_secret.get_secret_value(),
        )
        self.needs = FeedClient("needs", self.http["needs"], self.tokens)
        self.offers = FeedClient("offers", self.http["offers"], self.tokens)
        self.reservations = HoldsClient("offers", self.http["offers"], self.tokens, "/internal/offers", "reservations")
        self.commitments = HoldsClient("needs", self.http["needs"], self.tokens, "/internal/needs", "commitments")
        # Organisations' webhooks: any URL, no base, never redirected, each call with its own timeout.
        self.webhooks = httpx.AsyncClient(
            transport=transports.get("webhooks"), timeout=httpx.Timeout(settings.webhook_timeout_seconds),
            limits=limits, trust_env=False, follow_redirects=False,
        )

    async def aclose(self) -> None:
        for client in self.http.values():
            await client.aclose()
        await self.webhooks.aclose()
