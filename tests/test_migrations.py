"""Every service's migrations go down and up again cleanly, and leave exactly the schema its models declare."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.common import migrate
from tests.support import TestDatabases

MODELS = {
    "needs": "services.needs.models",
    "offers": "services.offers.models",
    "matching": "services.matching.models",
    "gateway": "gateway.models",
}
SERVICES = [name for name in MODELS if any((migrate.PROJECT_ROOT / "migrations" / name / "versions").glob("*.py"))]


def _metadata(service: str) -> MetaData:
    metadata: MetaData = importlib.import_module(MODELS[service]).Base.metadata
    return metadata


def _schema_drift(connection: Connection, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _inspect(url: str, check: Any, *args: Any) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(check, *args)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_round_trip_to_the_models_schema(service: str, backend: str, databases: TestDatabases) -> None:
    url = await databases.create(service, backend, label="roundtrip")  # upgraded to head
    metadata = _metadata(service)
    assert await _inspect(url, _schema_drift, metadata) == []

    await asyncio.to_thread(migrate.downgrade, service, url, "base")
    assert await _inspect(url, _table_names) <= {"alembic_version"}

    await asyncio.to_thread(migrate.upgrade, service, url)
    assert await _inspect(url, _schema_drift, metadata) == []
    assert set(metadata.tables) <= await _inspect(url, _table_names)


def test_every_service_has_exactly_one_migration_head() -> None:
    for service in SERVICES:
        assert migrate.head_revision(service), service
