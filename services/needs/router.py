"""HTTP surface of the needs service: parse, authorise via the service, answer. Nothing else."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from services.common.http import MAX_PAGE, Page, etag_for, required_version
from services.common.identity import CurrentUser, Principal, ServiceCaller
from services.common.transactions import DbSession, TransactionalRoute
from services.common.vocabulary import Category, Kind, RegionPrefix
from services.needs import service
from services.needs.models import Commitment, Need, NeedStatus
from services.needs.schemas import (
    CommitmentCreate,
    CommitmentRead,
    DeliveryRecord,
    NeedCreate,
    NeedFilters,
    NeedRead,
    NeedUpdate,
    RequesterRead,
)

router = APIRouter(route_class=TransactionalRoute, prefix="/api/needs", tags=["needs"])
internal = APIRouter(route_class=TransactionalRoute, prefix="/internal/needs", tags=["internal"])


def need_read(need: Need, principal: Principal) -> NeedRead:
    requester = None
    if need.requester_name:
        show_phone = service.can_manage(principal, need.village_code)
        requester = RequesterRead(name=need.requester_name, phone=need.requester_phone if show_phone else None)
    return NeedRead.model_validate(
        {**{column: getattr(need, column) for column in NeedRead.model_fields if hasattr(need, column)},
         "requester": requester},
    )


def _with_etag(response: Response, need: Need) -> None:
    response.headers["ETag"] = etag_for(need.version)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NeedRead)
async def create_need(
    data: NeedCreate, session: DbSession, principal: CurrentUser, request: Request, response: Response
) -> NeedRead:
    need = await service.create_need(session, principal=principal, data=data)
    response.headers["Location"] = str(request.url_for("get_need", need_id=need.id).path)
    _with_etag(response, need)
    return need_read(need, principal)


@router.get("", response_model=Page[NeedRead])
async def list_needs(
    session: DbSession,
    principal: CurrentUser,
    status_: Annotated[NeedStatus | None, Query(alias="status")] = None,
    category: Category | None = None,
    kind: Kind | None = None,
    region: RegionPrefix | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    urgency_min: Annotated[int | None, Query(ge=1, le=5)] = None,
    needed_before: date | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[NeedRead]:
    filters = NeedFilters(
        status=status_, category=category, kind=kind, region=region, q=q, urgency_min=urgency_min,
        needed_before=needed_before,
    )
    needs, next_cursor = await service.list_needs(
        session, principal=principal, filters=filters, limit=limit, cursor=cursor
    )
    return Page[NeedRead](items=[need_read(need, principal) for need in needs], next_cursor=next_cursor)


@router.get("/{need_id}", response_model=NeedRead)
async def get_need(need_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response) -> NeedRead:
    need = await service.get_need(session, principal=principal, need_id=need_id)
    _with_etag(response, need)
    return need_read(need, principal)


@router.patch("/{need_id}", response_model=NeedRead)
async def update_need(
    need_id: uuid.UUID, data: NeedUpdate, session: DbSession, principal: CurrentUser, request: Request,
    response: Response,
) -> NeedRead:
    need = await service.update_need(
        session, principal=principal, need_id=need_id, expected_version=required_version(request), data=data
    )
    _with_etag(response, need)
    return need_read(need, principal)


@router.post("/{need_id}/close", response_model=NeedRead)
async def close_need(need_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response) -> NeedRead:
    need = await service.close_need(session, principal=principal, need_id=need_id)
    _with_etag(response, need)
    return need_read(need, principal)


@router.post("/{need_id}/cancel", response_model=NeedRead)
async def cancel_need(need_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response) -> NeedRead:
    need = await service.cancel_need(session, principal=principal, need_id=need_id)
    _with_etag(response, need)
    return need_read(need, principal)


# --- internal: commitments keyed by match id (service credentials only) -------------------

async def _commitment_read(session: DbSession, commitment: Commitment) -> CommitmentRead:
    remaining = await service.need_remaining(session, commitment.need_id)
    return CommitmentRead(
        need_id=commitment.need_id, match_id=commitment.match_id, quantity=commitment.quantity,
        delivered=commitment.delivered, status=commitment.status, need_remaining=remaining,
    )


@internal.post("/{need_id}/commitments", response_model=CommitmentRead)
async def commit(need_id: uuid.UUID, data: CommitmentCreate, session: DbSession, _caller: ServiceCaller) -> CommitmentRead:
    commitment = await service.commit(session, need_id=need_id, data=data)
    return await _commitment_read(session, commitment)


@internal.post("/{need_id}/commitments/{match_id}/release", response_model=CommitmentRead)
async def release(need_id: uuid.UUID, match_id: uuid.UUID, session: DbSession, _caller: ServiceCaller) -> CommitmentRead:
    commitment = await service.release(session, need_id=need_id, match_id=match_id)
    return await _commitment_read(session, commitment)


@internal.post("/{need_id}/commitments/{match_id}/delivered", response_model=CommitmentRead)
async def record_delivered(
    need_id: uuid.UUID, match_id: uuid.UUID, data: DeliveryRecord, session: DbSession, _caller: ServiceCaller
) -> CommitmentRead:
    commitment = await service.record_delivered(
        session, need_id=need_id, match_id=match_id, delivered_total=data.delivered_total
    )
    return await _commitment_read(session, commitment)
