"""Test helpers: tokens signed by a throwaway key, and databases on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine

from services.common import migrate
from services.common.settings import JWT_AUDIENCE, JWT_ISSUER

PG_ENV = "DUIJIE_TEST_PG_URL"


def _pem_pair() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


@dataclass
class Tokens:
    """Mints tokens the way the gateway does, for the people of a test scenario."""

    private_pem: str
    public_pem: str
    issued: list[str] = field(default_factory=list)

    @classmethod
    def generate(cls) -> Tokens:
        return cls(*_pem_pair())

    def mint(self, role: str, *, subject: str | None = None, expires_in: int = 600, **claims: Any) -> str:
        now = datetime.now(UTC)
        payload = {
            "sub": subject or f"{role}-{uuid.uuid4().hex[:8]}", "role": role, "username": role,
            "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now, "exp": now + timedelta(seconds=expires_in),
            **{name: value for name, value in claims.items() if value is not None},
        }
        return jwt.encode(payload, self.private_pem, algorithm="EdDSA")

    def headers(self, role: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(role, **claims)}"}

    def officer(self, village_code: str, **claims: Any) -> dict[str, str]:
        return self.headers("officer", village_code=village_code, **claims)

    def coordinator(self, region_code: str, **claims: Any) -> dict[str, str]:
        return self.headers("coordinator", region_code=region_code, **claims)

    def member(self, organisation_id: uuid.UUID | str, **claims: Any) -> dict[str, str]:
        return self.headers("org_member", organisation_id=str(organisation_id), **claims)

    def admin(self, **claims: Any) -> dict[str, str]:
        return self.headers("admin", **claims)

    def service(self, name: str = "matching") -> dict[str, str]:
        return self.headers("service", subject=f"service:{name}")


class TestDatabases:
    """Creates one migrated database per service and backend for a test run, and drops them after."""

    __test__ = False

    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.run_id = uuid.uuid4().hex[:8]
        self.created_pg: list[str] = []

    @staticmethod
    def pg_admin_url() -> str | None:
        return os.environ.get(PG_ENV) or None

    async def create(self, service: str, backend: str, *, label: str = "") -> str:
        """A migrated database; `label` tells apart several databases of one service in a run."""
        name = f"{service}_{label}_{self.run_id}" if label else f"{service}_{self.run_id}"
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{self.tmp_dir / f'{name}.db'}"
        else:
            url = await self._create_pg(f"duijie_t_{name}")
        await asyncio.to_thread(migrate.upgrade, service, url)
        return url

    async def _create_pg(self, name: str) -> str:
        admin_url = self.pg_admin_url()
        assert admin_url, f"{PG_ENV} is not set"
        engine = create_async_engine(_async_pg(admin_url), isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()
        self.created_pg.append(name)
        return _with_database(_async_pg(admin_url), name)

    async def drop_all(self) -> None:
        admin_url = self.pg_admin_url()
        if not admin_url or not self.created_pg:
            return
        engine = create_async_engine(_async_pg(admin_url), isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            for name in self.created_pg:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()


def _async_pg(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise ValueError(f"{PG_ENV} must be a postgresql:// URL, got {url!r}")


def _with_database(url: str, name: str) -> str:
    base, _, rest = url.rpartition("/")
    query = rest.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def empty_tables(engine_owner: Any, metadata: MetaData) -> None:
    """Remove every row a test wrote, keeping the schema and its migration version."""
    async with engine_owner.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                await connection.execute(table.delete())


def migrated_sqlite_url(tmp_dir: Path, service: str) -> str:
    """A fresh SQLite database at head, for tests that run outside the session's event loop."""
    url = f"sqlite+aiosqlite:///{tmp_dir / f'{service}-{uuid.uuid4().hex[:8]}.db'}"
    migrate.upgrade(service, url)
    return url


def fuzz_headers(tokens: Tokens, path: str) -> dict[str, str]:
    """Fuzzing signs in as someone allowed almost everything, so inputs reach the service's rules."""
    return tokens.service() if path.startswith("/internal/") else tokens.admin()
