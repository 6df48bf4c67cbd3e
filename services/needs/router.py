"""HTTP surface of the needs service: parse, authorise via the service, answer. Nothing else."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, TypeAdapter
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import spreadsheets as sheets
from services.common.feeds import HistoryEntry
from services.common.http import MAX_PAGE, Page, etag_for, required_version
from services.common.identity import CurrentUser, Principal, ServiceCaller
from services.common.messages import current_locale
from services.common.transactions import DbSession, ReadDatabase, ReadSession, TransactionalRoute
from services.common.vocabulary import Category, Kind, RegionPrefix
from services.needs import service
from services.needs.models import NEED_ROW_KEYS, Commitment, DuplicateStatus, Need, NeedRow, NeedStatus
from services.needs.schemas import (
    NEED_COLUMNS,
    ActionReason,
    CommitmentCreate,
    CommitmentRead,
    DeliveryRecord,
    DuplicateDecision,
    DuplicateRead,
    ImportReport,
    NeedCreate,
    NeedFilters,
    NeedPageJson,
    NeedRead,
    NeedReadJson,
    NeedUpdate,
    RequesterRead,
)

router = APIRouter(route_class=TransactionalRoute, prefix="/api/needs", tags=["needs"])
internal = APIRouter(route_class=TransactionalRoute, prefix="/internal/needs", tags=["internal"])


# The columns need_read takes from an ORM need, worked out once rather than probed per field of every need.
_COPIED_COLUMNS = (
    *(name for name in NeedRead.model_fields if name in Need.__table__.columns), "requester_name", "requester_phone",
)


def need_read(need: Need | NeedRow, principal: Principal) -> NeedRead:
    return NeedRead.model_validate(_need_values(need, principal))


def _need_values(need: Need | NeedRow, principal: Principal) -> dict[str, Any]:
    """What a NeedRead shows of a need to this reader, from the ORM object or from a row of a list."""
    if isinstance(need, Row):
        values = dict(zip(NEED_ROW_KEYS, need, strict=True))  # Row._asdict() rebuilds the key view per row
    else:
        values = {name: getattr(need, name) for name in _COPIED_COLUMNS}
    requester = None
    if values["requester_name"]:
        show_phone = service.can_manage(principal, values["village_code"])
        requester = RequesterRead(name=values["requester_name"], phone=values["requester_phone"] if show_phone else None)
    # possible_duplicates given, not defaulted: pydantic deep-copies a mutable default for every model.
    values.update(remaining=values["quantity"] - values["committed"], requester=requester, possible_duplicates=[])
    return values


async def _with_duplicates(session: AsyncSession, need: Need, principal: Principal) -> NeedRead:
    read = need_read(need, principal)
    read.possible_duplicates = await service.possible_duplicates(session, principal=principal, need=need)
    return read


def _with_etag(response: Response, need: Need) -> None:
    response.headers["ETag"] = etag_for(need.version)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NeedRead)
async def create_need(
    data: NeedCreate, session: DbSession, principal: CurrentUser, request: Request, response: Response
) -> NeedRead:
    need = await service.create_need(session, principal=principal, data=data)
    response.headers["Location"] = str(request.url_for("get_need", need_id=need.id).path)
    _with_etag(response, need)
    return await _with_duplicates(session, need, principal)


async def need_filters(
    status_: Annotated[NeedStatus | None, Query(alias="status")] = None,
    category: Category | None = None,
    kind: Kind | None = None,
    region: RegionPrefix | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    urgency_min: Annotated[int | None, Query(ge=1, le=5)] = None,
    needed_before: date | None = None,
) -> NeedFilters:
    """The filters of the list, shared by the export. Async only to stay off the threadpool."""
    return NeedFilters(
        status=status_, category=category, kind=kind, region=region, q=q, urgency_min=urgency_min,
        needed_before=needed_before,
    )


Filters = Annotated[NeedFilters, Depends(need_filters)]


# The reads below answer with JSON written straight from the database's values by one serialiser call
# (NeedReadJson: NeedRead's fields and spellings), rather than validating each need into a NeedRead
# that FastAPI then serialises again; response_model still documents them as NeedRead.
_NEED_PAGE_JSON = TypeAdapter(NeedPageJson)
_NEED_JSON = TypeAdapter(NeedReadJson)


def _json(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type="application/json", headers=headers)


class NeedFilterQuery(BaseModel):
    """need_filters' parameters as one model: FastAPI validates it in one call rather than seven."""

    status: NeedStatus | None = None
    category: Category | None = None
    kind: Kind | None = None
    region: RegionPrefix | None = None
    q: Annotated[str | None, Field(max_length=100)] = None
    urgency_min: Annotated[int | None, Field(ge=1, le=5)] = None
    needed_before: date | None = None


async def list_filters(query: Annotated[NeedFilterQuery, Query()]) -> NeedFilters:
    """The list's filters: the same parameters as need_filters (the export's), documented and checked alike."""
    return NeedFilters(
        status=query.status, category=query.category, kind=query.kind, region=query.region, q=query.q,
        urgency_min=query.urgency_min, needed_before=query.needed_before,
    )


@router.get("", response_model=Page[NeedRead])
async def list_needs(
    db: ReadDatabase,
    principal: CurrentUser,
    filters: Annotated[NeedFilters, Depends(list_filters)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    needs, next_cursor = await service.read_needs(db, principal=principal, filters=filters, limit=limit, cursor=cursor)
    return _json(_NEED_PAGE_JSON.dump_json({"items": needs, "next_cursor": next_cursor}))  # type: ignore[typeddict-item]


# --- spreadsheets (declared before /{need_id}, which would otherwise claim /export) ---------------

UploadedSheet = Annotated[UploadFile, File(description="XLSX, or CSV in UTF-8 or GB18030 / XLSX 或 UTF-8、GB18030 编码的 CSV")]


@router.get("/import/template", response_class=Response, responses=sheets.SPREADSHEET_RESPONSES)
async def import_template(format: sheets.TableFormat = sheets.TableFormat.XLSX) -> Response:
    """A sheet with the import's headers (in the caller's language) and one example row."""
    body = sheets.template_bytes(NEED_COLUMNS, format, current_locale.get())
    return sheets.attachment(body, format, "needs-template")


@router.post("/import", response_model=ImportReport)
async def import_needs(
    file: UploadedSheet, session: DbSession, principal: CurrentUser, response: Response, dry_run: bool = False
) -> ImportReport:
    """All or nothing: with errors, nothing is written and every row's errors come back (422); `dry_run` only checks."""
    report = await service.import_needs(
        session, principal=principal, data=await sheets.read_upload(file), dry_run=dry_run
    )
    response.status_code = status.HTTP_200_OK if dry_run else status.HTTP_201_CREATED
    return report


@router.get("/export", response_class=StreamingResponse, responses=sheets.SPREADSHEET_RESPONSES)
async def export_needs(
    request: Request,
    principal: CurrentUser,
    filters: Filters,
    format: sheets.TableFormat = sheets.TableFormat.XLSX,
) -> StreamingResponse:
    """The needs a list with the same filters would show, streamed; columns as the import template, plus status and amounts."""
    locale = current_locale.get()
    batches = service.export_batches(request.app.state.db, principal=principal, filters=filters, locale=locale)
    return sheets.streamed(service.export_header(locale), batches, format, "needs")


# --- likely duplicates -------------------------------------------------------------------------

@router.get("/duplicates", response_model=Page[DuplicateRead])
async def list_duplicates(
    session: ReadSession,
    principal: CurrentUser,
    region: RegionPrefix | None = None,
    status_: Annotated[DuplicateStatus, Query(alias="status")] = DuplicateStatus.SUSPECTED,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[DuplicateRead]:
    """Needs that closely resemble an open need of the same village, awaiting the officer's decision. 疑似重复的需求。"""
    items, next_cursor = await service.list_duplicates(
        session, principal=principal, region=region, status=status_, limit=limit, cursor=cursor
    )
    return Page[DuplicateRead](items=items, next_cursor=next_cursor)


@router.post("/{need_id}/duplicate-decision", response_model=NeedRead)
async def decide_duplicate(
    need_id: uuid.UUID, data: DuplicateDecision, session: DbSession, principal: CurrentUser, response: Response
) -> NeedRead:
    """`distinct` keeps both needs; `withdraw` cancels this one as a duplicate. 确认不重复，或撤回本需求。"""
    need = await service.decide_duplicate(session, principal=principal, need_id=need_id, decision=data)
    _with_etag(response, need)
    return await _with_duplicates(session, need, principal)


@router.get("/{need_id}", response_model=NeedRead)
async def get_need(need_id: uuid.UUID, db: ReadDatabase, principal: CurrentUser) -> Response:
    need = await service.read_need(db, principal=principal, need_id=need_id)
    return _json(_NEED_JSON.dump_json(need), {"ETag": etag_for(need["version"])})  # type: ignore[arg-type]


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
async def close_need(
    need_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response, data: ActionReason | None = None
) -> NeedRead:
    """Stop taking offers (with an optional reason, kept in the history). 关闭需求。"""
    need = await service.close_need(session, principal=principal, need_id=need_id, reason=data.reason if data else None)
    _with_etag(response, need)
    return need_read(need, principal)


@router.post("/{need_id}/cancel", response_model=NeedRead)
async def cancel_need(
    need_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response, data: ActionReason | None = None
) -> NeedRead:
    """Withdraw the need (with an optional reason, kept in the history). 撤销需求。"""
    need = await service.cancel_need(session, principal=principal, need_id=need_id, reason=data.reason if data else None)
    _with_etag(response, need)
    return need_read(need, principal)


@router.get("/{need_id}/history", response_model=list[HistoryEntry])
async def need_history(need_id: uuid.UUID, session: ReadSession, principal: CurrentUser) -> list[HistoryEntry]:
    """Who changed what, when and why: the officer of the village, coordinators of its region, admins. 变更记录。"""
    return await service.need_history(session, principal=principal, need_id=need_id)


# --- internal: commitments keyed by match id (service credentials only) -------------------

async def _commitment_read(session: AsyncSession, commitment: Commitment) -> CommitmentRead:
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
