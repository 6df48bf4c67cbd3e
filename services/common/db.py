"""Async SQLAlchemy: engine, sessions, naming convention and an exact decimal type."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, cast

from sqlalchemy import BigInteger, DateTime, MetaData, Numeric, event, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlalchemy.util import greenlet_spawn

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CENT = Decimal("0.01")
READ_ONLY = "duijie_read_only"  # execution option of the connections a read session holds
_IDLE_SINCE = "duijie_idle_since"
PING_AFTER_IDLE_SECONDS = 10.0


def utcnow() -> datetime:
    return datetime.now(UTC)


_RANDOM_IDS: list[bytes] = []
_IDS_PER_DRAW = 256
# A forked child must not hand out the ids its parent still holds.
os.register_at_fork(after_in_child=_RANDOM_IDS.clear)


def new_id() -> uuid.UUID:
    """A random (version 4) UUID, as uuid4() makes it, but with the OS's random bytes drawn 4 KiB at a time:
    one system call per id was a twentieth of a 100k-row import."""
    try:
        raw = _RANDOM_IDS.pop()  # atomic: safe from several threads
    except IndexError:
        block = os.urandom(16 * _IDS_PER_DRAW)
        _RANDOM_IDS.extend(block[start:start + 16] for start in range(0, len(block), 16))
        raw = _RANDOM_IDS.pop()
    return uuid.UUID(bytes=raw, version=4)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Quantity(TypeDecorator[Decimal]):
    """An exact amount with two decimals: NUMERIC(18,2) on PostgreSQL, integer hundredths on SQLite.

    SQLite has no exact decimal storage (NUMERIC becomes a float), and a yuan must never drift.
    """

    impl = Numeric(18, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = Decimal(value).quantize(CENT, rounding=ROUND_HALF_EVEN)
        return int(amount * 100) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / 100).quantize(CENT)
        if isinstance(value, Decimal):
            return value  # NUMERIC(18,2) comes back with exactly two decimals: nothing to round, per value
        return Decimal(value).quantize(CENT)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


def service_metadata() -> MetaData:
    """Metadata of one service's database, with the constraint naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


# Every model's datetimes are UTC-aware and its decimals exact.
TYPE_ANNOTATION_MAP: dict[Any, Any] = {datetime: UtcDateTime(), Decimal: Quantity()}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 32 MB of page cache (the default is 2 MB): writing 100k rows into several indexes stays in memory.
        cursor.execute("PRAGMA cache_size=-32768")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            # A reader never takes the write lock: in WAL mode it reads its snapshot alongside
            # the one writer and the other readers instead of queueing behind them.
            connection.exec_driver_sql("BEGIN")
        else:
            # Take the write lock up front: a deferred transaction that later writes can fail
            # with SQLITE_BUSY without waiting, which would surface as a random 500.
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _ping_after_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection only when it sat idle long enough to have been dropped.

    pool_pre_ping pings at every checkout, and asyncpg's ping is three round trips (BEGIN, ";",
    ROLLBACK): that tripled the database work of a read. A connection in steady use is proven
    by its last request; one idle past `idle_seconds` (a restarted server, a firewall's timeout)
    is pinged and, if dead, replaced before the request sees it.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its ping") from exc  # the pool retries with a new one


def _refuse_writes_when_read_only(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _check(
        connection: Connection, _cursor: Any, statement: str, _parameters: Any, context: DefaultExecutionContext | None,
        _executemany: bool,
    ) -> None:
        if context is None or not connection.get_execution_options().get(READ_ONLY):
            return
        if context.isinsert or context.isupdate or context.isdelete:
            # On PostgreSQL a read session autocommits: a write here would be committed at once,
            # outside the request's all-or-nothing commit. Declare a DbSession to write.
            raise RuntimeError(f"write in a read-only session: {statement[:80]}")


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A SELECT compiled once for asyncpg, run on the driver's connection past SQLAlchemy's execution.

    For the hottest reads: a Session, a Connection and the result machinery cost more per request than
    PostgreSQL's answer. Its rows are the driver's (asyncpg Records), with no SQLAlchemy result
    processing: select only columns whose processing is a no-op on PostgreSQL (UtcDateTime, Quantity,
    strings, numbers, UUIDs), or shape them in SQL.
    """

    sql: str
    # Per position: the bind's name, its value fixed at compile time, and its type's bind processor.
    plan: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments, `values` naming the binds left open (e.g. the cursor's)."""
        arguments = []
        for name, fixed, process in self.plan:
            value = values.get(name, fixed)
            arguments.append(process(value) if process is not None else value)
        return arguments


def compile_for_driver(statement: ClauseElement, dialect: Dialect) -> DriverStatement:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler) and compiled.positiontup is not None, "a positional dialect (asyncpg)"
    # What an execution applies to each bound value (a positional dialect has one callable per bind).
    processors = cast(Mapping[str, Callable[[Any], Any]], compiled._bind_processors)
    return DriverStatement(
        compiled.string,
        tuple((name, compiled.params.get(name), processors.get(name)) for name in compiled.positiontup),
    )


class Database:
    """One service's database: its engine, and factories of sessions that write and sessions that only read."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 20,
        echo: bool = False,
        session_class: type[Session] = Session,
    ) -> None:
        self.url = url
        options: dict[str, Any] = {"echo": echo}
        if url.startswith("postgresql"):
            options.update(pool_size=pool_size, max_overflow=max_overflow, pool_timeout=60)
        self.engine = create_async_engine(url, **options)
        read_options: dict[str, Any] = {READ_ONLY: True}
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine)
        else:
            _ping_after_idle(self.engine, PING_AFTER_IDLE_SECONDS)
            # Under READ COMMITTED every statement reads its own snapshot, inside a transaction or
            # not: a read's BEGIN and COMMIT were two round trips that bought nothing.
            read_options["isolation_level"] = "AUTOCOMMIT"
        _refuse_writes_when_read_only(self.engine)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, autoflush=False, sync_session_class=session_class
        )
        # Same pool; its connections are marked read-only for as long as such a session holds them.
        self.read_sessions = async_sessionmaker(
            self.engine.execution_options(**read_options), expire_on_commit=False, autoflush=False,
            sync_session_class=session_class,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: no write lock on SQLite, no BEGIN/COMMIT on PostgreSQL; writes raise."""
        async with self.read_sessions() as session:
            yield session

    @property
    def driver_reads(self) -> bool:
        """Whether driver_connection() is available: PostgreSQL through asyncpg."""
        return self.engine.dialect.driver == "asyncpg"

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection for reads by DriverStatement, outside any transaction.

        Like a read session on PostgreSQL (autocommit: each statement reads its own snapshot) without
        the Session, Connection and result machinery: one pool checkout, the query, one checkin. Only
        reads: a write here would be committed at once, outside any request's commit.
        """
        pooled = await self.engine.raw_connection()
        driver = pooled.driver_connection
        try:
            yield driver
        except BaseException:
            if driver is None or driver.is_closed():
                pooled.invalidate()  # a dropped connection goes, not back to the pool
            raise
        finally:
            await greenlet_spawn(pooled.close)  # back to the pool (which may close it: SQLAlchemy awaits inside)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session that commits when the block ends without error (for workers and scripts)."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
