"""Change feeds: a transactional outbox read by other services with `?after=SEQ`.

A change is buffered on the session and written just before that session commits, so the
change and its feed entry land together or not at all. On PostgreSQL the writers take one
advisory lock for the outbox, so sequence numbers become visible in order and a reader
polling `after=N` can never skip a change that commits late.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, BigInteger, Integer, String, event, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.common.bulk import insert_rows
from services.common.db import UtcDateTime, utcnow
from services.common.identity import acting_subject

_PENDING = "duijie.outbox.pending"


class ChangeMixin:
    """Columns of a service's `changes` table."""

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # The audit trail: who made the change and why (the feed doubles as each entity's history).
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)


def record_change(
    session: AsyncSession, change_model: type[ChangeMixin], *, entity: str, entity_id: object, op: str,
    data: dict[str, Any], reason: str | None = None,
) -> None:
    """Queue a change for the feed; it is written by the same commit as the change itself."""
    pending: _Pending = session.sync_session.info.setdefault(_PENDING, _Pending(change_model))
    pending.rows.append({
        "entity": entity, "entity_id": str(entity_id), "op": op, "data": data, "created_at": utcnow(),
        "actor": acting_subject.get(), "reason": reason,
    })


class _Pending:
    def __init__(self, model: type[ChangeMixin]) -> None:
        self.model = model
        self.rows: list[dict[str, Any]] = []


def _outbox_lock_key(table: str) -> int:
    return zlib.crc32(f"duijie-outbox:{table}".encode())


def _write_pending_changes(session: Session) -> None:
    pending: _Pending | None = session.info.pop(_PENDING, None)
    if not pending or not pending.rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        table = pending.model.__tablename__  # type: ignore[attr-defined]
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _outbox_lock_key(table)})
    # One bulk insert in the order the changes happened (seq follows it): an import of 100k rows stays fast.
    insert_rows(session.connection(), pending.model.__table__, pending.rows)  # type: ignore[attr-defined]


def _forget_pending_changes(session: Session, *_: object) -> None:
    session.info.pop(_PENDING, None)


class OutboxSession(Session):
    """The session class of a service with a change feed."""


event.listen(OutboxSession, "before_commit", _write_pending_changes)
event.listen(OutboxSession, "after_rollback", _forget_pending_changes)


class ChangeRead(BaseModel):
    seq: int
    entity: str
    entity_id: str
    op: str
    data: dict[str, Any]
    created_at: datetime
    actor: str | None = None
    reason: str | None = None


class ChangePage(BaseModel):
    items: list[ChangeRead]
    last_seq: int


async def read_changes(
    session: AsyncSession, change_model: type[ChangeMixin], *, after: int, limit: int
) -> ChangePage:
    rows = (
        await session.scalars(
            select(change_model).where(change_model.seq > after).order_by(change_model.seq).limit(limit)
        )
    ).all()
    items = [ChangeRead.model_validate(row, from_attributes=True) for row in rows]
    return ChangePage(items=items, last_seq=items[-1].seq if items else after)


# --- an entity's history, read from its feed entries ------------------------------------------------

class HistoryEntry(BaseModel):
    seq: int
    at: datetime
    op: str
    actor: str | None
    reason: str | None
    changes: dict[str, list[Any]]  # field → [before, after]; on creation, before is null


async def entity_history(
    session: AsyncSession, change_model: type[ChangeMixin], *, entity: str, entity_id: object
) -> list[HistoryEntry]:
    """Who changed what, when and why: consecutive snapshots of one entity, compared field by field."""
    rows = (
        await session.scalars(
            select(change_model)
            .where(change_model.entity == entity, change_model.entity_id == str(entity_id))
            .order_by(change_model.seq)
        )
    ).all()
    history: list[HistoryEntry] = []
    before: dict[str, Any] = {}
    for row in rows:
        changed = {key: [before.get(key), value] for key, value in row.data.items()
                   if key not in _UNTRACKED and before.get(key) != value}
        history.append(HistoryEntry(seq=row.seq, at=row.created_at, op=row.op, actor=row.actor, reason=row.reason,
                                    changes=changed))
        before = row.data
    return history


_UNTRACKED = frozenset({"version", "created_at", "updated_at"})
