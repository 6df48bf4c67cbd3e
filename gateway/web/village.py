"""A village officer's pages: my village's needs, posting and editing one, matches on them, confirming receipt.

Everything comes from the public API with the officer's own token (the API scopes it to their village);
validation is the API's, shown next to the field it names.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from gateway.web import i18n
from gateway.web.api import ApiProblem, PublicApi
from gateway.web.forms import (
    form_text,
    idempotency_headers,
    is_htmx,
    not_allowed,
    plain_amount,
    require_role,
    split_problem,
)
from gateway.web.i18n import N_
from gateway.web.labels import MATCH_STATUS, NEED_STATUS
from gateway.web.pages import public_api, safe_next
from gateway.web.render import category_label, kind_label, redirect, render
from gateway.web.session import PageContext, SignedIn
from services.common.identity import Role
from services.common.vocabulary import UNITS_BY_KIND, BeneficiaryGroup, Category, Kind

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
FIELD_LABELS: dict[str, str] = {
    "title": N_("Title"), "description": N_("Description"), "category": N_("Category"), "kind": N_("Kind"),
    "unit": N_("Unit"), "quantity": N_("Quantity"), "committed": N_("Committed"), "delivered": N_("Delivered"),
    "beneficiaries": N_("Beneficiaries"), "beneficiary_groups": N_("Beneficiary groups"), "urgency": N_("Urgency"),
    "needed_by": N_("Needed by"), "skills": N_("Skills"), "status": N_("Status"), "lat": N_("Latitude"),
    "lon": N_("Longitude"), "village_code": N_("Village"), "channel": N_("Channel"), "id": N_("ID"),
}
URGENCY: dict[int, str] = {
    1: N_("1 — can wait"), 2: N_("2 — low"), 3: N_("3 — normal"), 4: N_("4 — urgent"), 5: N_("5 — very urgent"),
}
NEED_FORM_FIELDS = frozenset({
    "title", "description", "category", "kind", "unit", "quantity", "beneficiaries", "beneficiary_groups", "urgency",
    "needed_by", "skills",
})
RECEIPT_FIELDS = frozenset({"quantity", "rating", "comment"})
STATUS_FORM_FIELDS = frozenset({"reason"})
# The API's name of a field → the name the form gives it.
RECEIPT_RENAME = {"satisfaction": "rating"}
SKILL_SEPARATORS = re.compile(r"[,，、;；\n]+")


# --- helpers --------------------------------------------------------------------------------------

OFFICERS_ONLY = N_("These pages are for village officers.")


def _officer(page: PageContext) -> str:
    """The village the pages are about."""
    principal = require_role(page, {Role.OFFICER}, OFFICERS_ONLY)
    if not principal.village_code:
        raise not_allowed(OFFICERS_ONLY)
    return principal.village_code


def _units_by_kind() -> list[tuple[str, tuple[str, ...]]]:
    return [(kind.value, UNITS_BY_KIND[kind]) for kind in Kind]


def _units_of(kind: str | None) -> tuple[str, ...]:
    for candidate in Kind:
        if candidate.value == kind:
            return UNITS_BY_KIND[candidate]
    return ()


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {name: form_text(form, name) for name in NEED_FORM_FIELDS - {"beneficiary_groups"}}
    values["beneficiary_groups"] = [value for value in form.getlist("beneficiary_groups") if isinstance(value, str)]
    return values


def _need_values(need: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": need["title"], "description": need["description"], "category": need["category"],
        "kind": need["kind"], "unit": need["unit"], "quantity": plain_amount(need["quantity"]),
        "beneficiaries": str(need["beneficiaries"]), "beneficiary_groups": list(need["beneficiary_groups"]),
        "urgency": str(need["urgency"]), "needed_by": need["needed_by"], "skills": "、".join(need["skills"]),
    }


EMPTY_NEED = {
    "title": "", "description": "", "category": "", "kind": "", "unit": "", "quantity": "", "beneficiaries": "",
    "beneficiary_groups": [], "urgency": "3", "needed_by": "", "skills": "",
}


def _need_body(values: dict[str, Any]) -> dict[str, Any]:
    """What the form says, as the API's JSON: empty fields left out, so that the API names what is missing."""
    body: dict[str, Any] = {"description": values["description"]}
    for name in ("title", "category", "kind", "unit", "quantity", "beneficiaries", "urgency", "needed_by"):
        if values[name] != "":
            body[name] = values[name]
    body["beneficiary_groups"] = values["beneficiary_groups"]
    body["skills"] = [skill.strip() for skill in SKILL_SEPARATORS.split(values["skills"]) if skill.strip()]
    return body


def _common() -> dict[str, Any]:
    """What the village templates share: choices, labelled in the page's language."""
    return {
        "category_options": [(category.value, category_label(category.value)) for category in Category],
        "kind_options": [(kind.value, kind_label(kind.value)) for kind in Kind],
        "groups": [group.value for group in BeneficiaryGroup], "urgencies": URGENCY, "units_by_kind": _units_by_kind(),
        "units_of": _units_of, "plain_amount": plain_amount, "field_labels": FIELD_LABELS,
    }


async def _need_with_etag(api: PublicApi, page: PageContext, need_id: uuid.UUID) -> tuple[dict[str, Any], str]:
    response = await api.request("GET", f"/api/needs/{need_id}", token=page.token)
    if response.status_code >= 400:
        raise ApiProblem.from_response(response)
    need: dict[str, Any] = response.json()
    return need, response.headers.get("etag") or f'"{need["version"]}"'


# --- my village's needs ---------------------------------------------------------------------------

@router.get("/village", response_class=HTMLResponse)
async def village_home(request: Request, page: SignedIn) -> Response:
    _officer(page)
    return redirect(request, "/village/needs")


@router.get("/village/needs", response_class=HTMLResponse)
async def needs_list(request: Request, page: SignedIn, status: str = "", cursor: str = "") -> Response:
    village = _officer(page)
    api = public_api(request)
    status = status if status in NEED_STATUS else ""
    needs, duplicates = await asyncio.gather(
        # Every officer may read all open needs: the list asks for their village's only (its 12-digit code).
        api.get("/api/needs", token=page.token,
                params={"region": village, "status": status, "cursor": cursor, "limit": PAGE_SIZE}),
        api.get("/api/needs/duplicates", token=page.token, params={"status": "suspected", "limit": 20}),
    )
    return render(request, page, "village/needs.html", needs=needs["items"], next_cursor=needs.get("next_cursor"),
                  status=status, cursor=cursor, duplicates=duplicates["items"], **_common())


@router.get("/village/needs/units", response_class=HTMLResponse)
async def unit_field(request: Request, page: SignedIn, kind: str = "", unit: str = "") -> Response:
    """The unit select for a kind (htmx swaps it in when the kind changes)."""
    _officer(page)
    return render(request, page, "village/_unit_field.html", kind=kind, unit=unit, errors={}, **_common())


@router.get("/village/needs/new", response_class=HTMLResponse)
async def new_need_form(request: Request, page: SignedIn) -> Response:
    village = _officer(page)
    return render(request, page, "village/need_new.html", values=dict(EMPTY_NEED), errors={}, problem=None,
                  others=[], village_code=village, idempotency_key=uuid.uuid4().hex, **_common())


@router.post("/village/needs", response_class=HTMLResponse)
async def post_need(request: Request, page: SignedIn) -> Response:
    village = _officer(page)
    form = await request.form()
    values = _form_values(form)
    post_as = form.get("status")
    body = _need_body(values) | {"village_code": village, "status": "draft" if post_as == "draft" else "open"}
    try:
        need = await public_api(request).post("/api/needs", token=page.token, json=body,
                                              headers=idempotency_headers(form))
    except ApiProblem as problem:
        if problem.status not in (409, 422):
            raise
        errors, others = split_problem(problem, NEED_FORM_FIELDS)
        template = "village/_need_form.html" if is_htmx(request) else "village/need_new.html"
        return render(request, page, template, status_code=problem.status, values=values, errors=errors,
                      problem=problem, others=others, village_code=village, idempotency_key=uuid.uuid4().hex,
                      **_common())
    return redirect(request, f"/village/needs/{need['id']}")


# --- one need -------------------------------------------------------------------------------------

async def _need_page(
    request: Request, page: SignedIn, need_id: uuid.UUID, *, status_code: int = 200, values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None, problem: ApiProblem | None = None, others: list[str] | None = None,
    version: str | None = None, action_errors: dict[str, str] | None = None, action_problem: ApiProblem | None = None,
    reason: str = "",
) -> Response:
    village = _officer(page)
    api = public_api(request)
    (need, etag), history, matches = await asyncio.gather(
        _need_with_etag(api, page, need_id),
        api.get(f"/api/needs/{need_id}/history", token=page.token),
        api.get("/api/matches", token=page.token, params={"need_id": str(need_id), "limit": 100}),
    )
    offers = await _lookup_offers(api, page, matches["items"])
    return render(
        request, page, "village/need.html", status_code=status_code, need=need, history=list(reversed(history)),
        matches=matches["items"], offers=offers, values=values or _need_values(need), errors=errors or {},
        problem=problem, others=others or [], version=version or etag, village_code=village,
        action_errors=action_errors or {}, action_problem=action_problem, reason=reason,
        idempotency_key="", **_common(),
    )


@router.get("/village/needs/{need_id}", response_class=HTMLResponse)
async def need_detail(request: Request, page: SignedIn, need_id: uuid.UUID) -> Response:
    return await _need_page(request, page, need_id)


@router.post("/village/needs/{need_id}/edit", response_class=HTMLResponse)
async def edit_need(request: Request, page: SignedIn, need_id: uuid.UUID) -> Response:
    village = _officer(page)
    form = await request.form()
    values = _form_values(form)
    version = form_text(form, "version")
    body = _need_body(values)
    original_date = form.get("original_needed_by")
    if body.get("needed_by") == original_date:
        body.pop("needed_by")  # unchanged: a date that has since passed is no reason to refuse other changes
    try:
        await public_api(request).call("PATCH", f"/api/needs/{need_id}", token=page.token, json=body,
                                       headers={"If-Match": version})
    except ApiProblem as problem:
        if problem.status not in (409, 412, 422, 428):
            raise
        errors, others = split_problem(problem, NEED_FORM_FIELDS)
        status_code = 422 if problem.status == 422 else 409
        if is_htmx(request):
            return render(request, page, "village/_need_form.html", status_code=status_code, values=values,
                          errors=errors, problem=problem, others=others, village_code=village, version=version,
                          need_id=need_id, original_needed_by=original_date or "", idempotency_key="",
                          **_common())
        return await _need_page(request, page, need_id, status_code=status_code, values=values, errors=errors,
                                problem=problem, others=others, version=version)
    return redirect(request, f"/village/needs/{need_id}?saved=1")


@router.post("/village/needs/{need_id}/status", response_class=HTMLResponse)
async def change_need_status(request: Request, page: SignedIn, need_id: uuid.UUID) -> Response:
    """Close or cancel (with a reason kept in the history), or publish a draft."""
    _officer(page)
    form = await request.form()
    action = form.get("action")
    reason = form_text(form, "reason")
    api = public_api(request)
    try:
        if action in ("close", "cancel"):
            await api.post(f"/api/needs/{need_id}/{action}", token=page.token, json={"reason": reason} if reason else None)
        elif action == "publish":
            _need, etag = await _need_with_etag(api, page, need_id)
            await api.call("PATCH", f"/api/needs/{need_id}", token=page.token, json={"status": "open"},
                           headers={"If-Match": etag})
        else:
            raise ApiProblem(422, title=i18n.gettext("Unknown action"))
    except ApiProblem as problem:
        if problem.status not in (409, 412, 422):
            raise
        errors, _others = split_problem(problem, STATUS_FORM_FIELDS)
        return await _need_page(request, page, need_id, status_code=422 if problem.status == 422 else 409,
                                action_errors=errors, action_problem=problem, reason=reason)
    return redirect(request, f"/village/needs/{need_id}")


@router.post("/village/needs/{need_id}/duplicate-decision", response_class=HTMLResponse)
async def decide_duplicate(request: Request, page: SignedIn, need_id: uuid.UUID) -> Response:
    _officer(page)
    form = await request.form()
    decision = form.get("decision")
    target = form.get("next")
    await public_api(request).post(f"/api/needs/{need_id}/duplicate-decision", token=page.token,
                                   json={"decision": decision})
    return redirect(request, safe_next(target if isinstance(target, str) else None, f"/village/needs/{need_id}"))


# --- matches on my village's needs ----------------------------------------------------------------

async def _lookup_offers(api: PublicApi, page: PageContext, matches: list[dict[str, Any]]) -> dict[str, Any]:
    """Each match's offer and organisation (an organisation not yet verified is not shown to villages)."""
    offers, organisations = await asyncio.gather(
        api.get_each("/api/offers", [match["offer_id"] for match in matches], token=page.token),
        api.get_each("/api/organisations", [match["organisation_id"] for match in matches], token=page.token),
    )
    return {"offers": offers, "organisations": organisations}


async def _matches_page(
    request: Request, page: PageContext, *, status: str = "", cursor: str = "", status_code: int = 200,
    receipt: dict[str, Any] | None = None,
) -> Response:
    _officer(page)
    api = public_api(request)
    listing = await api.get("/api/matches", token=page.token,
                            params={"status": status, "cursor": cursor, "limit": PAGE_SIZE})
    matches: list[dict[str, Any]] = listing["items"]
    with_deliveries = [match["id"] for match in matches if Decimal(str(match.get("delivered") or 0)) > 0]
    lookups, needs, deliveries = await asyncio.gather(
        _lookup_offers(api, page, matches),
        api.get_each("/api/needs", [match["need_id"] for match in matches], token=page.token),
        asyncio.gather(*(api.get(f"/api/matches/{match_id}/deliveries", token=page.token) for match_id in with_deliveries)),
    )
    return render(
        request, page, "village/matches.html", status_code=status_code, matches=matches,
        next_cursor=listing.get("next_cursor"), status=status, cursor=cursor, offers=lookups,
        needs=needs, deliveries=dict(zip(with_deliveries, deliveries, strict=True)),
        receipt=receipt or {}, **_common(),
    )


@router.get("/village/matches", response_class=HTMLResponse)
async def matches_list(request: Request, page: SignedIn, status: str = "", cursor: str = "") -> Response:
    return await _matches_page(request, page, status=status if status in MATCH_STATUS else "", cursor=cursor)


@router.post("/village/matches/{match_id}/receipt", response_class=HTMLResponse)
async def confirm_receipt(request: Request, page: SignedIn, match_id: uuid.UUID) -> Response:
    """Confirm what arrived and rate it (1–5): `satisfaction` in the API, `rating` in the form."""
    _officer(page)
    form = await request.form()
    values = {name: form_text(form, name) for name in ("quantity", "rating", "comment")}
    body: dict[str, Any] = {"comment": values["comment"]}
    if values["quantity"]:
        body["quantity"] = values["quantity"]
    if values["rating"]:
        body["satisfaction"] = values["rating"]
    api = public_api(request)
    try:
        await api.post(f"/api/matches/{match_id}/receipt", token=page.token, json=body)
    except ApiProblem as problem:
        if problem.status not in (409, 422):
            raise
        errors, others = split_problem(problem, RECEIPT_FIELDS, RECEIPT_RENAME)
        receipt = {"match_id": str(match_id), "values": values, "errors": errors, "others": others, "problem": problem}
        if is_htmx(request):
            match = await api.get(f"/api/matches/{match_id}", token=page.token)
            return render(request, page, "village/_receipt_form.html", status_code=problem.status, match=match,
                          receipt=receipt, **_common())
        return await _matches_page(request, page, status_code=problem.status, receipt=receipt)
    return redirect(request, f"/village/matches?received={match_id}#match-{match_id}")
