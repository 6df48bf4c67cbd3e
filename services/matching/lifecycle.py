"""The life of a match after the proposal: who may do what, in which state, and the trail it leaves.

proposed ─approve→ approving ─(saga)→ approved ─deliveries→ delivered ─receipt→ received
   │                   └──────(refused)→ failed           │
   ├─reject→ rejected                                     └─cancel (nothing delivered)→ cancelling ─(saga)→ cancelled
   └─cancel→ cancelled

Every change of state writes, in the same transaction: the match, an audit event (who, when, from → to,
what changed, why), a change-feed entry, and the notifications of those it concerns. Functions here
flush, never commit; the saga's steps (saga.py) run in transactions of their own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import CORRECT_FIELDS, Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from services.common.feeds import record_change
from services.common.http import decode_keyset, keyset_page
from services.common.identity import Principal, Role
from services.common.messages import Text
from services.common.vocabulary import UNIT_DECIMALS
from services.matching import notifications, repository
from services.matching.allocation import DEFAULT_UNIT_VALUES_CNY
from services.matching.models import (
    HOLDING_STATUSES,
    Change,
    Delivery,
    FollowUp,
    Match,
    MatchEvent,
    MatchOrigin,
    MatchStatus,
    SagaStep,
)
from services.matching.readmodel import ReadModelCache, need_view, offer_view
from services.matching.rules import RuleSet
from services.matching.schemas import DeliveryCreate, FollowUpCreate, MatchCreate, ReceiptCreate
from services.matching.scoring import OfferTable, RejectionCode, candidates_for_need, explain_rejection
from services.matching.service import MATCH_NOT_FOUND, NEED_NOT_FOUND, OFFER_NOT_FOUND, may_see_match


class MatchFailed(Conflict):
    """The approval saga ended `failed`: the answer to the approve request, with the upstream's reason."""

    code = "match-failed"
    title = Text("对接未能批准", "The match could not be approved")


@dataclass(frozen=True, slots=True)
class Actor:
    subject: str
    role: str

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.subject, principal.role.value)


SAGA_WORKER = Actor("system:saga-worker", "service")


# --- the trail ----------------------------------------------------------------------------------

def record_event(
    session: AsyncSession, match: Match, *, actor: Actor, action: str, from_status: str | None,
    changes: dict[str, Any] | None = None, reason: tuple[str, str] | None = None, feed: bool = True,
) -> None:
    """The audit event and the change-feed entry of what just happened to `match` (already flushed or not).

    `feed=False` for a saga's inner steps: they are audited, but the feed carries only what readers act on
    (the status and quantities); on PostgreSQL every feed write takes the outbox's lock."""
    session.add(MatchEvent(
        id=uuid.uuid4(), match_id=match.id, village_code=match.village_code, organisation_id=match.organisation_id,
        action=action, from_status=from_status, to_status=match.status, actor=actor.subject, actor_role=actor.role,
        changes=changes or {}, reason_zh=reason[0] if reason else None, reason_en=reason[1] if reason else None,
        created_at=utcnow(),
    ))
    if feed:
        record_change(session, Change, entity="match", entity_id=match.id, op=action, data=match.feed_data())


def change_status(
    session: AsyncSession, match: Match, to: MatchStatus, *, actor: Actor, action: str,
    reason: tuple[str, str] | None = None, changes: dict[str, Any] | None = None,
) -> None:
    before = match.status
    match.status = to
    match.version += 1
    match.updated_at = utcnow()
    if reason is not None:
        match.status_reason, match.status_reason_en = reason
    record_event(session, match, actor=actor, action=action, from_status=before, changes=changes, reason=reason)


def rendered(text: Text, **params: object) -> tuple[str, str]:
    return text.zh.format(**params), text.en.format(**params)


# --- loading and authority ----------------------------------------------------------------------

async def locked_match(session: AsyncSession, *, principal: Principal, match_id: uuid.UUID) -> Match:
    """The match, locked for this transaction; 404 to whoever may not see it."""
    match = await repository.get_match_for_update(session, match_id)
    if match is None or not may_see_match(principal, match):
        raise NotFound(MATCH_NOT_FOUND)
    return match


def _ensure_coordinator(principal: Principal, match: Match, what: Text) -> None:
    if principal.role not in (Role.COORDINATOR, Role.ADMIN) or not principal.governs_region(match.village_code):
        raise Forbidden(what)


def _check_places(field: str, quantity: Decimal, unit: str) -> None:
    places = UNIT_DECIMALS.get(unit, 2)
    if quantity != quantity.quantize(Decimal(1).scaleb(-places)):
        message = Text("单位“{unit}”最多 {places} 位小数", "The unit '{unit}' takes at most {places} decimals")
        raise ValidationFailed(CORRECT_FIELDS, errors=[FieldError(field, message, unit=unit, places=places)])


def _state_conflict(match: Match, action: Text) -> Conflict:
    return Conflict(
        Text("这条对接当前为“{status}”，不能{action}。", "This match is {status}; it cannot be {action_en}."),
        status=match.status, action=action.zh, action_en=action.en,
    )


APPROVED = Text("批准", "approved")
REJECTED = Text("驳回", "rejected")
CANCELLED = Text("取消", "cancelled")
DELIVERED_TO = Text("登记交付", "delivered to")
RECEIVED = Text("确认收货", "confirmed as received")
FOLLOWED_UP = Text("登记回访", "followed up")


# --- proposals and pledges ----------------------------------------------------------------------

async def propose(
    session: AsyncSession, cache: ReadModelCache, *, principal: Principal, data: MatchCreate, ruleset: RuleSet
) -> Match:
    """A coordinator's proposal (any need and offer of their region) or a member's pledge of their own offer.

    The caller has refreshed `cache` before the session began (its context: pairings, received values)."""
    need = await repository.get_need(session, data.need_id)
    offer = await repository.get_offer(session, data.offer_id)
    if need is None or (need.status == "draft" and not principal.governs_region(need.village_code)):
        raise NotFound(NEED_NOT_FOUND)
    if offer is None:
        raise NotFound(OFFER_NOT_FOUND)
    if principal.role in (Role.COORDINATOR, Role.ADMIN) and principal.governs_region(need.village_code):
        origin = MatchOrigin.COORDINATOR
    elif principal.belongs_to(offer.organisation_id):
        origin = MatchOrigin.PLEDGE
    else:
        raise Forbidden(Text(
            "只有辖区覆盖该村的协调员可以提议对接，组织成员只能认捐本组织的供给。",
            "Only a coordinator whose region covers the village may propose a match; an organisation member may "
            "pledge only their own organisation's offers.",
        ))
    if need.unit != offer.unit:
        raise ValidationFailed(Text("需求与供给的单位不同（{a} / {b}）。", "The need and the offer use different units ({a} / {b})."),
                               a=need.unit, b=offer.unit)
    _check_places("quantity", data.quantity, need.unit)

    organisation = await repository.get_organisation(session, offer.organisation_id)
    need_v, offer_v = need_view(need), offer_view(offer, organisation.grade if organisation else None)
    table = OfferTable.from_views([offer_v])
    context = cache.context()
    found = candidates_for_need(need_v, table, context, ruleset, limit=1)
    if not found:
        rejection = explain_rejection(need_v, table, context)
        text = rejection.text if rejection else Text("需求与供给不匹配。", "The need and the offer do not match.")
        short = rejection is not None and rejection.code in (
            RejectionCode.CAPACITY_TAKEN, RejectionCode.NOTHING_LEFT, RejectionCode.NEED_NOT_OPEN)
        raise (Conflict if short else ValidationFailed)(Text("不能提议这条对接：{zh}", "This match cannot be proposed: {en}"),
                                                        zh=text.zh, en=text.en)
    held_by_need, held_by_offer = await repository.in_flight(session, need_id=need.id, offer_id=offer.id)
    remaining = need.quantity - need.committed - held_by_need
    available = offer.available - held_by_offer
    if data.quantity > remaining:
        raise Conflict(Text("需求只剩 {left} {unit} 未落实，少于提议的 {quantity}。",
                            "The need has only {left} {unit} left, less than the {quantity} proposed."),
                       left=max(remaining, Decimal(0)), unit=need.unit, quantity=data.quantity)
    if data.quantity > available:
        raise Conflict(Text("供给只剩 {left} {unit} 可用，少于提议的 {quantity}。",
                            "The offer has only {left} {unit} available, less than the {quantity} proposed."),
                       left=max(available, Decimal(0)), unit=offer.unit, quantity=data.quantity)
    candidate = found[0]
    now = utcnow()
    match = Match(
        id=uuid.uuid4(), run_id=None, need_id=need.id, offer_id=offer.id, organisation_id=offer.organisation_id,
        village_code=need.village_code, region_code=need.village_code[:6], quantity=data.quantity, unit=need.unit,
        score=float(candidate.score),
        explanation=[{"rule": e.rule, "weight": e.weight, "score": e.score, "reason_zh": e.reason_zh,
                      "reason_en": e.reason_en} for e in candidate.explanation],
        ruleset_version=ruleset.version, status=MatchStatus.PROPOSED, version=1, created_by=principal.subject,
        origin=origin, note=data.note, saga_attempts=0, delivered=Decimal(0), delivery_synced=Decimal(0),
        created_at=now, updated_at=now,
    )
    session.add(match)
    record_event(session, match, actor=Actor.of(principal), action="propose" if origin == MatchOrigin.COORDINATOR else "pledge",
                 from_status=None, changes={"quantity": str(data.quantity), "note": data.note})
    await notifications.notify(session, match, "proposal_created" if origin == MatchOrigin.COORDINATOR else "pledge_created")
    await session.flush()
    return match


# --- approval: the first step of the saga, stored before anything is asked of needs or offers -----

async def begin_approval(
    session: AsyncSession, *, principal: Principal, match_id: uuid.UUID, owner: str, lease_until: datetime
) -> Match:
    """proposed → approving (step reserving), leased to `owner`. The row lock makes two approvals one saga."""
    match = await locked_match(session, principal=principal, match_id=match_id)
    _ensure_coordinator(principal, match, Text("只有辖区覆盖该村的协调员或管理员可以批准对接。",
                                               "Only a coordinator whose region covers the village, or an admin, may approve."))
    if match.status == MatchStatus.FAILED:
        raise failed_error(match)
    if match.status in (MatchStatus.APPROVING, MatchStatus.CANCELLING):
        raise Conflict(Text("这条对接正在处理中（{status}），请稍后查看结果。",
                            "This match is being processed ({status}); look again shortly."), status=match.status)
    if match.status in HOLDING_STATUSES:
        raise Conflict(Text("这条对接已经批准（当前为“{status}”）。", "This match is already approved (now {status})."),
                       status=match.status)
    if match.status != MatchStatus.PROPOSED:
        raise _state_conflict(match, APPROVED)
    match.saga_step, match.saga_owner, match.saga_lease_until = SagaStep.RESERVING, owner, lease_until
    match.saga_attempts, match.saga_error = 0, None
    change_status(session, match, MatchStatus.APPROVING, actor=Actor.of(principal), action="approve")
    await session.flush()
    return match


def failed_error(match: Match) -> MatchFailed:
    return MatchFailed(Text("{zh}", "{en}"), zh=match.status_reason or "", en=match.status_reason_en or match.status_reason or "")


async def reject(session: AsyncSession, *, principal: Principal, match_id: uuid.UUID, reason: str) -> Match:
    match = await locked_match(session, principal=principal, match_id=match_id)
    _ensure_coordinator(principal, match, Text("只有辖区覆盖该村的协调员或管理员可以驳回对接。",
                                               "Only a coordinator whose region covers the village, or an admin, may reject."))
    if match.status != MatchStatus.PROPOSED:
        raise _state_conflict(match, REJECTED)
    change_status(session, match, MatchStatus.REJECTED, actor=Actor.of(principal), action="reject", reason=(reason, reason))
    await notifications.notify(session, match, "match_rejected", reason=reason)
    await session.flush()
    return match


async def begin_cancel(
    session: AsyncSession, *, principal: Principal, match_id: uuid.UUID, reason: str, owner: str, lease_until: datetime
) -> Match:
    """proposed → cancelled at once; approved with nothing delivered → cancelling (the saga releases both holds)."""
    match = await locked_match(session, principal=principal, match_id=match_id)
    own_pledge = (principal.belongs_to(match.organisation_id) and match.origin == MatchOrigin.PLEDGE
                  and match.status == MatchStatus.PROPOSED)
    if not own_pledge:
        _ensure_coordinator(principal, match, Text(
            "只有辖区协调员或管理员可以取消对接；组织只能撤回本组织尚未批准的认捐。",
            "Only a coordinator of the region or an admin may cancel a match; an organisation may withdraw only its own "
            "pledge before it is approved."))
    actor = Actor.of(principal)
    if match.status == MatchStatus.PROPOSED:
        change_status(session, match, MatchStatus.CANCELLED, actor=actor, action="cancel", reason=(reason, reason))
        await notifications.notify(session, match, "match_cancelled", reason=reason)
    elif match.status == MatchStatus.APPROVED and match.delivered == 0:
        match.saga_step, match.saga_owner, match.saga_lease_until = SagaStep.RELEASING, owner, lease_until
        match.saga_attempts, match.saga_error = 0, None
        change_status(session, match, MatchStatus.CANCELLING, actor=actor, action="cancel", reason=(reason, reason))
    elif match.status in (MatchStatus.APPROVING, MatchStatus.CANCELLING):
        raise Conflict(Text("这条对接正在处理中（{status}），请稍后再试。", "This match is being processed ({status}); try again shortly."),
                       status=match.status)
    elif match.status in HOLDING_STATUSES:
        raise Conflict(Text("已有交付的对接不能取消（已交付 {delivered} {unit}）。",
                            "A match with deliveries cannot be cancelled ({delivered} {unit} delivered)."),
                       delivered=match.delivered, unit=match.unit)
    else:
        raise _state_conflict(match, CANCELLED)
    await session.flush()
    return match


# --- deliveries, receipt, follow-ups --------------------------------------------------------------

async def record_delivery(session: AsyncSession, *, principal: Principal, match_id: uuid.UUID, data: DeliveryCreate) -> Match:
    match = await locked_match(session, principal=principal, match_id=match_id)
    if not principal.belongs_to(match.organisation_id):
        raise Forbidden(Text("只有提供方组织的成员可以登记交付。", "Only members of the giving organisation may record deliveries."))
    if match.status != MatchStatus.APPROVED:
        raise _state_conflict(match, DELIVERED_TO)
    _check_places("quantity", data.quantity, match.unit)
    if data.delivered_on > date.today() + timedelta(days=1):
        future = Text("交付日期不能在将来", "A delivery cannot be dated in the future")
        raise ValidationFailed(CORRECT_FIELDS, errors=[FieldError("delivered_on", future)])
    total = match.delivered + data.quantity
    if total > match.quantity:
        raise Conflict(Text("累计交付 {total} 将超过批准的 {quantity} {unit}（已交付 {delivered}）。",
                            "A delivered total of {total} would exceed the {quantity} {unit} approved ({delivered} delivered so far)."),
                       total=total, quantity=match.quantity, unit=match.unit, delivered=match.delivered)
    before = match.delivered
    session.add(Delivery(id=uuid.uuid4(), match_id=match.id, quantity=data.quantity, delivered_total=total,
                         delivered_on=data.delivered_on, note=data.note, recorded_by=principal.subject, created_at=utcnow()))
    match.delivered = total
    changes = {"delivered": [str(before), str(total)], "delivered_on": data.delivered_on.isoformat(), "note": data.note}
    if total == match.quantity:
        change_status(session, match, MatchStatus.DELIVERED, actor=Actor.of(principal), action="deliver", changes=changes)
        await notifications.notify(session, match, "match_delivered")
    else:
        match.version += 1
        match.updated_at = utcnow()
        record_event(session, match, actor=Actor.of(principal), action="deliver", from_status=match.status, changes=changes)
        await notifications.notify(session, match, "delivery_recorded")
    await session.flush()
    return match


async def record_receipt(session: AsyncSession, *, principal: Principal, match_id: uuid.UUID, data: ReceiptCreate) -> Match:
    match = await locked_match(session, principal=principal, match_id=match_id)
    if not principal.speaks_for_village(match.village_code):
        raise Forbidden(Text("只有受助村的村干部可以确认收货。", "Only the receiving village's officer may confirm receipt."))
    if match.status != MatchStatus.DELIVERED:
        raise _state_conflict(match, RECEIVED)
    _check_places("quantity", data.quantity, match.unit)
    if data.quantity > match.delivered:
        raise Conflict(Text("确认数量 {quantity} 超过已交付的 {delivered} {unit}。",
                            "The {quantity} confirmed exceeds the {delivered} {unit} delivered."),
                       quantity=data.quantity, delivered=match.delivered, unit=match.unit)
    match.received, match.satisfaction, match.receipt_comment = data.quantity, data.satisfaction, data.comment
    match.received_by, match.received_at = principal.subject, utcnow()
    change_status(session, match, MatchStatus.RECEIVED, actor=Actor.of(principal), action="receive",
                  changes={"received": str(data.quantity), "satisfaction": data.satisfaction, "comment": data.comment})
    value = data.quantity * Decimal(str(DEFAULT_UNIT_VALUES_CNY.get(match.unit, 0.0)))
    if value > 0:
        await repository.add_received(session, match.village_code, value)
    await notifications.notify(session, match, "match_received", satisfaction=data.satisfaction)
    await session.flush()
    return match


async def record_follow_up(session: AsyncSession, *, principal: Principal, match_id: uuid.UUID, data: FollowUpCreate) -> FollowUp:
    match = await locked_match(session, principal=principal, match_id=match_id)
    _ensure_coordinator(principal, match, Text("只有辖区协调员或管理员可以登记回访。",
                                               "Only a coordinator of the region or an admin may record follow-up visits."))
    if match.status not in HOLDING_STATUSES:
        raise _state_conflict(match, FOLLOWED_UP)
    row = FollowUp(id=uuid.uuid4(), match_id=match.id, visited_on=data.visited_on, note=data.note,
                   recorded_by=principal.subject, created_at=utcnow())
    session.add(row)
    match.version += 1
    match.updated_at = utcnow()
    record_event(session, match, actor=Actor.of(principal), action="follow_up", from_status=match.status,
                 changes={"visited_on": data.visited_on.isoformat(), "note": data.note})
    await session.flush()
    return row


# --- reading the trail ------------------------------------------------------------------------------

async def history(session: AsyncSession, *, principal: Principal, match_id: uuid.UUID) -> list[MatchEvent]:
    match = await repository.get_match(session, match_id)
    if match is None or not may_see_match(principal, match):
        raise NotFound(MATCH_NOT_FOUND)
    return await repository.match_events(session, match_id)


async def audit(
    session: AsyncSession, *, principal: Principal, region: str | None, limit: int, cursor: str | None
) -> tuple[list[MatchEvent], str | None]:
    """Match events of a region, newest first: for the region's coordinators and admins."""
    if principal.role not in (Role.COORDINATOR, Role.ADMIN) or (principal.role is Role.COORDINATOR and not principal.region_code):
        raise Forbidden(Text("只有协调员和管理员可以查看审计记录。", "Only coordinators and admins may read the audit trail."))
    prefix = region if region is not None else (principal.region_code or "")
    if not principal.is_admin and not principal.governs_region(prefix):
        raise Forbidden(Text("地区 {region} 不在你的辖区内。", "Region {region} is outside your jurisdiction."), region=prefix)
    rows = await repository.audit_events(session, prefix=prefix, limit=limit + 1, after=decode_keyset(cursor))
    return keyset_page(rows, limit)
