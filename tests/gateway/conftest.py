"""The gateway in front of the real needs app and a stand-in offers app, all in-process."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.models import Base as GatewayBase
from gateway.service import bootstrap_admin
from services.needs.app import create_app as create_needs_app
from services.needs.config import NeedsSettings
from services.needs.models import Base as NeedsBase
from tests.support import TestDatabases, Tokens, empty_tables

ADMIN_USERNAME, ADMIN_PASSWORD = "root", "duijie-root-passphrase"
PASSWORD = "hard-to-guess-2026"

LUZHOU_VILLAGE = "441302104201"  # a village of 芦洲镇, 惠城区, 惠州
CENSHAN_VILLAGE = "450123105203"  # 岑山村, 隆安县, 南宁

# Organisations the stand-in offers service knows, by where they serve.
HUICHENG_ORG = uuid.UUID("7d4b2c1e-0000-4000-8000-000000000001")  # 惠城区
LONGAN_ORG = uuid.UUID("7d4b2c1e-0000-4000-8000-000000000002")  # 隆安县
ORGANISATIONS = {
    HUICHENG_ORG: {"id": str(HUICHENG_ORG), "name": "惠州市慈善总会", "region_codes": ["441302"]},
    LONGAN_ORG: {"id": str(LONGAN_ORG), "name": "隆安县志愿者协会", "region_codes": ["450123"]},
}


def gateway_settings(database_url: str, tokens: Tokens, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "jwt_private_key": tokens.private_pem,
        "jwt_public_key": tokens.public_pem,
        "needs_url": "http://needs",
        "offers_url": "http://offers",
        "matching_url": None,
        "DUIJIE_BOOTSTRAP_ADMIN": f"{ADMIN_USERNAME}:{ADMIN_PASSWORD}",
        **overrides,
    }
    return GatewaySettings(**values)


def offers_stand_in() -> FastAPI:
    """Answers what the gateway asks of offers, and echoes what the proxy sends it."""
    app = FastAPI(title="offers (stand-in)")

    @app.get("/api/organisations/{organisation_id}")
    async def get_organisation(organisation_id: uuid.UUID, request: Request) -> dict[str, Any]:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            raise HTTPException(401)
        if organisation_id not in ORGANISATIONS:
            raise HTTPException(404)
        return ORGANISATIONS[organisation_id]

    @app.api_route("/api/offers/echo/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "headers": dict(request.headers),
                "body": body.decode(),
            },
            status_code=202,
            headers={"ETag": '"7"', "Retry-After": "3", "X-Upstream-Only": "yes", "Set-Cookie": "leak=1"},
        )

    @app.get("/api/pairings/export")
    async def export() -> Response:
        rows = "organisation,village\n" + "".join(f"org-{n},village-{n}\n" for n in range(5000))
        return Response(rows, media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="pairings.csv"'})

    @app.get("/internal/changes")
    async def changes() -> dict[str, Any]:
        return {"items": [], "last_seq": 0}

    return app


@dataclass
class Gateway:
    app: FastAPI
    client: httpx.AsyncClient
    tokens: Tokens
    settings: GatewaySettings

    async def login(self, username: str, password: str) -> httpx.Response:
        return await self.client.post("/auth/token", data={"username": username, "password": password})

    async def headers_for(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        response = await self.login(username, password)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def admin(self) -> dict[str, str]:
        return await self.headers_for(ADMIN_USERNAME, ADMIN_PASSWORD)

    async def create_user(self, creator: dict[str, str], **body: Any) -> httpx.Response:
        return await self.client.post("/auth/users", json={"password": PASSWORD, **body}, headers=creator)

    async def new_user(self, creator: dict[str, str], **body: Any) -> dict[str, str]:
        """Create someone and sign in as them."""
        response = await self.create_user(creator, **body)
        assert response.status_code == 201, response.text
        return await self.headers_for(body["username"], body.get("password", PASSWORD))


@pytest.fixture(scope="session")
async def gateway_upstream_databases(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestDatabases]:
    # Its own set (own run id), so the needs database here never collides with the needs suite's.
    dbs = TestDatabases(tmp_path_factory.mktemp("gateway-upstreams"))
    yield dbs
    await dbs.drop_all()


@pytest.fixture(scope="session")
async def gateway_needs_app(
    backend: str, gateway_upstream_databases: TestDatabases, tokens: Tokens
) -> AsyncIterator[FastAPI]:
    url = await gateway_upstream_databases.create("needs", backend)
    app = create_needs_app(NeedsSettings(database_url=url, jwt_public_key=tokens.public_pem))
    yield app
    await app.state.db.dispose()


@pytest.fixture(scope="session")
def gateway_offers_app() -> FastAPI:
    return offers_stand_in()


@pytest.fixture(scope="session")
async def gateway_database_url(backend: str, databases: TestDatabases) -> str:
    return await databases.create("gateway", backend)


@pytest.fixture(scope="session")
async def gateway_app(
    gateway_database_url: str, tokens: Tokens, gateway_needs_app: FastAPI, gateway_offers_app: FastAPI
) -> AsyncIterator[FastAPI]:
    app = create_app(
        gateway_settings(gateway_database_url, tokens),
        upstream_transports={
            "needs": httpx.ASGITransport(app=gateway_needs_app),
            "offers": httpx.ASGITransport(app=gateway_offers_app),
        },
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def gateway(gateway_app: FastAPI, gateway_needs_app: FastAPI, tokens: Tokens) -> AsyncIterator[Gateway]:
    settings: GatewaySettings = gateway_app.state.settings
    await bootstrap_admin(gateway_app.state.db, settings.bootstrap_credentials)  # the previous test emptied the tables
    transport = httpx.ASGITransport(app=gateway_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Gateway(gateway_app, client, tokens, settings)
    await empty_tables(gateway_app.state.db, GatewayBase.metadata)
    await empty_tables(gateway_needs_app.state.db, NeedsBase.metadata)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` on a real socket (uvicorn), so the gateway reaches it through its production transport."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # uvicorn offers a flag, not an event
        if task.done():
            task.result()  # startup failed: raise its error here
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def closed_port() -> int:
    """A port nothing listens on: bound once to learn a free number, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def another_gateway(
    database_url: str, tokens: Tokens, *, transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """A second gateway process on the same database, configured differently, started and stopped properly."""
    app = create_app(gateway_settings(database_url, tokens, **overrides), upstream_transports=transports)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as client:
        yield client
