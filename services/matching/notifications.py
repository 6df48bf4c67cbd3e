"""Notifications: a feed per person of the match events that concern them, and the webhook outbox.

Matching knows no users, only the claims of the caller's token, so a notification is addressed to an
audience: a village (its officers), an organisation (its members) or a region (coordinators whose prefix
covers the village; admins see every region's). A notification is written in the same transaction as
the change it tells of; so is, for an organisation with a webhook, the webhook delivery the worker sends
later (webhooks.py): a slow or broken receiver never holds up a saga.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import NotFound
from services.common.http import decode_keyset, encode_cursor
from services.common.identity import Principal
from services.common.messages import Text, current_locale
from services.matching import repository
from services.matching.models import (
    AudienceKind,
    Match,
    NeedRM,
    Notification,
    NotificationRead,
    Webhook,
    WebhookDelivery,
    WebhookStatus,
)
from services.matching.schemas import NotificationRead as NotificationOut

NOTIFICATION_NOT_FOUND = Text("找不到这条通知。", "No such notification.")


@dataclass(frozen=True, slots=True)
class Event:
    title: Text
    audiences: tuple[AudienceKind, ...]


VILLAGE, ORG, REGION = AudienceKind.VILLAGE, AudienceKind.ORGANISATION, AudienceKind.REGION


def _event(zh: str, en: str, *audiences: AudienceKind) -> Event:
    return Event(Text(zh, en), audiences)


# What happened → who hears of it. {need} is the need's title, {quantity} {unit} the match's.
EVENTS: dict[str, Event] = {
    "proposal_created": _event("新的对接提议：为“{need}”提供 {quantity} {unit}", "New proposal: {quantity} {unit} for “{need}”",
                               VILLAGE, ORG),
    "pledge_created": _event("新的认捐：为“{need}”认捐 {quantity} {unit}", "New pledge: {quantity} {unit} for “{need}”",
                             VILLAGE, REGION),
    "match_approved": _event("对接已批准：“{need}”，{quantity} {unit}", "Match approved: {quantity} {unit} for “{need}”",
                             VILLAGE, ORG, REGION),
    "match_failed": _event("对接未能批准：“{need}”（{reason}）", "Match could not be approved: “{need}” ({reason})", ORG, REGION),
    "match_rejected": _event("对接被驳回：“{need}”（{reason}）", "Match rejected: “{need}” ({reason})", ORG),
    "match_cancelled": _event("对接已取消：“{need}”（{reason}）", "Match cancelled: “{need}” ({reason})", VILLAGE, ORG, REGION),
    "delivery_recorded": _event("有交付待确认：“{need}”，已交付 {delivered} {unit}",
                                "Delivery to confirm: {delivered} {unit} for “{need}”", VILLAGE),
    "match_delivered": _event("已全部交付，请确认收货：“{need}”", "Fully delivered, please confirm receipt: “{need}”", VILLAGE, REGION),
    "match_received": _event("村里已确认收货：“{need}”，满意度 {satisfaction}/5",
                             "Receipt confirmed for “{need}”, satisfaction {satisfaction}/5", ORG, REGION),
}


def _audience(kind: AudienceKind, match: Match) -> str:
    if kind is AudienceKind.ORGANISATION:
        return str(match.organisation_id)
    return match.village_code  # a village's officers; for a region, coordinators whose prefix covers it


async def notify(session: AsyncSession, match: Match, event: str, **params: Any) -> None:
    """Tell everyone `event` concerns; queue a webhook delivery when the organisation has a webhook."""
    spec = EVENTS[event]
    need = await session.get(NeedRM, match.need_id)
    values = {"need": need.title if need is not None and need.title else str(match.need_id),
              "quantity": match.quantity, "unit": match.unit, "delivered": match.delivered, "reason": "", **params}
    values_en = {**values, "reason": params.get("reason_en", values["reason"])}
    title_zh, title_en = spec.title.zh.format(**values), spec.title.en.format(**values_en)
    data = {
        "match_id": str(match.id), "need_id": str(match.need_id), "offer_id": str(match.offer_id),
        "organisation_id": str(match.organisation_id), "village_code": match.village_code, "status": match.status,
        "quantity": str(match.quantity), "unit": match.unit, "delivered": str(match.delivered),
    }
    now = utcnow()
    for kind in spec.audiences:
        session.add(Notification(
            id=uuid.uuid4(), audience_kind=kind, audience=_audience(kind, match), event=event, match_id=match.id,
            title_zh=title_zh, title_en=title_en, data=data, created_at=now,
        ))
    if AudienceKind.ORGANISATION in spec.audiences and await session.get(Webhook, match.organisation_id) is not None:
        delivery_id = uuid.uuid4()
        payload = {"id": str(delivery_id), "event": event, "created_at": now.isoformat(),
                   "title_zh": title_zh, "title_en": title_en, "data": data}
        session.add(WebhookDelivery(
            id=delivery_id, organisation_id=match.organisation_id, event=event, payload=payload,
            status=WebhookStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now,
        ))


# --- reading one's feed -----------------------------------------------------------------------------

def _render(row: Notification, read: bool) -> NotificationOut:
    return NotificationOut(
        id=row.id, event=row.event, audience_kind=row.audience_kind, audience=row.audience, match_id=row.match_id,
        title=row.title_zh if current_locale.get() == "zh" else row.title_en, title_zh=row.title_zh,
        title_en=row.title_en, data=row.data, read=read, created_at=row.created_at,
    )


async def list_for(
    session: AsyncSession, *, principal: Principal, limit: int, cursor: str | None, unread_only: bool = False
) -> tuple[list[NotificationOut], str | None]:
    rows = await repository.notifications_for(
        session, principal, unread_only=unread_only, limit=limit + 1, after=decode_keyset(cursor)
    )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1][0]
        next_cursor = encode_cursor([last.created_at.isoformat(), last.id])
    return [_render(row, read_at is not None) for row, read_at in page], next_cursor


async def mark_read(session: AsyncSession, *, principal: Principal, notification_id: uuid.UUID) -> NotificationOut:
    row = await repository.notification_for(session, principal, notification_id)
    if row is None:
        raise NotFound(NOTIFICATION_NOT_FOUND)
    if await session.get(NotificationRead, (notification_id, principal.subject)) is None:
        try:
            async with session.begin_nested():
                session.add(NotificationRead(notification_id=notification_id, reader=principal.subject, read_at=utcnow()))
        except IntegrityError:
            pass  # a concurrent request marked it read first: the same outcome
    return _render(row, True)

