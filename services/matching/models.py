"""Tables of the matching database: read models of needs and offers, rule sets, runs, matches."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import TYPE_ANNOTATION_MAP, TimestampMixin, UtcDateTime, new_id, service_metadata, utcnow
from services.common.feeds import ChangeMixin
from services.common.idempotency import IdempotencyRecordMixin

Seq = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class MatchStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVING = "approving"
    APPROVED = "approved"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    DELIVERED = "delivered"
    RECEIVED = "received"


# --- read models, filled from the change feeds (sync.py) -------------------------------------------
# Each row keeps `seq`: the feed sequence of the change that last wrote it. A change applies only when
# its seq is higher, so replaying a feed, or rebuilding from 0, is harmless.

class FeedCursor(Base):
    """How far each upstream feed has been applied; written in the same transaction as the changes."""

    __tablename__ = "feed_cursors"

    feed: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Seq, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class NeedRM(Base):
    __tablename__ = "needs"
    __table_args__ = (Index("ix_needs_status_village", "status", "village_code"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    category: Mapped[str] = mapped_column(String(30))
    kind: Mapped[str] = mapped_column(String(20))
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
    status: Mapped[str] = mapped_column(String(12))
    version: Mapped[int] = mapped_column(Integer, default=1)
    seq: Mapped[int] = mapped_column(Seq, index=True)


class OfferRM(Base):
    __tablename__ = "offers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(index=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    kind: Mapped[str] = mapped_column(String(20))
    unit: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[Decimal]
    reserved: Mapped[Decimal] = mapped_column(default=Decimal(0))
    delivered: Mapped[Decimal] = mapped_column(default=Decimal(0))
    available: Mapped[Decimal] = mapped_column(default=Decimal(0))
    region_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    radius_km: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    available_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    available_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    beneficiary_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12))
    version: Mapped[int] = mapped_column(Integer, default=1)
    seq: Mapped[int] = mapped_column(Seq, index=True)


class OrganisationRM(Base):
    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    grade: Mapped[int | None] = mapped_column(Integer, nullable=True)
    region_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    verified: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    seq: Mapped[int] = mapped_column(Seq, index=True)


class PairingRM(Base):
    __tablename__ = "pairings"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(index=True)
    village_code: Mapped[str] = mapped_column(String(12), index=True)
    status: Mapped[str] = mapped_column(String(10))
    version: Mapped[int] = mapped_column(Integer, default=1)
    seq: Mapped[int] = mapped_column(Seq, index=True)


# --- matching's own data ----------------------------------------------------------------------------

class RuleSetRow(Base):
    """One version of the rules; never updated, a change is a new version."""

    __tablename__ = "rulesets"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    weights: Mapped[dict[str, Any]] = mapped_column(JSON)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class MatchRun(TimestampMixin, Base):
    __tablename__ = "match_runs"
    __table_args__ = (
        # One queued or running run per region, whatever the race between two requests.
        Index(
            "uq_match_runs_active_region", "region_code", unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_match_runs_region_created", "region_code", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    region_code: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(10), default=RunStatus.QUEUED)
    stage: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    ruleset_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    proposals: Mapped[int] = mapped_column(Integer, default=0)
    objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    equity: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Match(TimestampMixin, Base):
    """A pairing of quantity between one need and one offer: proposed by a run, then reviewed (a later saga)."""

    __tablename__ = "matches"
    __table_args__ = (
        Index("ix_matches_status_village", "status", "village_code"),
        Index("ix_matches_created", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    run_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    need_id: Mapped[uuid.UUID] = mapped_column(index=True)
    offer_id: Mapped[uuid.UUID] = mapped_column(index=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(index=True)
    village_code: Mapped[str] = mapped_column(String(12))
    region_code: Mapped[str] = mapped_column(String(12))
    quantity: Mapped[Decimal]
    unit: Mapped[str] = mapped_column(String(20))
    score: Mapped[float] = mapped_column(Float)
    # [{rule, weight, score, reason_zh, reason_en}]
    explanation: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    ruleset_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=MatchStatus.PROPOSED)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100))

    def feed_data(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "run_id": str(self.run_id) if self.run_id else None, "need_id": str(self.need_id),
            "offer_id": str(self.offer_id), "organisation_id": str(self.organisation_id),
            "village_code": self.village_code, "quantity": str(self.quantity), "unit": self.unit,
            "status": self.status, "version": self.version,
        }


class Unmatched(Base):
    """An open need of a run's region that the run proposed nothing for, and why."""

    __tablename__ = "unmatched"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    run_id: Mapped[uuid.UUID] = mapped_column(index=True)
    need_id: Mapped[uuid.UUID]
    village_code: Mapped[str] = mapped_column(String(12))
    code: Mapped[str] = mapped_column(String(30))  # allocation's UnallocatedCode
    rejection: Mapped[str | None] = mapped_column(String(30), nullable=True)  # scoring's RejectionCode, if any
    reason_zh: Mapped[str] = mapped_column(Text)
    reason_en: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class VillageReceived(Base):
    """What each village has received so far (CNY equivalent), for the equity rule."""

    __tablename__ = "village_received"

    village_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    value_cny: Mapped[Decimal] = mapped_column(default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow, index=True)


class Change(ChangeMixin, Base):
    __tablename__ = "changes"


class IdempotencyRecord(IdempotencyRecordMixin, Base):
    __tablename__ = "idempotency_keys"
