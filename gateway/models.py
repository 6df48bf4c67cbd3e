"""Tables of the gateway database: people who sign in, and failed sign-ins (for lockout)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import TYPE_ANNOTATION_MAP, TimestampMixin, new_id, service_metadata, utcnow
from services.common.idempotency import IdempotencyRecordMixin


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


ROLES = ("officer", "org_member", "coordinator", "admin")
LOCALES = ("zh-CN", "en")


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('officer', 'org_member', 'coordinator', 'admin')", name="role_known"),
        # Each role carries the one scope it acts for; the schema checks this too, the table makes sure.
        CheckConstraint("role != 'officer' OR village_code IS NOT NULL", name="officer_has_village"),
        CheckConstraint("role != 'org_member' OR organisation_id IS NOT NULL", name="member_has_organisation"),
        CheckConstraint("role != 'coordinator' OR region_code IS NOT NULL", name="coordinator_has_region"),
        Index("ix_users_created_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    locale: Mapped[str] = mapped_column(String(5), default="zh-CN")
    village_code: Mapped[str | None] = mapped_column(String(12), nullable=True, index=True)
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    region_code: Mapped[str | None] = mapped_column(String(12), nullable=True, index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)


class LoginFailure(Base):
    """One failed sign-in. Kept in the database so that lockout holds across gateway processes."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_username_failed_at", "username", "failed_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(50))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(IdempotencyRecordMixin, Base):
    __tablename__ = "idempotency_keys"
