"""Organisations' webhooks: registration (a signing secret shown once) and the sender of the outbox.

A delivery is a POST of the JSON payload with
    X-Duijie-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    X-Duijie-Event: <event>    X-Duijie-Delivery: <delivery id (the same on every retry)>
A 2xx answer delivers it; anything else (or no answer within the timeout) is retried with exponential
backoff and jitter up to `webhook_max_attempts` times, then the delivery is `failed`. Deliveries are rows
of `webhook_deliveries`, written in the transaction of the event itself and sent by the worker, so a slow
receiver never holds up a saga or a request.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, utcnow
from services.common.errors import CORRECT_FIELDS, FieldError, Forbidden, NotFound, ValidationFailed
from services.common.identity import Principal
from services.common.messages import Text
from services.matching import repository
from services.matching.config import MatchingSettings
from services.matching.models import Webhook, WebhookDelivery, WebhookStatus

log = logging.getLogger("duijie.matching.webhooks")

SIGNATURE_HEADER = "X-Duijie-Signature"
MAX_BACKOFF_SECONDS = 3600.0
WEBHOOK_NOT_FOUND = Text("该组织没有设置 webhook。", "This organisation has no webhook.")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, *, tolerance: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does (and the tests): the signature matches and is recent."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# --- registration -----------------------------------------------------------------------------------

def _ensure_may_manage(principal: Principal, organisation_id: uuid.UUID) -> None:
    if not (principal.is_admin or principal.belongs_to(organisation_id)):
        raise Forbidden(Text("只有该组织的成员或管理员可以管理它的 webhook。",
                             "Only the organisation's members or an admin may manage its webhook."))


def _check_url(url: str, *, allow_private: bool) -> None:
    """No webhooks to this machine or the private network (the service would call its neighbours for anyone)."""
    host = (urlsplit(url).hostname or "").lower()
    private = host in ("localhost", "") or host.endswith((".localhost", ".internal", ".local"))
    try:
        address = ipaddress.ip_address(host)
        private = private or not address.is_global
    except ValueError:
        pass
    if private and not allow_private:
        message = Text("webhook 地址不能指向本机或内网", "A webhook cannot point at this machine or a private network")
        raise ValidationFailed(CORRECT_FIELDS, errors=[FieldError("url", message)])


async def put_webhook(
    session: AsyncSession, *, principal: Principal, organisation_id: uuid.UUID, url: str, allow_private: bool
) -> tuple[Webhook, bool]:
    """Set (or replace) the organisation's webhook with a new secret. True when it is new."""
    _ensure_may_manage(principal, organisation_id)
    if await repository.get_organisation(session, organisation_id) is None:
        raise NotFound(Text("找不到这个组织。", "No such organisation."))
    _check_url(url, allow_private=allow_private)
    secret = "whsec_" + secrets.token_urlsafe(32)
    row = await session.get(Webhook, organisation_id, with_for_update=True)
    created = row is None
    now = utcnow()
    if row is None:
        row = Webhook(organisation_id=organisation_id, url=url, secret=secret, created_by=principal.subject,
                      created_at=now, updated_at=now)
        session.add(row)
    else:
        row.url, row.secret, row.updated_at = url, secret, now
    await session.flush()
    return row, created


async def get_webhook(session: AsyncSession, *, principal: Principal, organisation_id: uuid.UUID) -> Webhook:
    _ensure_may_manage(principal, organisation_id)
    row = await session.get(Webhook, organisation_id)
    if row is None:
        raise NotFound(WEBHOOK_NOT_FOUND)
    return row


async def delete_webhook(session: AsyncSession, *, principal: Principal, organisation_id: uuid.UUID) -> None:
    row = await get_webhook(session, principal=principal, organisation_id=organisation_id)
    await session.delete(row)
    await session.flush()


# --- sending ------------------------------------------------------------------------------------------

class WebhookSender:
    def __init__(self, db: Database, client: httpx.AsyncClient, settings: MatchingSettings) -> None:
        self._db = db
        self._client = client
        self._settings = settings

    async def send_due(self) -> int:
        """Send every delivery that is due; returns how many were delivered."""
        claimed = await self._claim()
        delivered = 0
        for delivery_id, url, secret, payload, event in claimed:
            ok, error = await self._post(url, secret, payload, event, delivery_id)
            await self._record(delivery_id, ok, error)
            delivered += ok
        return delivered

    async def _claim(self) -> list[tuple[uuid.UUID, str | None, str, dict[str, object], str]]:
        """Due deliveries, each pushed out by a lease so another process does not send it at the same time."""
        now = utcnow()
        lease = now + timedelta(seconds=self._settings.webhook_timeout_seconds * 3)
        taken = []
        async with self._db.transaction() as session:
            for row in await repository.due_webhook_deliveries(session, now=now, limit=self._settings.worker_batch_size):
                hook = await session.get(Webhook, row.organisation_id)
                row.next_attempt_at = lease
                taken.append((row.id, hook.url if hook else None, hook.secret if hook else "", row.payload, row.event))
        return taken

    async def _post(
        self, url: str | None, secret: str, payload: dict[str, object], event: str, delivery_id: uuid.UUID
    ) -> tuple[bool, str | None]:
        if url is None:
            return False, "the organisation removed its webhook"
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json", SIGNATURE_HEADER: sign(secret, body, int(time.time())),
            "X-Duijie-Event": event, "X-Duijie-Delivery": str(delivery_id), "user-agent": "duijie-webhooks/1",
        }
        try:
            response = await self._client.post(url, content=body, headers=headers,
                                               timeout=self._settings.webhook_timeout_seconds)
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return True, None
        return False, f"answered {response.status_code}"

    async def _record(self, delivery_id: uuid.UUID, ok: bool, error: str | None) -> None:
        async with self._db.transaction() as session:
            row = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if row is None or row.status != WebhookStatus.PENDING:
                return
            row.attempts += 1
            if ok:
                row.status, row.delivered_at, row.last_error = WebhookStatus.DELIVERED, utcnow(), None
                return
            row.last_error = error
            if row.attempts >= self._settings.webhook_max_attempts or error == "the organisation removed its webhook":
                row.status = WebhookStatus.FAILED
                return
            base = self._settings.webhook_backoff_seconds * 2 ** (row.attempts - 1)
            pause = min(base, MAX_BACKOFF_SECONDS) * random.uniform(0.8, 1.2)
            row.next_attempt_at = utcnow() + timedelta(seconds=pause)


async def release_all_now(session: AsyncSession) -> None:
    """Make every pending delivery due at once (tests, and an operator after fixing a receiver)."""
    await repository.make_pending_deliveries_due(session)
