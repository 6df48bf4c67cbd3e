"""HTTP surface of the offers service: parse, authorise via the service, answer. Nothing else."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from starlette.datastructures import URL

from services.common import spreadsheets as sheets
from services.common.feeds import HistoryEntry
from services.common.http import MAX_PAGE, Page, etag_for, required_version
from services.common.identity import CurrentUser, Principal, ServiceCaller
from services.common.messages import current_locale
from services.common.transactions import DbSession, TransactionalRoute
from services.common.vocabulary import Category, Kind, RegionPrefix, VillageCode
from services.offers import service
from services.offers.models import Offer, OfferStatus, Organisation, OrgType, Pairing, PairingStatus, Reservation
from services.offers.schemas import (
    OFFER_COLUMNS,
    ORGANISATION_COLUMNS,
    ActionReason,
    ContactRead,
    DeliveryRecord,
    ImportReport,
    OfferCreate,
    OfferFilters,
    OfferRead,
    OfferUpdate,
    OrganisationCreate,
    OrganisationFilters,
    OrganisationRead,
    OrganisationUpdate,
    PairingCreate,
    PairingFilters,
    PairingRead,
    ReservationCreate,
    ReservationRead,
)

organisations = APIRouter(route_class=TransactionalRoute, prefix="/api/organisations", tags=["organisations"])
offers = APIRouter(route_class=TransactionalRoute, prefix="/api/offers", tags=["offers"])
pairings = APIRouter(route_class=TransactionalRoute, prefix="/api/pairings", tags=["pairings"])
internal = APIRouter(route_class=TransactionalRoute, prefix="/internal/offers", tags=["internal"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
CursorParam = Annotated[str | None, Query(max_length=500)]
Search = Annotated[str | None, Query(max_length=100)]


def _with_etag(response: Response, row: Organisation | Offer | Pairing) -> None:
    response.headers["ETag"] = etag_for(row.version)


def _created(response: Response, location: URL, row: Organisation | Offer | Pairing) -> None:
    response.headers["Location"] = location.path
    _with_etag(response, row)


# --- organisations --------------------------------------------------------------------------------

def organisation_read(organisation: Organisation, principal: Principal) -> OrganisationRead:
    contact = None
    if organisation.contact_name:
        show_phone = service.speaks_for_organisation(principal, organisation)
        contact = ContactRead(name=organisation.contact_name, phone=organisation.contact_phone if show_phone else None)
    fields = {name: getattr(organisation, name) for name in OrganisationRead.model_fields if hasattr(organisation, name)}
    return OrganisationRead.model_validate({**fields, "contact": contact})


@organisations.post("", status_code=status.HTTP_201_CREATED, response_model=OrganisationRead)
async def create_organisation(
    data: OrganisationCreate, session: DbSession, principal: CurrentUser, request: Request, response: Response
) -> OrganisationRead:
    organisation = await service.create_organisation(session, principal=principal, data=data)
    _created(response, request.url_for("get_organisation", organisation_id=organisation.id), organisation)
    return organisation_read(organisation, principal)


async def organisation_filters(
    region: RegionPrefix | None = None,
    verified: bool | None = None,
    org_type: OrgType | None = None,
    q: Search = None,
) -> OrganisationFilters:
    """The filters of the list, shared by the export. Async only to stay off the threadpool."""
    return OrganisationFilters(region=region, verified=verified, org_type=org_type, q=q)


OrganisationFiltersParam = Annotated[OrganisationFilters, Depends(organisation_filters)]


@organisations.get("", response_model=Page[OrganisationRead])
async def list_organisations(
    session: DbSession,
    principal: CurrentUser,
    filters: OrganisationFiltersParam,
    limit: Limit = 50,
    cursor: CursorParam = None,
) -> Page[OrganisationRead]:
    rows, next_cursor = await service.list_organisations(
        session, principal=principal, filters=filters, limit=limit, cursor=cursor
    )
    return Page[OrganisationRead](items=[organisation_read(row, principal) for row in rows], next_cursor=next_cursor)


# --- spreadsheets (declared before /{id}, which would otherwise claim /export) ----------------------

UploadedSheet = Annotated[UploadFile, File(description="XLSX, or CSV in UTF-8 or GB18030 / XLSX 或 UTF-8、GB18030 编码的 CSV")]
DryRun = Annotated[bool, Query(description="Only check the file: report every row's errors and write nothing")]


@organisations.get("/import/template", response_class=Response, responses=sheets.SPREADSHEET_RESPONSES)
async def organisation_import_template(format: sheets.TableFormat = sheets.TableFormat.XLSX) -> Response:
    """A sheet with the import's headers (in the caller's language) and one example row. 组织导入模板。"""
    body = sheets.template_bytes(ORGANISATION_COLUMNS, format, current_locale.get())
    return sheets.attachment(body, format, "organisations-template")


@organisations.post("/import", response_model=ImportReport, status_code=status.HTTP_201_CREATED)
async def import_organisations(
    file: UploadedSheet, session: DbSession, principal: CurrentUser, response: Response, dry_run: DryRun = False
) -> ImportReport:
    """Register many organisations, all or nothing: with errors nothing is written and every row's errors come
    back (422); `dry_run` only checks (200). Who may: as POST /api/organisations. 批量登记组织。"""
    report = await service.import_organisations(
        session, principal=principal, data=await sheets.read_upload(file), dry_run=dry_run
    )
    response.status_code = status.HTTP_200_OK if dry_run else status.HTTP_201_CREATED
    return report


@organisations.get("/export", response_class=StreamingResponse, responses=sheets.SPREADSHEET_RESPONSES)
async def export_organisations(
    request: Request, principal: CurrentUser, filters: OrganisationFiltersParam,
    format: sheets.TableFormat = sheets.TableFormat.XLSX,
) -> StreamingResponse:
    """The organisations the list with the same filters shows, streamed; the import's columns plus id and
    verification. 导出组织。"""
    locale = current_locale.get()
    batches = service.export_organisations(request.app.state.db, principal=principal, filters=filters, locale=locale)
    return sheets.streamed(service.organisation_export_header(locale), batches, format, "organisations")


@organisations.get("/{organisation_id}", response_model=OrganisationRead)
async def get_organisation(
    organisation_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response
) -> OrganisationRead:
    organisation = await service.get_organisation(session, principal=principal, organisation_id=organisation_id)
    _with_etag(response, organisation)
    return organisation_read(organisation, principal)


@organisations.patch("/{organisation_id}", response_model=OrganisationRead)
async def update_organisation(
    organisation_id: uuid.UUID, data: OrganisationUpdate, session: DbSession, principal: CurrentUser, request: Request,
    response: Response,
) -> OrganisationRead:
    organisation = await service.update_organisation(
        session, principal=principal, organisation_id=organisation_id, expected_version=required_version(request),
        data=data,
    )
    _with_etag(response, organisation)
    return organisation_read(organisation, principal)


@organisations.post("/{organisation_id}/verify", response_model=OrganisationRead)
async def verify_organisation(
    organisation_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response
) -> OrganisationRead:
    organisation = await service.verify_organisation(session, principal=principal, organisation_id=organisation_id)
    _with_etag(response, organisation)
    return organisation_read(organisation, principal)


# --- offers ---------------------------------------------------------------------------------------

@offers.post("", status_code=status.HTTP_201_CREATED, response_model=OfferRead)
async def create_offer(
    data: OfferCreate, session: DbSession, principal: CurrentUser, request: Request, response: Response
) -> OfferRead:
    offer = await service.create_offer(session, principal=principal, data=data)
    _created(response, request.url_for("get_offer", offer_id=offer.id), offer)
    return OfferRead.model_validate(offer)


async def offer_filters(
    status_: Annotated[OfferStatus | None, Query(alias="status")] = None,
    category: Category | None = None,
    kind: Kind | None = None,
    region: RegionPrefix | None = None,
    organisation_id: uuid.UUID | None = None,
    q: Search = None,
) -> OfferFilters:
    """The filters of the list, shared by the export. Async only to stay off the threadpool."""
    return OfferFilters(status=status_, category=category, kind=kind, region=region, q=q,
                        organisation_id=organisation_id)


OfferFiltersParam = Annotated[OfferFilters, Depends(offer_filters)]


@offers.get("", response_model=Page[OfferRead])
async def list_offers(
    session: DbSession,
    _principal: CurrentUser,
    filters: OfferFiltersParam,
    limit: Limit = 50,
    cursor: CursorParam = None,
) -> Page[OfferRead]:
    rows, next_cursor = await service.list_offers(session, filters=filters, limit=limit, cursor=cursor)
    return Page[OfferRead](items=[OfferRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@offers.get("/import/template", response_class=Response, responses=sheets.SPREADSHEET_RESPONSES)
async def offer_import_template(format: sheets.TableFormat = sheets.TableFormat.XLSX) -> Response:
    """A sheet with the import's headers (in the caller's language) and one example row. 供给导入模板。"""
    body = sheets.template_bytes(OFFER_COLUMNS, format, current_locale.get())
    return sheets.attachment(body, format, "offers-template")


@offers.post("/import", response_model=ImportReport, status_code=status.HTTP_201_CREATED)
async def import_offers(
    file: UploadedSheet, session: DbSession, principal: CurrentUser, response: Response, dry_run: DryRun = False
) -> ImportReport:
    """Publish many offers, all or nothing: with errors nothing is written and every row's errors come back
    (422); `dry_run` only checks (200). The organisation column takes a unified social credit code or an
    organisation id; a member may leave it out and publishes for their own organisation. 批量发布供给。"""
    report = await service.import_offers(session, principal=principal, data=await sheets.read_upload(file), dry_run=dry_run)
    response.status_code = status.HTTP_200_OK if dry_run else status.HTTP_201_CREATED
    return report


@offers.get("/export", response_class=StreamingResponse, responses=sheets.SPREADSHEET_RESPONSES)
async def export_offers(
    request: Request, _principal: CurrentUser, filters: OfferFiltersParam,
    format: sheets.TableFormat = sheets.TableFormat.XLSX,
) -> StreamingResponse:
    """The offers the list with the same filters shows, streamed; the import's columns plus status and
    reserved, delivered and available amounts. 导出供给。"""
    locale = current_locale.get()
    batches = service.export_offers(request.app.state.db, filters=filters, locale=locale)
    return sheets.streamed(service.offer_export_header(locale), batches, format, "offers")


@offers.get("/{offer_id}", response_model=OfferRead)
async def get_offer(offer_id: uuid.UUID, session: DbSession, _principal: CurrentUser, response: Response) -> OfferRead:
    offer = await service.get_offer(session, offer_id=offer_id)
    _with_etag(response, offer)
    return OfferRead.model_validate(offer)


@offers.patch("/{offer_id}", response_model=OfferRead)
async def update_offer(
    offer_id: uuid.UUID, data: OfferUpdate, session: DbSession, principal: CurrentUser, request: Request,
    response: Response,
) -> OfferRead:
    offer = await service.update_offer(
        session, principal=principal, offer_id=offer_id, expected_version=required_version(request), data=data
    )
    _with_etag(response, offer)
    return OfferRead.model_validate(offer)


@offers.post("/{offer_id}/withdraw", response_model=OfferRead)
async def withdraw_offer(
    offer_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response, data: ActionReason | None = None
) -> OfferRead:
    """No new reservations, for good (with an optional reason, kept in the history). 撤回供给。"""
    offer = await service.withdraw_offer(session, principal=principal, offer_id=offer_id, reason=data.reason if data else None)
    _with_etag(response, offer)
    return OfferRead.model_validate(offer)


@offers.get("/{offer_id}/history", response_model=list[HistoryEntry])
async def offer_history(offer_id: uuid.UUID, session: DbSession, principal: CurrentUser) -> list[HistoryEntry]:
    """Who changed what, when and why: the organisation's members, coordinators governing it, admins. 变更记录。"""
    return await service.offer_history(session, principal=principal, offer_id=offer_id)


# --- pairings (结对帮扶) ------------------------------------------------------------------------------

@pairings.post("", status_code=status.HTTP_201_CREATED, response_model=PairingRead)
async def create_pairing(
    data: PairingCreate, session: DbSession, principal: CurrentUser, request: Request, response: Response
) -> PairingRead:
    pairing = await service.create_pairing(session, principal=principal, data=data)
    _created(response, request.url_for("get_pairing", pairing_id=pairing.id), pairing)
    return PairingRead.model_validate(pairing)


@pairings.get("", response_model=Page[PairingRead])
async def list_pairings(
    session: DbSession,
    _principal: CurrentUser,
    organisation_id: uuid.UUID | None = None,
    village_code: VillageCode | None = None,
    region: RegionPrefix | None = None,
    status_: Annotated[PairingStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    cursor: CursorParam = None,
) -> Page[PairingRead]:
    filters = PairingFilters(organisation_id=organisation_id, village_code=village_code, region=region, status=status_)
    rows, next_cursor = await service.list_pairings(session, filters=filters, limit=limit, cursor=cursor)
    return Page[PairingRead](items=[PairingRead.model_validate(row) for row in rows], next_cursor=next_cursor)


@pairings.get("/{pairing_id}", response_model=PairingRead)
async def get_pairing(pairing_id: uuid.UUID, session: DbSession, _principal: CurrentUser, response: Response) -> PairingRead:
    pairing = await service.get_pairing(session, pairing_id=pairing_id)
    _with_etag(response, pairing)
    return PairingRead.model_validate(pairing)


@pairings.post("/{pairing_id}/end", response_model=PairingRead)
async def end_pairing(pairing_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response) -> PairingRead:
    pairing = await service.end_pairing(session, principal=principal, pairing_id=pairing_id)
    _with_etag(response, pairing)
    return PairingRead.model_validate(pairing)


# --- internal: reservations keyed by match id (service credentials only) ----------------------------

async def _reservation_read(session: DbSession, reservation: Reservation) -> ReservationRead:
    available = await service.offer_available(session, reservation.offer_id)
    return ReservationRead(
        offer_id=reservation.offer_id, match_id=reservation.match_id, quantity=reservation.quantity,
        delivered=reservation.delivered, status=reservation.status, offer_available=available,
    )


@internal.post("/{offer_id}/reservations", response_model=ReservationRead)
async def reserve(
    offer_id: uuid.UUID, data: ReservationCreate, session: DbSession, _caller: ServiceCaller
) -> ReservationRead:
    reservation = await service.reserve(session, offer_id=offer_id, data=data)
    return await _reservation_read(session, reservation)


@internal.post("/{offer_id}/reservations/{match_id}/release", response_model=ReservationRead)
async def release(offer_id: uuid.UUID, match_id: uuid.UUID, session: DbSession, _caller: ServiceCaller) -> ReservationRead:
    reservation = await service.release(session, offer_id=offer_id, match_id=match_id)
    return await _reservation_read(session, reservation)


@internal.post("/{offer_id}/reservations/{match_id}/delivered", response_model=ReservationRead)
async def record_delivered(
    offer_id: uuid.UUID, match_id: uuid.UUID, data: DeliveryRecord, session: DbSession, _caller: ServiceCaller
) -> ReservationRead:
    reservation = await service.record_delivered(
        session, offer_id=offer_id, match_id=match_id, delivered_total=data.delivered_total
    )
    return await _reservation_read(session, reservation)
