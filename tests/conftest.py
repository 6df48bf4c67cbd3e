"""Fixtures shared by every suite: the backend (SQLite, and PostgreSQL when configured) and tokens."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import PG_ENV, TestDatabases, Tokens

BACKENDS = ["sqlite", "postgresql"]


def pytest_configure(config: pytest.Config) -> None:
    # A run keeps a dozen apps alive at once, each with its pool: few idle connections each keeps the
    # total under PostgreSQL's max_connections (100), while the overflow still serves the concurrency tests.
    for service in ("NEEDS", "OFFERS", "MATCHING", "GATEWAY"):
        os.environ.setdefault(f"DUIJIE_{service}_DB_POOL_SIZE", "4")
        os.environ.setdefault(f"DUIJIE_{service}_DB_MAX_OVERFLOW", "26")
    if os.environ.get("DUIJIE_REQUIRE_PG") == "1" and not os.environ.get(PG_ENV):
        raise pytest.UsageError(f"DUIJIE_REQUIRE_PG=1 but {PG_ENV} is not set: the PostgreSQL run is required")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgresql" and not TestDatabases.pg_admin_url():
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (set DUIJIE_REQUIRE_PG=1 to make this a failure)")
    return name


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens.generate()


@pytest.fixture(scope="session")
async def databases(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestDatabases]:
    dbs = TestDatabases(tmp_path_factory.mktemp("db"))
    yield dbs
    await dbs.drop_all()


@pytest.fixture
def pg_only(backend: str) -> Iterator[None]:
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL's concurrent writers (SQLite serialises every write)")
    yield
