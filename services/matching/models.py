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
    CANCELLING = "cancelling"


class SagaStep(StrEnum):
    """Where an unfinished saga stands; stored on the match before the step is tried."""

    RESERVING = "reserving"  # approving: hold the quantity on the offer
    COMMITTING = "committing"  # approving: commit it to the need
    UNRESERVING = "unreserving"  # approving refused by offers: release the reservation (a tombstone), then failed
    COMPENSATING = "compensating"  # approving refused by needs: release both, then failed
    RELEASING = "releasing"  # cancelling an approved match: release both, then cancelled


class MatchOrigin(StrEnum):
    RUN = "run"  # a match run's proposal
    COORDINATOR = "coordinator"  # proposed by hand by a coordinator (or an admin)
    PLEDGE = "pledge"  # an organisation pledging its own offer


# Statuses whose saga is unfinished: the worker resumes them.
SAGA_STATUSES = (MatchStatus.APPROVING, MatchStatus.CANCELLING)
# Statuses that hold a reservation on the offer and a commitment on the need.
HOLDING_STATUSES = (MatchStatus.APPROVED, MatchStatus.DELIVERED, MatchStatus.RECEIVED)


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
    # For reports: when the need was posted (its creation in the needs service), and when it became fulfilled
    # (the time of the feed change that first showed it fulfilled; cleared if it leaves that status).
    posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


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
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # in Chinese
    status_reason_en: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(100))
    origin: Mapped[str] = mapped_column(String(12), default=MatchOrigin.RUN)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The saga (saga.py): its step, the lease of whoever runs it now, and the last transient error.
    saga_step: Mapped[str | None] = mapped_column(String(20), nullable=True)
    saga_owner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    saga_lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    saga_attempts: Mapped[int] = mapped_column(Integer, default=0)
    saga_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Deliveries: the cumulative total recorded here, and how much of it both upstreams acknowledged.
    delivered: Mapped[Decimal] = mapped_column(default=Decimal(0))
    delivery_synced: Mapped[Decimal] = mapped_column(default=Decimal(0))
    # The village officer's receipt.
    received: Mapped[Decimal | None] = mapped_column(nullable=True)
    satisfaction: Mapped[int | None] = mapped_column(Integer, nullable=True)
    receipt_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    def feed_data(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "run_id": str(self.run_id) if self.run_id else None, "need_id": str(self.need_id),
            "offer_id": str(self.offer_id), "organisation_id": str(self.organisation_id),
            "village_code": self.village_code, "quantity": str(self.quantity), "unit": self.unit,
            "status": self.status, "version": self.version, "delivered": str(self.delivered),
            "received": str(self.received) if self.received is not None else None,
        }


class MatchEvent(Base):
    """The audit trail: one row per state change of a match (who, when, from → to, what changed, why)."""

    __tablename__ = "match_events"
    __table_args__ = (
        Index("ix_match_events_match_created", "match_id", "created_at"),
        Index("ix_match_events_village_created", "village_code", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    match_id: Mapped[uuid.UUID]
    village_code: Mapped[str] = mapped_column(String(12))
    organisation_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str | None] = mapped_column(String(12), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(12), nullable=True)
    actor: Mapped[str] = mapped_column(String(100))
    actor_role: Mapped[str] = mapped_column(String(20))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason_zh: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason_en: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Delivery(Base):
    """One delivery recorded by the organisation (partial deliveries add up)."""

    __tablename__ = "deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    match_id: Mapped[uuid.UUID] = mapped_column(index=True)
    quantity: Mapped[Decimal]
    delivered_total: Mapped[Decimal]
    delivered_on: Mapped[date] = mapped_column(Date, index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class FollowUp(Base):
    """A coordinator's follow-up visit (回访) after a match."""

    __tablename__ = "follow_ups"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    match_id: Mapped[uuid.UUID] = mapped_column(index=True)
    visited_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class AudienceKind(StrEnum):
    """Matching knows no users: a notification is addressed to whoever speaks for a village, an
    organisation or a region (a coordinator whose prefix covers the village code)."""

    VILLAGE = "village"
    ORGANISATION = "organisation"
    REGION = "region"


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_audience_created", "audience_kind", "audience", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    audience_kind: Mapped[str] = mapped_column(String(12))
    audience: Mapped[str] = mapped_column(String(40))  # village code, organisation id, or the village code (region)
    event: Mapped[str] = mapped_column(String(40))
    match_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    title_zh: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class NotificationRead(Base):
    """Who has read which notification (a notification may reach many people)."""

    __tablename__ = "notification_reads"

    notification_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    reader: Mapped[str] = mapped_column(String(100), primary_key=True)
    read_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Webhook(Base):
    """An organisation's webhook: events that concern it are POSTed there, signed with its secret."""

    __tablename__ = "webhooks"

    organisation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class WebhookStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(Base):
    """The webhook outbox: written with the notification, sent (and retried) by the worker."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    organisation_id: Mapped[uuid.UUID] = mapped_column(index=True)
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10), default=WebhookStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


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
