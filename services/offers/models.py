"""Tables of the offers database."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Date, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import TYPE_ANNOTATION_MAP, TimestampMixin, new_id, service_metadata
from services.common.feeds import ChangeMixin
from services.common.idempotency import IdempotencyRecordMixin
from services.common.vocabulary import amount_text


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class OrgType(StrEnum):
    SOCIAL_ORGANISATION = "social_organisation"  # 社会组织
    FOUNDATION = "foundation"  # 基金会
    ENTERPRISE = "enterprise"  # 企业
    PARTY_BRANCH = "party_branch"  # 党派/党组织基层组织
    VOLUNTEER_TEAM = "volunteer_team"  # 志愿服务队
    SCHOOL = "school"  # 学校
    OTHER = "other"


class OfferStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"  # takes no new reservations for now; the organisation may resume it
    WITHDRAWN = "withdrawn"  # for good; existing reservations are still delivered
    EXHAUSTED = "exhausted"  # everything has been delivered


class ReservationStatus(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"


class PairingStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class Organisation(TimestampMixin, Base):
    __tablename__ = "organisations"
    __table_args__ = (
        CheckConstraint("grade IS NULL OR (grade >= 1 AND grade <= 5)", name="grade_1a_to_5a"),
        Index("ix_organisations_verified_created", "verified", "created_at"),
        # The list is newest first by (created_at, id) with a visibility OR: walked, not sorted.
        Index("ix_organisations_created_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    org_type: Mapped[str] = mapped_column(String(30))
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    grade: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Region-code prefixes the organisation works in (a coordinator governs it when all lie in their prefix).
    region_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    contact_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    contact_phone: Mapped[str | None] = mapped_column(String(30), nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    verified_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100))

    def feed_data(self) -> dict[str, Any]:
        """What other services may read of an organisation (no contact's phone)."""
        return organisation_feed_data({name: getattr(self, name) for name in ORGANISATION_FEED_FIELDS})


class Offer(TimestampMixin, Base):
    """What an organisation can give. `reserved` is held for approved matches and not yet delivered."""

    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("delivered >= 0", name="delivered_not_negative"),
        CheckConstraint("reserved + delivered <= quantity", name="reserved_and_delivered_within_quantity"),
        CheckConstraint("available_until >= available_from", name="available_in_order"),
        Index("ix_offers_status_created", "status", "created_at"),
        # A list without a status (the default) is newest first by (created_at, id): walked, not sorted.
        Index("ix_offers_created_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    unit: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[Decimal]
    reserved: Mapped[Decimal] = mapped_column(default=Decimal(0))
    delivered: Mapped[Decimal] = mapped_column(default=Decimal(0))
    region_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    radius_km: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    available_from: Mapped[date] = mapped_column(Date)
    available_until: Mapped[date] = mapped_column(Date)
    beneficiary_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12), default=OfferStatus.ACTIVE)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100))

    @property
    def available(self) -> Decimal:
        return self.quantity - self.reserved - self.delivered

    def feed_data(self) -> dict[str, Any]:
        """What other services may read of an offer."""
        return offer_feed_data({name: getattr(self, name) for name in OFFER_FEED_FIELDS})


# Feed entries built from an ORM row or from the values of a multi-row INSERT (an import) alike.
ORGANISATION_FEED_FIELDS = (
    "id", "name", "org_type", "credit_code", "grade", "region_codes", "verified", "verified_at", "version", "created_at",
)
OFFER_FEED_FIELDS = (
    "id", "organisation_id", "title", "categories", "kind", "unit", "quantity", "reserved", "delivered",
    "region_codes", "radius_km", "lat", "lon", "available_from", "available_until", "beneficiary_groups", "skills",
    "status", "version", "created_at",
)


def organisation_feed_data(organisation: Mapping[str, Any]) -> dict[str, Any]:
    """What other services may read of an organisation (no contact's phone), from a row or its values."""
    verified_at = organisation["verified_at"]
    return {
        "id": str(organisation["id"]), "name": organisation["name"], "org_type": str(organisation["org_type"]),
        "credit_code": organisation["credit_code"], "grade": organisation["grade"],
        "region_codes": list(organisation["region_codes"]), "verified": organisation["verified"],
        "verified_at": verified_at.isoformat() if verified_at else None,
        "version": organisation["version"], "created_at": organisation["created_at"].isoformat(),
    }


def offer_feed_data(offer: Mapping[str, Any]) -> dict[str, Any]:
    """What other services may read of an offer, from a row or its values."""
    quantity, reserved, delivered = offer["quantity"], offer["reserved"], offer["delivered"]
    return {
        "id": str(offer["id"]), "organisation_id": str(offer["organisation_id"]), "title": offer["title"],
        "categories": [str(category) for category in offer["categories"]], "kind": str(offer["kind"]),
        "unit": offer["unit"], "quantity": amount_text(quantity), "reserved": amount_text(reserved),
        "delivered": amount_text(delivered), "available": amount_text(quantity - reserved - delivered),
        "region_codes": list(offer["region_codes"]), "radius_km": offer["radius_km"],
        "lat": offer["lat"], "lon": offer["lon"], "available_from": offer["available_from"].isoformat(),
        "available_until": offer["available_until"].isoformat(),
        "beneficiary_groups": [str(group) for group in offer["beneficiary_groups"]],
        "skills": list(offer["skills"]), "status": str(offer["status"]), "version": offer["version"],
        "created_at": offer["created_at"].isoformat(),
    }


class Reservation(TimestampMixin, Base):
    """Quantity of an offer held for one approved match; the match id makes it idempotent.

    A released reservation gives back what was not delivered, so at all times
    offer.reserved = sum(active quantity - delivered) and offer.delivered = sum(delivered).
    """

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("delivered >= 0 AND delivered <= quantity", name="delivered_within_quantity"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offers.id"), index=True)
    match_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    quantity: Mapped[Decimal]
    delivered: Mapped[Decimal] = mapped_column(default=Decimal(0))
    status: Mapped[str] = mapped_column(String(10), default=ReservationStatus.ACTIVE)


class Pairing(TimestampMixin, Base):
    """A long-term pairing (结对帮扶) of one organisation with one village."""

    __tablename__ = "pairings"
    __table_args__ = (
        # One active pairing per organisation and village; ended ones stay as history.
        Index(
            "uq_pairings_active_organisation_village", "organisation_id", "village_code", unique=True,
            sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'"),
        ),
        Index("ix_pairings_created", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    village_code: Mapped[str] = mapped_column(String(12), index=True)
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default=PairingStatus.ACTIVE)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100))

    def feed_data(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "organisation_id": str(self.organisation_id), "village_code": self.village_code,
            "started_on": self.started_on.isoformat(), "ended_on": self.ended_on.isoformat() if self.ended_on else None,
            "status": self.status, "version": self.version, "created_at": self.created_at.isoformat(),
        }


class Change(ChangeMixin, Base):
    __tablename__ = "changes"


class IdempotencyRecord(IdempotencyRecordMixin, Base):
    __tablename__ = "idempotency_keys"
