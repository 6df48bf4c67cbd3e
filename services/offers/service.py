"""The rules of organisations, offers, reservations and pairings: who may do what. Flushes, never commits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import spreadsheets as sheets
from services.common.db import Database, new_id, utcnow
from services.common.errors import (
    CORRECT_FIELDS,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
    field_errors_from_pydantic,
    invalid_field,
)
from services.common.feeds import HistoryEntry, entity_history, record_change
from services.common.http import Keyset, check_version, decode_keyset, keyset_page
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
from services.offers import repository
from services.offers.models import (
    Change,
    Offer,
    OfferStatus,
    Organisation,
    OrgType,
    Pairing,
    PairingStatus,
    Reservation,
    ReservationStatus,
    offer_feed_data,
    organisation_feed_data,
)
from services.offers.schemas import (
    OFFER_COLUMNS,
    OFFER_EXPORT_COLUMNS,
    OFFER_STATUS_LABELS,
    ORG_TYPE_LABELS,
    ORGANISATION_COLUMNS,
    ORGANISATION_EXPORT_COLUMNS,
    VERIFIED_LABELS,
    ImportReport,
    OfferCreate,
    OfferFilters,
    OfferUpdate,
    OrganisationCreate,
    OrganisationFilters,
    OrganisationUpdate,
    PairingCreate,
    PairingFilters,
    ReservationCreate,
    RowErrorRead,
    check_offer_consistency,
    grade_text,
)

ORGANISATION_NOT_FOUND = Text("找不到这个组织。", "No such organisation.")
OFFER_NOT_FOUND = Text("找不到这条供给。", "No such offer.")
PAIRING_NOT_FOUND = Text("找不到这个结对。", "No such pairing.")
NO_RESERVATION = Text("该供给下没有这个对接的预留。", "This offer holds no reservation for that match.")
EDITABLE = (OfferStatus.ACTIVE, OfferStatus.PAUSED)
# Refusals said alike by the single create and by an import's rows.
REGISTRARS_ONLY = Text("只有协调员或管理员可以登记和修改组织。", "Only a coordinator or an admin may register or edit organisations.")
REGISTRAR_REGIONS = Text("协调员只能登记或修改服务地区都在其辖区 {region} 内的组织。",
                         "A coordinator may register or edit only organisations whose regions all lie inside {region}.")
CREDIT_CODE_IN_USE = Text("统一社会信用代码 {code} 已被另一个组织登记。",
                          "The credit code {code} is registered to another organisation.")
SPEAKERS_ONLY = Text("只有该组织的成员或其所在地区的协调员可以管理它的供给。",
                     "Only the organisation's members or a coordinator of its region may manage its offers.")
MEMBERS_PUBLISH_FOR_OWN = Text("组织成员只能为本组织发布供给。", "An organisation's member may publish only for that organisation.")
UNVERIFIED_PUBLISHER = Text("组织“{name}”尚未通过认证，认证后才能发布供给。请联系辖区协调员。",
                            "The organisation '{name}' is not verified yet; it can publish offers once a coordinator verifies it.")


# --- who may do what ----------------------------------------------------------------------------

def governs_regions(principal: Principal, region_codes: Sequence[str]) -> bool:
    """An admin, or a coordinator whose prefix covers every one of the regions."""
    if principal.is_admin:
        return True
    return principal.role is Role.COORDINATOR and bool(region_codes) and all(map(principal.governs_region, region_codes))


def governs_organisation(principal: Principal, organisation: Organisation) -> bool:
    return governs_regions(principal, organisation.region_codes)


def speaks_for_organisation(principal: Principal, organisation: Organisation) -> bool:
    """Its own members, or those who govern it: they publish and manage its offers and see its contact."""
    return principal.belongs_to(organisation.id) or governs_organisation(principal, organisation)


def _can_see(principal: Principal, organisation: Organisation) -> bool:
    return organisation.verified or speaks_for_organisation(principal, organisation)


def _ensure_registrar(principal: Principal, region_codes: Sequence[str]) -> None:
    if principal.role not in (Role.COORDINATOR, Role.ADMIN):
        raise Forbidden(REGISTRARS_ONLY)
    if not governs_regions(principal, region_codes):
        raise Forbidden(REGISTRAR_REGIONS, region=principal.region_code or "-")


def _ensure_speaks_for(principal: Principal, organisation: Organisation) -> None:
    if not speaks_for_organisation(principal, organisation):
        raise Forbidden(SPEAKERS_ONLY)


# --- pages ----------------------------------------------------------------------------------------

def _publish(
    session: AsyncSession, entity: str, row: Organisation | Offer | Pairing, op: str, *, reason: str | None = None
) -> None:
    record_change(session, Change, entity=entity, entity_id=row.id, op=op, data=row.feed_data(), reason=reason)


def _for_match(match_id: uuid.UUID) -> str:
    return f"match {match_id}"


def _unknown_organisation() -> ValidationFailed:
    return ValidationFailed(CORRECT_FIELDS, errors=[FieldError("organisation_id", ORGANISATION_NOT_FOUND)])


# --- organisations --------------------------------------------------------------------------------

def _credit_code_in_use(credit_code: str) -> Conflict:
    return Conflict(CREDIT_CODE_IN_USE, code=credit_code)


async def create_organisation(session: AsyncSession, *, principal: Principal, data: OrganisationCreate) -> Organisation:
    _ensure_registrar(principal, data.region_codes)
    if await repository.credit_code_taken(session, data.credit_code):
        raise _credit_code_in_use(data.credit_code)
    organisation = Organisation(**_new_organisation_values(data, principal))
    if not await repository.insert_organisation(session, organisation):
        raise _credit_code_in_use(data.credit_code)  # registered concurrently
    _publish(session, "organisation", organisation, "created")
    return organisation


def _new_organisation_values(data: OrganisationCreate, principal: Principal) -> dict[str, Any]:
    """Every column of a new organisation: for the ORM (one) or a multi-row INSERT (an import)."""
    now = utcnow()
    return {
        **data.model_dump(exclude={"contact"}),
        "id": new_id(),
        "contact_name": data.contact.name if data.contact else None,
        "contact_phone": data.contact.phone if data.contact else None,
        "verified": False,
        "verified_by": None,
        "verified_at": None,
        "version": 1,
        "created_by": principal.subject,
        "created_at": now,
        "updated_at": now,
    }


async def get_organisation(session: AsyncSession, *, principal: Principal, organisation_id: uuid.UUID) -> Organisation:
    organisation = await repository.get_organisation(session, organisation_id)
    if organisation is None or not _can_see(principal, organisation):
        raise NotFound(ORGANISATION_NOT_FOUND)
    return organisation


def _unverified_within(principal: Principal) -> str | None:
    if principal.role is Role.ADMIN:
        return ""
    if principal.role is Role.COORDINATOR:
        return principal.region_code or None  # a coordinator without a region governs nowhere, not everywhere
    return None


async def list_organisations(
    session: AsyncSession, *, principal: Principal, filters: OrganisationFilters, limit: int, cursor: str | None
) -> tuple[list[Organisation], str | None]:
    own = principal.organisation_id if principal.role is Role.ORG_MEMBER else None
    rows = await repository.list_organisations(
        session, filters, unverified_within=_unverified_within(principal), own_organisation=own,
        limit=limit + 1, after=decode_keyset(cursor),
    )
    return keyset_page(rows, limit)


async def update_organisation(
    session: AsyncSession, *, principal: Principal, organisation_id: uuid.UUID, expected_version: int,
    data: OrganisationUpdate,
) -> Organisation:
    organisation = await get_organisation(session, principal=principal, organisation_id=organisation_id)
    _ensure_registrar(principal, organisation.region_codes)
    check_version(expected_version, organisation.version)
    changes = data.model_dump(exclude_unset=True, exclude={"contact"})
    if "region_codes" in changes:
        _ensure_registrar(principal, changes["region_codes"])  # nobody moves an organisation out of their reach
    await _check_credit_code_change(session, organisation, changes.get("credit_code"))
    if "contact" in data.model_fields_set:
        changes["contact_name"] = data.contact.name if data.contact else None
        changes["contact_phone"] = data.contact.phone if data.contact else None
    for field, value in changes.items():
        setattr(organisation, field, value)
    organisation.version += 1
    if not await repository.save_organisation(session):
        raise _credit_code_in_use(organisation.credit_code)
    _publish(session, "organisation", organisation, "updated")
    return organisation


async def _check_credit_code_change(session: AsyncSession, organisation: Organisation, credit_code: str | None) -> None:
    if credit_code is None or credit_code == organisation.credit_code:
        return
    if organisation.verified:
        raise Conflict(Text("已认证组织的统一社会信用代码不能修改。", "A verified organisation's credit code cannot change."))
    if await repository.credit_code_taken(session, credit_code, other_than=organisation.id):
        raise _credit_code_in_use(credit_code)


async def verify_organisation(session: AsyncSession, *, principal: Principal, organisation_id: uuid.UUID) -> Organisation:
    """Confirm the organisation is who it says it is; only then may it publish. Verifying twice changes nothing."""
    organisation = await get_organisation(session, principal=principal, organisation_id=organisation_id)
    if principal.role not in (Role.COORDINATOR, Role.ADMIN) or not governs_organisation(principal, organisation):
        raise Forbidden(
            Text("只有辖区覆盖该组织全部服务地区的协调员可以认证它。",
                 "Only a coordinator whose region covers all of the organisation's regions may verify it.")
        )
    if organisation.verified:
        return organisation
    organisation.verified, organisation.verified_by, organisation.verified_at = True, principal.subject, utcnow()
    organisation.version += 1
    await session.flush()
    _publish(session, "organisation", organisation, "verified")
    return organisation


# --- offers ---------------------------------------------------------------------------------------

async def _publisher_organisation(session: AsyncSession, principal: Principal, organisation_id: uuid.UUID) -> Organisation:
    """The organisation an offer is published for, once the caller may speak for it."""
    if principal.role is Role.ORG_MEMBER and principal.organisation_id != organisation_id:
        raise Forbidden(MEMBERS_PUBLISH_FOR_OWN)
    organisation = await repository.get_organisation(session, organisation_id)
    if organisation is None:
        raise _unknown_organisation()
    _ensure_speaks_for(principal, organisation)
    return organisation


async def create_offer(session: AsyncSession, *, principal: Principal, data: OfferCreate) -> Offer:
    organisation = await _publisher_organisation(session, principal, data.organisation_id)
    if not organisation.verified:
        raise Conflict(UNVERIFIED_PUBLISHER, name=organisation.name)
    offer = Offer(**_new_offer_values(data, principal))
    repository.add_offer(session, offer)
    await session.flush()
    _publish(session, "offer", offer, "created")
    return offer


def _new_offer_values(data: OfferCreate, principal: Principal) -> dict[str, Any]:
    """Every column of a new offer: for the ORM (one) or a multi-row INSERT (an import)."""
    now = utcnow()
    return {
        **data.model_dump(),
        "id": new_id(),
        "reserved": Decimal(0),
        "delivered": Decimal(0),
        "status": OfferStatus.ACTIVE,
        "version": 1,
        "created_by": principal.subject,
        "created_at": now,
        "updated_at": now,
    }


async def get_offer(session: AsyncSession, *, offer_id: uuid.UUID) -> Offer:
    """Offers are public to everyone signed in."""
    offer = await repository.get_offer(session, offer_id)
    if offer is None:
        raise NotFound(OFFER_NOT_FOUND)
    return offer


async def list_offers(
    session: AsyncSession, *, filters: OfferFilters, limit: int, cursor: str | None
) -> tuple[list[Offer], str | None]:
    rows = await repository.list_offers(session, filters, limit=limit + 1, after=decode_keyset(cursor))
    return keyset_page(rows, limit)


async def offer_history(session: AsyncSession, *, principal: Principal, offer_id: uuid.UUID) -> list[HistoryEntry]:
    """Every change of the offer — who, when, what and why — for its organisation and the coordinators governing it."""
    offer = await _managed_offer(session, principal, offer_id)
    return await entity_history(session, Change, entity="offer", entity_id=offer.id)


async def _managed_offer(session: AsyncSession, principal: Principal, offer_id: uuid.UUID) -> Offer:
    offer = await get_offer(session, offer_id=offer_id)
    organisation = await repository.get_organisation(session, offer.organisation_id)
    assert organisation is not None  # a foreign key
    _ensure_speaks_for(principal, organisation)
    return offer


def _ensure_status(offer: Offer, allowed: tuple[OfferStatus, ...], action: Text) -> None:
    if offer.status not in allowed:
        raise Conflict(
            Text("供给当前为“{status}”，不能{action}。", "The offer is {status}; it cannot be {action_en}."),
            status=offer.status, action=action.zh, action_en=action.en,
        )


async def update_offer(
    session: AsyncSession, *, principal: Principal, offer_id: uuid.UUID, expected_version: int, data: OfferUpdate
) -> Offer:
    offer = await _managed_offer(session, principal, offer_id)
    check_version(expected_version, offer.version)
    _ensure_status(offer, EDITABLE, Text("修改", "changed"))
    changes = data.model_dump(exclude_unset=True)
    _check_update_keeps_reservations(offer, changes)
    for field, value in changes.items():
        setattr(offer, field, value)
    if offer.delivered >= offer.quantity:
        offer.status = OfferStatus.EXHAUSTED  # cut down to what has already arrived
    offer.version += 1
    await session.flush()
    _publish(session, "offer", offer, "updated")
    return offer


def _reported_as(*, field: str, check: Callable[[], None]) -> None:
    """A schema rule applied to the stored record after an edit, answered like a schema error."""
    try:
        check()
    except PydanticCustomError as exc:
        raise invalid_field(field, exc) from exc


def _check_update_keeps_reservations(offer: Offer, changes: dict[str, Any]) -> None:
    """The offer after the edit must be as valid as a new one, and still hold what it has promised."""
    merged = {field: changes.get(field, getattr(offer, field)) for field in (
        "kind", "unit", "quantity", "region_codes", "radius_km", "lat", "lon", "available_from", "available_until")}
    kind, unit, quantity = Kind(merged.pop("kind")), str(merged.pop("unit")), merged.pop("quantity")
    _reported_as(field="unit", check=lambda: check_unit(kind, unit))
    _reported_as(field="quantity", check=lambda: check_quantity(unit, quantity))
    _reported_as(field="body", check=lambda: check_offer_consistency(kind=None, unit=None, quantity=None, **merged))
    promised = offer.reserved + offer.delivered
    if promised > 0 and (kind != offer.kind or unit != offer.unit):
        raise Conflict(Text("已有预留的供给不能修改类型或单位。", "An offer with reservations cannot change kind or unit."))
    if quantity < promised:
        raise Conflict(
            Text("数量不能少于已预留和已交付的 {promised}。",
                 "The quantity cannot drop below the {promised} already reserved or delivered."),
            promised=promised,
        )


async def withdraw_offer(
    session: AsyncSession, *, principal: Principal, offer_id: uuid.UUID, reason: str | None = None
) -> Offer:
    """Take no new reservations, for good; what is already reserved is still delivered."""
    offer = await _managed_offer(session, principal, offer_id)
    _ensure_status(offer, EDITABLE, Text("撤回", "withdrawn"))
    offer.status, offer.version = OfferStatus.WITHDRAWN, offer.version + 1
    await session.flush()
    _publish(session, "offer", offer, "withdrawn", reason=reason)
    return offer


# --- reservations (internal, keyed by match id) ----------------------------------------------------

def _same_reservation(existing: Reservation, offer_id: uuid.UUID, quantity: Decimal) -> Reservation:
    if existing.status == ReservationStatus.RELEASED:
        raise Conflict(Text("该对接的预留已释放，不能再次预留。", "This match's reservation was released; it cannot reserve again."))
    if existing.offer_id != offer_id or existing.quantity != quantity:
        raise Conflict(
            Text("该对接已以不同的供给或数量预留过。", "This match already holds a reservation of another offer or quantity.")
        )
    return existing


async def _refusal_reason(session: AsyncSession, offer_id: uuid.UUID, quantity: Decimal) -> Conflict:
    offer = await repository.get_offer(session, offer_id, refresh=True)
    if offer is None:
        raise NotFound(OFFER_NOT_FOUND)
    if offer.status != OfferStatus.ACTIVE:
        return Conflict(Text("供给当前为“{status}”，不能再预留。", "The offer is {status}; it takes no reservations."),
                        status=offer.status)
    return Conflict(
        Text("供给只剩 {available} {unit}，不足 {quantity}。", "The offer has only {available} {unit} left, not {quantity}."),
        available=offer.available, unit=offer.unit, quantity=quantity,
    )


async def reserve(session: AsyncSession, *, offer_id: uuid.UUID, data: ReservationCreate) -> Reservation:
    existing = await repository.get_reservation(session, data.match_id)
    if existing is not None:
        return _same_reservation(existing, offer_id, data.quantity)
    reservation = Reservation(offer_id=offer_id, match_id=data.match_id, quantity=data.quantity, delivered=Decimal(0),
                              status=ReservationStatus.ACTIVE)
    if await repository.get_offer(session, offer_id) is None:
        raise NotFound(OFFER_NOT_FOUND)
    if not await repository.insert_reservation(session, reservation):
        existing = await repository.get_reservation(session, data.match_id)
        assert existing is not None
        return _same_reservation(existing, offer_id, data.quantity)
    # The guard lives in the UPDATE itself, so concurrent holds can never oversubscribe the offer.
    if not await repository.add_to_reserved(session, offer_id, data.quantity):
        raise await _refusal_reason(session, offer_id, data.quantity)
    await _publish_after_write(session, offer_id, "reserved", reason=_for_match(data.match_id))
    return reservation


async def release(session: AsyncSession, *, offer_id: uuid.UUID, match_id: uuid.UUID) -> Reservation:
    """Give back what was not delivered. Releasing twice, or before any hold, is harmless."""
    reservation = await repository.get_reservation(session, match_id, lock=True)
    if reservation is None:
        reservation = await _insert_tombstone(session, offer_id=offer_id, match_id=match_id)
    if reservation.offer_id != offer_id:
        raise NotFound(NO_RESERVATION)
    if reservation.status == ReservationStatus.ACTIVE:
        await repository.subtract_from_reserved(session, offer_id, reservation.quantity - reservation.delivered)
        reservation.status = ReservationStatus.RELEASED
        await session.flush()
        await _publish_after_write(session, offer_id, "released", reason=_for_match(match_id))
    return reservation


async def _insert_tombstone(session: AsyncSession, *, offer_id: uuid.UUID, match_id: uuid.UUID) -> Reservation:
    """A released, empty reservation, so that a late retry of the hold cannot take the quantity after all."""
    if await repository.get_offer(session, offer_id) is None:
        raise NotFound(OFFER_NOT_FOUND)
    tombstone = Reservation(offer_id=offer_id, match_id=match_id, quantity=Decimal(0), delivered=Decimal(0),
                            status=ReservationStatus.RELEASED)
    if await repository.insert_reservation(session, tombstone):
        return tombstone
    # A concurrent hold or release of the same match got there first: act on what it wrote.
    existing = await repository.get_reservation(session, match_id, lock=True)
    assert existing is not None
    return existing


async def record_delivered(
    session: AsyncSession, *, offer_id: uuid.UUID, match_id: uuid.UUID, delivered_total: Decimal
) -> Reservation:
    reservation = await repository.get_reservation(session, match_id, lock=True)
    if reservation is None or reservation.offer_id != offer_id:
        raise NotFound(NO_RESERVATION)
    if reservation.status != ReservationStatus.ACTIVE:
        raise Conflict(Text("该预留已释放，不能再登记交付。", "This reservation was released; no more deliveries."))
    if delivered_total > reservation.quantity:
        raise Conflict(
            Text("交付总量 {total} 超过预留的 {quantity}。", "A delivered total of {total} exceeds the {quantity} reserved."),
            total=delivered_total, quantity=reservation.quantity,
        )
    delta = delivered_total - reservation.delivered
    if delta <= 0:
        return reservation  # a repeat, or an older retry arriving late
    if not await repository.move_to_delivered(session, offer_id, delta):
        raise Conflict(Text("交付量超过预留量。", "Delivered would exceed reserved."))
    reservation.delivered = delivered_total
    await session.flush()
    offer = await repository.get_offer(session, offer_id, refresh=True)
    assert offer is not None
    if offer.delivered >= offer.quantity and offer.status in EDITABLE:
        offer.status = OfferStatus.EXHAUSTED
        await session.flush()
    _publish(session, "offer", offer, "delivered", reason=_for_match(reservation.match_id))
    return reservation


async def _publish_after_write(session: AsyncSession, offer_id: uuid.UUID, op: str, *, reason: str) -> None:
    offer = await repository.get_offer(session, offer_id, refresh=True)
    assert offer is not None
    _publish(session, "offer", offer, op, reason=reason)


async def offer_available(session: AsyncSession, offer_id: uuid.UUID) -> Decimal:
    offer = await repository.get_offer(session, offer_id, refresh=True)
    if offer is None:
        raise NotFound(OFFER_NOT_FOUND)
    return offer.available


# --- pairings (结对帮扶) ------------------------------------------------------------------------------

def _ensure_governs_village(principal: Principal, village_code: str) -> None:
    if not principal.governs_region(village_code):
        raise Forbidden(
            Text("只有辖区覆盖村 {village} 的协调员可以管理它的结对。",
                 "Only a coordinator whose region covers village {village} may manage its pairings."),
            village=village_code,
        )


async def create_pairing(session: AsyncSession, *, principal: Principal, data: PairingCreate) -> Pairing:
    _ensure_governs_village(principal, data.village_code)
    organisation = await repository.get_organisation(session, data.organisation_id)
    if organisation is None:
        raise _unknown_organisation()
    if not organisation.verified:
        raise Conflict(Text("组织“{name}”尚未通过认证，不能结对。", "The organisation '{name}' is not verified; it cannot be paired."),
                       name=organisation.name)
    pairing = Pairing(
        organisation_id=data.organisation_id, village_code=data.village_code,
        started_on=data.started_on or date.today(), note=data.note, status=PairingStatus.ACTIVE, version=1,
        created_by=principal.subject,
    )
    if not await repository.insert_pairing(session, pairing):
        raise Conflict(
            Text("该组织与村 {village} 已有进行中的结对。", "The organisation is already paired with village {village}."),
            village=data.village_code,
        )
    _publish(session, "pairing", pairing, "created")
    return pairing


async def get_pairing(session: AsyncSession, *, pairing_id: uuid.UUID) -> Pairing:
    pairing = await repository.get_pairing(session, pairing_id)
    if pairing is None:
        raise NotFound(PAIRING_NOT_FOUND)
    return pairing


async def list_pairings(
    session: AsyncSession, *, filters: PairingFilters, limit: int, cursor: str | None
) -> tuple[list[Pairing], str | None]:
    rows = await repository.list_pairings(session, filters, limit=limit + 1, after=decode_keyset(cursor))
    return keyset_page(rows, limit)


async def end_pairing(session: AsyncSession, *, principal: Principal, pairing_id: uuid.UUID) -> Pairing:
    pairing = await get_pairing(session, pairing_id=pairing_id)
    _ensure_governs_village(principal, pairing.village_code)
    if pairing.status != PairingStatus.ACTIVE:
        raise Conflict(Text("这个结对已于 {ended_on} 结束。", "This pairing ended on {ended_on}."), ended_on=pairing.ended_on)
    # A pairing ended before its planned start lasted no days at all, rather than negative ones.
    pairing.status, pairing.ended_on = PairingStatus.ENDED, max(date.today(), pairing.started_on)
    pairing.version += 1
    await session.flush()
    _publish(session, "pairing", pairing, "ended")
    return pairing


# --- spreadsheets in and out ---------------------------------------------------------------------------
# An import checks every row as the single create would (the same schema, the same rules, the same
# messages) before any is written, and then writes all of them in multi-row INSERTs, each with its feed entry.

_ORGANISATION_EXPORT_ONLY = [name for column in ORGANISATION_EXPORT_COLUMNS for name in column.names()]
_OFFER_EXPORT_ONLY = [name for column in OFFER_EXPORT_COLUMNS for name in column.names()]
_CONTACT_COLUMNS = {"contact.name": "contact_name", "contact.phone": "contact_phone"}


def _report(sheet: sheets.ParsedSheet, ids: list[uuid.UUID], *, dry_run: bool) -> ImportReport:
    return ImportReport(
        dry_run=dry_run, rows=len(sheet.rows), created=0 if dry_run else len(ids),
        errors=[RowErrorRead(**error.as_dict()) for error in sheet.errors[: sheets.RowsInvalid.MAX_REPORTED]],
        error_count=len(sheet.errors), ignored_columns=sheet.ignored_columns, ids=[] if dry_run else ids,
    )


class _RowChecks:
    """Where each row's errors go: the sheet's list, kept in row order, one error per cell.

    A cell that could not be read was left out of the row, so the schema would call it missing as well;
    the reading error is the one that says what to fix.
    """

    def __init__(self, sheet: sheets.ParsedSheet, columns: Sequence[sheets.Column]) -> None:
        self.errors = sheet.errors
        self.columns = columns
        self.unreadable: dict[int, set[str]] = {}
        for error in sheet.errors:
            self.unreadable.setdefault(error.row, set()).add(error.column)

    def add(self, number: int, field: str, message: Text, **params: object) -> None:
        self.errors.append(sheets.RowError(number, sheets.column_of(field, self.columns), message.render(**params)))

    def add_schema_errors(self, number: int, exc: ValidationError, renamed: Mapping[str, str] | None = None) -> None:
        """The single create's messages, each at its row and column (a rule across fields names its own)."""
        raw_errors = exc.errors()
        unreadable = self.unreadable.get(number, set())
        for raw, error in zip(raw_errors, field_errors_from_pydantic(raw_errors), strict=True):
            field = str((raw.get("ctx") or {}).get("field") or error.field)
            column = sheets.column_of((renamed or {}).get(field, field), self.columns)
            if column not in unreadable:
                self.errors.append(sheets.RowError(number, column, error.message))

    def in_row_order(self) -> None:
        self.errors.sort(key=lambda error: error.row)  # stable: a row's errors keep the order of its columns


# organisations: coordinators (for organisations wholly inside their region) and admins, as POST /api/organisations

async def import_organisations(
    session: AsyncSession, *, principal: Principal, data: bytes, dry_run: bool
) -> ImportReport:
    """All or nothing: every row is checked as POST /api/organisations would check it before any is written."""
    if principal.role not in (Role.COORDINATOR, Role.ADMIN):
        raise Forbidden(REGISTRARS_ONLY)
    with sheets.cyclic_gc_paused():
        sheet = sheets.parse_sheet(data, ORGANISATION_COLUMNS, export_only=_ORGANISATION_EXPORT_ONLY)
        checks = _RowChecks(sheet, ORGANISATION_COLUMNS)
        checked = [(number, organisation) for number, values in sheet.rows
                   if (organisation := _organisation_from_row(number, values, principal, checks))]
    taken = await repository.taken_credit_codes(session, {organisation.credit_code for _, organisation in checked})
    valid = _with_unused_credit_codes(checked, taken, checks)
    checks.in_row_order()
    if sheet.errors and not dry_run:
        raise sheets.RowsInvalid(sheet.errors)
    organisations = [_new_organisation_values(organisation, principal) for organisation in valid]
    if not dry_run:
        if not await repository.add_organisations(session, organisations):
            raise Conflict(
                Text("导入期间，文件中的统一社会信用代码已被另一个组织登记，没有导入任何一行；请重新导入以查看是哪一行。",
                     "A credit code of the file was registered meanwhile and nothing was imported; "
                     "import again to see which row.")
            )
        with sheets.cyclic_gc_paused():
            for values in organisations:
                record_change(session, Change, entity="organisation", entity_id=values["id"], op="created",
                              data=organisation_feed_data(values))
    return _report(sheet, [values["id"] for values in organisations], dry_run=dry_run)


def _organisation_from_row(
    number: int, values: dict[str, Any], principal: Principal, checks: _RowChecks
) -> OrganisationCreate | None:
    name, phone = values.pop("contact_name", None), values.pop("contact_phone", None)
    if name or phone:
        values["contact"] = {"name": name or "", "phone": phone}
    try:
        data = OrganisationCreate.model_validate(values)
    except ValidationError as exc:
        checks.add_schema_errors(number, exc, _CONTACT_COLUMNS)
        return None
    if not governs_regions(principal, data.region_codes):
        checks.add(number, "region_codes", REGISTRAR_REGIONS, region=principal.region_code or "-")
        return None
    return data


def _with_unused_credit_codes(
    checked: list[tuple[int, OrganisationCreate]], taken: set[str], checks: _RowChecks
) -> list[OrganisationCreate]:
    """A credit code names one organisation: not one registered already, nor one of an earlier row."""
    first_row: dict[str, int] = {}
    valid: list[OrganisationCreate] = []
    for number, organisation in checked:
        code = organisation.credit_code
        if code in taken:
            checks.add(number, "credit_code", CREDIT_CODE_IN_USE, code=code)
        elif code in first_row:
            checks.add(number, "credit_code", Text("与第 {row} 行的统一社会信用代码相同", "The same credit code as row {row}"),
                       row=first_row[code])
        else:
            first_row[code] = number
            valid.append(organisation)
    return valid


def organisation_export_header(locale: Locale) -> list[str]:
    return [column.header(locale) for column in (*ORGANISATION_COLUMNS, *ORGANISATION_EXPORT_COLUMNS)]


async def export_organisations(
    db: Database, *, principal: Principal, filters: OrganisationFilters, locale: Locale, batch: int = 1000
) -> AsyncIterator[list[Sequence[Any]]]:
    """The organisations the list shows this caller, page by page, each read in its own short transaction."""
    own = principal.organisation_id if principal.role is Role.ORG_MEMBER else None
    after: Keyset | None = None
    while True:
        async with db.read_session() as session:
            rows = await repository.organisation_rows(
                session, filters, unverified_within=_unverified_within(principal), own_organisation=own,
                limit=batch, after=after,
            )
        if not rows:
            return
        yield [_organisation_export_row(row, principal, locale) for row in rows]
        after = rows[-1]["created_at"], rows[-1]["id"]


def _organisation_export_row(row: Mapping[Any, Any], principal: Principal, locale: Locale) -> list[Any]:
    private = principal.belongs_to(row["id"]) or governs_regions(principal, row["region_codes"])
    return [
        row["name"], ORG_TYPE_LABELS[OrgType(row["org_type"])].in_locale(locale), row["credit_code"],
        grade_text(row["grade"]), "、".join(row["region_codes"]), row["contact_name"],
        row["contact_phone"] if private else None, row["description"],
        str(row["id"]), VERIFIED_LABELS[bool(row["verified"])].in_locale(locale),
        row["verified_at"].isoformat(timespec="seconds") if row["verified_at"] else None,
        row["created_at"].isoformat(timespec="seconds"),
    ]


# offers: an organisation's members (for it only), coordinators governing it and admins, as POST /api/offers

Refusal = tuple[Text, dict[str, object]]


class _Publishers:
    """The organisations a sheet names, by credit code or id, looked up once for all its rows; and whether
    the caller may publish for each, worked out once per organisation rather than once per row."""

    _STAND_IN = uuid.UUID(int=0)  # checks a row whose organisation is refused, so that its other errors show too

    def __init__(self, organisations: Sequence[Organisation], principal: Principal) -> None:
        self.by_code = {organisation.credit_code: organisation for organisation in organisations}
        self.by_id = {organisation.id: organisation for organisation in organisations}
        self.principal = principal
        self.verdicts: dict[str | uuid.UUID, tuple[uuid.UUID, Refusal | None]] = {}

    def verdict(self, reference: str | uuid.UUID) -> tuple[uuid.UUID, Refusal | None]:
        """The organisation's id (or a stand-in) and, when the caller may not publish for it, why not."""
        known = self.verdicts.get(reference)
        if known is None:
            known = self.verdicts[reference] = self._judge(reference)
        return known

    def _judge(self, reference: str | uuid.UUID) -> tuple[uuid.UUID, Refusal | None]:
        principal = self.principal
        organisation = self.by_id.get(reference) if isinstance(reference, uuid.UUID) else self.by_code.get(reference)
        member = principal.role is Role.ORG_MEMBER
        if organisation is None:
            # A member naming another organisation is refused as such, whether or not it exists.
            refused = member and reference != principal.organisation_id
            return self._STAND_IN, ((MEMBERS_PUBLISH_FOR_OWN if refused else ORGANISATION_NOT_FOUND), {})
        if member and organisation.id != principal.organisation_id:
            return organisation.id, (MEMBERS_PUBLISH_FOR_OWN, {})
        if not speaks_for_organisation(principal, organisation):
            return organisation.id, (SPEAKERS_ONLY, {})
        if not organisation.verified:
            return organisation.id, (UNVERIFIED_PUBLISHER, {"name": organisation.name})
        return organisation.id, None


def _organisation_reference(cell: Any) -> str | uuid.UUID | None:
    """A credit code (upper-cased), an organisation id, or None for a blank cell."""
    text = str(cell).strip() if cell is not None else ""
    return _reference(text) if text else None


@lru_cache(maxsize=4096)
def _reference(text: str) -> str | uuid.UUID:
    """Parsed once per distinct text: a sheet of 100k rows names a few organisations over and over."""
    if len(text) >= 32:  # a credit code has 18 characters; an id, 32 hex digits and perhaps hyphens
        try:
            return uuid.UUID(text)
        except ValueError:
            pass
    return text.upper()


async def import_offers(session: AsyncSession, *, principal: Principal, data: bytes, dry_run: bool) -> ImportReport:
    """All or nothing: every row is checked as POST /api/offers would check it before any is written.

    The organisation column names the publisher by its unified social credit code (or its id); a member
    may leave it out, and then publishes for their own organisation, the only one they may publish for.
    """
    if principal.role not in (Role.ORG_MEMBER, Role.COORDINATOR, Role.ADMIN) or (
        principal.role is Role.ORG_MEMBER and principal.organisation_id is None
    ):
        raise Forbidden(Text("只有组织成员、协调员和管理员可以导入供给。",
                             "Only organisations' members, coordinators and admins import offers."))
    with sheets.cyclic_gc_paused():
        sheet = sheets.parse_sheet(data, OFFER_COLUMNS, export_only=_OFFER_EXPORT_ONLY)
        references = {_organisation_reference(values.get("organisation_id")) for _, values in sheet.rows}
    if principal.organisation_id is not None:
        references.add(principal.organisation_id)
    publishers = _Publishers(await repository.organisations_named(
        session, credit_codes={ref for ref in references if isinstance(ref, str)},
        ids={ref for ref in references if isinstance(ref, uuid.UUID)},
    ), principal)
    with sheets.cyclic_gc_paused():
        checks = _RowChecks(sheet, OFFER_COLUMNS)
        offers = [offer for number, values in sheet.rows
                  if (offer := _offer_from_row(number, values, principal, publishers, checks))]
        checks.in_row_order()
    if sheet.errors and not dry_run:
        raise sheets.RowsInvalid(sheet.errors)
    if not dry_run:
        await repository.add_offers(session, offers)
        with sheets.cyclic_gc_paused():
            for values in offers:
                record_change(session, Change, entity="offer", entity_id=values["id"], op="created",
                              data=offer_feed_data(values))
    return _report(sheet, [values["id"] for values in offers], dry_run=dry_run)


def _offer_from_row(
    number: int, values: dict[str, Any], principal: Principal, publishers: _Publishers, checks: _RowChecks
) -> dict[str, Any] | None:
    reference = _organisation_reference(values.pop("organisation_id", None))
    if reference is None and principal.role is Role.ORG_MEMBER:
        reference = principal.organisation_id
    refusal: Refusal | None = None
    if reference is not None:  # otherwise the schema reports the organisation missing
        values["organisation_id"], refusal = publishers.verdict(reference)
    if refusal is not None:
        checks.add(number, "organisation_id", refusal[0], **refusal[1])
    try:
        data = OfferCreate.model_validate(values)
    except ValidationError as exc:
        checks.add_schema_errors(number, exc)
        return None
    return None if refusal is not None else _new_offer_values(data, principal)


def offer_export_header(locale: Locale) -> list[str]:
    return [column.header(locale) for column in (*OFFER_COLUMNS, *OFFER_EXPORT_COLUMNS)]


async def export_offers(
    db: Database, *, filters: OfferFilters, locale: Locale, batch: int = 1000
) -> AsyncIterator[list[Sequence[Any]]]:
    """The offers the list shows (offers are public to everyone signed in), page by page, each in its own read."""
    after: Keyset | None = None
    while True:
        async with db.read_session() as session:
            rows = await repository.offer_rows(session, filters, limit=batch, after=after)
        if not rows:
            return
        yield [_offer_export_row(row, locale) for row in rows]
        after = rows[-1]["created_at"], rows[-1]["id"]


def _offer_export_row(row: Mapping[Any, Any], locale: Locale) -> list[Any]:
    def labels(names: Mapping[Any, Text], codes: Sequence[str]) -> str:
        return "、".join(names[code].in_locale(locale) for code in codes)

    quantity, reserved, delivered = row["quantity"], row["reserved"], row["delivered"]
    return [
        row["organisation_credit_code"], row["title"], row["description"], labels(CATEGORY_LABELS, row["categories"]),
        KIND_LABELS[row["kind"]].in_locale(locale), quantity, UNIT_LABELS[row["unit"]].in_locale(locale),
        "、".join(row["region_codes"]), row["radius_km"], row["lat"], row["lon"], row["available_from"].isoformat(),
        row["available_until"].isoformat(), labels(GROUP_LABELS, row["beneficiary_groups"]), "、".join(row["skills"]),
        row["organisation_name"], str(row["id"]), OFFER_STATUS_LABELS[OfferStatus(row["status"])].in_locale(locale),
        reserved, delivered, quantity - reserved - delivered, row["created_at"].isoformat(timespec="seconds"),
    ]
