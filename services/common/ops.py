"""Liveness, readiness (database reachable, migrations at head) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from services.common.db import Database
from services.common.errors import ServiceUnavailable, problem_response
from services.common.messages import Text
from services.common.migrate import current_revision, head_revision

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str
    service: str
    revision: str | None = None


@router.get("/healthz", response_model=Health)
async def healthz(request: Request) -> Health:
    return Health(status="ok", service=request.app.state.service_name)


@router.get("/readyz", response_model=Health, responses={503: {"description": "Not ready"}})
async def readyz(request: Request) -> Health | JSONResponse:
    db: Database = request.app.state.db
    service: str = request.app.state.service_name
    try:
        await db.ping()
    except Exception:
        return problem_response(ServiceUnavailable(Text("数据库无法连接。", "The database is unreachable.")), request)
    revision, head = await current_revision(db), head_revision(service)
    if revision != head:
        return problem_response(
            ServiceUnavailable(
                Text("数据库迁移未到最新（当前 {current}，应为 {head}）。",
                     "Migrations are not at head (at {current}, head is {head})."),
                current=revision, head=head,
            ),
            request,
        )
    return Health(status="ready", service=service, revision=revision)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
