"""Every query on the gateway database."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import LoginFailure, User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    return (await session.scalars(select(User).where(User.username == username))).one_or_none()


async def username_taken(session: AsyncSession, username: str) -> bool:
    return bool(await session.scalar(select(exists().where(User.username == username))))


async def active_admin_exists(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(exists().where(User.role == "admin", User.active.is_(True)))))


def add_user(session: AsyncSession, user: User) -> None:
    session.add(user)


async def set_password_hash(session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))


def _within_region(region: str, creator: uuid.UUID) -> ColumnElement[bool]:
    """Officers and coordinators inside the prefix, and whoever this coordinator created."""
    return or_(
        User.village_code.startswith(region, autoescape=True),
        User.region_code.startswith(region, autoescape=True),
        User.created_by == creator,
    )


async def list_users(
    session: AsyncSession,
    *,
    region: str | None,
    creator: uuid.UUID | None,
    role: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[User]:
    """Oldest first, keyset-paginated on (created_at, id); `region` None means everyone."""
    query = select(User)
    if region is not None and creator is not None:
        query = query.where(_within_region(region, creator))
    if role is not None:
        query = query.where(User.role == role)
    if after is not None:
        created_at, user_id = after
        query = query.where(or_(User.created_at > created_at, and_(User.created_at == created_at, User.id > user_id)))
    query = query.order_by(User.created_at, User.id).limit(limit)
    return list((await session.scalars(query)).all())


# --- failed sign-ins -------------------------------------------------------------------------

async def recent_failures(session: AsyncSession, username: str, *, since: datetime, limit: int) -> list[datetime]:
    """Times of the latest `limit` failures after `since`, newest first."""
    rows = await session.scalars(
        select(LoginFailure.failed_at)
        .where(LoginFailure.username == username, LoginFailure.failed_at > since)
        .order_by(LoginFailure.failed_at.desc())
        .limit(limit)
    )
    return list(rows.all())


def add_failure(session: AsyncSession, username: str, at: datetime) -> None:
    session.add(LoginFailure(username=username, failed_at=at))


async def forget_failures(session: AsyncSession, username: str, *, before: datetime | None = None) -> None:
    """All of a username's failures, or only those older than `before` (outside the window)."""
    query = delete(LoginFailure).where(LoginFailure.username == username)
    if before is not None:
        query = query.where(LoginFailure.failed_at <= before)
    await session.execute(query)
