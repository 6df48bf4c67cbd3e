"""Every query on the needs database."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Dialect,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bulk import add_rows
from services.common.db import Database, DriverStatement, Quantity, compile_for_driver, utcnow
from services.common.vocabulary import amount_text
from services.needs.models import (
    Commitment,
    CommitmentStatus,
    DuplicateStatus,
    DuplicateSuspicion,
    Need,
    NeedRow,
    NeedStatus,
)
from services.needs.schemas import NeedFilters


def _amount(value: Decimal) -> ColumnElement[Decimal]:
    return literal(value, Quantity())


async def get_need(session: AsyncSession, need_id: uuid.UUID, *, refresh: bool = False) -> Need | None:
    return await session.get(Need, need_id, populate_existing=refresh)


def add_need(session: AsyncSession, need: Need) -> None:
    session.add(need)


async def add_needs(session: AsyncSession, needs: list[dict[str, Any]]) -> None:
    """Many new needs (every column given) in one bulk insert, past the ORM and per-row binding: an import of 100k rows."""
    await add_rows(session, Need.metadata.tables[Need.__tablename__], needs)


# Built once: constructing SQL expressions costs per request, and these never change.
_NOT_DRAFT: ColumnElement[bool] = Need.status != NeedStatus.DRAFT
_NEWEST_FIRST = (Need.created_at.desc(), Need.id.desc())


def _draft_visibility(draft_prefix: str | None) -> ColumnElement[bool]:
    """Drafts show only inside `draft_prefix` ('' = everywhere, None = nowhere)."""
    if draft_prefix is None:
        return _NOT_DRAFT
    if draft_prefix == "":
        return true()
    return or_(_NOT_DRAFT, Need.village_code.startswith(draft_prefix, autoescape=True))


def _filter_clauses(filters: NeedFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.status is not None:
        clauses.append(Need.status == filters.status)
    if filters.category is not None:
        clauses.append(Need.category == filters.category)
    if filters.kind is not None:
        clauses.append(Need.kind == filters.kind)
    if filters.region:
        clauses.append(Need.village_code.startswith(filters.region, autoescape=True))
    if filters.village_code:
        clauses.append(Need.village_code == filters.village_code)
    if filters.q:
        clauses.append(
            or_(Need.title.icontains(filters.q, autoescape=True), Need.description.icontains(filters.q, autoescape=True))
        )
    if filters.urgency_min is not None:
        clauses.append(Need.urgency >= filters.urgency_min)
    if filters.needed_before is not None:
        clauses.append(Need.needed_by <= filters.needed_before)
    return clauses


# Lists read plain rows on the session's connection, past the ORM: its identity map, instance states
# and result machinery cost more for a page of 50 than the query itself, and a list changes nothing.
_SELECT_NEEDS = select(*Need.__table__.columns)  # in the order of NEED_ROW_KEYS
_AFTER = tuple_(
    bindparam("after_created_at", type_=Need.created_at.type), bindparam("after_id", type_=Need.id.type)
)


@lru_cache(maxsize=256)
def _list_statement(
    draft_prefix: str | None, filters: tuple[tuple[str, Any], ...], limit: int, paged: bool
) -> Select[Any]:
    """The list's statement for one set of filters, built once and then reused with only the cursor bound.

    Building the expression and deriving its compile-cache key cost more than PostgreSQL's answer;
    most requests ask for the same few lists. Bounded, since filters such as `q` are free text.
    """
    query = _SELECT_NEEDS.where(
        _draft_visibility(draft_prefix), *_filter_clauses(NeedFilters.model_construct(**dict(filters)))
    )
    if paged:
        # A row comparison, not (a < x OR (a = x AND b < y)): the index seeks straight to the cursor.
        query = query.where(tuple_(Need.created_at, Need.id) < _AFTER)
    return query.order_by(*_NEWEST_FIRST).limit(limit)


async def list_needs(
    session: AsyncSession,
    filters: NeedFilters,
    *,
    draft_prefix: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[NeedRow]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = _list_statement(draft_prefix, tuple(filters), limit, after is not None)
    parameters = {"after_created_at": after[0], "after_id": after[1]} if after is not None else {}
    connection = await session.connection()
    return list((await connection.execute(query, parameters)).all())


# --- the API's reads of needs: PostgreSQL past SQLAlchemy's execution, anything else through a read session ---
#
# A page of needs is read straight into NeedRead's JSON values (see schemas.NeedReadJson): on PostgreSQL
# by asyncpg on a pooled connection (no Session, Connection or result processing), amounts as their text
# and JSON lists as text[], which asyncpg decodes natively, where a Decimal per amount and a json.loads
# per list were the largest costs of a page; elsewhere the same columns through a read session.

_AMOUNTS = ("quantity", "committed", "delivered", "remaining")


def _text_array(column: str) -> ColumnElement[Any]:
    """A JSON list of strings as text[], in its order."""
    return literal_column(
        f"ARRAY(SELECT e.value FROM json_array_elements_text({Need.__tablename__}.{column}) WITH ORDINALITY"
        " AS e(value, n) ORDER BY e.n)"
    ).label(column)


def _read_columns(postgresql: bool) -> tuple[Any, ...]:
    """A need as NeedRead shows it, in its order: `remaining` computed, `requester` a placeholder that
    requester_name and requester_phone (last) fill in, for the service to decide who sees the phone."""
    def amount(column: Any, name: str) -> ColumnElement[Any]:
        # NUMERIC(18,2) as text is already the amount's one spelling, "45.00" (vocabulary.amount_text).
        return (cast(column, Text) if postgresql else column).label(name)

    return (
        Need.id, Need.title, Need.description, Need.category, Need.kind, amount(Need.quantity, "quantity"), Need.unit,
        amount(Need.committed, "committed"), amount(Need.delivered, "delivered"),
        amount(type_coerce(Need.quantity - Need.committed, Quantity()), "remaining"), Need.beneficiaries,
        _text_array("beneficiary_groups") if postgresql else Need.beneficiary_groups,
        _text_array("skills") if postgresql else Need.skills,
        Need.urgency, Need.needed_by, Need.village_code, Need.lat, Need.lon, Need.channel, null().label("requester"),
        Need.status, Need.version, Need.created_by, Need.created_at, Need.updated_at,
        Need.requester_name, Need.requester_phone,
    )


@dataclass(frozen=True, slots=True)
class _Read:
    statement: Select[Any] | DriverStatement
    keys: tuple[str, ...]


def _prepared(query: Select[Any], dialect: Dialect) -> _Read:
    keys = tuple(query.selected_columns.keys())
    return _Read(compile_for_driver(query, dialect) if dialect.driver == "asyncpg" else query, keys)


@lru_cache(maxsize=256)
def _read_statement(
    dialect: Dialect, draft_prefix: str | None, filters: tuple[tuple[str, Any], ...], limit: int, paged: bool
) -> _Read:
    """The list's statement for one set of filters (as _list_statement), compiled for the driver on PostgreSQL."""
    query = select(*_read_columns(dialect.driver == "asyncpg")).where(
        _draft_visibility(draft_prefix), *_filter_clauses(NeedFilters.model_construct(**dict(filters)))
    )
    if paged:
        query = query.where(tuple_(Need.created_at, Need.id) < _AFTER)
    return _prepared(query.order_by(*_NEWEST_FIRST).limit(limit), dialect)


@lru_cache(maxsize=4)
def _read_one_statement(dialect: Dialect) -> _Read:
    query = select(*_read_columns(dialect.driver == "asyncpg")).where(Need.id == bindparam("need_id", type_=Need.id.type))
    return _prepared(query, dialect)


async def _read(db: Database, read: _Read, values: dict[str, Any]) -> list[dict[str, Any]]:
    keys, statement = read.keys, read.statement
    if isinstance(statement, DriverStatement):
        async with db.driver_connection() as connection:
            records = await connection.fetch(statement.sql, *statement.arguments(values))
        return [dict(zip(keys, record, strict=True)) for record in records]
    async with db.read_session() as session:
        connection = await session.connection()
        rows = [dict(zip(keys, row, strict=True)) for row in await connection.execute(statement, values)]
    for row in rows:
        row.update((name, amount_text(row[name])) for name in _AMOUNTS)
    return rows


async def read_needs(
    db: Database,
    filters: NeedFilters,
    *,
    draft_prefix: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[dict[str, Any]]:
    """What list_needs finds, as NeedRead's JSON values (see _read_columns), for the API's list."""
    read = _read_statement(db.engine.dialect, draft_prefix, tuple(filters), limit, after is not None)
    return await _read(db, read, {"after_created_at": after[0], "after_id": after[1]} if after is not None else {})


async def read_need(db: Database, need_id: uuid.UUID) -> dict[str, Any] | None:
    """One need by id as NeedRead's JSON values (see _read_columns), drafts included."""
    rows = await _read(db, _read_one_statement(db.engine.dialect), {"need_id": need_id})
    return rows[0] if rows else None


async def add_to_committed(session: AsyncSession, need_id: uuid.UUID, quantity: Decimal) -> bool:
    """Commit `quantity` only if the need is open and has that much left: one atomic UPDATE."""
    result = await session.execute(
        update(Need)
        .where(
            Need.id == need_id,
            Need.status == NeedStatus.OPEN,
            Need.quantity - Need.committed >= _amount(quantity),
        )
        .values(committed=Need.committed + _amount(quantity), version=Need.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def subtract_from_committed(session: AsyncSession, need_id: uuid.UUID, quantity: Decimal) -> None:
    await session.execute(
        update(Need)
        .where(Need.id == need_id)
        .values(committed=Need.committed - _amount(quantity), version=Need.version + 1)
        .execution_options(synchronize_session=False)
    )


async def add_to_delivered(session: AsyncSession, need_id: uuid.UUID, quantity: Decimal) -> bool:
    result = await session.execute(
        update(Need)
        .where(Need.id == need_id, Need.committed - Need.delivered >= _amount(quantity))
        .values(delivered=Need.delivered + _amount(quantity), version=Need.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def get_commitment(session: AsyncSession, match_id: uuid.UUID, *, lock: bool = False) -> Commitment | None:
    query = select(Commitment).where(Commitment.match_id == match_id)
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query.execution_options(populate_existing=True))).one_or_none()


async def insert_commitment(session: AsyncSession, commitment: Commitment) -> bool:
    """Insert inside a savepoint; False when another request holds this match id already."""
    try:
        async with session.begin_nested():
            session.add(commitment)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def count_active_commitments(session: AsyncSession, need_id: uuid.UUID) -> int:
    rows = await session.scalars(
        select(Commitment.id).where(Commitment.need_id == need_id, Commitment.status == CommitmentStatus.ACTIVE)
    )
    return len(rows.all())



# --- likely duplicates ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TitledNeed:
    id: uuid.UUID
    title: str
    village_code: str
    category: str
    kind: str


async def live_needs_of_villages(session: AsyncSession, village_codes: Collection[str]) -> list[TitledNeed]:
    """Draft and open needs of these villages: what a new need may duplicate."""
    found: list[TitledNeed] = []
    codes = sorted(village_codes)
    for start in range(0, len(codes), 500):  # keeps IN (...) within every driver's parameter limit
        rows = await session.execute(
            select(Need.id, Need.title, Need.village_code, Need.category, Need.kind).where(
                Need.village_code.in_(codes[start:start + 500]), Need.status.in_((NeedStatus.DRAFT, NeedStatus.OPEN))
            )
        )
        found.extend(TitledNeed(*row) for row in rows)
    return found


async def add_suspicions(session: AsyncSession, suspicions: list[dict[str, Any]]) -> None:
    await add_rows(session, DuplicateSuspicion.metadata.tables[DuplicateSuspicion.__tablename__], suspicions)


@dataclass(frozen=True, slots=True)
class SuspectedDuplicate:
    other_need_id: uuid.UUID
    title: str
    similarity: float


async def suspected_duplicates_of(session: AsyncSession, need_id: uuid.UUID) -> list[SuspectedDuplicate]:
    """The needs this one is still suspected to duplicate, most similar first, with their titles: one query."""
    rows = await session.execute(
        select(DuplicateSuspicion.other_need_id, func.coalesce(Need.title, ""), DuplicateSuspicion.similarity)
        .outerjoin(Need, Need.id == DuplicateSuspicion.other_need_id)
        .where(DuplicateSuspicion.need_id == need_id, DuplicateSuspicion.status == DuplicateStatus.SUSPECTED)
        .order_by(DuplicateSuspicion.similarity.desc())
    )
    return [SuspectedDuplicate(*row) for row in rows]


async def resolve_suspicions(session: AsyncSession, need_id: uuid.UUID, status: DuplicateStatus, by: str) -> None:
    await session.execute(
        update(DuplicateSuspicion)
        .where(DuplicateSuspicion.need_id == need_id, DuplicateSuspicion.status == DuplicateStatus.SUSPECTED)
        .values(status=status, resolved_by=by, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def list_suspicions(
    session: AsyncSession, *, region: str, status: DuplicateStatus, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[DuplicateSuspicion]:
    query = select(DuplicateSuspicion).where(
        DuplicateSuspicion.status == status, DuplicateSuspicion.village_code.startswith(region, autoescape=True)
    )
    if after is not None:
        created_at, row_id = after
        query = query.where(
            or_(DuplicateSuspicion.created_at < created_at,
                and_(DuplicateSuspicion.created_at == created_at, DuplicateSuspicion.id < row_id))
        )
    query = query.order_by(DuplicateSuspicion.created_at.desc(), DuplicateSuspicion.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def titles_of(session: AsyncSession, need_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not need_ids:
        return {}
    rows = await session.execute(select(Need.id, Need.title).where(Need.id.in_(list(need_ids))))
    return {need_id: title for need_id, title in rows}
