"""The rules of needs: who may do what, the lifecycle, and commitments. Flushes, never commits."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError
from rapidfuzz.distance import Indel
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import spreadsheets as sheets
from services.common.db import Database, new_id, utcnow
from services.common.errors import Conflict, Forbidden, NotFound, field_errors_from_pydantic, invalid_field
from services.common.feeds import HistoryEntry, entity_history, record_change
from services.common.http import Keyset, check_version, decode_keyset, keyset_cursor, keyset_page
from services.common.identity import Principal, Role
from services.common.messages import Locale, Text
from services.common.vocabulary import (
    CATEGORY_LABELS,
    GROUP_LABELS,
    KIND_LABELS,
    UNIT_LABELS,
    Kind,
    check_quantity,
    check_unit,
)
from services.needs import repository
from services.needs.models import (
    Change,
    Commitment,
    CommitmentStatus,
    DuplicateStatus,
    Need,
    NeedRow,
    NeedStatus,
    need_feed_data,
)
from services.needs.schemas import (
    CHANNEL_LABELS,
    NEED_COLUMNS,
    NEED_EXPORT_COLUMNS,
    POSTED_STATUS_LABELS,
    STATUS_LABELS,
    CommitmentCreate,
    DuplicateDecision,
    DuplicateRead,
    ImportReport,
    NeedCreate,
    NeedFilters,
    NeedUpdate,
    PossibleDuplicate,
    RowDuplicate,
    RowErrorRead,
)

NEED_NOT_FOUND = Text("找不到这条需求。", "No such need.")
EDITABLE = (NeedStatus.DRAFT, NeedStatus.OPEN)


# --- who may do what ----------------------------------------------------------------------

def can_manage(principal: Principal, village_code: str) -> bool:
    """The village's own officer, a coordinator whose region covers it, or an admin."""
    return principal.speaks_for_village(village_code) or principal.governs_region(village_code)


def _ensure_can_manage(principal: Principal, village_code: str) -> None:
    if not can_manage(principal, village_code):
        raise Forbidden(
            Text("只有本村村干部或辖区协调员可以管理村 {village} 的需求。",
                 "Only the village's officer or a coordinator of its region may manage needs of {village}."),
            village=village_code,
        )


def _draft_prefix(principal: Principal) -> str | None:
    if principal.role is Role.ADMIN:
        return ""
    if principal.role is Role.COORDINATOR:
        return principal.region_code
    if principal.role is Role.OFFICER:
        return principal.village_code
    return None


# --- needs --------------------------------------------------------------------------------

def _publish(session: AsyncSession, need: Need, op: str, *, reason: str | None = None) -> None:
    record_change(session, Change, entity="need", entity_id=need.id, op=op, data=need.feed_data(), reason=reason)


def _for_match(match_id: uuid.UUID) -> str:
    return f"match {match_id}"


_NOT_DUMPED = frozenset({"requester", "status"})


def _new_need_values(data: NeedCreate, principal: Principal) -> dict[str, Any]:
    """Every column of a new need: for the ORM (one need) or a multi-row INSERT (an import)."""
    now = utcnow()
    return {
        # The validated fields as model_dump() gives them (enums, Decimals, dates as such), without its cost.
        **{name: value for name, value in data.__dict__.items() if name not in _NOT_DUMPED},
        "id": new_id(),
        "requester_name": data.requester.name if data.requester else None,
        "requester_phone": data.requester.phone if data.requester else None,
        "status": data.status,
        "committed": Decimal(0),
        "delivered": Decimal(0),
        "version": 1,
        "created_by": principal.subject,
        "created_at": now,
        "updated_at": now,
    }


async def create_need(session: AsyncSession, *, principal: Principal, data: NeedCreate) -> Need:
    _ensure_can_manage(principal, data.village_code)
    values = _new_need_values(data, principal)
    finder = DuplicateFinder(await repository.live_needs_of_villages(session, [data.village_code]))
    resembled = finder.resembling(values)
    need = Need(**values)
    repository.add_need(session, need)
    await session.flush()
    await repository.add_suspicions(session, [_suspicion(values, other, similarity) for other, similarity in resembled])
    _publish(session, need, "created")
    return need


async def need_history(session: AsyncSession, *, principal: Principal, need_id: uuid.UUID) -> list[HistoryEntry]:
    """Every change of the need — who, when, what and why — for its officer, its region's coordinators and admins."""
    need = await _editable_need(session, principal, need_id)
    return await entity_history(session, Change, entity="need", entity_id=need.id)


async def get_need(session: AsyncSession, *, principal: Principal, need_id: uuid.UUID) -> Need:
    need = await repository.get_need(session, need_id)
    if need is None or (need.status == NeedStatus.DRAFT and not can_manage(principal, need.village_code)):
        raise NotFound(NEED_NOT_FOUND)
    return need


async def read_needs(
    db: Database, *, principal: Principal, filters: NeedFilters, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """list_needs for the API: NeedRead's values (see repository.read_needs), as the reader may see them."""
    rows = await repository.read_needs(
        db, filters, draft_prefix=_draft_prefix(principal), limit=limit + 1, after=decode_keyset(cursor)
    )
    page = rows[:limit]
    next_cursor = keyset_cursor(page[-1]["created_at"], page[-1]["id"]) if len(rows) > limit else None
    return [_shown(values, principal) for values in page], next_cursor


async def read_need(db: Database, *, principal: Principal, need_id: uuid.UUID) -> dict[str, Any]:
    """get_need for the API: NeedRead's values, with the possible duplicates for those who manage it."""
    values = await repository.read_need(db, need_id)
    if values is None or (values["status"] == NeedStatus.DRAFT and not can_manage(principal, values["village_code"])):
        raise NotFound(NEED_NOT_FOUND)
    _shown(values, principal)
    if can_manage(principal, values["village_code"]):
        async with db.read_session() as session:
            values["possible_duplicates"] = [
                PossibleDuplicate(need_id=s.other_need_id, title=s.title, similarity=s.similarity)
                for s in await repository.suspected_duplicates_of(session, values["id"])
            ]
    return values


def _shown(values: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """The requester's phone only to those who manage the need; no possible duplicates unless asked for."""
    name, phone = values.pop("requester_name"), values.pop("requester_phone")
    if name:
        values["requester"] = {"name": name, "phone": phone if can_manage(principal, values["village_code"]) else None}
    values["possible_duplicates"] = []
    return values


async def _editable_need(session: AsyncSession, principal: Principal, need_id: uuid.UUID) -> Need:
    need = await get_need(session, principal=principal, need_id=need_id)
    _ensure_can_manage(principal, need.village_code)
    return need


def _ensure_status(need: Need, allowed: tuple[NeedStatus, ...], action: Text) -> None:
    if need.status not in allowed:
        raise Conflict(
            Text("需求当前为“{status}”，不能{action}。", "The need is {status}; it cannot be {action_en}."),
            status=need.status, action=action.zh, action_en=action.en,
        )


async def update_need(
    session: AsyncSession, *, principal: Principal, need_id: uuid.UUID, expected_version: int, data: NeedUpdate
) -> Need:
    need = await _editable_need(session, principal, need_id)
    check_version(expected_version, need.version)
    _ensure_status(need, EDITABLE, Text("修改", "changed"))
    changes = data.model_dump(exclude_unset=True, exclude={"requester", "status"})
    if data.status == NeedStatus.OPEN:
        changes["status"] = NeedStatus.OPEN
    if "requester" in data.model_fields_set:
        changes["requester_name"] = data.requester.name if data.requester else None
        changes["requester_phone"] = data.requester.phone if data.requester else None
    _check_update_keeps_commitments(need, changes)
    for field, value in changes.items():
        setattr(need, field, value)
    need.version += 1
    await session.flush()
    _publish(session, need, "updated")
    return need


def _check_update_keeps_commitments(need: Need, changes: dict[str, object]) -> None:
    kind, unit = Kind(str(changes.get("kind", need.kind))), str(changes.get("unit", need.unit))
    quantity = changes.get("quantity", need.quantity)
    assert isinstance(quantity, Decimal)
    try:
        check_unit(kind, unit)
    except PydanticCustomError as exc:
        raise invalid_field("unit", exc) from exc
    try:
        check_quantity(unit, quantity)
    except PydanticCustomError as exc:
        raise invalid_field("quantity", exc) from exc
    if need.committed > 0 and (kind != need.kind or unit != need.unit):
        raise Conflict(Text("已有承诺的需求不能修改类型或单位。", "A need with commitments cannot change kind or unit."))
    if quantity < need.committed:
        raise Conflict(
            Text("数量不能少于已承诺的 {committed}。", "The quantity cannot drop below the {committed} already committed."),
            committed=need.committed,
        )


async def close_need(
    session: AsyncSession, *, principal: Principal, need_id: uuid.UUID, reason: str | None = None
) -> Need:
    """Stop taking offers; what is already committed still arrives."""
    need = await _editable_need(session, principal, need_id)
    _ensure_status(need, EDITABLE, Text("关闭", "closed"))
    need.status, need.version = NeedStatus.CLOSED, need.version + 1
    await session.flush()
    _publish(session, need, "closed", reason=reason)
    return need


async def cancel_need(
    session: AsyncSession, *, principal: Principal, need_id: uuid.UUID, reason: str | None = None
) -> Need:
    need = await _editable_need(session, principal, need_id)
    _ensure_status(need, EDITABLE, Text("撤销", "cancelled"))
    if await repository.count_active_commitments(session, need.id):
        raise Conflict(
            Text("这条需求已有批准的对接，请先取消这些对接再撤销。",
                 "This need has approved matches; cancel them before cancelling the need.")
        )
    need.status, need.version = NeedStatus.CANCELLED, need.version + 1
    await session.flush()
    _publish(session, need, "cancelled", reason=reason)
    return need


# --- commitments (internal, keyed by match id) ----------------------------------------------

def _same_commitment(existing: Commitment, need_id: uuid.UUID, quantity: Decimal) -> Commitment:
    if existing.status == CommitmentStatus.RELEASED:
        raise Conflict(Text("该对接的承诺已释放，不能再次承诺。", "This match's commitment was released; it cannot commit again."))
    if existing.need_id != need_id or existing.quantity != quantity:
        raise Conflict(
            Text("该对接已以不同的需求或数量承诺过。", "This match already holds a commitment of another need or quantity.")
        )
    return existing


async def _refusal_reason(session: AsyncSession, need_id: uuid.UUID, quantity: Decimal) -> Conflict:
    need = await repository.get_need(session, need_id, refresh=True)
    if need is None:
        raise NotFound(NEED_NOT_FOUND)
    if need.status != NeedStatus.OPEN:
        return Conflict(Text("需求当前为“{status}”，不能再承诺。", "The need is {status}; it takes no commitments."),
                        status=need.status)
    return Conflict(
        Text("需求只剩 {remaining} {unit}，不足 {quantity}。", "The need has only {remaining} {unit} left, not {quantity}."),
        remaining=need.remaining, unit=need.unit, quantity=quantity,
    )


async def commit(session: AsyncSession, *, need_id: uuid.UUID, data: CommitmentCreate) -> Commitment:
    existing = await repository.get_commitment(session, data.match_id)
    if existing is not None:
        return _same_commitment(existing, need_id, data.quantity)
    commitment = Commitment(need_id=need_id, match_id=data.match_id, quantity=data.quantity, delivered=Decimal(0),
                            status=CommitmentStatus.ACTIVE)
    if await repository.get_need(session, need_id) is None:
        raise NotFound(NEED_NOT_FOUND)
    if not await repository.insert_commitment(session, commitment):
        existing = await repository.get_commitment(session, data.match_id)
        assert existing is not None
        return _same_commitment(existing, need_id, data.quantity)
    if not await repository.add_to_committed(session, need_id, data.quantity):
        raise await _refusal_reason(session, need_id, data.quantity)
    await _publish_after_write(session, need_id, "committed", reason=_for_match(data.match_id))
    return commitment


async def release(session: AsyncSession, *, need_id: uuid.UUID, match_id: uuid.UUID) -> Commitment:
    """Give back what was not delivered. Releasing twice, or before any commit, is harmless."""
    commitment = await repository.get_commitment(session, match_id, lock=True)
    if commitment is None:
        commitment = await _insert_tombstone(session, need_id=need_id, match_id=match_id)
    if commitment.need_id != need_id:
        raise NotFound(Text("该需求下没有这个对接的承诺。", "This need holds no commitment for that match."))
    if commitment.status == CommitmentStatus.ACTIVE:
        await repository.subtract_from_committed(session, need_id, commitment.quantity - commitment.delivered)
        commitment.status = CommitmentStatus.RELEASED
        await session.flush()
        await _publish_after_write(session, need_id, "released", reason=_for_match(match_id))
    return commitment


async def _insert_tombstone(session: AsyncSession, *, need_id: uuid.UUID, match_id: uuid.UUID) -> Commitment:
    """A released, empty commitment, so that a late retry of the commit cannot take the quantity after all."""
    if await repository.get_need(session, need_id) is None:
        raise NotFound(NEED_NOT_FOUND)
    tombstone = Commitment(need_id=need_id, match_id=match_id, quantity=Decimal(0), delivered=Decimal(0),
                           status=CommitmentStatus.RELEASED)
    if await repository.insert_commitment(session, tombstone):
        return tombstone
    # A concurrent commit or release of the same match got there first: act on what it wrote.
    existing = await repository.get_commitment(session, match_id, lock=True)
    assert existing is not None
    return existing


async def record_delivered(
    session: AsyncSession, *, need_id: uuid.UUID, match_id: uuid.UUID, delivered_total: Decimal
) -> Commitment:
    commitment = await repository.get_commitment(session, match_id, lock=True)
    if commitment is None or commitment.need_id != need_id:
        raise NotFound(Text("该需求下没有这个对接的承诺。", "This need holds no commitment for that match."))
    if commitment.status != CommitmentStatus.ACTIVE:
        raise Conflict(Text("该承诺已释放，不能再登记交付。", "This commitment was released; no more deliveries."))
    if delivered_total > commitment.quantity:
        raise Conflict(
            Text("交付总量 {total} 超过承诺的 {quantity}。", "A delivered total of {total} exceeds the {quantity} committed."),
            total=delivered_total, quantity=commitment.quantity,
        )
    delta = delivered_total - commitment.delivered
    if delta <= 0:
        return commitment  # a repeat, or an older retry arriving late
    if not await repository.add_to_delivered(session, need_id, delta):
        raise Conflict(Text("交付量超过承诺量。", "Delivered would exceed committed."))
    commitment.delivered = delivered_total
    await session.flush()
    need = await repository.get_need(session, need_id, refresh=True)
    assert need is not None
    if need.delivered >= need.quantity and need.status in (NeedStatus.OPEN, NeedStatus.CLOSED):
        need.status = NeedStatus.FULFILLED
        await session.flush()
    _publish(session, need, "delivered", reason=_for_match(commitment.match_id))
    return commitment


async def _publish_after_write(session: AsyncSession, need_id: uuid.UUID, op: str, *, reason: str) -> None:
    need = await repository.get_need(session, need_id, refresh=True)
    assert need is not None
    _publish(session, need, op, reason=reason)


async def need_remaining(session: AsyncSession, need_id: uuid.UUID) -> Decimal:
    need = await repository.get_need(session, need_id, refresh=True)
    if need is None:
        raise NotFound(NEED_NOT_FOUND)
    return need.remaining


# --- likely duplicates: same village, category and kind, and a similar title --------------------

DUPLICATE_SIMILARITY = 0.6
# A village seldom has more than a few dozen live needs of one category and kind. Comparing a title with
# the latest MAX_COMPARED of its group (and with an identical title anywhere in it) keeps a file of 30,000
# near-identical rows linear instead of quadratic; only the MAX_REPORTED closest are kept per need.
MAX_COMPARED = 500
MAX_REPORTED = 5
_NOT_COMPARED = re.compile(r"[\W_]+")


def title_similarity(first: str, second: str) -> float:
    """0..1 over the titles' characters, ignoring spaces and punctuation ('村道防护栏' ~ '村道 防护栏（二期）'):
    twice the longest common subsequence over both lengths (rapidfuzz's Indel similarity, in C++)."""
    return float(Indel.normalized_similarity(_comparable(first), _comparable(second)))


def _comparable(title: str) -> str:
    return _NOT_COMPARED.sub("", title.lower())


@dataclass(frozen=True, slots=True)
class KnownNeed:
    id: uuid.UUID
    title: str
    row: int | None = None  # its row in the file being imported, if it comes from there
    comparable: str = ""


class DuplicateFinder:
    """Live needs grouped by village, category and kind; needs being added join as they are checked."""

    def __init__(self, live: list[repository.TitledNeed]) -> None:
        self._groups: dict[tuple[str, str, str], list[KnownNeed]] = defaultdict(list)
        self._identical: dict[tuple[str, str, str, str], KnownNeed] = {}
        for need in live:
            self._remember((need.village_code, need.category, need.kind),
                           KnownNeed(need.id, need.title, comparable=_comparable(need.title)))

    def resembling(self, need: Mapping[str, Any]) -> list[tuple[KnownNeed, float]]:
        key = (need["village_code"], need["category"], need["kind"])
        group = self._groups.get(key, [])
        title = _comparable(need["title"])
        hits: dict[uuid.UUID, tuple[KnownNeed, float]] = {}
        identical = self._identical.get((*key, title))
        if identical is not None:
            hits[identical.id] = (identical, 1.0)
        for other in group[-MAX_COMPARED:]:
            # Below the cutoff rapidfuzz stops early and answers 0.
            similarity = Indel.normalized_similarity(title, other.comparable, score_cutoff=DUPLICATE_SIMILARITY)
            if similarity >= DUPLICATE_SIMILARITY:
                hits[other.id] = (other, similarity)
        return sorted(hits.values(), key=lambda hit: -hit[1])[:MAX_REPORTED]

    def add(self, need: Mapping[str, Any], *, row: int | None = None) -> None:
        self._remember((need["village_code"], need["category"], need["kind"]),
                       KnownNeed(need["id"], need["title"], row, _comparable(need["title"])))

    def _remember(self, key: tuple[str, str, str], need: KnownNeed) -> None:
        self._groups[key].append(need)
        self._identical.setdefault((*key, need.comparable), need)


def _suspicion(need: Mapping[str, Any], other: KnownNeed, similarity: float) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": new_id(), "need_id": need["id"], "other_need_id": other.id, "village_code": need["village_code"],
        "similarity": round(similarity, 3), "status": DuplicateStatus.SUSPECTED, "resolved_by": None,
        "created_at": now, "updated_at": now,
    }


async def possible_duplicates(session: AsyncSession, *, principal: Principal, need: Need) -> list[PossibleDuplicate]:
    """Shown to those who manage the need, until they decide."""
    if not can_manage(principal, need.village_code):
        return []
    return [PossibleDuplicate(need_id=s.other_need_id, title=s.title, similarity=s.similarity)
            for s in await repository.suspected_duplicates_of(session, need.id)]


async def decide_duplicate(
    session: AsyncSession, *, principal: Principal, need_id: uuid.UUID, decision: DuplicateDecision
) -> Need:
    """The officer keeps both needs (`distinct`) or withdraws this one (`withdraw` cancels it)."""
    need = await _editable_need(session, principal, need_id)
    if decision.decision == "withdraw":
        need = await cancel_need(session, principal=principal, need_id=need_id,
                                 reason=Text("重复的需求", "a duplicate need").render())
    status = DuplicateStatus.WITHDRAWN if decision.decision == "withdraw" else DuplicateStatus.DISTINCT
    await repository.resolve_suspicions(session, need.id, status, principal.subject)
    return need


async def list_duplicates(
    session: AsyncSession, *, principal: Principal, region: str | None, status: DuplicateStatus, limit: int,
    cursor: str | None,
) -> tuple[list[DuplicateRead], str | None]:
    """Coordinators see their region's likely duplicates, officers their village's, admins all."""
    scope = _draft_prefix(principal)
    if scope is None:
        raise Forbidden(Text("只有村干部、协调员和管理员可以查看疑似重复的需求。",
                             "Only officers, coordinators and admins see likely duplicates."))
    if region and not region.startswith(scope) and not scope.startswith(region):
        raise Forbidden(Text("区域 {region} 不在您的辖区内。", "Region {region} is outside your jurisdiction."), region=region)
    narrowest = max(scope, region or "", key=len)
    rows = await repository.list_suspicions(session, region=narrowest, status=status, limit=limit + 1,
                                            after=decode_keyset(cursor))
    page, next_cursor = keyset_page(rows, limit)
    titles = await repository.titles_of(session, {s.need_id for s in page} | {s.other_need_id for s in page})
    return [
        DuplicateRead(id=s.id, need_id=s.need_id, need_title=titles.get(s.need_id, ""), other_need_id=s.other_need_id,
                      other_title=titles.get(s.other_need_id, ""), village_code=s.village_code, similarity=s.similarity,
                      status=DuplicateStatus(s.status), created_at=s.created_at)
        for s in page
    ], next_cursor


# --- spreadsheets in and out ------------------------------------------------------------------

IMPORTERS = (Role.OFFICER, Role.COORDINATOR, Role.ADMIN)
_EXPORT_ONLY = [name for column in NEED_EXPORT_COLUMNS for name in column.names()]


async def import_needs(session: AsyncSession, *, principal: Principal, data: bytes, dry_run: bool) -> ImportReport:
    """All or nothing: every row is checked as POST /api/needs would check it before any is written."""
    if principal.role not in IMPORTERS:
        raise Forbidden(Text("只有村干部、协调员和管理员可以导入需求。", "Only officers, coordinators and admins import needs."))
    with sheets.cyclic_gc_paused():
        sheet = sheets.parse_sheet(data, NEED_COLUMNS, export_only=_EXPORT_ONLY)
        valid = [(number, need) for number, values in sheet.rows
                 if (need := _need_from_row(number, values, principal, sheet.errors))]
    if sheet.errors and not dry_run:
        raise sheets.RowsInvalid(sheet.errors)
    live = await repository.live_needs_of_villages(session, {need["village_code"] for _, need in valid})
    with sheets.cyclic_gc_paused():
        warnings, suspicions = _duplicates_in_import(live, valid)
    needs = [need for _, need in valid]
    if not dry_run:
        await repository.add_needs(session, needs)
        await repository.add_suspicions(session, suspicions)
        with sheets.cyclic_gc_paused():
            for need in needs:
                record_change(session, Change, entity="need", entity_id=need["id"], op="created", data=need_feed_data(need))
    return ImportReport(
        dry_run=dry_run, rows=len(sheet.rows), created=0 if dry_run else len(needs),
        errors=[RowErrorRead(**error.as_dict()) for error in sheet.errors[: sheets.RowsInvalid.MAX_REPORTED]],
        ignored_columns=sheet.ignored_columns, ids=[] if dry_run else [need["id"] for need in needs],
        possible_duplicates=warnings[: sheets.RowsInvalid.MAX_REPORTED], duplicate_count=len(warnings),
    )


def _duplicates_in_import(
    live: list[repository.TitledNeed], rows: list[tuple[int, dict[str, Any]]]
) -> tuple[list[RowDuplicate], list[dict[str, Any]]]:
    """Each row against the live needs of its village and the rows above it."""
    finder = DuplicateFinder(live)
    warnings: list[RowDuplicate] = []
    suspicions: list[dict[str, Any]] = []
    for number, need in rows:
        for other, similarity in finder.resembling(need):
            warnings.append(RowDuplicate(row=number, need_id=None if other.row else other.id, duplicate_of_row=other.row,
                                         title=other.title, similarity=round(similarity, 2)))
            suspicions.append(_suspicion(need, other, similarity))
        finder.add(need, row=number)
    return warnings, suspicions


def _need_from_row(
    number: int, values: dict[str, Any], principal: Principal, errors: list[sheets.RowError]
) -> dict[str, Any] | None:
    name, phone = values.pop("requester_name", None), values.pop("requester_phone", None)
    if name or phone:
        values["requester"] = {"name": name or "", "phone": phone}
    try:
        data = NeedCreate.model_validate(values)
    except ValidationError as exc:
        for error in field_errors_from_pydantic(exc.errors()):
            field = {"requester.name": "requester_name", "requester.phone": "requester_phone"}.get(error.field, error.field)
            errors.append(sheets.RowError(number, sheets.column_of(field, NEED_COLUMNS), error.message))
        return None
    if not can_manage(principal, data.village_code):
        message = Text("无权为村 {village} 导入需求", "You may not import needs of village {village}")
        errors.append(sheets.RowError(number, sheets.column_of("village_code", NEED_COLUMNS),
                                      message.render(village=data.village_code)))
        return None
    return _new_need_values(data, principal)


def export_header(locale: Locale) -> list[str]:
    return [column.header(locale) for column in (*NEED_COLUMNS, *NEED_EXPORT_COLUMNS)]


async def export_batches(
    db: Database, *, principal: Principal, filters: NeedFilters, locale: Locale, batch: int = 1000
) -> AsyncIterator[list[Sequence[Any]]]:
    """Pages of rows, each read in its own short transaction, so a large export never sits in memory."""
    after: Keyset | None = None
    while True:
        async with db.read_session() as session:
            rows = await repository.list_needs(
                session, filters, draft_prefix=_draft_prefix(principal), limit=batch, after=after
            )
        if not rows:
            return
        yield [_export_row(need, principal, locale) for need in rows]
        after = rows[-1].created_at, rows[-1].id


def _export_row(need: NeedRow, principal: Principal, locale: Locale) -> list[Any]:
    private = can_manage(principal, need.village_code)

    def label(labels: Mapping[Any, Text], code: str) -> str:
        return labels[code].in_locale(locale)

    return [
        need.title, need.description, label(CATEGORY_LABELS, need.category), label(KIND_LABELS, need.kind),
        need.quantity, label(UNIT_LABELS, need.unit), need.beneficiaries,
        "、".join(label(GROUP_LABELS, group) for group in need.beneficiary_groups), need.urgency,
        need.needed_by.isoformat(), need.village_code, need.lat, need.lon, "、".join(need.skills),
        label(CHANNEL_LABELS, need.channel), need.requester_name, need.requester_phone if private else None,
        label(POSTED_STATUS_LABELS, NeedStatus.DRAFT if need.status == NeedStatus.DRAFT else NeedStatus.OPEN),
        str(need.id), label(STATUS_LABELS, need.status), need.committed, need.delivered, need.quantity - need.committed,
        need.created_at.isoformat(timespec="seconds"),
    ]
