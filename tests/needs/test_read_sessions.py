"""Reads take a read-only session: it cannot write, and on SQLite it never queues behind the writer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest
from sqlalchemy import func, select, update

from services.common.db import Database
from services.common.feeds import OutboxSession
from services.needs.models import Need
from tests.support import TestDatabases


@pytest.fixture
async def db(backend: str, databases: TestDatabases) -> AsyncIterator[Database]:
    database = Database(await databases.create("needs", backend, label=f"reads_{uuid.uuid4().hex[:6]}"),
                        session_class=OutboxSession)
    yield database
    await database.dispose()


async def test_a_read_session_refuses_to_write(db: Database) -> None:
    async with db.read_session() as session:
        with pytest.raises(RuntimeError, match="read-only"):
            await session.execute(update(Need).values(title="x").execution_options(synchronize_session=False))


async def test_a_read_sees_committed_rows_while_a_writer_holds_its_transaction(db: Database, backend: str) -> None:
    need = Need(title="村道硬化", category="infrastructure", kind="funds", unit="CNY", quantity=100, needed_by=date.today(),
                village_code="441302100200", created_by="t")
    async with db.transaction() as session:
        session.add(need)

    async with db.transaction() as writer:  # on SQLite this holds the write lock (BEGIN IMMEDIATE)
        await writer.execute(update(Need).values(title="改了，还没提交"))
        async with db.read_session() as reader:
            # Before, every session began with BEGIN IMMEDIATE: this read waited for the writer (busy_timeout 30 s).
            titles = await asyncio.wait_for(reader.scalars(select(Need.title)), timeout=5)
            assert list(titles) == ["村道硬化"]
            assert await reader.scalar(select(func.count()).select_from(Need)) == 1
