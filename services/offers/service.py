"""The rules of organisations, offers, reservations and pairings: who may do what. Flushes, never commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import utcnow
from services.common.errors import CORRECT_FIELDS, Conflict, FieldError, Forbidden, NotFound, ValidationFailed, invalid_field
from services.common.feeds import HistoryEntry, entity_history, record_change
from services.common.http import check_version, decode_keyset, keyset_page
from services.common.identity import Principal, Role
from services.common.messages import Text
from services.common.vocabulary import Kind, check_quantity, check_unit
from services.offers import repository
from services.offers.models import (
    Change,
    Offer,
    OfferStatus,
    Organisation,
    Pairing,
    PairingStatus,
    Reservation,
    ReservationStatus,
)
from services.offers.schemas import (
    OfferCreate,
    OfferFilters,
    OfferUpdate,
    OrganisationCreate,
    OrganisationFilters,
    OrganisationUpdate,
    PairingCreate,
    PairingFilters,
    ReservationCreate,
    check_offer_consistency,
)

ORGANISATION_NOT_FOUND = Text("找不到这个组织。", "No such organisation.")
OFFER_NOT_FOUND = Text("找不到这条供给。", "No such offer.")
PAIRING_NOT_FOUND = Text("找不到这个结对。", "No such pairing.")
NO_RESERVATION = Text("该供给下没有这个对接的预留。", "This offer holds no reservation for that match.")
EDITABLE = (OfferStatus.ACTIVE, OfferStatus.PAUSED)


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
        raise Forbidden(
            Text("只有协调员或管理员可以登记和修改组织。", "Only a coordinator or an admin may register or edit organisations.")
        )
    if not governs_regions(principal, region_codes):
        raise Forbidden(
            Text("协调员只能登记或修改服务地区都在其辖区 {region} 内的组织。",
                 "A coordinator may register or edit only organisations whose regions all lie inside {region}."),
            region=principal.region_code or "-",
        )


def _ensure_speaks_for(principal: Principal, organisation: Organisation) -> None:
    if not speaks_for_organisation(principal, organisation):
        raise Forbidden(
            Text("只有该组织的成员或其所在地区的协调员可以管理它的供给。",
                 "Only the organisation's members or a coordinator of its region may manage its offers.")
        )


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
    return Conflict(
        Text("统一社会信用代码 {code} 已被另一个组织登记。", "The credit code {code} is registered to another organisation."),
        code=credit_code,
    )


async def create_organisation(session: AsyncSession, *, principal: Principal, data: OrganisationCreate) -> Organisation:
    _ensure_registrar(principal, data.region_codes)
    if await repository.credit_code_taken(session, data.credit_code):
        raise _credit_code_in_use(data.credit_code)
    organisation = Organisation(
        **data.model_dump(exclude={"contact"}),
        contact_name=data.contact.name if data.contact else None,
        contact_phone=data.contact.phone if data.contact else None,
        verified=False,
        version=1,
        created_by=principal.subject,
    )
    if not await repository.insert_organisation(session, organisation):
        raise _credit_code_in_use(data.credit_code)  # registered concurrently
    _publish(session, "organisation", organisation, "created")
    return organisation


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
        raise Forbidden(Text("组织成员只能为本组织发布供给。", "An organisation's member may publish only for that organisation."))
    organisation = await repository.get_organisation(session, organisation_id)
    if organisation is None:
        raise _unknown_organisation()
    _ensure_speaks_for(principal, organisation)
    return organisation


async def create_offer(session: AsyncSession, *, principal: Principal, data: OfferCreate) -> Offer:
    organisation = await _publisher_organisation(session, principal, data.organisation_id)
    if not organisation.verified:
        raise Conflict(
            Text("组织“{name}”尚未通过认证，认证后才能发布供给。请联系辖区协调员。",
                 "The organisation '{name}' is not verified yet; it can publish offers once a coordinator verifies it."),
            name=organisation.name,
        )
    offer = Offer(
        **data.model_dump(),
        reserved=Decimal(0),
        delivered=Decimal(0),
        status=OfferStatus.ACTIVE,
        version=1,
        created_by=principal.subject,
    )
    repository.add_offer(session, offer)
    await session.flush()
    _publish(session, "offer", offer, "created")
    return offer


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
