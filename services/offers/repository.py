"""Every query on the offers database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, RowMapping, Select, and_, func, literal, or_, select, true, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.common.bulk import add_rows
from services.common.db import Quantity
from services.common.vocabulary import REGION_LEVEL_LENGTHS
from services.offers.models import Offer, OfferStatus, Organisation, Pairing, Reservation
from services.offers.schemas import OfferFilters, OrganisationFilters, PairingFilters

Row = TypeVar("Row", Organisation, Offer, Pairing)
Cursor = tuple[datetime, uuid.UUID]


def _amount(value: Decimal) -> ColumnElement[Decimal]:
    return literal(value, Quantity())


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


# --- JSON lists (region codes, categories) -------------------------------------------------------

def _any_element(
    session: AsyncSession, column: InstrumentedAttribute[Any], condition: Callable[[ColumnElement[str]], ColumnElement[bool]]
) -> ColumnElement[bool]:
    """True when some element of a JSON array column meets `condition`.

    The lists are short and read whole far more often than searched, so they stay JSON on the row;
    each backend unnests them with its own table-valued function.
    """
    if session.get_bind().dialect.name == "postgresql":
        elements = func.json_array_elements_text(column).table_valued("value")
    else:
        elements = func.json_each(column).table_valued("value")
    return select(literal(1)).select_from(elements).where(condition(elements.c.value)).exists()


def _overlaps_region(session: AsyncSession, column: InstrumentedAttribute[Any], prefix: str) -> ColumnElement[bool]:
    """Some listed region lies inside `prefix` ("44" finds "4413"), or contains it ("4413" serves "441302")."""
    ancestors = [prefix[:length] for length in REGION_LEVEL_LENGTHS if length < len(prefix)]
    return _any_element(
        session, column, lambda code: or_(code.startswith(prefix, autoescape=True), code.in_(ancestors))
    )


def _all_within(session: AsyncSession, column: InstrumentedAttribute[Any], prefix: str) -> ColumnElement[bool]:
    return ~_any_element(session, column, lambda code: ~code.startswith(prefix, autoescape=True))


def _page(query: Select[Row], model: type[Row], *, limit: int, after: Cursor | None) -> Select[Row]:
    """Newest first, keyset-paginated on (created_at, id)."""
    if after is not None:
        created_at, row_id = after
        query = query.where(or_(model.created_at < created_at, and_(model.created_at == created_at, model.id < row_id)))
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(limit)


# --- organisations ------------------------------------------------------------------------------

async def get_organisation(session: AsyncSession, organisation_id: uuid.UUID) -> Organisation | None:
    return await session.get(Organisation, organisation_id)


async def insert_organisation(session: AsyncSession, organisation: Organisation) -> bool:
    """False when another organisation holds the credit code already."""
    return await _flush_unless_duplicate(session, organisation)


async def save_organisation(session: AsyncSession) -> bool:
    """Flush an edit; False when the new credit code belongs to another organisation."""
    return await _flush_unless_duplicate(session)


async def credit_code_taken(session: AsyncSession, credit_code: str, *, other_than: uuid.UUID | None = None) -> bool:
    query = select(Organisation.id).where(Organisation.credit_code == credit_code)
    if other_than is not None:
        query = query.where(Organisation.id != other_than)
    return (await session.scalars(query.limit(1))).first() is not None


def _unverified_visibility(
    session: AsyncSession, unverified_within: str | None, own_organisation: uuid.UUID | None
) -> ColumnElement[bool]:
    """Unverified organisations show only wholly inside `unverified_within` ('' = everywhere,
    None = nowhere), and to their own members."""
    if unverified_within == "":
        return true()
    clauses: list[ColumnElement[bool]] = [Organisation.verified.is_(True)]
    if unverified_within is not None:
        clauses.append(_all_within(session, Organisation.region_codes, unverified_within))
    if own_organisation is not None:
        clauses.append(Organisation.id == own_organisation)
    return or_(*clauses)


def _organisation_clauses(session: AsyncSession, filters: OrganisationFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.region:
        clauses.append(_overlaps_region(session, Organisation.region_codes, filters.region))
    if filters.verified is not None:
        clauses.append(Organisation.verified.is_(filters.verified))
    if filters.org_type is not None:
        clauses.append(Organisation.org_type == filters.org_type)
    if filters.q:
        clauses.append(or_(
            Organisation.name.icontains(filters.q, autoescape=True),
            Organisation.description.icontains(filters.q, autoescape=True),
            Organisation.credit_code == filters.q.upper(),
        ))
    return clauses


async def list_organisations(
    session: AsyncSession,
    filters: OrganisationFilters,
    *,
    unverified_within: str | None,
    own_organisation: uuid.UUID | None,
    limit: int,
    after: Cursor | None,
) -> list[Organisation]:
    query = select(Organisation).where(
        _unverified_visibility(session, unverified_within, own_organisation), *_organisation_clauses(session, filters)
    )
    return list((await session.scalars(_page(query, Organisation, limit=limit, after=after))).all())


# --- offers ---------------------------------------------------------------------------------------

async def get_offer(session: AsyncSession, offer_id: uuid.UUID, *, refresh: bool = False) -> Offer | None:
    return await session.get(Offer, offer_id, populate_existing=refresh)


def add_offer(session: AsyncSession, offer: Offer) -> None:
    session.add(offer)


def _offer_clauses(session: AsyncSession, filters: OfferFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.status is not None:
        clauses.append(Offer.status == filters.status)
    if filters.category is not None:
        category = filters.category.value
        clauses.append(_any_element(session, Offer.categories, lambda value: value == category))
    if filters.kind is not None:
        clauses.append(Offer.kind == filters.kind)
    if filters.region:
        clauses.append(_overlaps_region(session, Offer.region_codes, filters.region))
    if filters.organisation_id is not None:
        clauses.append(Offer.organisation_id == filters.organisation_id)
    if filters.q:
        q = filters.q
        clauses.append(or_(
            Offer.title.icontains(q, autoescape=True),
            Offer.description.icontains(q, autoescape=True),
            _any_element(session, Offer.skills, lambda skill: skill.icontains(q, autoescape=True)),
        ))
    return clauses


async def list_offers(session: AsyncSession, filters: OfferFilters, *, limit: int, after: Cursor | None) -> list[Offer]:
    query = select(Offer).where(*_offer_clauses(session, filters))
    return list((await session.scalars(_page(query, Offer, limit=limit, after=after))).all())


async def add_to_reserved(session: AsyncSession, offer_id: uuid.UUID, quantity: Decimal) -> bool:
    """Reserve `quantity` only if the offer is active and has that much available: one atomic UPDATE."""
    result = await session.execute(
        update(Offer)
        .where(
            Offer.id == offer_id,
            Offer.status == OfferStatus.ACTIVE,
            Offer.quantity - Offer.reserved - Offer.delivered >= _amount(quantity),
        )
        .values(reserved=Offer.reserved + _amount(quantity), version=Offer.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def subtract_from_reserved(session: AsyncSession, offer_id: uuid.UUID, quantity: Decimal) -> None:
    await session.execute(
        update(Offer)
        .where(Offer.id == offer_id)
        .values(reserved=Offer.reserved - _amount(quantity), version=Offer.version + 1)
        .execution_options(synchronize_session=False)
    )


async def move_to_delivered(session: AsyncSession, offer_id: uuid.UUID, quantity: Decimal) -> bool:
    """What arrives stops being held: reserved → delivered, only as far as it was held."""
    result = await session.execute(
        update(Offer)
        .where(Offer.id == offer_id, Offer.reserved >= _amount(quantity))
        .values(
            reserved=Offer.reserved - _amount(quantity),
            delivered=Offer.delivered + _amount(quantity),
            version=Offer.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- reservations -------------------------------------------------------------------------------

async def get_reservation(session: AsyncSession, match_id: uuid.UUID, *, lock: bool = False) -> Reservation | None:
    query = select(Reservation).where(Reservation.match_id == match_id)
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query.execution_options(populate_existing=True))).one_or_none()


async def insert_reservation(session: AsyncSession, reservation: Reservation) -> bool:
    """False when another request holds this match id already."""
    return await _flush_unless_duplicate(session, reservation)


# --- pairings -------------------------------------------------------------------------------------

async def get_pairing(session: AsyncSession, pairing_id: uuid.UUID) -> Pairing | None:
    return await session.get(Pairing, pairing_id)


async def insert_pairing(session: AsyncSession, pairing: Pairing) -> bool:
    """False when the organisation and the village are paired already (one active pairing each)."""
    return await _flush_unless_duplicate(session, pairing)


def _pairing_clauses(filters: PairingFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if filters.organisation_id is not None:
        clauses.append(Pairing.organisation_id == filters.organisation_id)
    if filters.village_code:
        clauses.append(Pairing.village_code == filters.village_code)
    if filters.region:
        clauses.append(Pairing.village_code.startswith(filters.region, autoescape=True))
    if filters.status is not None:
        clauses.append(Pairing.status == filters.status)
    return clauses


async def list_pairings(
    session: AsyncSession, filters: PairingFilters, *, limit: int, after: Cursor | None
) -> list[Pairing]:
    query = select(Pairing).where(*_pairing_clauses(filters))
    return list((await session.scalars(_page(query, Pairing, limit=limit, after=after))).all())



# --- spreadsheets: many rows in, pages of plain rows out ---------------------------------------------

_IN_CHUNK = 500  # keeps IN (...) within every driver's parameter limit


async def taken_credit_codes(session: AsyncSession, credit_codes: Collection[str]) -> set[str]:
    """Those of the codes an organisation holds already."""
    codes, taken = sorted(credit_codes), set[str]()
    for start in range(0, len(codes), _IN_CHUNK):
        rows = await session.scalars(
            select(Organisation.credit_code).where(Organisation.credit_code.in_(codes[start:start + _IN_CHUNK]))
        )
        taken.update(rows)
    return taken


async def organisations_named(
    session: AsyncSession, *, credit_codes: Collection[str], ids: Collection[uuid.UUID]
) -> list[Organisation]:
    """The organisations a sheet names, by credit code or by id."""
    found: list[Organisation] = []
    for column, values in ((Organisation.credit_code, sorted(credit_codes)), (Organisation.id, sorted(ids))):
        for start in range(0, len(values), _IN_CHUNK):
            query = select(Organisation).where(column.in_(values[start:start + _IN_CHUNK]))
            found.extend((await session.scalars(query)).all())
    return found


async def add_organisations(session: AsyncSession, organisations: list[dict[str, Any]]) -> bool:
    """New organisations (every column given) in one bulk insert; False when a credit code was taken meanwhile."""
    if not organisations:
        return True
    try:
        async with session.begin_nested():
            await add_rows(session, Organisation.metadata.tables[Organisation.__tablename__], organisations)
    except IntegrityError:
        return False
    return True


async def add_offers(session: AsyncSession, offers: list[dict[str, Any]]) -> None:
    """New offers (every column given) in one bulk insert, past the ORM's unit of work: an import of 100k rows."""
    await add_rows(session, Offer.metadata.tables[Offer.__tablename__], offers)


def _before(model: type[Organisation] | type[Offer], after: Cursor | None) -> list[ColumnElement[bool]]:
    """Keyset on (created_at, id), newest first, as a row comparison: the index seeks straight to the cursor."""
    if after is None:
        return []
    return [tuple_(model.created_at, model.id) < tuple_(literal(after[0], model.created_at.type),
                                                         literal(after[1], model.id.type))]


async def organisation_rows(
    session: AsyncSession,
    filters: OrganisationFilters,
    *,
    unverified_within: str | None,
    own_organisation: uuid.UUID | None,
    limit: int,
    after: Cursor | None,
) -> list[RowMapping]:
    """A page of the list's organisations as plain rows (no ORM objects): for exports of any size."""
    query = (
        select(*Organisation.__table__.columns)
        .where(_unverified_visibility(session, unverified_within, own_organisation),
               *_organisation_clauses(session, filters), *_before(Organisation, after))
        .order_by(Organisation.created_at.desc(), Organisation.id.desc())
        .limit(limit)
    )
    connection = await session.connection()
    return list((await connection.execute(query)).mappings().all())


async def offer_rows(session: AsyncSession, filters: OfferFilters, *, limit: int, after: Cursor | None) -> list[RowMapping]:
    """A page of the list's offers as plain rows, each with its organisation's credit code and name."""
    query = (
        select(*Offer.__table__.columns, Organisation.credit_code.label("organisation_credit_code"),
               Organisation.name.label("organisation_name"))
        .join(Organisation, Organisation.id == Offer.organisation_id)
        .where(*_offer_clauses(session, filters), *_before(Offer, after))
        .order_by(Offer.created_at.desc(), Offer.id.desc())
        .limit(limit)
    )
    connection = await session.connection()
    return list((await connection.execute(query)).mappings().all())
