"""Inserting many rows at once (an import of 100k needs, its outbox entries), past SQLAlchemy's per-row work.

SQLAlchemy's executemany builds a parameter dict and runs the bind processors row by row in Python,
which for 100k rows cost more than the database itself. Here each column's bind processor — the very
one SQLAlchemy would use for this dialect, type decorators included — is looked up once and applied
column by column, so the stored values are exactly those a Core `insert()` would store:

* SQLite: one prepared INSERT run by the driver's executemany;
* PostgreSQL (asyncpg): binary COPY through the raw driver connection, inside the session's transaction
  (column defaults such as a sequence apply as for an INSERT that leaves those columns out).

Call `insert_rows` where a synchronous Connection is at hand (an event handler of a sync Session, or
`AsyncSession.run_sync`); `add_rows` does that for an AsyncSession.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Table, insert
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.interfaces import AdaptedConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

_COPY_DIALECTS = frozenset({"asyncpg"})


def _columns_of(table: Table, row: Mapping[str, Any]) -> list[Column[Any]]:
    columns = [column for column in table.columns if column.key in row]
    if len(columns) != len(row):
        unknown = sorted(set(row) - {column.key for column in columns})
        raise ValueError(f"unknown columns of {table.name}: {unknown}")
    for column in table.columns:
        if column.key not in row and column.default is not None and column.autoincrement is not True:
            # A Python-side default would not be applied here: give the value in every row instead.
            raise ValueError(f"{table.name}.{column.key} has a Python-side default: give it in every row")
    return columns


def _processors(columns: Sequence[Column[Any]], dialect: Dialect) -> list[Callable[[Any], Any] | None]:
    return [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]


def _records(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column[Any]], dialect: Dialect
) -> list[tuple[Any, ...]]:
    """Rows as tuples of bind-processed values, one column at a time (a tight loop per processor)."""
    keys = [column.key for column in columns]
    try:
        raw = [[row[key] for row in rows] for key in keys]
    except KeyError as exc:
        raise ValueError(f"every row must give the same columns: {exc.args[0]} is missing from one") from exc
    processed: list[list[Any]] = []
    for values, process in zip(raw, _processors(columns, dialect), strict=True):
        processed.append(values if process is None else _processed(values, process))
    if any(len(row) != len(keys) for row in rows):
        raise ValueError("every row must give the same columns")
    return list(zip(*processed, strict=True))


def _memo_key(value: Any) -> Hashable | None:
    """A key under which equal values are processed alike: the exact type and spelling of the value.
    Amounts, dates and short lists of codes repeat across an import; their processing is done once each."""
    kind = type(value)
    if kind is Decimal:
        return kind, str(value)  # Decimal("1.0") == Decimal("1.00"), but they are kept apart here
    if kind is date:
        return kind, value
    if kind is list and all(type(item) is str for item in value):
        return kind, *value
    return None


def _processed(values: list[Any], process: Callable[[Any], Any]) -> list[Any]:
    memo: dict[Hashable, Any] = {}
    result: list[Any] = []
    for value in values:
        if value is None:
            result.append(None)
            continue
        key = _memo_key(value)
        if key is None:
            result.append(process(value))
        elif key in memo:
            result.append(memo[key])
        else:
            result.append(memo.setdefault(key, process(value)))
    return result


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` (dicts keyed by column, all with the same keys) into `table`, in their order."""
    if not rows:
        return
    columns = _columns_of(table, rows[0])
    dialect = connection.dialect
    records = _records(rows, columns, dialect)
    if dialect.driver in _COPY_DIALECTS:
        _copy(connection, table, [column.name for column in columns], records)
        return
    marks = _placeholders(dialect, len(columns))
    if marks is None:  # a driver taking named parameters only: SQLAlchemy's own executemany
        connection.execute(insert(table), [dict(row) for row in rows])
        return
    preparer = dialect.identifier_preparer
    names = ", ".join(preparer.format_column(column) for column in columns)
    connection.exec_driver_sql(f"INSERT INTO {preparer.format_table(table)} ({names}) VALUES ({marks})", records)


def _placeholders(dialect: Dialect, count: int) -> str | None:
    if dialect.paramstyle == "qmark":
        return ", ".join(["?"] * count)
    if dialect.paramstyle == "numeric_dollar":
        return ", ".join(f"${number}" for number in range(1, count + 1))
    if dialect.paramstyle == "format":
        return ", ".join(["%s"] * count)
    return None


def _copy(connection: Connection, table: Table, names: list[str], records: list[tuple[Any, ...]]) -> None:
    raw = connection.connection.dbapi_connection
    if not isinstance(raw, AdaptedConnection):
        raise NotImplementedError("bulk COPY needs an asyncio driver's adapted connection")
    driver = raw.driver_connection
    if not driver.is_in_transaction():
        # The adapter begins its transaction lazily, at the first statement: start it, so that the COPY
        # is part of the session's all-or-nothing commit rather than committed on its own.
        connection.exec_driver_sql("SELECT 1")
    if not driver.is_in_transaction():
        raise RuntimeError("bulk COPY outside a transaction")

    async def copy(driver_connection: Any) -> None:
        await driver_connection.copy_records_to_table(
            table.name, records=records, columns=names, schema_name=table.schema
        )

    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
    try:
        try:
            raw.run_async(copy)
        except Exception as error:
            # The adapter's own translation to its DBAPI's errors (IntegrityError, DataError...)
            raw._handle_exception(error)  # type: ignore[attr-defined]
    except connection.dialect.loaded_dbapi.Error as error:
        # ... then SQLAlchemy's, as for any other statement.
        raise DBAPIError.instance(
            statement, None, error, connection.dialect.loaded_dbapi.Error, dialect=connection.dialect
        ) from error


async def add_rows(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """`insert_rows` on the session's connection and transaction."""
    if rows:
        await session.run_sync(lambda sync_session: insert_rows(_connection(sync_session), table, rows))


def _connection(session: Session) -> Connection:
    return session.connection()
