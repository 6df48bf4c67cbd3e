"""Tables of the needs database."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Row
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import TYPE_ANNOTATION_MAP, TimestampMixin, new_id, service_metadata
from services.common.feeds import ChangeMixin
from services.common.idempotency import IdempotencyRecordMixin
from services.common.vocabulary import amount_text


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
        # Lists are newest first by (created_at, id), keyset-paged: with a status these walk the first
        # index from the cursor on, without one (drafts hidden) the second; neither sorts the table.
        Index("ix_needs_status_created_id", "status", "created_at", "id"),
        Index("ix_needs_created_id", "created_at", "id"),
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
        return need_feed_data({name: getattr(self, name) for name in FEED_FIELDS})


# A need's columns as a plain row, as lists read them (see repository.list_needs), and their names in order.
NeedRow = Row[Any]
NEED_ROW_KEYS = tuple(column.key for column in Need.__table__.columns)


FEED_FIELDS = (
    "id", "title", "category", "kind", "unit", "quantity", "committed", "delivered", "beneficiaries",
    "beneficiary_groups", "skills", "urgency", "needed_by", "village_code", "lat", "lon", "status", "version",
    "created_at",
)


def need_feed_data(need: Mapping[str, Any]) -> dict[str, Any]:
    """What other services may read of a need (no requester's phone), from a row or its values."""
    return {
        **{name: need[name] for name in FEED_FIELDS},
        "id": str(need["id"]), "quantity": amount_text(need["quantity"]), "committed": amount_text(need["committed"]),
        "delivered": amount_text(need["delivered"]), "beneficiary_groups": list(need["beneficiary_groups"]),
        "skills": list(need["skills"]), "needed_by": need["needed_by"].isoformat(),
        "status": str(need["status"]), "created_at": need["created_at"].isoformat(),
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


class DuplicateStatus(StrEnum):
    SUSPECTED = "suspected"
    DISTINCT = "distinct"  # the officer confirmed both are wanted
    WITHDRAWN = "withdrawn"  # the newer need was cancelled as a duplicate


class DuplicateSuspicion(TimestampMixin, Base):
    """A newer need that closely resembles an open need of the same village, until someone decides."""

    __tablename__ = "duplicate_suspicions"
    __table_args__ = (UniqueConstraint("need_id", "other_need_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    need_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("needs.id"), index=True)
    other_need_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("needs.id"))
    village_code: Mapped[str] = mapped_column(String(12), index=True)
    similarity: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12), default=DuplicateStatus.SUSPECTED, index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class Change(ChangeMixin, Base):
    __tablename__ = "changes"


class IdempotencyRecord(IdempotencyRecordMixin, Base):
    __tablename__ = "idempotency_keys"
