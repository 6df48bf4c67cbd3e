"""A coordinator's pages: the approval queue, match runs, organisations to verify, pairings, follow-up visits.

Admins use them too (they govern every region): where a coordinator's pages default to their own region,
an admin's default to everywhere and may narrow it with the region picker. Every figure and every
refusal comes from the public API; these pages only arrange it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from gateway.web.api import ApiProblem, PublicApi
from gateway.web.forms import GOVERNORS, is_htmx, refusal_status, require_role
from gateway.web.i18n import N_
from gateway.web.labels import PAIRING_STATUS
from gateway.web.pages import public_api
from gateway.web.render import redirect, render
from gateway.web.session import PageContext, SignedIn

router = APIRouter(include_in_schema=False)

QUEUE_SIZE = 50
RECENT_SIZE = 10
LIST_LIMIT = 200
SETTLED = ("approved", "failed", "rejected")

CANCELLABLE = frozenset({"proposed", "approved"})
FOLLOW_UP_STATUSES = frozenset({"approved", "delivered", "received"})


# --- who, where -----------------------------------------------------------------------------------

def governor(page: PageContext) -> None:
    """Coordinators and admins only: others get the same refusal the API would give them."""
    require_role(page, GOVERNORS, N_("These pages are for coordinators and admins."))


def region_of(page: PageContext, requested: str | None = None) -> str:
    """The region a page shows: the one asked for, else the coordinator's own ('' for an admin: everywhere)."""
    if requested and requested.isdigit():
        return requested
    assert page.principal is not None
    return page.principal.region_code or ""


async def lookup(
    api: PublicApi, token: str | None, path: str, ids: list[Any], *, region: str | None = None
) -> dict[str, dict[str, Any]]:
    """`{id: item}` for each distinct id; one the user may not see is left out.

    With `region`, one list call (`GET path?region=…`) finds most of them at once and only the rest are fetched
    one by one: every API call costs a round trip through the gateway, and pages must stay fast."""
    unique = list(dict.fromkeys(str(item) for item in ids if item))
    result: dict[str, dict[str, Any]] = {}
    if region is not None and len(unique) > 2:
        listed = await api.get(path, token=token, params={"region": region, "limit": LIST_LIMIT})
        result = {item["id"]: item for item in listed["items"] if item["id"] in unique}
    missing = [item for item in unique if item not in result]
    return result | await api.get_each(path, missing, token=token)


# --- the approval queue ---------------------------------------------------------------------------

@dataclass
class Row:
    """One match on the approval page, with what it refers to and, after an action, what went wrong."""

    match: dict[str, Any]
    need: dict[str, Any] | None = None
    offer: dict[str, Any] | None = None
    organisation: dict[str, Any] | None = None
    problem: ApiProblem | None = None
    errors: dict[str, str] = field(default_factory=dict)
    reason: str = ""


async def rows_of(api: PublicApi, page: PageContext, matches: list[dict[str, Any]], region: str | None = None) -> list[Row]:
    needs, offers, organisations = await asyncio.gather(
        lookup(api, page.token, "/api/needs", [match["need_id"] for match in matches], region=region),
        lookup(api, page.token, "/api/offers", [match["offer_id"] for match in matches], region=region),
        lookup(api, page.token, "/api/organisations", [match["organisation_id"] for match in matches], region=region),
    )
    return [Row(match, needs.get(match["need_id"]), offers.get(match["offer_id"]), organisations.get(match["organisation_id"]))
            for match in matches]


async def one_row(api: PublicApi, page: PageContext, match_id: str) -> Row:
    match = await api.get(f"/api/matches/{match_id}", token=page.token)
    return (await rows_of(api, page, [match]))[0]


async def approvals_page(
    request: Request, page: PageContext, *, region: str | None = None, run_id: str | None = None,
    failed: Row | None = None, status_code: int = 200,
) -> Response:
    api = public_api(request)
    scope = region_of(page, region)
    params = {"region": scope, "run_id": run_id}

    proposed, latest = await asyncio.gather(
        api.get("/api/matches", token=page.token, params={**params, "status": "proposed", "limit": QUEUE_SIZE}),
        api.get("/api/matches", token=page.token, params={**params, "limit": QUEUE_SIZE}),
    )
    # The newest matches of any status: those still approving join the queue, the settled ones the recent list.
    approving = [match for match in latest["items"] if match["status"] in ("approving", "cancelling")]
    recent = sorted((match for match in latest["items"] if match["status"] in SETTLED),
                    key=lambda match: match["updated_at"], reverse=True)[:RECENT_SIZE]
    rows = await rows_of(api, page, approving + proposed["items"] + recent, region=scope)
    queue_rows, recent_rows = rows[: len(approving) + len(proposed["items"])], rows[len(approving) + len(proposed["items"]):]
    if failed is not None:
        queue_rows = [failed if row.match["id"] == failed.match["id"] else row for row in queue_rows]
        if all(row.match["id"] != failed.match["id"] for row in queue_rows):
            queue_rows.insert(0, failed)
    return render(request, page, "coord/approvals.html", status_code=status_code, rows=queue_rows, recent=recent_rows,
                  region=scope, run_id=run_id or "")


def row_reply(request: Request, page: PageContext, row: Row, status_code: int = 200) -> Response:
    return render(request, page, "coord/_proposal.html", status_code=status_code, row=row)


@router.get("/coord", response_class=HTMLResponse)
async def coord_home(request: Request, page: SignedIn) -> Response:
    return redirect(request, "/coord/approvals")


@router.get("/coord/approvals", response_class=HTMLResponse)
async def approvals(request: Request, page: SignedIn, region: str = "", run_id: str = "") -> Response:
    governor(page)
    return await approvals_page(request, page, region=region, run_id=run_id or None)


@router.get("/coord/approvals/rows/{match_id}", response_class=HTMLResponse)
async def approval_row(request: Request, page: SignedIn, match_id: str) -> Response:
    """One row as it stands now: polled while an approval is still under way."""
    governor(page)
    return row_reply(request, page, await one_row(public_api(request), page, match_id))


async def _after_action(request: Request, page: PageContext, match_id: str, next_url: str) -> Response:
    """htmx: the row as it now stands (approved, or still approving and polling); a plain form: back to the list."""
    if is_htmx(request):
        return row_reply(request, page, await one_row(public_api(request), page, match_id))
    return redirect(request, next_url)


def _next(value: str) -> str:
    return value if value.startswith("/coord/") and not value.startswith("//") else "/coord/approvals"


@router.post("/coord/matches/{match_id}/approve", response_class=HTMLResponse)
async def approve(request: Request, page: SignedIn, match_id: str, next: Annotated[str, Form(max_length=500)] = "") -> Response:
    governor(page)
    api = public_api(request)
    response = await api.request("POST", f"/api/matches/{match_id}/approve", token=page.token)
    if response.status_code < 400:  # 200 approved, or 202 still approving: the row polls until it settles
        return await _after_action(request, page, match_id, _next(next))
    problem = ApiProblem.from_response(response)
    if problem.status == 401:
        raise problem
    row = await one_row(api, page, match_id)
    row.problem = problem
    if is_htmx(request):
        return row_reply(request, page, row, status_code=refusal_status(problem, request))
    return await approvals_page(request, page, failed=row, status_code=problem.status)


@router.post("/coord/matches/{match_id}/reject", response_class=HTMLResponse)
async def reject(
    request: Request, page: SignedIn, match_id: str, reason: Annotated[str, Form(max_length=4000)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    governor(page)
    api = public_api(request)
    try:
        await api.post(f"/api/matches/{match_id}/reject", token=page.token, json={"reason": reason.strip()})
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        row = await one_row(api, page, match_id)
        row.errors, row.reason = problem.field_errors(), reason
        row.problem = None if row.errors else problem
        if is_htmx(request):
            return row_reply(request, page, row, status_code=refusal_status(problem, request))
        return await approvals_page(request, page, failed=row, status_code=problem.status)
    return await _after_action(request, page, match_id, _next(next))


# --- match runs -----------------------------------------------------------------------------------

async def runs_page(
    request: Request, page: PageContext, *, region: str = "", problem: ApiProblem | None = None, status_code: int = 200,
) -> Response:
    scope = region_of(page, region)
    answer = await public_api(request).get("/api/match-runs", token=page.token, params={"region": scope, "limit": 20})
    return render(request, page, "coord/runs.html", status_code=status_code, runs=answer["items"], region=scope,
                  problem=problem, errors=problem.field_errors() if problem else {})


@router.get("/coord/runs", response_class=HTMLResponse)
async def runs(request: Request, page: SignedIn, region: str = "") -> Response:
    governor(page)
    return await runs_page(request, page, region=region)


@router.post("/coord/runs", response_class=HTMLResponse)
async def start_run(request: Request, page: SignedIn, region_code: Annotated[str, Form(max_length=20)] = "") -> Response:
    governor(page)
    code = region_code.strip() or region_of(page)
    try:
        run = await public_api(request).post("/api/match-runs", token=page.token, json={"region_code": code})
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return await runs_page(request, page, region=code, problem=problem, status_code=problem.status)
    return redirect(request, f"/coord/runs/{run['id']}")


async def run_values(api: PublicApi, page: PageContext, run_id: str) -> dict[str, Any]:
    run = await api.get(f"/api/match-runs/{run_id}", token=page.token)
    unmatched: list[dict[str, Any]] = []
    needs: dict[str, dict[str, Any]] = {}
    if run["status"] == "finished":
        answer = await api.get(f"/api/match-runs/{run_id}/unmatched", token=page.token, params={"limit": 200})
        unmatched = answer["items"]
        needs = await lookup(api, page.token, "/api/needs", [item["need_id"] for item in unmatched], region=run["region_code"])
    return {"run": run, "unmatched": unmatched, "needs": needs}


@router.get("/coord/runs/{run_id}", response_class=HTMLResponse)
async def run_detail(request: Request, page: SignedIn, run_id: str) -> Response:
    governor(page)
    values = await run_values(public_api(request), page, run_id)
    return render(request, page, "coord/run.html", **values)


@router.get("/coord/runs/{run_id}/status", response_class=HTMLResponse)
async def run_status(request: Request, page: SignedIn, run_id: str) -> Response:
    """The progress while the run works (polled every second), then its results."""
    governor(page)
    values = await run_values(public_api(request), page, run_id)
    return render(request, page, "coord/_run_status.html", **values)


# --- organisations --------------------------------------------------------------------------------

async def organisations_page(
    request: Request, page: PageContext, *, region: str = "", q: str = "", failed: dict[str, ApiProblem] | None = None,
    status_code: int = 200,
) -> Response:
    api = public_api(request)
    scope = region_of(page, region)
    base = {"region": scope, "q": q.strip(), "limit": 200}
    unverified, verified = await asyncio.gather(
        api.get("/api/organisations", token=page.token, params={**base, "verified": "false"}),
        api.get("/api/organisations", token=page.token, params={**base, "verified": "true"}),
    )
    return render(request, page, "coord/organisations.html", status_code=status_code, unverified=unverified["items"],
                  verified=verified["items"], region=scope, q=q, problems=failed or {})


@router.get("/coord/organisations", response_class=HTMLResponse)
async def organisations(request: Request, page: SignedIn, region: str = "", q: str = "") -> Response:
    governor(page)
    return await organisations_page(request, page, region=region, q=q)


@router.post("/coord/organisations/{organisation_id}/verify", response_class=HTMLResponse)
async def verify(request: Request, page: SignedIn, organisation_id: str) -> Response:
    governor(page)
    api = public_api(request)
    try:
        organisation = await api.post(f"/api/organisations/{organisation_id}/verify", token=page.token)
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        if not is_htmx(request):
            return await organisations_page(request, page, failed={organisation_id: problem}, status_code=problem.status)
        organisation = await api.get(f"/api/organisations/{organisation_id}", token=page.token)
        return render(request, page, "coord/_organisation.html", status_code=refusal_status(problem, request),
                      organisation=organisation, problem=problem)
    if is_htmx(request):
        return render(request, page, "coord/_organisation.html", organisation=organisation, problem=None)
    return redirect(request, "/coord/organisations")


# --- pairings -------------------------------------------------------------------------------------

@dataclass
class PairingForm:
    organisation_id: str = ""
    township: str = ""
    village_code: str = ""
    started_on: str = ""
    note: str = ""

    def village(self) -> str:
        """The village code as typed; its last three digits alone are completed by the township picked."""
        code = self.village_code.strip()
        if len(code) <= 3 and code.isdigit() and len(self.township) == 9:
            return self.township + code.zfill(3)
        return code

    def payload(self) -> dict[str, Any]:
        return {"organisation_id": self.organisation_id or None, "village_code": self.village(),
                "started_on": self.started_on or None, "note": self.note.strip()}


async def _pairing_choices(api: PublicApi, page: PageContext, scope: str) -> list[tuple[str, str]]:
    """The verified organisations of the region, as the form's (value, label) options."""
    answer = await api.get("/api/organisations", token=page.token, params={"region": scope, "verified": "true", "limit": 200})
    return [(item["id"], item["name"]) for item in answer["items"]]


async def pairings_page(
    request: Request, page: PageContext, *, region: str = "", status: str = "", form: PairingForm | None = None,
    problem: ApiProblem | None = None, failed: dict[str, ApiProblem] | None = None, status_code: int = 200,
    partial: bool = False,
) -> Response:
    api = public_api(request)
    scope = region_of(page, region)
    form = form or PairingForm(township=scope if len(scope) == 9 else "", started_on=date.today().isoformat())
    errors = problem.field_errors() if problem else {}
    if partial:
        choices = await _pairing_choices(api, page, scope)
        return render(request, page, "coord/_pairing_form.html", status_code=status_code, form=form, errors=errors,
                      problem=problem, choices=choices, region=scope)
    listed, choices = await asyncio.gather(
        api.get("/api/pairings", token=page.token, params={"region": scope, "status": status, "limit": 200}),
        _pairing_choices(api, page, scope),
    )
    names = await lookup(api, page.token, "/api/organisations", [item["organisation_id"] for item in listed["items"]],
                         region=scope)
    return render(request, page, "coord/pairings.html", status_code=status_code, pairings=listed["items"],
                  organisations=names, choices=choices, form=form, errors=errors, problem=problem, region=scope,
                  status=status, problems=failed or {})


@router.get("/coord/pairings", response_class=HTMLResponse)
async def pairings(request: Request, page: SignedIn, region: str = "", status: str = "") -> Response:
    governor(page)
    return await pairings_page(request, page, region=region, status=status if status in PAIRING_STATUS else "")


@router.post("/coord/pairings", response_class=HTMLResponse)
async def create_pairing(
    request: Request,
    page: SignedIn,
    organisation_id: Annotated[str, Form(max_length=100)] = "",
    township: Annotated[str, Form(max_length=20)] = "",
    village_code: Annotated[str, Form(max_length=40)] = "",
    started_on: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    governor(page)
    form = PairingForm(organisation_id, township.strip(), village_code, started_on.strip(), note)
    try:
        await public_api(request).post("/api/pairings", token=page.token, json=form.payload())
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return await pairings_page(request, page, form=form, problem=problem, partial=is_htmx(request),
                                   status_code=refusal_status(problem, request))
    return redirect(request, "/coord/pairings")


@router.post("/coord/pairings/{pairing_id}/end", response_class=HTMLResponse)
async def end_pairing(request: Request, page: SignedIn, pairing_id: str) -> Response:
    governor(page)
    api = public_api(request)
    try:
        pairing = await api.post(f"/api/pairings/{pairing_id}/end", token=page.token)
        problem = None
    except ApiProblem as refused:
        if refused.status == 401:
            raise
        if not is_htmx(request):
            return await pairings_page(request, page, failed={pairing_id: refused}, status_code=refused.status)
        pairing, problem = await api.get(f"/api/pairings/{pairing_id}", token=page.token), refused
    if not is_htmx(request):
        return redirect(request, "/coord/pairings")
    organisations = await lookup(api, page.token, "/api/organisations", [pairing["organisation_id"]])
    return render(request, page, "coord/_pairing.html", status_code=refusal_status(problem, request) if problem else 200,
                  pairing=pairing, organisations=organisations, problem=problem)


# --- one match: history, deliveries, follow-up visits, cancelling --------------------------------

async def match_page(
    request: Request, page: PageContext, match_id: str, *, follow_up: dict[str, str] | None = None,
    follow_up_problem: ApiProblem | None = None, cancel_problem: ApiProblem | None = None, reason: str = "",
    status_code: int = 200, partial: bool = False,
) -> Response:
    api = public_api(request)
    values = {
        "follow_up": follow_up or {"visited_on": date.today().isoformat(), "note": ""},
        "follow_up_problem": follow_up_problem,
        "errors": follow_up_problem.field_errors() if follow_up_problem else {},
    }
    if partial:
        return render(request, page, "coord/_follow_up_form.html", status_code=status_code, match={"id": match_id}, **values)
    match = await api.get(f"/api/matches/{match_id}", token=page.token)
    need, offer, organisation = await asyncio.gather(
        lookup(api, page.token, "/api/needs", [match["need_id"]]),
        lookup(api, page.token, "/api/offers", [match["offer_id"]]),
        lookup(api, page.token, "/api/organisations", [match["organisation_id"]]),
    )
    row = Row(match, need.get(match["need_id"]), offer.get(match["offer_id"]), organisation.get(match["organisation_id"]))
    return render(request, page, "coord/match.html", status_code=status_code, row=row, match=match,
                  cancellable=match["status"] in CANCELLABLE, can_follow_up=match["status"] in FOLLOW_UP_STATUSES,
                  cancel_problem=cancel_problem, cancel_errors=cancel_problem.field_errors() if cancel_problem else {},
                  reason=reason, **values)


@router.get("/coord/matches/{match_id}", response_class=HTMLResponse)
async def match_detail(request: Request, page: SignedIn, match_id: str) -> Response:
    governor(page)
    return await match_page(request, page, match_id)


@router.post("/coord/matches/{match_id}/follow-ups", response_class=HTMLResponse)
async def record_follow_up(
    request: Request, page: SignedIn, match_id: str, visited_on: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    governor(page)
    sent = {"visited_on": visited_on.strip(), "note": note.strip()}
    try:
        await public_api(request).post(f"/api/matches/{match_id}/follow-ups", token=page.token,
                                       json={"visited_on": sent["visited_on"] or None, "note": sent["note"]})
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return await match_page(request, page, match_id, follow_up=sent, follow_up_problem=problem,
                                partial=is_htmx(request),
                                status_code=refusal_status(problem, request))
    # htmx reloads the page by HX-Redirect: a fragment alone would only scroll the page as it was.
    return redirect(request, f"/coord/matches/{match_id}" + ("" if is_htmx(request) else "#follow-ups"))


@router.post("/coord/matches/{match_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, page: SignedIn, match_id: str, reason: Annotated[str, Form(max_length=4000)] = "") -> Response:
    governor(page)
    try:
        await public_api(request).post(f"/api/matches/{match_id}/cancel", token=page.token, json={"reason": reason.strip()})
    except ApiProblem as problem:
        if problem.status == 401:
            raise
        return await match_page(request, page, match_id, cancel_problem=problem, reason=reason, status_code=problem.status)
    return redirect(request, f"/coord/matches/{match_id}")
