"""An organisation member's pages: my organisation and offers, publishing an offer, browsing open needs, pledging, deliveries.

Everything comes from the public API with the member's own token (what curl would call):
`GET /api/organisations/{id}`, `GET|POST /api/offers`, `POST /api/offers/{id}/withdraw`, `GET /api/needs`,
`GET /api/candidates?offer_id=`, `POST /api/matches` (a pledge), `GET /api/matches`,
`POST /api/matches/{id}/deliveries` and `POST /api/matches/{id}/cancel`. The API decides; the pages show
its answers, its refusals next to the fields they are about.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from gateway.web.api import ApiProblem, PublicApi
from gateway.web.forms import (
    NOT_FOR_THE_FORM,
    form_text,
    form_texts,
    idempotency_headers,
    is_htmx,
    not_allowed,
    plain_amount,
    refusal_status,
    require_role,
    split_problem,
)
from gateway.web.i18n import N_
from gateway.web.labels import MATCH_STATUS, OFFER_STATUS
from gateway.web.pages import public_api
from gateway.web.render import redirect, render
from gateway.web.session import PageContext, SignedIn
from services.common.identity import Role
from services.common.vocabulary import UNITS_BY_KIND, BeneficiaryGroup, Kind

router = APIRouter(include_in_schema=False)

NEEDS_PAGE_SIZE = 20
OFFERS_PAGE_SIZE = 50
MATCHES_PAGE_SIZE = 30
CANDIDATES_LIMIT = 20
MY_OFFERS_LIMIT = 200

# Fields of the offer form that show their own message; the API's other messages go above the form.
OFFER_FORM_FIELDS = frozenset({
    "title", "description", "categories", "kind", "unit", "quantity", "region_codes", "radius_km", "lat", "lon",
    "available_from", "available_until", "beneficiary_groups", "skills",
})
PLEDGE_FORM_FIELDS = frozenset({"offer_id", "quantity", "note"})
DELIVERY_FORM_FIELDS = frozenset({"quantity", "delivered_on", "note"})
REASON_FORM_FIELDS = frozenset({"reason"})
SKILL_SEPARATORS = ",，、;；\n"


# --- helpers -----------------------------------------------------------------------------------

MEMBERS_ONLY = N_("These pages are for members of an organisation.")


def _organisation_of(page: PageContext) -> str:
    """The member's organisation id."""
    principal = require_role(page, {Role.ORG_MEMBER}, MEMBERS_ONLY)
    if not principal.organisation_id:
        raise not_allowed(MEMBERS_ONLY)
    return str(principal.organisation_id)


async def _my_offers(api: PublicApi, page: PageContext, org_id: str, **params: Any) -> list[dict[str, Any]]:
    body = await api.get("/api/offers", token=page.token,
                         params={"organisation_id": org_id, "limit": MY_OFFERS_LIMIT, **params})
    items: list[dict[str, Any]] = body["items"]
    return items


def _pledgeable(offers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [offer for offer in offers if offer["status"] == "active" and Decimal(offer["available"]) > 0]


def _offer_choices(offers: list[dict[str, Any]], need: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """My offers in the need's unit first (the ones that can serve it), the others after."""
    fitting = [offer for offer in offers if offer["unit"] == need["unit"] and offer["kind"] == need["kind"]]
    others = [offer for offer in offers if offer not in fitting]
    return fitting, others


def _default_pledge(
    need: dict[str, Any], offers: list[dict[str, Any]], chosen_offer: str, candidate: dict[str, Any] | None
) -> tuple[str, str]:
    """Which offer and how much the pledge form suggests: the offer being browsed for, when it fits, and
    what the pair could cover now (the candidate's quantity, else the smaller of remaining and available)."""
    fitting, _others = _offer_choices(offers, need)
    by_id = {offer["id"]: offer for offer in offers}
    offer = by_id.get(chosen_offer) if chosen_offer in {fit["id"] for fit in fitting} else (fitting[0] if fitting else None)
    if offer is None:
        return (chosen_offer if chosen_offer in by_id else ""), ""
    if candidate is not None and candidate["offer_id"] == offer["id"]:
        return offer["id"], plain_amount(candidate["quantity"])
    amount = min(Decimal(need["remaining"]), Decimal(offer["available"]))
    return offer["id"], plain_amount(amount) if amount > 0 else ""


def _pledge_form_values(
    need: dict[str, Any], offers: list[dict[str, Any]], *, chosen_offer: str = "", candidate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    offer_id, quantity = _default_pledge(need, offers, chosen_offer, candidate)
    fitting, others = _offer_choices(offers, need)
    return {"need": need, "fitting_offers": fitting, "other_offers": others, "offer_id": offer_id,
            "quantity": quantity, "note": "", "errors": {}, "problem": None, "other_errors": [], "pledged": None,
            "idempotency_key": uuid.uuid4().hex}


# --- my organisation and its offers --------------------------------------------------------------

@router.get("/org", response_class=HTMLResponse)
async def org_home(request: Request, page: SignedIn) -> Response:
    _organisation_of(page)
    return redirect(request, "/org/offers")


async def _offers_page(
    request: Request, page: PageContext, *, status: str = "", cursor: str = "", published: str = "",
    withdrawn: str = "", withdraw_forms: dict[str, dict[str, Any]] | None = None, status_code: int = 200,
) -> Response:
    org_id = _organisation_of(page)
    api = public_api(request)
    organisation, offers = await asyncio.gather(
        api.get(f"/api/organisations/{org_id}", token=page.token),
        api.get("/api/offers", token=page.token,
                params={"organisation_id": org_id, "status": status, "cursor": cursor, "limit": OFFERS_PAGE_SIZE}),
    )
    withdraw_forms = withdraw_forms or {}
    withdrawable = {offer["id"] for offer in offers["items"] if offer["status"] in ("active", "paused")}
    problems = [state["problem"] for offer_id, state in withdraw_forms.items()
                if offer_id not in withdrawable and state.get("problem")]
    return render(
        request, page, "org/offers.html", status_code=status_code, organisation=organisation, offers=offers["items"],
        next_cursor=offers["next_cursor"], status=status, cursor=cursor, 
        published=published, withdrawn=withdrawn, withdraw_forms=withdraw_forms, problems=problems,
    )


@router.get("/org/offers", response_class=HTMLResponse)
async def offers_list(
    request: Request, page: SignedIn, status: str = "", cursor: str = "", published: str = "", withdrawn: str = "",
) -> Response:
    return await _offers_page(request, page, status=status if status in OFFER_STATUS else "", cursor=cursor,
                              published=published, withdrawn=withdrawn)


def _offer_form_values(form: FormData | None = None) -> dict[str, Any]:
    if form is None:
        return {"title": "", "description": "", "categories": [], "kind": "", "unit": "", "quantity": "",
                "region_codes": [], "radius_km": "", "lat": "", "lon": "", "available_from": date.today().isoformat(),
                "available_until": "", "beneficiary_groups": [], "skills": "", "idempotency_key": uuid.uuid4().hex}
    values: dict[str, Any] = {name: form_text(form, name) for name in (
        "title", "description", "kind", "unit", "quantity", "radius_km", "lat", "lon", "available_from",
        "available_until", "skills", "idempotency_key")}
    values["categories"] = form_texts(form, "categories")
    values["beneficiary_groups"] = form_texts(form, "beneficiary_groups")
    values["region_codes"] = list(dict.fromkeys(form_texts(form, "region_codes")))
    values["idempotency_key"] = values["idempotency_key"] or uuid.uuid4().hex
    return values


def _offer_payload(org_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """The form as OfferCreate: empty optional fields left out, everything else as typed (the API checks it)."""
    payload: dict[str, Any] = {
        "organisation_id": org_id, "title": values["title"], "description": values["description"],
        "categories": values["categories"], "kind": values["kind"], "unit": values["unit"],
        "quantity": values["quantity"], "region_codes": values["region_codes"],
        "available_from": values["available_from"], "available_until": values["available_until"],
        "beneficiary_groups": values["beneficiary_groups"],
        "skills": [skill for skill in _split_skills(values["skills"]) if skill],
    }
    for optional in ("radius_km", "lat", "lon"):
        if values[optional]:
            payload[optional] = values[optional]
    return payload


def _split_skills(raw: str) -> list[str]:
    for separator in SKILL_SEPARATORS:
        raw = raw.replace(separator, ",")
    return list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


def _render_offer_form(
    request: Request, page: PageContext, values: dict[str, Any], problem: ApiProblem | None = None,
    status_code: int = 200,
) -> Response:
    errors, other_errors = split_problem(problem, OFFER_FORM_FIELDS)
    template = "org/_offer_form.html" if is_htmx(request) else "org/offer_form.html"
    return render(request, page, template, status_code=status_code, values=values, errors=errors,
                  other_errors=other_errors, problem=problem, groups=list(BeneficiaryGroup),
                  units_by_kind=UNITS_BY_KIND, kind_units=_units_of(values["kind"]))


def _units_of(kind: str) -> list[str]:
    """The units a kind is counted in (the contract's vocabulary); every unit while no kind is chosen."""
    if kind in {member.value for member in Kind}:
        return list(UNITS_BY_KIND[Kind(kind)])
    return []


@router.get("/org/offers/new", response_class=HTMLResponse)
async def offer_new(request: Request, page: SignedIn) -> Response:
    _organisation_of(page)
    return _render_offer_form(request, page, _offer_form_values())


@router.get("/org/offers/units", response_class=HTMLResponse)
async def offer_units(request: Request, page: SignedIn, kind: str = "", unit: str = "") -> Response:
    """The unit field for the chosen kind (htmx swaps it in when the kind changes)."""
    _organisation_of(page)
    units = _units_of(kind)
    return render(request, page, "org/_unit_field.html", kind=kind, kind_units=units,
                  unit=unit if unit in units else (units[0] if len(units) == 1 else ""),
                  units_by_kind=UNITS_BY_KIND, errors={})


@router.post("/org/offers", response_class=HTMLResponse)
async def offer_create(request: Request, page: SignedIn) -> Response:
    org_id = _organisation_of(page)
    form = await request.form()
    values = _offer_form_values(form)
    try:
        offer = await public_api(request).post("/api/offers", token=page.token, json=_offer_payload(org_id, values),
                                               headers=idempotency_headers(form))
    except ApiProblem as problem:
        if problem.status in NOT_FOR_THE_FORM:
            raise
        return _render_offer_form(request, page, values, problem, status_code=refusal_status(problem, request))
    return redirect(request, f"/org/offers?published={offer['id']}")


def _refused_reason(problem: ApiProblem, reason: str) -> dict[str, Any]:
    """A withdrawal's form after the API refused it: open again, with its message next to the reason."""
    errors, other_errors = split_problem(problem, REASON_FORM_FIELDS)
    return {"reason": reason, "errors": errors, "other_errors": other_errors, "problem": problem, "open": True}


@router.post("/org/offers/{offer_id}/withdraw", response_class=HTMLResponse)
async def offer_withdraw(request: Request, page: SignedIn, offer_id: uuid.UUID) -> Response:
    _organisation_of(page)
    form = await request.form()
    reason = form_text(form, "reason")
    api = public_api(request)
    try:
        await api.post(f"/api/offers/{offer_id}/withdraw", token=page.token, json={"reason": reason})
    except ApiProblem as problem:
        if problem.status in NOT_FOR_THE_FORM:
            raise
        state = _refused_reason(problem, reason)
        if is_htmx(request):
            offer = await api.get(f"/api/offers/{offer_id}", token=page.token)
            return render(request, page, "org/_withdraw_form.html", status_code=refusal_status(problem, request), offer=offer,
                          form=state)
        return await _offers_page(request, page, withdraw_forms={str(offer_id): state},
                                  status_code=refusal_status(problem, request))
    return redirect(request, f"/org/offers?withdrawn={offer_id}")


# --- browsing open needs, candidates of one of my offers, pledges ---------------------------------

def _need_fits_filters(need: dict[str, Any], filters: dict[str, str]) -> bool:
    """A candidate is shown under the same filters as the list beside it."""
    if need.get("status") != "open":
        return False
    if filters["region"] and not str(need["village_code"]).startswith(filters["region"]):
        return False
    if filters["category"] and need["category"] != filters["category"]:
        return False
    if filters["kind"] and need["kind"] != filters["kind"]:
        return False
    return not (filters["urgency_min"].isdigit() and int(need["urgency"]) < int(filters["urgency_min"]))


@router.get("/org/needs", response_class=HTMLResponse)
async def needs_browse(
    request: Request, page: SignedIn, region: str = "", category: str = "", kind: str = "", urgency_min: str = "",
    offer_id: str = "", cursor: str = "",
) -> Response:
    org_id = _organisation_of(page)
    api = public_api(request)
    filters = {"region": region.strip(), "category": category, "kind": kind, "urgency_min": urgency_min}
    list_params = {"status": "open", "limit": NEEDS_PAGE_SIZE, "cursor": cursor, **filters}

    async def candidates() -> dict[str, Any] | ApiProblem | None:
        if not offer_id or cursor:
            return None
        try:
            found: dict[str, Any] = await api.get("/api/candidates", token=page.token,
                                                  params={"offer_id": offer_id, "limit": CANDIDATES_LIMIT})
        except ApiProblem as problem:
            if problem.status in NOT_FOR_THE_FORM:
                raise
            return problem
        return found

    async def needs_list() -> dict[str, Any] | ApiProblem:
        try:
            found: dict[str, Any] = await api.get("/api/needs", token=page.token, params=list_params)
        except ApiProblem as problem:
            if problem.status != 422:
                raise
            return problem
        return found

    my_offers, listed, ranked = await asyncio.gather(_my_offers(api, page, org_id), needs_list(), candidates())
    pledgeable = _pledgeable(my_offers)
    problem = listed if isinstance(listed, ApiProblem) else (ranked if isinstance(ranked, ApiProblem) else None)
    listed_needs: list[dict[str, Any]] = listed["items"] if isinstance(listed, dict) else []
    next_cursor = listed["next_cursor"] if isinstance(listed, dict) else None

    best: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if isinstance(ranked, dict):
        items = ranked["items"]
        known = {need["id"]: need for need in listed_needs}
        fetched = await api.get_each("/api/needs", [item["need_id"] for item in items if item["need_id"] not in known],
                                     token=page.token)
        known.update(fetched)
        best = [(known[item["need_id"]], item) for item in items
                if item["need_id"] in known and _need_fits_filters(known[item["need_id"]], filters)]
    shown = {need["id"] for need, _candidate in best}
    others = [need for need in listed_needs if need["id"] not in shown]
    chosen = next((offer for offer in my_offers if offer["id"] == offer_id), None)
    pledge_forms = {need["id"]: _pledge_form_values(need, pledgeable, chosen_offer=offer_id, candidate=candidate)
                    for need, candidate in best}
    pledge_forms.update({need["id"]: _pledge_form_values(need, pledgeable, chosen_offer=offer_id) for need in others})
    return render(
        request, page, "org/needs.html", filters=filters, offer_id=offer_id, chosen_offer=chosen,
        my_offers=[offer for offer in my_offers if offer["status"] in ("active", "paused")], best=best, others=others,
        next_cursor=next_cursor, cursor=cursor, problem=problem, pledge_forms=pledge_forms,
        candidates_asked=isinstance(ranked, dict),
        why_none=ranked.get("why_none") if isinstance(ranked, dict) else None, has_offers=bool(pledgeable),
    )


@router.post("/org/needs/{need_id}/pledge", response_class=HTMLResponse)
async def pledge(request: Request, page: SignedIn, need_id: uuid.UUID) -> Response:
    """`POST /api/matches` with one of my offers: a `proposed` match, for the coordinator to approve."""
    org_id = _organisation_of(page)
    form = await request.form()
    api = public_api(request)
    offer_id, quantity, note = form_text(form, "offer_id"), form_text(form, "quantity"), form_text(form, "note")
    body: dict[str, Any] = {"need_id": str(need_id), "offer_id": offer_id, "quantity": quantity}
    if note:
        body["note"] = note
    problem: ApiProblem | None = None
    match: dict[str, Any] | None = None
    try:
        match = await api.post("/api/matches", token=page.token, json=body, headers=idempotency_headers(form))
    except ApiProblem as refused:
        if refused.status in NOT_FOR_THE_FORM:
            raise
        problem = refused
    if match is not None and not is_htmx(request):
        return redirect(request, f"/org/matches?pledged={match['id']}")
    need, my_offers = await asyncio.gather(api.get(f"/api/needs/{need_id}", token=page.token),
                                           _my_offers(api, page, org_id))
    state = _pledge_form_values(need, _pledgeable(my_offers), chosen_offer=offer_id)
    if problem is not None:
        errors, other_errors = split_problem(problem, PLEDGE_FORM_FIELDS)
        state.update(quantity=quantity, note=note, errors=errors, other_errors=other_errors, problem=problem)
        if offer_id:
            state["offer_id"] = offer_id
    else:
        state["pledged"] = match
    status_code = refusal_status(problem, request) if problem is not None else 201
    if is_htmx(request):
        return render(request, page, "org/_pledge_form.html", status_code=status_code, form=state)
    return render(request, page, "org/pledge.html", status_code=status_code, need=need, form=state)


# --- my organisation's pledges and matches: deliveries, withdrawing a pledge ----------------------

def _deliverable(match: dict[str, Any]) -> bool:
    return bool(match["status"] == "approved")


def _cancellable(match: dict[str, Any]) -> bool:
    return bool(match["status"] == "proposed" and match.get("origin") == "pledge")


def _delivery_form_values(match: dict[str, Any]) -> dict[str, Any]:
    left = Decimal(match["quantity"]) - Decimal(match["delivered"])
    return {"quantity": plain_amount(left) if left > 0 else "", "delivered_on": date.today().isoformat(), "note": "",
            "errors": {}, "other_errors": [], "problem": None, "idempotency_key": uuid.uuid4().hex}


def _reason_form_values() -> dict[str, Any]:
    return {"reason": "", "errors": {}, "other_errors": [], "problem": None, "open": False}


async def _matches_page(
    request: Request, page: PageContext, *, status: str = "", cursor: str = "", flash: dict[str, str] | None = None,
    forms: dict[str, dict[str, Any]] | None = None, status_code: int = 200,
) -> Response:
    org_id = _organisation_of(page)
    api = public_api(request)
    matches, my_offers = await asyncio.gather(
        api.get("/api/matches", token=page.token,
                params={"status": status, "cursor": cursor, "limit": MATCHES_PAGE_SIZE}),
        _my_offers(api, page, org_id),
    )
    items: list[dict[str, Any]] = matches["items"]
    needs = await api.get_each("/api/needs", [match["need_id"] for match in items], token=page.token)
    offers = {offer["id"]: offer for offer in my_offers}
    forms = forms or {}
    delivery_forms = {match["id"]: forms.get(f"delivery:{match['id']}") or _delivery_form_values(match)
                      for match in items if _deliverable(match)}
    cancel_forms = {match["id"]: forms.get(f"cancel:{match['id']}") or _reason_form_values()
                    for match in items if _cancellable(match)}
    # A refusal for a match whose form is no longer shown (approved, cancelled or delivered meanwhile).
    shown = {f"delivery:{match_id}" for match_id in delivery_forms} | {f"cancel:{match_id}" for match_id in cancel_forms}
    problems = [state["problem"] for key, state in forms.items() if key not in shown and state.get("problem")]
    return render(
        request, page, "org/matches.html", status_code=status_code, matches=items, needs=needs, offers=offers,
        next_cursor=matches["next_cursor"], status=status, cursor=cursor, 
        delivery_forms=delivery_forms, cancel_forms=cancel_forms, flash=flash or {},
        problems=problems,
    )


@router.get("/org/matches", response_class=HTMLResponse)
async def matches_list(
    request: Request, page: SignedIn, status: str = "", cursor: str = "", pledged: str = "", delivered: str = "",
    cancelled: str = "",
) -> Response:
    flash = {name: value for name, value in (("pledged", pledged), ("delivered", delivered), ("cancelled", cancelled))
             if value}
    return await _matches_page(request, page, status=status if status in MATCH_STATUS else "", cursor=cursor,
                               flash=flash)


@router.post("/org/matches/{match_id}/deliveries", response_class=HTMLResponse)
async def record_delivery(request: Request, page: SignedIn, match_id: uuid.UUID) -> Response:
    _organisation_of(page)
    form = await request.form()
    values = {name: form_text(form, name) for name in ("quantity", "delivered_on", "note")}
    body = {"quantity": values["quantity"], "delivered_on": values["delivered_on"], "note": values["note"]}
    api = public_api(request)
    try:
        await api.post(f"/api/matches/{match_id}/deliveries", token=page.token, json=body,
                       headers=idempotency_headers(form))
    except ApiProblem as problem:
        if problem.status in NOT_FOR_THE_FORM:
            raise
        errors, other_errors = split_problem(problem, DELIVERY_FORM_FIELDS)
        state = {**values, "errors": errors, "other_errors": other_errors, "problem": problem,
                 "idempotency_key": uuid.uuid4().hex}
        if is_htmx(request):
            match = await api.get(f"/api/matches/{match_id}", token=page.token)
            return render(request, page, "org/_delivery_form.html", status_code=refusal_status(problem, request), match=match,
                          form=state)
        return await _matches_page(request, page, forms={f"delivery:{match_id}": state},
                                   status_code=refusal_status(problem, request))
    return redirect(request, f"/org/matches?delivered={match_id}")


@router.post("/org/matches/{match_id}/cancel", response_class=HTMLResponse)
async def cancel_pledge(request: Request, page: SignedIn, match_id: uuid.UUID) -> Response:
    _organisation_of(page)
    form = await request.form()
    reason = form_text(form, "reason")
    api = public_api(request)
    try:
        await api.post(f"/api/matches/{match_id}/cancel", token=page.token, json={"reason": reason},
                       headers=idempotency_headers(form))
    except ApiProblem as problem:
        if problem.status in NOT_FOR_THE_FORM:
            raise
        state = _refused_reason(problem, reason)
        if is_htmx(request):
            match = await api.get(f"/api/matches/{match_id}", token=page.token)
            return render(request, page, "org/_cancel_form.html", status_code=refusal_status(problem, request), match=match,
                          form=state)
        return await _matches_page(request, page, forms={f"cancel:{match_id}": state},
                                   status_code=refusal_status(problem, request))
    return redirect(request, f"/org/matches?cancelled={match_id}")
