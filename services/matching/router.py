"""HTTP surface of the matching service: parse, authorise via the service, answer. Nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import spreadsheets as sheets
from services.common.errors import CORRECT_FIELDS, FieldError, ValidationFailed
from services.common.http import MAX_PAGE, Page, etag_for
from services.common.identity import CurrentUser
from services.common.messages import Text, current_locale
from services.common.transactions import DbSession, ReadSession, TransactionalRoute
from services.common.vocabulary import RegionPrefix
from services.matching import lifecycle, notifications, reports, repository, service, webhooks
from services.matching.config import MatchingSettings
from services.matching.models import Match, MatchEvent, MatchRun, MatchStatus, RuleSetRow, Unmatched, Webhook
from services.matching.readmodel import ReadModelCache
from services.matching.runner import MatchRunner
from services.matching.saga import Saga
from services.matching.saga_route import SagaRoute
from services.matching.schemas import (
    CandidateRead,
    CandidatesRead,
    DeliveryCreate,
    DeliveryFilters,
    DeliveryRead,
    FollowUpCreate,
    FollowUpRead,
    MatchCreate,
    MatchDetailRead,
    MatchEventRead,
    MatchFilters,
    MatchRead,
    MatchRunCreate,
    MatchRunRead,
    NotificationRead,
    ReasonBody,
    ReasonRead,
    ReceiptCreate,
    ReceiptRead,
    RuleExplanationRead,
    RuleSetRead,
    RuleSetUpdate,
    SummaryReportRead,
    UnmatchedRead,
    WebhookPut,
    WebhookRead,
    YearsReportRead,
    quantity_of,
)
from services.matching.scoring import Candidate, RuleExplanation

candidates = APIRouter(route_class=TransactionalRoute, prefix="/api/candidates", tags=["candidates"])
rulesets = APIRouter(route_class=TransactionalRoute, prefix="/api/rulesets", tags=["rulesets"])
runs = APIRouter(route_class=TransactionalRoute, prefix="/api/match-runs", tags=["match-runs"])
matches = APIRouter(route_class=TransactionalRoute, prefix="/api/matches", tags=["matches"])
# approve and cancel run a saga that commits step by step: their Idempotency-Key has an in-progress marker.
match_sagas = APIRouter(route_class=SagaRoute, prefix="/api/matches", tags=["matches"])
audit = APIRouter(route_class=TransactionalRoute, prefix="/api/audit", tags=["audit"])
notifications_router = APIRouter(route_class=TransactionalRoute, prefix="/api/notifications", tags=["notifications"])
webhooks_router = APIRouter(route_class=TransactionalRoute, prefix="/api/webhooks", tags=["webhooks"])
reports_router = APIRouter(route_class=TransactionalRoute, prefix="/api/reports", tags=["reports"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
CursorParam = Annotated[str | None, Query(max_length=500)]


def _cache(request: Request) -> ReadModelCache:
    cache: ReadModelCache = request.app.state.read_models
    return cache


def _runner(request: Request) -> MatchRunner:
    runner: MatchRunner = request.app.state.match_runner
    return runner


def _settings(request: Request) -> MatchingSettings:
    settings: MatchingSettings = request.app.state.settings
    return settings


def _saga(request: Request) -> Saga:
    saga: Saga = request.app.state.saga
    return saga


SagaDep = Annotated[Saga, Depends(_saga)]
Cache = Annotated[ReadModelCache, Depends(_cache)]


async def _refresh_before_session(cache: ReadModelCache, session: AsyncSession) -> None:
    """Catch the cache up, unless the request's session has begun already (an Idempotency-Key was looked up):
    on SQLite every transaction takes the write lock, so the refresh's own session would wait for the request's.
    The feed sync refreshes the cache continually anyway; this only saves a request from a moment's lag."""
    if not session.in_transaction():
        await cache.refresh(force=False)
Runner = Annotated[MatchRunner, Depends(_runner)]
Settings = Annotated[MatchingSettings, Depends(_settings)]


def _explanation(items: Sequence[RuleExplanation] | Sequence[dict[str, Any]]) -> list[RuleExplanationRead]:
    locale = current_locale.get()
    result = []
    for item in items:
        values = item if isinstance(item, dict) else {
            "rule": item.rule, "weight": item.weight, "score": item.score, "reason_zh": item.reason_zh,
            "reason_en": item.reason_en,
        }
        reason = values["reason_zh"] if locale == "zh" else values["reason_en"]
        result.append(RuleExplanationRead(reason=reason, **values))
    return result


# --- rule sets ------------------------------------------------------------------------------------

def _ruleset_read(row: RuleSetRow, response: Response) -> RuleSetRead:
    response.headers["ETag"] = etag_for(row.version)
    return RuleSetRead.model_validate(row, from_attributes=True)


@rulesets.get("/current", response_model=RuleSetRead, summary="当前匹配规则 / The current rule set")
async def get_current_ruleset(session: DbSession, _principal: CurrentUser, response: Response) -> RuleSetRead:
    """权重与参数，及其版本号。The weights and parameters in force, and their version."""
    return _ruleset_read(await service.current_ruleset(session), response)


@rulesets.put("/current", response_model=RuleSetRead, summary="发布新版本规则 / Publish a new rule set version (admin)")
async def put_current_ruleset(
    data: RuleSetUpdate, session: DbSession, principal: CurrentUser, request: Request, response: Response,
    cache: Cache, background: BackgroundTasks,
) -> RuleSetRead:
    """整套规则成为新版本；If-Match 可选，给出时须为当前版本。The whole rule set becomes a new version;
    If-Match is optional and, when sent, must name the current version."""
    expected = _optional_version(request)
    row = await service.replace_ruleset(session, principal=principal, data=data, expected_version=expected)
    # Candidates use the cache's rule set: forget it now, and again once committed (a refresh may read between).
    cache.forget_ruleset()
    background.add_task(cache.forget_ruleset)
    return _ruleset_read(row, response)


@rulesets.get("/{version}", response_model=RuleSetRead, summary="某一版本的规则 / One version of the rules")
async def get_ruleset(
    version: Annotated[int, Path(ge=1, le=2**31 - 1)], session: DbSession, _principal: CurrentUser, response: Response
) -> RuleSetRead:
    return _ruleset_read(await service.get_ruleset(session, version=version), response)


def _optional_version(request: Request) -> int | None:
    header = request.headers.get("if-match")
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    return int(value) if value.isdigit() else -1


# --- candidates -----------------------------------------------------------------------------------

def _candidate_read(candidate: Candidate, cache: ReadModelCache, version: int) -> CandidateRead:
    offer = cache.offers.get(candidate.offer_id)
    need = cache.needs.get(candidate.need_id)
    return CandidateRead(
        need_id=uuid.UUID(candidate.need_id), offer_id=uuid.UUID(candidate.offer_id),
        organisation_id=uuid.UUID(offer.organisation_id) if offer else None,
        village_code=need.village_code if need else None, score=candidate.score,
        quantity=quantity_of(candidate.quantity), ruleset_version=version,
        explanation=_explanation(candidate.explanation),
    )


@candidates.get("", response_model=CandidatesRead, summary="候选排序 / Ranked candidates")
async def list_candidates(
    session: ReadSession,
    principal: CurrentUser,
    cache: Cache,
    need_id: uuid.UUID | None = None,
    offer_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> CandidatesRead:
    """`need_id`：该需求的最佳供给；`offer_id`：该供给最适合的需求（二者只给一个）。每项附逐条规则的得分与理由。

    `need_id`: the best offers for a need; `offer_id`: the needs an offer fits best (exactly one of them).
    Each item carries its score rule by rule, with reasons in Chinese and English."""
    if (need_id is None) == (offer_id is None):
        message = Text("need_id 与 offer_id 须且只须给出一个", "Give exactly one of need_id and offer_id")
        raise ValidationFailed(CORRECT_FIELDS, errors=[FieldError("need_id", message), FieldError("offer_id", message)])
    await _refresh_before_session(cache, session)
    ruleset = await service.candidates_ruleset(cache, session)
    why_none = None
    if need_id is not None:
        found, rejection = await service.candidates_of_need(
            cache, principal=principal, need_id=need_id, ruleset=ruleset, limit=limit
        )
        if rejection is not None:
            why_none = ReasonRead(code=rejection.code.value, reason=rejection.text.render(), reason_zh=rejection.text.zh,
                                  reason_en=rejection.text.en)
    else:
        assert offer_id is not None
        found = await service.candidates_of_offer(cache, principal=principal, offer_id=offer_id, ruleset=ruleset, limit=limit)
    return CandidatesRead(
        items=[_candidate_read(candidate, cache, ruleset.version) for candidate in found],
        ruleset_version=ruleset.version, why_none=why_none,
    )


# --- match runs -----------------------------------------------------------------------------------

def _run_read(run: MatchRun) -> MatchRunRead:
    return MatchRunRead.model_validate(run, from_attributes=True)


@runs.post("", status_code=status.HTTP_201_CREATED, response_model=MatchRunRead,
           summary="在一个地区运行匹配 / Run matching over a region")
async def create_run(
    data: MatchRunCreate, session: DbSession, principal: CurrentUser, settings: Settings, runner: Runner,
    request: Request, response: Response, background: BackgroundTasks,
) -> MatchRunRead:
    """协调员（辖区内）或管理员。运行在后台进行：先为 queued，随后可查询进度。同一地区同时只能有一次运行（否则 409）。

    A coordinator inside their region, or an admin. The run proceeds in the background (queued, then running
    with progress); one run at a time per region (409 otherwise)."""
    run = await service.start_run(
        session, principal=principal, region_code=data.region_code, stale_after=settings.run_stale_seconds
    )
    response.headers["Location"] = request.url_for("get_run", run_id=run.id).path
    # After the response, so after the commit: the runner reads the run from the database.
    background.add_task(runner.start, run.id)
    return _run_read(run)


@runs.get("", response_model=Page[MatchRunRead], summary="匹配运行列表 / Match runs")
async def list_runs(
    session: DbSession, principal: CurrentUser, region: RegionPrefix | None = None, limit: Limit = 50,
    cursor: CursorParam = None,
) -> Page[MatchRunRead]:
    rows, next_cursor = await service.list_runs(session, principal=principal, region=region, limit=limit, cursor=cursor)
    return Page[MatchRunRead](items=[_run_read(row) for row in rows], next_cursor=next_cursor)


@runs.get("/{run_id}", response_model=MatchRunRead, summary="运行状态与结果 / A run's progress and results")
async def get_run(run_id: uuid.UUID, session: DbSession, principal: CurrentUser) -> MatchRunRead:
    return _run_read(await service.get_run(session, principal=principal, run_id=run_id))


def _unmatched_read(row: Unmatched) -> UnmatchedRead:
    reason = row.reason_zh if current_locale.get() == "zh" else row.reason_en
    return UnmatchedRead(need_id=row.need_id, village_code=row.village_code, code=row.code, rejection=row.rejection,
                         reason=reason, reason_zh=row.reason_zh, reason_en=row.reason_en)


@runs.get("/{run_id}/unmatched", response_model=Page[UnmatchedRead], summary="未匹配的需求及原因 / Needs left unmatched, and why")
async def list_unmatched(
    run_id: uuid.UUID, session: DbSession, principal: CurrentUser, limit: Limit = 50, cursor: CursorParam = None
) -> Page[UnmatchedRead]:
    rows, next_cursor = await service.list_unmatched(session, principal=principal, run_id=run_id, limit=limit, cursor=cursor)
    return Page[UnmatchedRead](items=[_unmatched_read(row) for row in rows], next_cursor=next_cursor)


# --- matches --------------------------------------------------------------------------------------

def _in_locale(zh: str | None, en: str | None) -> str | None:
    return zh if current_locale.get() == "zh" or en is None else en


def _match_fields(match: Match) -> dict[str, Any]:
    receipt = None
    if match.received is not None and match.received_at is not None:
        receipt = ReceiptRead(quantity=match.received, satisfaction=match.satisfaction or 0, comment=match.receipt_comment,
                              received_by=match.received_by or "", received_at=match.received_at)
    return dict(
        id=match.id, run_id=match.run_id, need_id=match.need_id, offer_id=match.offer_id,
        organisation_id=match.organisation_id, village_code=match.village_code, region_code=match.region_code,
        quantity=match.quantity, unit=match.unit, score=match.score, explanation=_explanation(match.explanation),
        ruleset_version=match.ruleset_version, status=MatchStatus(match.status),
        status_reason=_in_locale(match.status_reason, match.status_reason_en), status_reason_zh=match.status_reason,
        status_reason_en=match.status_reason_en, saga_step=match.saga_step, origin=match.origin, note=match.note,
        delivered=match.delivered, receipt=receipt,
        version=match.version, created_by=match.created_by, created_at=match.created_at, updated_at=match.updated_at,
    )


def match_read(match: Match) -> MatchRead:
    return MatchRead(**_match_fields(match))


def event_read(row: MatchEvent) -> MatchEventRead:
    return MatchEventRead(
        id=row.id, match_id=row.match_id, village_code=row.village_code, organisation_id=row.organisation_id,
        action=row.action, from_status=row.from_status, to_status=row.to_status, actor=row.actor,
        actor_role=row.actor_role, changes=row.changes, reason=_in_locale(row.reason_zh, row.reason_en),
        reason_zh=row.reason_zh, reason_en=row.reason_en, created_at=row.created_at,
    )


async def match_filters(
    status_: Annotated[MatchStatus | None, Query(alias="status")] = None,
    region: RegionPrefix | None = None,
    need_id: uuid.UUID | None = None,
    offer_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
) -> MatchFilters:
    """The filters of the list, shared by its export. Async only to stay off the threadpool."""
    return MatchFilters(status=status_, region=region, need_id=need_id, offer_id=offer_id, run_id=run_id)


MatchFiltersDep = Annotated[MatchFilters, Depends(match_filters)]


@matches.get("", response_model=Page[MatchRead], summary="对接列表 / Matches")
async def list_matches(
    session: DbSession, principal: CurrentUser, filters: MatchFiltersDep, limit: Limit = 50, cursor: CursorParam = None,
) -> Page[MatchRead]:
    """村干部看本村的，组织成员看本组织的，协调员看辖区内的，管理员看全部。
    An officer sees their village's, a member their organisation's, a coordinator their region's, an admin all."""
    rows, next_cursor = await service.list_matches(session, principal=principal, filters=filters, limit=limit, cursor=cursor)
    return Page[MatchRead](items=[match_read(row) for row in rows], next_cursor=next_cursor)


# --- spreadsheets (declared before /{match_id}, which would otherwise claim /export) ----------------

@matches.get("/export", response_class=StreamingResponse, responses=sheets.SPREADSHEET_RESPONSES,
             summary="导出对接 / Export matches (XLSX or CSV)")
async def export_matches(
    request: Request, principal: CurrentUser, filters: MatchFiltersDep,
    format: sheets.TableFormat = sheets.TableFormat.XLSX,
) -> StreamingResponse:
    """与列表相同的筛选与权限，分批流式导出；表头随调用者的语言。
    The matches the list would show with the same filters (and the same authorisation), streamed in batches;
    headers in the caller's language, amounts as exact decimals."""
    locale = current_locale.get()
    batches = service.export_matches(request.app.state.db, principal=principal, filters=filters, locale=locale)
    return sheets.streamed(service.export_header(service.MATCH_EXPORT_HEADER, locale), batches, format, "matches")


@matches.get("/deliveries/export", response_class=StreamingResponse, responses=sheets.SPREADSHEET_RESPONSES,
             summary="导出交付记录 / Export deliveries (XLSX or CSV)")
async def export_deliveries(
    request: Request,
    principal: CurrentUser,
    region: RegionPrefix | None = None,
    organisation_id: uuid.UUID | None = None,
    match_id: uuid.UUID | None = None,
    need_id: uuid.UUID | None = None,
    date_from: Annotated[date | None, Query(alias="from", description="First delivery date included")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Last delivery date included")] = None,
    format: sheets.TableFormat = sheets.TableFormat.XLSX,
) -> StreamingResponse:
    """调用者可见的对接的每一次交付（每行一次，数量为该次交付量，另列累计），按交付日期、地区、组织筛选。
    Every delivery of the matches the caller may see (one line per delivery: its own quantity, and the cumulative
    total beside it), filtered by delivery date, region and organisation."""
    filters = DeliveryFilters(region=region, organisation_id=organisation_id, match_id=match_id, need_id=need_id,
                              date_from=date_from, date_to=date_to)
    service.check_delivery_filters(filters)
    locale = current_locale.get()
    batches = service.export_deliveries(request.app.state.db, principal=principal, filters=filters, locale=locale)
    return sheets.streamed(service.export_header(service.DELIVERY_EXPORT_HEADER, locale), batches, format, "deliveries")


@matches.get("/{match_id}", response_model=MatchDetailRead, summary="一条对接及其经过 / One match, with its history")
async def get_match(match_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response) -> MatchDetailRead:
    """村干部、组织成员、辖区协调员都能看到状态、交付、回访和全部经过。
    The village's officer, the organisation's members and the region's coordinators see its status,
    deliveries, follow-ups and whole history."""
    match = await service.get_match(session, principal=principal, match_id=match_id)
    response.headers["ETag"] = etag_for(match.version)
    return MatchDetailRead(
        **_match_fields(match),
        deliveries=[DeliveryRead.model_validate(row) for row in await repository.deliveries_of(session, match.id)],
        follow_ups=[FollowUpRead.model_validate(row) for row in await repository.follow_ups_of(session, match.id)],
        history=[event_read(row) for row in await repository.match_events(session, match.id)],
    )


@matches.post("", status_code=status.HTTP_201_CREATED, response_model=MatchRead,
              summary="提议对接或认捐 / Propose a match, or pledge an offer")
async def create_match(
    data: MatchCreate, session: DbSession, principal: CurrentUser, cache: Cache, request: Request, response: Response
) -> MatchRead:
    """协调员（该村在其辖区内）提议，或组织成员以本组织的供给认捐 → `proposed`。硬性条件按读模型检查；数量不得超过
    需求剩余与供给可用（否则 409）。

    A coordinator whose region covers the village proposes, or an organisation member pledges their own offer →
    `proposed`. Hard filters are checked against the read models; the quantity may not exceed the need's
    remaining nor the offer's available (409 otherwise)."""
    await _refresh_before_session(cache, session)
    ruleset = service.engine_ruleset(await service.current_ruleset(session))
    match = await lifecycle.propose(session, cache, principal=principal, data=data, ruleset=ruleset)
    response.headers["Location"] = request.url_for("get_match", match_id=match.id).path
    response.headers["ETag"] = etag_for(match.version)
    return match_read(match)


@match_sagas.post("/{match_id}/approve", response_model=MatchRead,
                  responses={202: {"model": MatchRead, "description": "Still approving: the worker finishes it"},
                             409: {"description": "Failed (with the reason), or not approvable now"}},
                  summary="批准对接（预留并承诺）/ Approve a match (reserve and commit)")
async def approve_match(match_id: uuid.UUID, principal: CurrentUser, saga: SagaDep, response: Response) -> MatchRead:
    """辖区协调员或管理员。先记为 approving，再在供给上预留、在需求上承诺（均以对接编号为幂等键）；被拒则释放已占用的并记为
    failed（409，附原因）；上游暂时故障时重试，仍未完成则返回 202，由后台继续。

    A coordinator of the region or an admin. `approving` is stored first; then the quantity is reserved on the
    offer and committed to the need, both keyed by the match id. A refusal releases whatever was taken and ends
    `failed` (409 with the reason); transient upstream failures are retried, and what is still unfinished is
    answered 202 and finished by the worker."""
    match = await saga.approve(principal=principal, match_id=match_id)
    if match.status == MatchStatus.FAILED:
        raise lifecycle.failed_error(match)
    if match.status == MatchStatus.APPROVING:
        response.status_code = status.HTTP_202_ACCEPTED
    response.headers["ETag"] = etag_for(match.version)
    return match_read(match)


@match_sagas.post("/{match_id}/cancel", response_model=MatchRead,
                  responses={202: {"model": MatchRead, "description": "Still releasing: the worker finishes it"}},
                  summary="取消对接 / Cancel a match")
async def cancel_match(match_id: uuid.UUID, data: ReasonBody, principal: CurrentUser, saga: SagaDep, response: Response) -> MatchRead:
    """协调员可取消提议中的或尚无交付的已批准对接（释放预留与承诺）；组织可撤回本组织尚未批准的认捐。

    A coordinator cancels a proposed match, or an approved one with nothing delivered yet (its reservation and
    commitment are released); an organisation may withdraw its own pledge before approval."""
    match = await saga.cancel(principal=principal, match_id=match_id, reason=data.reason)
    if match.status == MatchStatus.CANCELLING:
        response.status_code = status.HTTP_202_ACCEPTED
    response.headers["ETag"] = etag_for(match.version)
    return match_read(match)


@matches.post("/{match_id}/reject", response_model=MatchRead, summary="驳回提议 / Reject a proposal")
async def reject_match(match_id: uuid.UUID, data: ReasonBody, session: DbSession, principal: CurrentUser) -> MatchRead:
    return match_read(await lifecycle.reject(session, principal=principal, match_id=match_id, reason=data.reason))


@matches.post("/{match_id}/deliveries", status_code=status.HTTP_201_CREATED, response_model=MatchRead,
              summary="登记交付 / Record a delivery")
async def record_delivery(
    match_id: uuid.UUID, data: DeliveryCreate, session: DbSession, principal: CurrentUser, saga: SagaDep,
    background: BackgroundTasks,
) -> MatchRead:
    """提供方组织的成员；可分批，累计不超过批准数量。全部交付后状态为 delivered，等待村里确认。
    Members of the giving organisation; partial deliveries add up to at most the approved quantity. Once all
    of it is delivered the match is `delivered`, waiting for the village to confirm."""
    match = await lifecycle.record_delivery(session, principal=principal, match_id=match_id, data=data)
    # After the commit: offers and needs learn the cumulative total (the worker retries what does not get through).
    background.add_task(saga.push_deliveries, match.id)
    return match_read(match)


@matches.get("/{match_id}/deliveries", response_model=list[DeliveryRead], summary="交付记录 / Deliveries")
async def list_deliveries(match_id: uuid.UUID, session: DbSession, principal: CurrentUser) -> list[DeliveryRead]:
    match = await service.get_match(session, principal=principal, match_id=match_id)
    return [DeliveryRead.model_validate(row) for row in await repository.deliveries_of(session, match.id)]


@matches.post("/{match_id}/receipt", response_model=MatchRead, summary="确认收货 / Confirm receipt")
async def record_receipt(match_id: uuid.UUID, data: ReceiptCreate, session: DbSession, principal: CurrentUser) -> MatchRead:
    """只有受助村的村干部。A delivered match, confirmed by the receiving village's officer only."""
    return match_read(await lifecycle.record_receipt(session, principal=principal, match_id=match_id, data=data))


@matches.post("/{match_id}/follow-ups", status_code=status.HTTP_201_CREATED, response_model=FollowUpRead,
              summary="登记回访 / Record a follow-up visit")
async def record_follow_up(match_id: uuid.UUID, data: FollowUpCreate, session: DbSession, principal: CurrentUser) -> FollowUpRead:
    row = await lifecycle.record_follow_up(session, principal=principal, match_id=match_id, data=data)
    return FollowUpRead.model_validate(row)


@matches.get("/{match_id}/follow-ups", response_model=list[FollowUpRead], summary="回访记录 / Follow-up visits")
async def list_follow_ups(match_id: uuid.UUID, session: DbSession, principal: CurrentUser) -> list[FollowUpRead]:
    match = await service.get_match(session, principal=principal, match_id=match_id)
    return [FollowUpRead.model_validate(row) for row in await repository.follow_ups_of(session, match.id)]


@matches.get("/{match_id}/history", response_model=list[MatchEventRead], summary="对接的经过 / A match's history")
async def match_history(match_id: uuid.UUID, session: DbSession, principal: CurrentUser) -> list[MatchEventRead]:
    """每次状态变化：谁、何时、从何到何、改了什么、为什么。Every change: who, when, from → to, what changed and why."""
    return [event_read(row) for row in await lifecycle.history(session, principal=principal, match_id=match_id)]


# --- audit, notifications, webhooks ---------------------------------------------------------------

@audit.get("", response_model=Page[MatchEventRead], summary="对接审计记录 / Audit trail of matches")
async def list_audit(
    session: DbSession, principal: CurrentUser, region: RegionPrefix | None = None, limit: Limit = 50,
    cursor: CursorParam = None,
) -> Page[MatchEventRead]:
    """辖区协调员（及管理员）：辖区内对接的每一次变化，新的在前。Coordinators (their region) and admins."""
    rows, next_cursor = await lifecycle.audit(session, principal=principal, region=region, limit=limit, cursor=cursor)
    return Page[MatchEventRead](items=[event_read(row) for row in rows], next_cursor=next_cursor)


@notifications_router.get("", response_model=Page[NotificationRead], summary="我的通知 / My notifications")
async def list_notifications(
    session: DbSession, principal: CurrentUser, limit: Limit = 50, cursor: CursorParam = None, unread: bool = False
) -> Page[NotificationRead]:
    """与我有关的事：本村需求的新提议、本组织认捐的结果、待确认的交付、辖区对接的批准与失败。
    Events that concern the caller: a new proposal on their village's need, their organisation's pledge approved,
    failed or rejected, a delivery to confirm, matches of their region approved or failed."""
    items, next_cursor = await notifications.list_for(session, principal=principal, limit=limit, cursor=cursor,
                                                      unread_only=unread)
    return Page[NotificationRead](items=items, next_cursor=next_cursor)


@notifications_router.post("/{notification_id}/read", response_model=NotificationRead, summary="标为已读 / Mark as read")
async def read_notification(notification_id: uuid.UUID, session: DbSession, principal: CurrentUser) -> NotificationRead:
    return await notifications.mark_read(session, principal=principal, notification_id=notification_id)


def _webhook_read(row: Webhook, *, secret: str | None = None) -> WebhookRead:
    return WebhookRead(organisation_id=row.organisation_id, url=row.url, created_at=row.created_at,
                       updated_at=row.updated_at, secret=secret)


@webhooks_router.put("/organisations/{organisation_id}", response_model=WebhookRead,
                     summary="设置组织的 webhook / Set an organisation's webhook")
async def put_webhook(
    organisation_id: uuid.UUID, data: WebhookPut, session: DbSession, principal: CurrentUser, settings: Settings,
    response: Response,
) -> WebhookRead:
    """该组织成员或管理员。返回签名密钥（仅此一次；再次 PUT 会换新密钥）。
    Members of the organisation or an admin. The answer holds the signing secret, once (a new PUT rotates it)."""
    row, created = await webhooks.put_webhook(session, principal=principal, organisation_id=organisation_id,
                                              url=str(data.url), allow_private=settings.webhook_allow_private_hosts)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Cache-Control"] = "no-store"
    return _webhook_read(row, secret=row.secret)


@webhooks_router.get("/organisations/{organisation_id}", response_model=WebhookRead,
                     summary="组织的 webhook / An organisation's webhook")
async def get_webhook(organisation_id: uuid.UUID, session: DbSession, principal: CurrentUser) -> WebhookRead:
    return _webhook_read(await webhooks.get_webhook(session, principal=principal, organisation_id=organisation_id))


@webhooks_router.delete("/organisations/{organisation_id}", status_code=status.HTTP_204_NO_CONTENT,
                        summary="删除组织的 webhook / Remove an organisation's webhook")
async def delete_webhook(organisation_id: uuid.UUID, session: DbSession, principal: CurrentUser) -> Response:
    await webhooks.delete_webhook(session, principal=principal, organisation_id=organisation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- reports --------------------------------------------------------------------------------------

ReportFormatParam = Annotated[reports.ReportFormat, Query(description="json (default), csv (one long table) or xlsx (a sheet per table)")]
_REPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, sheets.XLSX_MEDIA_TYPE: {}, sheets.CSV_MEDIA_TYPE: {}}},
    403: {"description": "Not a coordinator of that region, nor an admin"},
}


def _report_file(tables: list[reports.Table], format: reports.ReportFormat, name: str) -> Response:
    locale = current_locale.get()
    if format is reports.ReportFormat.CSV:
        return sheets.attachment(reports.csv_bytes(tables, locale), sheets.TableFormat.CSV, name)
    return sheets.attachment(reports.xlsx_bytes(tables, locale), sheets.TableFormat.XLSX, name)


@reports_router.get("/summary", response_model=SummaryReportRead, responses=_REPORT_RESPONSES,
                    summary="期间汇总报表 / Summary of a period")
async def report_summary(
    session: ReadSession,
    principal: CurrentUser,
    region: RegionPrefix | None = None,
    date_from: Annotated[date | None, Query(alias="from", description="First day included (default: 1 January)")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Last day included (default: today)")] = None,
    format: ReportFormatParam = reports.ReportFormat.JSON,
) -> Any:
    """协调员（本辖区）与管理员：期内发布、开放、满足的需求；按类别、资源类型、县区和组织的承诺与交付价值；受益人数；
    平均办理天数；满意度；组织参与度得分（公式随结果返回）。日期按北京时间。

    Coordinators (their region) and admins: needs posted, open and fulfilled; value committed and delivered by
    category, kind, county and organisation; beneficiaries reached; average days to approval and to receipt;
    satisfaction; and the organisations' participation score, with its formula. Days are Beijing days."""
    report = await reports.summary(session, principal=principal, region=region, date_from=date_from, date_to=date_to,
                                   locale=current_locale.get())
    if format is reports.ReportFormat.JSON:
        return report
    name = f"report-{report.region or 'all'}-{report.date_from.isoformat()}-{report.date_to.isoformat()}"
    return _report_file(reports.summary_tables(report, current_locale.get()), format, name)


@reports_router.get("/years", response_model=YearsReportRead, responses=_REPORT_RESPONSES,
                    summary="逐年汇总 / Year by year")
async def report_years(
    session: ReadSession,
    principal: CurrentUser,
    region: RegionPrefix | None = None,
    from_year: Annotated[int | None, Query(ge=reports.FIRST_YEAR, le=2100)] = None,
    to_year: Annotated[int | None, Query(ge=reports.FIRST_YEAR, le=2100)] = None,
    format: ReportFormatParam = reports.ReportFormat.JSON,
) -> Any:
    """像五年工作报告那样逐年汇总：筹集（交付、承诺）价值、帮扶人数、项目数（需求、获批对接、交付完成）、参与组织数。

    Year by year, like the five-year reports this replaces: value delivered and committed, people helped,
    projects (needs posted, matches approved, matches fully delivered) and organisations taking part."""
    report = await reports.years(session, principal=principal, region=region, from_year=from_year, to_year=to_year)
    if format is reports.ReportFormat.JSON:
        return report
    name = f"report-years-{report.region or 'all'}-{report.from_year}-{report.to_year}"
    return _report_file(reports.years_tables(report), format, name)
