"""Every query on the matching database."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.identity import Principal, Role
from services.matching.models import (
    ACTIVE_RUN_STATUSES,
    HOLDING_STATUSES,
    SAGA_STATUSES,
    AudienceKind,
    Delivery,
    FeedCursor,
    FollowUp,
    Match,
    MatchEvent,
    MatchRun,
    MatchStatus,
    NeedRM,
    Notification,
    NotificationRead,
    OfferRM,
    OrganisationRM,
    PairingRM,
    RuleSetRow,
    Unmatched,
    VillageReceived,
    WebhookDelivery,
    WebhookStatus,
)

ReadModel = TypeVar("ReadModel", NeedRM, OfferRM, OrganisationRM, PairingRM)
Cursor = tuple[datetime, uuid.UUID]


async def _flush_unless_duplicate(session: AsyncSession, row: object | None = None) -> bool:
    """Flush inside a savepoint; False when a unique constraint refuses it (a concurrent twin won)."""
    try:
        async with session.begin_nested():
            if row is not None:
                session.add(row)
            await session.flush()
    except IntegrityError:
        return False
    return True


# --- feed cursors and read models -------------------------------------------------------------------

async def feed_cursor(session: AsyncSession, feed: str, *, lock: bool = False) -> int:
    query = select(FeedCursor.last_seq).where(FeedCursor.feed == feed)
    if lock:
        query = query.with_for_update()
    value = (await session.scalars(query)).one_or_none()
    return int(value or 0)


async def set_feed_cursor(session: AsyncSession, feed: str, last_seq: int) -> None:
    row = await session.get(FeedCursor, feed)
    if row is None:
        session.add(FeedCursor(feed=feed, last_seq=last_seq))
    else:
        row.last_seq = last_seq
    await session.flush()


async def all_feed_cursors(session: AsyncSession) -> dict[str, int]:
    return {row.feed: int(row.last_seq) for row in (await session.scalars(select(FeedCursor))).all()}


async def read_model_rows(session: AsyncSession, model: type[ReadModel], ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ReadModel]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = (await session.scalars(select(model).where(model.id.in_(wanted)))).all()
    return {row.id: row for row in rows}


def add_read_model_row(session: AsyncSession, row: object) -> None:
    session.add(row)


async def rows_changed_after(session: AsyncSession, model: type[ReadModel], seq: int) -> Sequence[ReadModel]:
    """Read-model rows written by changes after `seq` (all of them from 0), in seq order."""
    return (await session.scalars(select(model).where(model.seq > seq).order_by(model.seq))).all()


async def get_need(session: AsyncSession, need_id: uuid.UUID) -> NeedRM | None:
    return await session.get(NeedRM, need_id)


async def get_offer(session: AsyncSession, offer_id: uuid.UUID) -> OfferRM | None:
    return await session.get(OfferRM, offer_id)


async def get_organisation(session: AsyncSession, organisation_id: uuid.UUID) -> OrganisationRM | None:
    return await session.get(OrganisationRM, organisation_id)


async def received_changed_since(session: AsyncSession, since: datetime | None) -> Sequence[VillageReceived]:
    query = select(VillageReceived)
    if since is not None:
        query = query.where(VillageReceived.updated_at >= since)
    return (await session.scalars(query)).all()


async def add_received(session: AsyncSession, village_code: str, value_cny: Any) -> None:
    row = await session.get(VillageReceived, village_code, with_for_update=True)
    if row is None:
        session.add(VillageReceived(village_code=village_code, value_cny=value_cny, updated_at=utcnow()))
    else:
        row.value_cny = row.value_cny + value_cny
        row.updated_at = utcnow()
    await session.flush()


# --- rule sets ------------------------------------------------------------------------------------

async def current_ruleset(session: AsyncSession) -> RuleSetRow | None:
    return (await session.scalars(select(RuleSetRow).order_by(RuleSetRow.version.desc()).limit(1))).first()


async def get_ruleset(session: AsyncSession, version: int) -> RuleSetRow | None:
    return await session.get(RuleSetRow, version)


async def insert_ruleset(session: AsyncSession, row: RuleSetRow) -> bool:
    """False when another writer took this version number first."""
    return await _flush_unless_duplicate(session, row)


# --- match runs -----------------------------------------------------------------------------------

async def get_run(session: AsyncSession, run_id: uuid.UUID, *, refresh: bool = False) -> MatchRun | None:
    return await session.get(MatchRun, run_id, populate_existing=refresh)


async def active_runs_overlapping(session: AsyncSession, region_code: str) -> Sequence[MatchRun]:
    """Queued or running runs whose region contains, or lies inside, `region_code`."""
    ancestors = [region_code[:n] for n in (2, 4, 6, 9) if n < len(region_code)]
    query = select(MatchRun).where(
        MatchRun.status.in_(ACTIVE_RUN_STATUSES),
        or_(MatchRun.region_code.startswith(region_code, autoescape=True), MatchRun.region_code.in_(ancestors)),
    )
    return (await session.scalars(query)).all()


async def insert_run(session: AsyncSession, run: MatchRun) -> bool:
    """False when the region has a queued or running run already (the partial unique index)."""
    return await _flush_unless_duplicate(session, run)


async def stale_runs(session: AsyncSession, *, heartbeat_before: datetime) -> Sequence[MatchRun]:
    query = select(MatchRun).where(MatchRun.status.in_(ACTIVE_RUN_STATUSES), MatchRun.heartbeat_at < heartbeat_before)
    return (await session.scalars(query.with_for_update())).all()


def _page(query: Select[Any], model: Any, *, limit: int, after: Cursor | None) -> Select[Any]:
    """Newest first, keyset-paginated on (created_at, id)."""
    if after is not None:
        created_at, row_id = after
        query = query.where(or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < row_id)))
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(limit)


async def list_runs(
    session: AsyncSession, *, within: str | None, region: str | None, limit: int, after: Cursor | None
) -> list[MatchRun]:
    query = select(MatchRun)
    if within:
        query = query.where(MatchRun.region_code.startswith(within, autoescape=True))
    if region:
        query = query.where(MatchRun.region_code.startswith(region, autoescape=True))
    return list((await session.scalars(_page(query, MatchRun, limit=limit, after=after))).all())


# --- matches --------------------------------------------------------------------------------------

async def supersede_proposals(session: AsyncSession, *, region_code: str, except_run: uuid.UUID) -> int:
    """Earlier runs' proposals for villages of this region that nobody reviewed yet become `superseded`."""
    result = await session.execute(
        update(Match)
        .where(
            Match.status == MatchStatus.PROPOSED,
            Match.run_id.is_not(None),
            Match.run_id != except_run,
            Match.village_code.startswith(region_code, autoescape=True),
        )
        .values(status=MatchStatus.SUPERSEDED, version=Match.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def add_all(session: AsyncSession, rows: Iterable[object]) -> None:
    session.add_all(list(rows))


async def quantities_in_flight(session: AsyncSession) -> tuple[dict[uuid.UUID, Any], dict[uuid.UUID, Any]]:
    """Quantities of matches being approved (held neither in needs' nor offers' feeds yet), per need and offer."""
    rows = (
        await session.execute(
            select(Match.need_id, Match.offer_id, Match.quantity).where(Match.status == MatchStatus.APPROVING)
        )
    ).all()
    per_need: dict[uuid.UUID, Any] = {}
    per_offer: dict[uuid.UUID, Any] = {}
    for need_id, offer_id, quantity in rows:
        per_need[need_id] = per_need.get(need_id, 0) + quantity
        per_offer[offer_id] = per_offer.get(offer_id, 0) + quantity
    return per_need, per_offer


async def in_flight(session: AsyncSession, *, need_id: uuid.UUID, offer_id: uuid.UUID) -> tuple[Decimal, Decimal]:
    """What matches being approved hold of this need and of this offer (not in the read models yet)."""
    approving = Match.status == MatchStatus.APPROVING
    need_held = await session.scalar(select(func.coalesce(func.sum(Match.quantity), 0)).where(approving, Match.need_id == need_id))
    offer_held = await session.scalar(select(func.coalesce(func.sum(Match.quantity), 0)).where(approving, Match.offer_id == offer_id))
    return _amount(need_held), _amount(offer_held)


def _amount(value: Any) -> Decimal:
    """A SUM over a Quantity column: NUMERIC on PostgreSQL, integer hundredths on SQLite."""
    if value is None:
        return Decimal(0)
    if isinstance(value, int):
        return (Decimal(value) / 100).quantize(Decimal("0.01"))
    return Decimal(value).quantize(Decimal("0.01"))


async def get_match(session: AsyncSession, match_id: uuid.UUID) -> Match | None:
    return await session.get(Match, match_id)


async def get_match_for_update(session: AsyncSession, match_id: uuid.UUID) -> Match | None:
    """The match as committed now, locked until the transaction ends (PostgreSQL; SQLite's writer lock is whole)."""
    return await session.get(Match, match_id, with_for_update=True, populate_existing=True)


async def match_events(session: AsyncSession, match_id: uuid.UUID) -> list[MatchEvent]:
    query = select(MatchEvent).where(MatchEvent.match_id == match_id).order_by(MatchEvent.created_at, MatchEvent.id)
    return list((await session.scalars(query)).all())


async def deliveries_of(session: AsyncSession, match_id: uuid.UUID) -> list[Delivery]:
    query = select(Delivery).where(Delivery.match_id == match_id).order_by(Delivery.created_at, Delivery.id)
    return list((await session.scalars(query)).all())


async def follow_ups_of(session: AsyncSession, match_id: uuid.UUID) -> list[FollowUp]:
    query = select(FollowUp).where(FollowUp.match_id == match_id).order_by(FollowUp.created_at, FollowUp.id)
    return list((await session.scalars(query)).all())


async def claim_saga(
    session: AsyncSession, match_id: uuid.UUID, *, owner: str, now: datetime, lease_until: datetime
) -> bool:
    """Take over an unfinished saga whose lease ran out (or was never taken); False when someone holds it."""
    result = await session.execute(
        update(Match)
        .where(
            Match.id == match_id, Match.status.in_(SAGA_STATUSES),
            or_(Match.saga_lease_until.is_(None), Match.saga_lease_until < now),
        )
        .values(saga_owner=owner, saga_lease_until=lease_until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def sagas_due(session: AsyncSession, *, now: datetime, limit: int) -> list[uuid.UUID]:
    query = (
        select(Match.id)
        .where(Match.status.in_(SAGA_STATUSES), or_(Match.saga_lease_until.is_(None), Match.saga_lease_until < now))
        .order_by(Match.updated_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def deliveries_unsynced(session: AsyncSession, *, limit: int) -> list[uuid.UUID]:
    query = (
        select(Match.id)
        .where(Match.status.in_(HOLDING_STATUSES), Match.delivered > Match.delivery_synced)
        .order_by(Match.updated_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def list_matches(
    session: AsyncSession, *, visible: ColumnElement[bool] | None, clauses: Sequence[ColumnElement[bool]], limit: int,
    after: Cursor | None,
) -> list[Match]:
    query = select(Match).where(*clauses)
    if visible is not None:
        query = query.where(visible)
    return list((await session.scalars(_page(query, Match, limit=limit, after=after))).all())


async def count_matches(session: AsyncSession, *, run_id: uuid.UUID, status: str | None = None) -> int:
    query = select(func.count()).select_from(Match).where(Match.run_id == run_id)
    if status is not None:
        query = query.where(Match.status == status)
    return int((await session.scalar(query)) or 0)


# --- unmatched ------------------------------------------------------------------------------------

async def list_unmatched(session: AsyncSession, *, run_id: uuid.UUID, limit: int, after: Cursor | None) -> list[Unmatched]:
    query = select(Unmatched).where(Unmatched.run_id == run_id)
    return list((await session.scalars(_page(query, Unmatched, limit=limit, after=after))).all())


# --- audit, notifications and webhook deliveries ------------------------------------------------------

def _before(created_at: Any, row_id: Any, after: Cursor) -> ColumnElement[bool]:
    """Newest-first keyset: rows strictly after the cursor's (created_at, id)."""
    return or_(created_at < after[0], and_(created_at == after[0], row_id < after[1]))


async def audit_events(session: AsyncSession, *, prefix: str, limit: int, after: Cursor | None) -> list[MatchEvent]:
    query = select(MatchEvent).where(MatchEvent.village_code.startswith(prefix, autoescape=True))
    if after is not None:
        query = query.where(_before(MatchEvent.created_at, MatchEvent.id, after))
    query = query.order_by(MatchEvent.created_at.desc(), MatchEvent.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


def notifications_addressed_to(principal: Principal) -> ColumnElement[bool]:
    """Notifications go to an audience (a region, a village, an organisation), never to user ids."""
    if principal.is_admin:
        return Notification.audience_kind == AudienceKind.REGION
    if principal.role is Role.COORDINATOR and principal.region_code:
        return and_(Notification.audience_kind == AudienceKind.REGION,
                    Notification.audience.startswith(principal.region_code, autoescape=True))
    if principal.role is Role.OFFICER and principal.village_code:
        return and_(Notification.audience_kind == AudienceKind.VILLAGE, Notification.audience == principal.village_code)
    if principal.role is Role.ORG_MEMBER and principal.organisation_id:
        return and_(Notification.audience_kind == AudienceKind.ORGANISATION,
                    Notification.audience == str(principal.organisation_id))
    return false()


async def notifications_for(
    session: AsyncSession, principal: Principal, *, unread_only: bool, limit: int, after: Cursor | None
) -> list[tuple[Notification, datetime | None]]:
    """The principal's notifications, newest first, each with when this person read it (or None)."""
    read_by_me = and_(NotificationRead.notification_id == Notification.id, NotificationRead.reader == principal.subject)
    query = (
        select(Notification, NotificationRead.read_at)
        .outerjoin(NotificationRead, read_by_me)
        .where(notifications_addressed_to(principal))
    )
    if unread_only:
        query = query.where(NotificationRead.read_at.is_(None))
    if after is not None:
        query = query.where(_before(Notification.created_at, Notification.id, after))
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return [(row, read_at) for row, read_at in (await session.execute(query)).all()]


async def notification_for(session: AsyncSession, principal: Principal, notification_id: uuid.UUID) -> Notification | None:
    query = select(Notification).where(Notification.id == notification_id, notifications_addressed_to(principal))
    return (await session.scalars(query)).one_or_none()


async def due_webhook_deliveries(session: AsyncSession, *, now: datetime, limit: int) -> list[WebhookDelivery]:
    """Pending deliveries whose time has come; on PostgreSQL rows another process holds are skipped."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == WebhookStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list((await session.scalars(query)).all())


async def make_pending_deliveries_due(session: AsyncSession) -> None:
    now = utcnow()
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == WebhookStatus.PENDING, WebhookDelivery.next_attempt_at > now)
        .values(next_attempt_at=now)
    )


# --- exports --------------------------------------------------------------------------------------

async def export_matches(
    session: AsyncSession, *, visible: ColumnElement[bool], clauses: Sequence[ColumnElement[bool]], limit: int,
    after: Cursor | None,
) -> list[Any]:
    """A batch of matches as the list orders them, each with its need's, offer's and organisation's names."""
    query: Any = (
        select(Match, NeedRM.title, NeedRM.category, NeedRM.kind, OfferRM.title, OrganisationRM.name)
        .outerjoin(NeedRM, NeedRM.id == Match.need_id)
        .outerjoin(OfferRM, OfferRM.id == Match.offer_id)
        .outerjoin(OrganisationRM, OrganisationRM.id == Match.organisation_id)
        .where(visible, *clauses)
    )
    return list((await session.execute(_page(query, Match, limit=limit, after=after))).all())


async def export_deliveries(
    session: AsyncSession, *, visible: ColumnElement[bool], clauses: Sequence[ColumnElement[bool]], limit: int,
    after: Cursor | None,
) -> list[Any]:
    """A batch of deliveries, newest recorded first, each with its match and the need's and organisation's names."""
    query: Any = (
        select(Delivery, Match, NeedRM.title, OrganisationRM.name)
        .join(Match, Match.id == Delivery.match_id)
        .outerjoin(NeedRM, NeedRM.id == Match.need_id)
        .outerjoin(OrganisationRM, OrganisationRM.id == Match.organisation_id)
        .where(visible, *clauses)
    )
    return list((await session.execute(_page(query, Delivery, limit=limit, after=after))).all())


# --- reports --------------------------------------------------------------------------------------
# Every figure is an aggregate in the database (GROUP BY): never a whole table in memory. Only matches holding
# their quantity (approved, delivered, received) count: failed, rejected, superseded and cancelled ones never
# held anything, and a match with deliveries cannot be cancelled.

def _within(column: Any, region: str) -> ColumnElement[bool]:
    return column.startswith(region, autoescape=True) if region else true()


def _approvals() -> Any:
    """When each match was approved: its (first) `approved` event."""
    return (
        select(MatchEvent.match_id.label("match_id"), func.min(MatchEvent.created_at).label("approved_at"))
        .where(MatchEvent.action == "approved")
        .group_by(MatchEvent.match_id)
        .subquery("approvals")
    )


def _county() -> Any:
    return func.substr(Match.village_code, 1, 6)


_GROUPS = (Match.unit, NeedRM.category, NeedRM.kind, Match.organisation_id, OrganisationRM.name)


async def needs_counts(session: AsyncSession, *, region: str, start: datetime, end: datetime) -> tuple[int, int, int]:
    """Needs posted in [start, end) (drafts are not posted), those of them still open, and needs fulfilled then."""
    inside = _within(NeedRM.village_code, region)
    posted = and_(inside, NeedRM.status != "draft", NeedRM.posted_at >= start, NeedRM.posted_at < end)
    counted = await session.execute(
        select(func.count(), func.coalesce(func.sum(case((NeedRM.status == "open", 1), else_=0)), 0)).where(posted)
    )
    total, still_open = counted.one()
    fulfilled = await session.scalar(
        select(func.count()).select_from(NeedRM).where(inside, NeedRM.fulfilled_at >= start, NeedRM.fulfilled_at < end)
    )
    return int(total), int(still_open), int(fulfilled or 0)


async def committed_groups(session: AsyncSession, *, region: str, start: datetime, end: datetime) -> list[Any]:
    """Matches approved in [start, end) and still holding: (unit, category, kind, organisation, name, county,
    quantity, count) per group."""
    approvals = _approvals()
    county = _county().label("county")
    query: Any = (
        select(*_GROUPS, county, func.sum(Match.quantity), func.count())
        .join(approvals, approvals.c.match_id == Match.id)
        .outerjoin(NeedRM, NeedRM.id == Match.need_id)
        .outerjoin(OrganisationRM, OrganisationRM.id == Match.organisation_id)
        .where(Match.status.in_(HOLDING_STATUSES), _within(Match.village_code, region),
               approvals.c.approved_at >= start, approvals.c.approved_at < end)
        .group_by(*_GROUPS, county)
    )
    return list((await session.execute(query)).all())


async def delivered_groups(session: AsyncSession, *, region: str, first: date, last: date) -> list[Any]:
    """Deliveries dated first..last of holding matches, each counted by its own quantity (never the cumulative
    total): (unit, category, kind, organisation, name, county, quantity, deliveries, matches completed) per group."""
    county = _county().label("county")
    completed = func.sum(case((Delivery.delivered_total == Match.quantity, 1), else_=0))
    query: Any = (
        select(*_GROUPS, county, func.sum(Delivery.quantity), func.count(), completed)
        .join(Match, Match.id == Delivery.match_id)
        .outerjoin(NeedRM, NeedRM.id == Match.need_id)
        .outerjoin(OrganisationRM, OrganisationRM.id == Match.organisation_id)
        .where(Match.status.in_(HOLDING_STATUSES), _within(Match.village_code, region),
               Delivery.delivered_on >= first, Delivery.delivered_on <= last)
        .group_by(*_GROUPS, county)
    )
    return list((await session.execute(query)).all())


async def beneficiaries_reached(session: AsyncSession, *, region: str, first: date, last: date) -> int:
    """The beneficiaries of the needs that received a delivery dated first..last, each need once."""
    reached = (
        select(Match.need_id)
        .join(Delivery, Delivery.match_id == Match.id)
        .where(Match.status.in_(HOLDING_STATUSES), _within(Match.village_code, region),
               Delivery.delivered_on >= first, Delivery.delivered_on <= last)
    )
    total = await session.scalar(select(func.coalesce(func.sum(NeedRM.beneficiaries), 0)).where(NeedRM.id.in_(reached)))
    return int(total or 0)


async def receipt_groups(session: AsyncSession, *, region: str, start: datetime, end: datetime) -> list[Any]:
    """Receipts confirmed in [start, end): (organisation, name, count, sum of ratings) per organisation."""
    query: Any = (
        select(Match.organisation_id, OrganisationRM.name, func.count(), func.coalesce(func.sum(Match.satisfaction), 0))
        .outerjoin(OrganisationRM, OrganisationRM.id == Match.organisation_id)
        .where(Match.status == MatchStatus.RECEIVED, _within(Match.village_code, region),
               Match.received_at >= start, Match.received_at < end)
        .group_by(Match.organisation_id, OrganisationRM.name)
    )
    return list((await session.execute(query)).all())


def _seconds_between(session: AsyncSession, later: Any, earlier: Any) -> Any:
    """later − earlier in seconds, in SQL (SQLite keeps UTC timestamps as text, which julianday reads)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86_400


def _seconds(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


async def approval_waits(session: AsyncSession, *, region: str, start: datetime, end: datetime) -> tuple[Decimal, int]:
    """Σ seconds from posting the need to approving the match, and how many, over the holding matches approved
    in [start, end) whose need's posting time is known."""
    approvals = _approvals()
    query: Any = (
        select(func.sum(_seconds_between(session, approvals.c.approved_at, NeedRM.posted_at)), func.count())
        .select_from(Match)
        .join(approvals, approvals.c.match_id == Match.id)
        .join(NeedRM, NeedRM.id == Match.need_id)
        .where(Match.status.in_(HOLDING_STATUSES), _within(Match.village_code, region), NeedRM.posted_at.is_not(None),
               approvals.c.approved_at >= start, approvals.c.approved_at < end)
    )
    total, count = (await session.execute(query)).one()
    return _seconds(total), int(count)


async def receipt_waits(session: AsyncSession, *, region: str, start: datetime, end: datetime) -> tuple[Decimal, int]:
    """Σ seconds from posting the need to confirming receipt, and how many, over the receipts of [start, end)."""
    query: Any = (
        select(func.sum(_seconds_between(session, Match.received_at, NeedRM.posted_at)), func.count())
        .select_from(Match)
        .join(NeedRM, NeedRM.id == Match.need_id)
        .where(Match.status == MatchStatus.RECEIVED, _within(Match.village_code, region), NeedRM.posted_at.is_not(None),
               Match.received_at >= start, Match.received_at < end)
    )
    total, count = (await session.execute(query)).one()
    return _seconds(total), int(count)
