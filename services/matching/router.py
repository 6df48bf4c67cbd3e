"""HTTP surface of the matching service: parse, authorise via the service, answer. Nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response, status

from services.common.errors import CORRECT_FIELDS, FieldError, ValidationFailed
from services.common.http import MAX_PAGE, Page, etag_for
from services.common.identity import CurrentUser
from services.common.messages import Text, current_locale
from services.common.transactions import DbSession, TransactionalRoute
from services.common.vocabulary import RegionPrefix
from services.matching import service
from services.matching.config import MatchingSettings
from services.matching.models import Match, MatchRun, MatchStatus, RuleSetRow, Unmatched
from services.matching.readmodel import ReadModelCache
from services.matching.runner import MatchRunner
from services.matching.schemas import (
    CandidateRead,
    CandidatesRead,
    MatchFilters,
    MatchRead,
    MatchRunCreate,
    MatchRunRead,
    ReasonRead,
    RuleExplanationRead,
    RuleSetRead,
    RuleSetUpdate,
    UnmatchedRead,
    quantity_of,
)
from services.matching.scoring import Candidate, RuleExplanation

candidates = APIRouter(route_class=TransactionalRoute, prefix="/api/candidates", tags=["candidates"])
rulesets = APIRouter(route_class=TransactionalRoute, prefix="/api/rulesets", tags=["rulesets"])
runs = APIRouter(route_class=TransactionalRoute, prefix="/api/match-runs", tags=["match-runs"])
matches = APIRouter(route_class=TransactionalRoute, prefix="/api/matches", tags=["matches"])

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


Cache = Annotated[ReadModelCache, Depends(_cache)]
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
    data: RuleSetUpdate, session: DbSession, principal: CurrentUser, request: Request, response: Response
) -> RuleSetRead:
    """整套规则成为新版本；If-Match 可选，给出时须为当前版本。The whole rule set becomes a new version;
    If-Match is optional and, when sent, must name the current version."""
    expected = _optional_version(request)
    row = await service.replace_ruleset(session, principal=principal, data=data, expected_version=expected)
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
    session: DbSession,
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
    ruleset_row = await service.current_ruleset(session)
    ruleset = service.engine_ruleset(ruleset_row)
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

def match_read(match: Match) -> MatchRead:
    return MatchRead(
        id=match.id, run_id=match.run_id, need_id=match.need_id, offer_id=match.offer_id,
        organisation_id=match.organisation_id, village_code=match.village_code, region_code=match.region_code,
        quantity=match.quantity, unit=match.unit, score=match.score, explanation=_explanation(match.explanation),
        ruleset_version=match.ruleset_version, status=MatchStatus(match.status), status_reason=match.status_reason,
        version=match.version, created_by=match.created_by, created_at=match.created_at, updated_at=match.updated_at,
    )


@matches.get("", response_model=Page[MatchRead], summary="对接列表 / Matches")
async def list_matches(
    session: DbSession,
    principal: CurrentUser,
    status_: Annotated[MatchStatus | None, Query(alias="status")] = None,
    region: RegionPrefix | None = None,
    need_id: uuid.UUID | None = None,
    offer_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: CursorParam = None,
) -> Page[MatchRead]:
    """村干部看本村的，组织成员看本组织的，协调员看辖区内的，管理员看全部。
    An officer sees their village's, a member their organisation's, a coordinator their region's, an admin all."""
    filters = MatchFilters(status=status_, region=region, need_id=need_id, offer_id=offer_id, run_id=run_id)
    rows, next_cursor = await service.list_matches(session, principal=principal, filters=filters, limit=limit, cursor=cursor)
    return Page[MatchRead](items=[match_read(row) for row in rows], next_cursor=next_cursor)


@matches.get("/{match_id}", response_model=MatchRead, summary="一条对接 / One match")
async def get_match(match_id: uuid.UUID, session: DbSession, principal: CurrentUser, response: Response) -> MatchRead:
    match = await service.get_match(session, principal=principal, match_id=match_id)
    response.headers["ETag"] = etag_for(match.version)
    return match_read(match)
