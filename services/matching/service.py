"""The rules of matching: who may see and do what, rule set versions, candidates, runs, matches. Flushes, never commits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, false, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, utcnow
from services.common.errors import CORRECT_FIELDS, Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from services.common.http import Keyset, check_version, decode_keyset, keyset_page
from services.common.identity import Principal, Role
from services.common.messages import Locale, Text
from services.common.vocabulary import CATEGORY_LABELS, KIND_LABELS, UNIT_LABELS
from services.matching import repository
from services.matching.models import Delivery, Match, MatchOrigin, MatchRun, MatchStatus, RuleSetRow, RunStatus, Unmatched
from services.matching.readmodel import OrganisationInfo, ReadModelCache, rows_in_region
from services.matching.rules import DEFAULT_RULESET, RuleSet
from services.matching.schemas import DeliveryFilters, MatchFilters, RuleSetUpdate
from services.matching.scoring import Candidate, OfferView, Rejection, candidates_for_need, candidates_for_offer, explain_rejection

NEED_NOT_FOUND = Text("找不到这条需求。", "No such need.")
OFFER_NOT_FOUND = Text("找不到这条供给。", "No such offer.")
RUN_NOT_FOUND = Text("找不到这次匹配运行。", "No such match run.")
MATCH_NOT_FOUND = Text("找不到这条对接。", "No such match.")
RULESET_NOT_FOUND = Text("找不到这个版本的规则。", "No such rule set version.")


# --- who may do what ----------------------------------------------------------------------------

def may_see_village(principal: Principal, village_code: str) -> bool:
    """The village's officer, a coordinator whose region covers it, or an admin."""
    return principal.speaks_for_village(village_code) or principal.governs_region(village_code)


def _overlaps(region: str, codes: Sequence[str]) -> bool:
    return any(code.startswith(region) or region.startswith(code) for code in codes)


def may_see_offer(principal: Principal, offer: OfferView, organisation: OrganisationInfo | None) -> bool:
    """The organisation's members, an admin, or a coordinator where the offer or its organisation works."""
    if principal.is_admin or principal.belongs_to(uuid.UUID(offer.organisation_id)):
        return True
    if principal.role is not Role.COORDINATOR or not principal.region_code:
        return False
    codes = list(offer.region_codes) + list(organisation.region_codes if organisation else ())
    return _overlaps(principal.region_code, codes)


def _ensure_runs_region(principal: Principal, region_code: str) -> None:
    if principal.role not in (Role.COORDINATOR, Role.ADMIN) or not principal.governs_region(region_code):
        raise Forbidden(
            Text("只有辖区覆盖 {region} 的协调员或管理员可以在该地区运行匹配。",
                 "Only a coordinator whose region covers {region}, or an admin, may run matching there."),
            region=region_code,
        )


# --- rule sets ----------------------------------------------------------------------------------

def engine_ruleset(row: RuleSetRow) -> RuleSet:
    return RuleSet.model_validate({"version": row.version, "weights": row.weights, "parameters": row.parameters})


async def current_ruleset(session: AsyncSession) -> RuleSetRow:
    """The newest version; version 1 (the default rules) is seeded by the migration, or here if it went missing."""
    row = await repository.current_ruleset(session)
    if row is not None:
        return row
    seed = RuleSetRow(
        version=1, weights=DEFAULT_RULESET.weights.model_dump(), parameters=DEFAULT_RULESET.parameters.model_dump(),
        created_by="system", created_at=utcnow(),
    )
    if not await repository.insert_ruleset(session, seed):
        row = await repository.current_ruleset(session)
        assert row is not None
        return row
    return seed


async def get_ruleset(session: AsyncSession, *, version: int) -> RuleSetRow:
    row = await repository.get_ruleset(session, version)
    if row is None:
        raise NotFound(RULESET_NOT_FOUND)
    return row


async def replace_ruleset(
    session: AsyncSession, *, principal: Principal, data: RuleSetUpdate, expected_version: int | None
) -> RuleSetRow:
    """A new version from a whole rule set. If-Match, when sent, must name the current version."""
    if not principal.is_admin:
        raise Forbidden(Text("只有管理员可以修改匹配规则。", "Only an admin may change the matching rules."))
    current = await current_ruleset(session)
    if expected_version is not None:
        check_version(expected_version, current.version)
    row = RuleSetRow(
        version=current.version + 1, weights=data.weights.model_dump(), parameters=data.parameters.model_dump(),
        created_by=principal.subject, created_at=utcnow(),
    )
    if not await repository.insert_ruleset(session, row):
        raise Conflict(Text("规则刚被他人修改，请刷新后重试。", "Someone changed the rules just now; reload and try again."))
    return row


# --- candidates ---------------------------------------------------------------------------------

async def candidates_ruleset(cache: ReadModelCache, session: AsyncSession) -> RuleSet:
    """The current rule set: the cache's, loaded with the read models (no query per request), else read now.

    Read only: when none is stored yet, version 1, the default rules, which is what `current_ruleset` seeds.
    """
    if cache.ruleset is not None:
        return cache.ruleset
    row = await repository.current_ruleset(session)
    return engine_ruleset(row) if row is not None else DEFAULT_RULESET


async def candidates_of_need(
    cache: ReadModelCache, *, principal: Principal, need_id: uuid.UUID, ruleset: RuleSet, limit: int
) -> tuple[list[Candidate], Rejection | None]:
    """The best offers for a need its officer, its region's coordinator or an admin may look at.

    The caller refreshes the cache first, before its request session touches the database: on SQLite a
    refresh's own session would otherwise wait for the request's write lock (see router.list_candidates)."""
    need = cache.need(need_id)
    if need is None or (need.status == "draft" and not may_see_village(principal, need.village_code)):
        raise NotFound(NEED_NOT_FOUND)
    if not may_see_village(principal, need.village_code):
        raise Forbidden(
            Text("只有本村村干部、辖区协调员或管理员可以查看这条需求的候选资源。",
                 "Only the village's officer, a coordinator of its region or an admin may see this need's candidates."),
        )
    offers = await cache.offer_table()
    context = cache.context()
    found = candidates_for_need(need, offers, context, ruleset, limit=limit)
    return found, (explain_rejection(need, offers, context) if not found else None)


async def candidates_of_offer(
    cache: ReadModelCache, *, principal: Principal, offer_id: uuid.UUID, ruleset: RuleSet, limit: int
) -> list[Candidate]:
    """The best needs for an offer: its organisation's members and admins see all, a coordinator those of their region."""
    offer = cache.offer(offer_id)
    if offer is None:
        raise NotFound(OFFER_NOT_FOUND)
    if not may_see_offer(principal, offer, cache.organisations.get(offer.organisation_id)):
        raise Forbidden(
            Text("只有该组织的成员、相关地区的协调员或管理员可以查看这条供给的候选需求。",
                 "Only the organisation's members, a coordinator where it works or an admin may see this offer's candidates."),
        )
    needs = await cache.need_table()
    rows = None
    if principal.role is Role.COORDINATOR and principal.region_code:
        rows = rows_in_region(needs, principal.region_code)
    return candidates_for_offer(offer, needs, cache.context(), ruleset, limit=limit, need_rows=rows)


# --- match runs ---------------------------------------------------------------------------------

async def start_run(session: AsyncSession, *, principal: Principal, region_code: str, stale_after: float) -> MatchRun:
    """A queued run; the runner executes it after the commit. One queued or running run per region at a time."""
    _ensure_runs_region(principal, region_code)
    await fail_stale_runs(session, stale_after=stale_after)
    busy = await repository.active_runs_overlapping(session, region_code)
    if busy:
        raise _region_busy(region_code, busy[0])
    ruleset = await current_ruleset(session)
    now = utcnow()
    run = MatchRun(
        region_code=region_code, status=RunStatus.QUEUED, stage="queued", progress=0.0, ruleset_version=ruleset.version,
        proposals=0, counts={}, timings={}, equity={}, created_by=principal.subject, heartbeat_at=now,
    )
    if not await repository.insert_run(session, run):
        raise _region_busy(region_code, None)
    return run


def _region_busy(region_code: str, other: MatchRun | None) -> Conflict:
    return Conflict(
        Text("地区 {region} 已有一次匹配正在进行（{other}），请等它结束。",
             "A match run is already under way for {region} ({other}); wait for it to finish."),
        region=region_code, other=str(other.id) if other else "-",
    )


async def fail_stale_runs(session: AsyncSession, *, stale_after: float) -> None:
    """Runs whose process died (no heartbeat for a while) are failed, so their region can run again."""
    for run in await repository.stale_runs(session, heartbeat_before=utcnow() - timedelta(seconds=stale_after)):
        run.status, run.stage, run.finished_at = RunStatus.FAILED, "failed", utcnow()
        run.error = "interrupted: the process running it stopped"
    await session.flush()


async def get_run(session: AsyncSession, *, principal: Principal, run_id: uuid.UUID) -> MatchRun:
    run = await repository.get_run(session, run_id)
    if run is None or not principal.governs_region(run.region_code):
        raise NotFound(RUN_NOT_FOUND)
    return run


def _governed_prefix(principal: Principal) -> str | None:
    """'' for an admin (everywhere), the coordinator's prefix, or None for those who govern nothing."""
    if principal.is_admin:
        return ""
    if principal.role is Role.COORDINATOR and principal.region_code:
        return principal.region_code
    return None


async def list_runs(
    session: AsyncSession, *, principal: Principal, region: str | None, limit: int, cursor: str | None
) -> tuple[list[MatchRun], str | None]:
    within = _governed_prefix(principal)
    if within is None:
        raise Forbidden(Text("只有协调员和管理员可以查看匹配运行。", "Only coordinators and admins may see match runs."))
    rows = await repository.list_runs(session, within=within, region=region, limit=limit + 1, after=decode_keyset(cursor))
    return keyset_page(rows, limit)


async def list_unmatched(
    session: AsyncSession, *, principal: Principal, run_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Unmatched], str | None]:
    await get_run(session, principal=principal, run_id=run_id)
    rows = await repository.list_unmatched(session, run_id=run_id, limit=limit + 1, after=decode_keyset(cursor))
    return keyset_page(rows, limit)


# --- matches ------------------------------------------------------------------------------------

def _visible_matches(principal: Principal) -> ColumnElement[bool]:
    if principal.is_admin:
        return true()
    if principal.role is Role.COORDINATOR and principal.region_code:
        return Match.village_code.startswith(principal.region_code, autoescape=True)
    if principal.role is Role.OFFICER and principal.village_code:
        return Match.village_code == principal.village_code
    if principal.role is Role.ORG_MEMBER and principal.organisation_id:
        return Match.organisation_id == principal.organisation_id
    return false()


def may_see_match(principal: Principal, match: Match) -> bool:
    return may_see_village(principal, match.village_code) or principal.belongs_to(match.organisation_id)


async def get_match(session: AsyncSession, *, principal: Principal, match_id: uuid.UUID) -> Match:
    """Matches are not public: someone else's match is as unknown as a missing one."""
    match = await repository.get_match(session, match_id)
    if match is None or not may_see_match(principal, match):
        raise NotFound(MATCH_NOT_FOUND)
    return match


async def list_matches(
    session: AsyncSession, *, principal: Principal, filters: MatchFilters, limit: int, cursor: str | None
) -> tuple[list[Match], str | None]:
    rows = await repository.list_matches(
        session, visible=_visible_matches(principal), clauses=match_clauses(filters), limit=limit + 1, after=decode_keyset(cursor)
    )
    return keyset_page(rows, limit)


async def record_received(session: AsyncSession, *, village_code: str, value_cny: float) -> None:
    """Add to what a village has received so far (for the equity rule); called when a delivery is confirmed."""
    await repository.add_received(session, village_code, value_cny)



# --- exports ------------------------------------------------------------------------------------

MATCH_STATUS_LABELS: dict[str, Text] = {
    MatchStatus.PROPOSED: Text("待审核", "Proposed"), MatchStatus.APPROVING: Text("批准中", "Approving"),
    MatchStatus.APPROVED: Text("已批准", "Approved"), MatchStatus.FAILED: Text("批准失败", "Failed"),
    MatchStatus.REJECTED: Text("已驳回", "Rejected"), MatchStatus.CANCELLED: Text("已取消", "Cancelled"),
    MatchStatus.SUPERSEDED: Text("已被新一轮取代", "Superseded"), MatchStatus.DELIVERED: Text("已交付", "Delivered"),
    MatchStatus.RECEIVED: Text("已确认收货", "Received"), MatchStatus.CANCELLING: Text("取消中", "Cancelling"),
}
ORIGIN_LABELS: dict[str, Text] = {
    MatchOrigin.RUN: Text("匹配运行", "Match run"), MatchOrigin.COORDINATOR: Text("协调员提议", "Coordinator"),
    MatchOrigin.PLEDGE: Text("组织认捐", "Pledge"),
}
MATCH_EXPORT_HEADER = (
    Text("对接编号", "Match ID"), Text("状态", "Status"), Text("需求编号", "Need ID"), Text("需求", "Need"),
    Text("类别", "Category"), Text("资源类型", "Kind"), Text("村代码", "Village code"), Text("组织编号", "Organisation ID"),
    Text("组织", "Organisation"), Text("供给编号", "Offer ID"), Text("供给", "Offer"), Text("数量", "Quantity"),
    Text("单位", "Unit"), Text("已交付", "Delivered"), Text("确认收到", "Received"), Text("满意度", "Satisfaction"),
    Text("来源", "Origin"), Text("创建时间", "Created at"), Text("更新时间", "Updated at"),
)
DELIVERY_EXPORT_HEADER = (
    Text("交付编号", "Delivery ID"), Text("对接编号", "Match ID"), Text("交付日期", "Delivered on"), Text("本次数量", "Quantity"),
    Text("累计交付", "Delivered in total"), Text("单位", "Unit"), Text("村代码", "Village code"), Text("需求编号", "Need ID"),
    Text("需求", "Need"), Text("组织编号", "Organisation ID"), Text("组织", "Organisation"), Text("备注", "Note"),
    Text("登记人", "Recorded by"), Text("登记时间", "Recorded at"),
)


def export_header(header: Sequence[Text], locale: Locale) -> list[str]:
    return [text.in_locale(locale) for text in header]


def _labelled(labels: Mapping[Any, Text], code: str | None, locale: Locale) -> str:
    if code is None:
        return ""
    return labels[code].in_locale(locale) if code in labels else code


def match_clauses(filters: MatchFilters) -> list[ColumnElement[bool]]:
    """The list's filters, shared by its export."""
    clauses: list[ColumnElement[bool]] = []
    if filters.status is not None:
        clauses.append(Match.status == filters.status)
    if filters.region:
        clauses.append(Match.village_code.startswith(filters.region, autoescape=True))
    if filters.need_id is not None:
        clauses.append(Match.need_id == filters.need_id)
    if filters.offer_id is not None:
        clauses.append(Match.offer_id == filters.offer_id)
    if filters.run_id is not None:
        clauses.append(Match.run_id == filters.run_id)
    return clauses


async def export_matches(
    db: Database, *, principal: Principal, filters: MatchFilters, locale: Locale, batch: int = 1000
) -> AsyncIterator[list[Sequence[Any]]]:
    """The matches the list would show, newest first, in keyset batches each read in its own short transaction."""
    visible, clauses = _visible_matches(principal), match_clauses(filters)

    async def read(session: AsyncSession, after: Keyset | None) -> Sequence[Any]:
        return await repository.export_matches(session, visible=visible, clauses=clauses, limit=batch, after=after)

    async for rows in _keyset_batches(db, read):
        yield [_match_export_row(*row, locale=locale) for row in rows]


async def _keyset_batches(
    db: Database, read: Callable[[AsyncSession, Keyset | None], Awaitable[Sequence[Any]]]
) -> AsyncIterator[Sequence[Any]]:
    """Rows whose first item is a record with created_at and id, each batch read in its own short transaction,
    so a large export never sits in memory nor holds a transaction open while the client reads."""
    after: Keyset | None = None
    while True:
        async with db.read_session() as session:
            rows = await read(session, after)
        if not rows:
            return
        yield rows
        last = rows[-1][0]
        after = last.created_at, last.id


def _match_export_row(
    match: Match, need_title: str | None, category: str | None, kind: str | None, offer_title: str | None,
    organisation: str | None, *, locale: Locale,
) -> list[Any]:
    return [
        str(match.id), _labelled(MATCH_STATUS_LABELS, match.status, locale), str(match.need_id), need_title or "",
        _labelled(CATEGORY_LABELS, category, locale), _labelled(KIND_LABELS, kind, locale), match.village_code,
        str(match.organisation_id), organisation or "", str(match.offer_id), offer_title or "", match.quantity,
        _labelled(UNIT_LABELS, match.unit, locale), match.delivered, match.received, match.satisfaction,
        _labelled(ORIGIN_LABELS, match.origin, locale), match.created_at.isoformat(timespec="seconds"),
        match.updated_at.isoformat(timespec="seconds"),
    ]


def check_delivery_filters(filters: DeliveryFilters) -> None:
    """Before the stream begins: once it has, an error can no longer become a problem response."""
    if filters.date_from is not None and filters.date_to is not None and filters.date_from > filters.date_to:
        message = Text("开始日期不能晚于结束日期", "The start date cannot be after the end date")
        raise ValidationFailed(CORRECT_FIELDS, errors=[FieldError("from", message)])


def delivery_clauses(filters: DeliveryFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.region:
        clauses.append(Match.village_code.startswith(filters.region, autoescape=True))
    if filters.organisation_id is not None:
        clauses.append(Match.organisation_id == filters.organisation_id)
    if filters.match_id is not None:
        clauses.append(Delivery.match_id == filters.match_id)
    if filters.need_id is not None:
        clauses.append(Match.need_id == filters.need_id)
    if filters.date_from is not None:
        clauses.append(Delivery.delivered_on >= filters.date_from)
    if filters.date_to is not None:
        clauses.append(Delivery.delivered_on <= filters.date_to)
    return clauses


async def export_deliveries(
    db: Database, *, principal: Principal, filters: DeliveryFilters, locale: Locale, batch: int = 1000
) -> AsyncIterator[list[Sequence[Any]]]:
    """Deliveries of the matches the caller may see, newest recorded first, in keyset batches."""
    visible, clauses = _visible_matches(principal), delivery_clauses(filters)

    async def read(session: AsyncSession, after: Keyset | None) -> Sequence[Any]:
        return await repository.export_deliveries(session, visible=visible, clauses=clauses, limit=batch, after=after)

    async for rows in _keyset_batches(db, read):
        yield [_delivery_export_row(*row, locale=locale) for row in rows]


def _delivery_export_row(
    delivery: Delivery, match: Match, need_title: str | None, organisation: str | None, *, locale: Locale
) -> list[Any]:
    return [
        str(delivery.id), str(match.id), delivery.delivered_on.isoformat(), delivery.quantity, delivery.delivered_total,
        _labelled(UNIT_LABELS, match.unit, locale), match.village_code, str(match.need_id), need_title or "",
        str(match.organisation_id), organisation or "", delivery.note, delivery.recorded_by,
        delivery.created_at.isoformat(timespec="seconds"),
    ]
