"""Tables of the needs database."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import TYPE_ANNOTATION_MAP, TimestampMixin, new_id, service_metadata
from services.common.feeds import ChangeMixin
from services.common.idempotency import IdempotencyRecordMixin


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class NeedStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    FULFILLED = "fulfilled"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class CommitmentStatus(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"


class Need(TimestampMixin, Base):
    __tablename__ = "needs"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("committed >= 0 AND committed <= quantity", name="committed_within_quantity"),
        CheckConstraint("delivered >= 0 AND delivered <= committed", name="delivered_within_committed"),
        Index("ix_needs_status_created", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(30), index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    unit: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[Decimal]
    committed: Mapped[Decimal] = mapped_column(default=Decimal(0))
    delivered: Mapped[Decimal] = mapped_column(default=Decimal(0))
    beneficiaries: Mapped[int] = mapped_column(Integer, default=0)
    beneficiary_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    urgency: Mapped[int] = mapped_column(Integer, default=3)
    needed_by: Mapped[date] = mapped_column(Date)
    village_code: Mapped[str] = mapped_column(String(12), index=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    channel: Mapped[str] = mapped_column(String(10), default="online")
    requester_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    requester_phone: Mapped[str | None] = mapped_column(String(30), nullable=True)
    status: Mapped[str] = mapped_column(String(12), default=NeedStatus.OPEN)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100))

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.committed

    def feed_data(self) -> dict[str, Any]:
        """What other services may read of a need (no requester's phone)."""
        return {
            "id": str(self.id), "title": self.title, "category": self.category, "kind": self.kind,
            "unit": self.unit, "quantity": str(self.quantity), "committed": str(self.committed),
            "delivered": str(self.delivered), "beneficiaries": self.beneficiaries,
            "beneficiary_groups": list(self.beneficiary_groups), "skills": list(self.skills),
            "urgency": self.urgency, "needed_by": self.needed_by.isoformat(),
            "village_code": self.village_code, "lat": self.lat, "lon": self.lon, "status": self.status,
            "version": self.version, "created_at": self.created_at.isoformat(),
        }


class Commitment(TimestampMixin, Base):
    """Quantity of a need promised to one approved match; the match id makes it idempotent.

    A released commitment gives back what was not delivered, so at all times
    need.committed = sum(active quantity) + sum(released delivered).
    """

    __tablename__ = "commitments"
    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("delivered >= 0 AND delivered <= quantity", name="delivered_within_quantity"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    need_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("needs.id"), index=True)
    match_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    quantity: Mapped[Decimal]
    delivered: Mapped[Decimal] = mapped_column(default=Decimal(0))
    status: Mapped[str] = mapped_column(String(10), default=CommitmentStatus.ACTIVE)


class Change(ChangeMixin, Base):
    __tablename__ = "changes"


class IdempotencyRecord(IdempotencyRecordMixin, Base):
    __tablename__ = "idempotency_keys"
