"""An admin's pages: users, and the rule set with a preview of how a change would reorder a sample.

Everything comes from the public API with the admin's (or coordinator's) own token, as curl would call it:
`GET|POST /auth/users`, `GET /api/organisations`, `GET|PUT /api/rulesets/current`, `GET /api/needs`,
`GET /api/candidates?need_id=`, `GET /api/offers/{id}`, `GET /api/organisations/{id}`.

The preview holds no matching rule: each candidate the API returns carries its score rule by rule, and
its total is the weighted mean Σ wᵢ·sᵢ / Σ wᵢ (RuleExplanationRead); re-weighting those same scores with
the edited weights is arithmetic on what is shown. Two things the API does not give, so the preview says so
instead of guessing: the score of a rule whose current weight is 0 (the API leaves it out of the
explanation), and offers outside the current top of the list (only the first PREVIEW_LIMIT are asked for).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from gateway.web import i18n
from gateway.web.api import ApiProblem, PublicApi
from gateway.web.forms import (
    NOT_FOR_THE_FORM,
    form_text,
    idempotency_headers,
    is_htmx,
    plain_amount,
    refusal_status,
    require_role,
    split_problem,
)
from gateway.web.i18n import N_
from gateway.web.labels import RULE
from gateway.web.pages import public_api
from gateway.web.render import redirect, render
from gateway.web.session import PageContext, SignedIn
from services.common.identity import Role

router = APIRouter(include_in_schema=False)

USERS_PAGE_SIZE = 50
ORGANISATIONS_LIMIT = 200
SAMPLE_NEEDS = 20
PREVIEW_LIMIT = 50

ROLES = ("officer", "org_member", "coordinator", "admin")
# What a coordinator may create (the API refuses the rest; the form does not offer it).
COORDINATOR_CREATES = ("officer", "org_member")
# Each role names exactly one village, organisation or region (the API's rule, mirrored only to show one field).
SCOPE_FIELD = {"officer": "village_code", "org_member": "organisation_id", "coordinator": "region_code"}
USER_FORM_FIELDS = frozenset({"username", "password", "role", "display_name", "village_code", "organisation_id",
                              "region_code"})

RULES = tuple(RULE)
RULE_HINTS = {
    "proximity": N_("Nearby help first: same village, township, county…, and the distance."),
    "coverage": N_("How much of what is left of the need the offer can cover."),
    "urgency": N_("The urgency the village gave the need (1 to 5)."),
    "deadline": N_("How close the need's deadline is."),
    "pairing": N_("Whether the organisation is paired with the village."),
    "grade": N_("The organisation's evaluation grade (1A to 5A)."),
    "equity": N_("Villages that have received less so far come first."),
    "beneficiaries": N_("How many people the need reaches."),
}
PARAMETER_LABELS = {
    "half_distance_km": N_("Distance at which proximity halves (km)"),
    "unknown_distance_score": N_("Distance score when a place has no coordinates"),
    "same_village_bonus": N_("Bonus: same village"), "same_township_bonus": N_("Bonus: same township"),
    "same_county_bonus": N_("Bonus: same county"), "same_city_bonus": N_("Bonus: same city"),
    "same_province_bonus": N_("Bonus: same province"), "deadline_horizon_days": N_("Deadline horizon (days)"),
    "ungraded_score": N_("Score of an organisation not yet graded"),
    "equity_scale_cny": N_("Value received at which equity halves (CNY)"),
    "beneficiaries_full_at": N_("People reached for a full score"),
}
HARD_FILTERS = (
    N_("The need is open, something of it is left, and its deadline has not passed."),
    N_("The offer is of the need's category, kind and unit."),
    N_("The village lies in a region the offer serves, or within its radius."),
    N_("The offer is available before the need's deadline."),
    N_("The offer serves the need's beneficiary groups and brings the skills it asks for."),
    N_("Something of the offer is left."),
)


# --- helpers -----------------------------------------------------------------------------------

def _user_managers(page: PageContext) -> None:
    require_role(page, {Role.ADMIN, Role.COORDINATOR}, N_("These pages are for admins and coordinators."))


def _admins(page: PageContext) -> None:
    require_role(page, {Role.ADMIN}, N_("These pages are for admins."))


def role_choices(page: PageContext) -> list[str]:
    assert page.principal is not None
    return list(ROLES) if page.principal.role is Role.ADMIN else list(COORDINATOR_CREATES)


async def _organisations(api: PublicApi, page: PageContext) -> list[dict[str, Any]]:
    """The organisations the form may name: all for an admin, those serving the coordinator's region for a coordinator."""
    assert page.principal is not None
    region = page.principal.region_code if page.principal.role is Role.COORDINATOR else None
    body = await api.get("/api/organisations", token=page.token, params={"limit": ORGANISATIONS_LIMIT, "region": region})
    items: list[dict[str, Any]] = body["items"]
    return sorted(items, key=lambda organisation: str(organisation.get("name", "")))


# --- users ---------------------------------------------------------------------------------------

def _user_form_values(form: FormData | None = None) -> dict[str, str]:
    names = ("username", "password", "role", "display_name", "village_code", "organisation_id", "region_code",
             "idempotency_key")
    values = {name: form_text(form, name) for name in names}
    if form is not None:
        values["password"] = str(form.get("password") or "")  # spaces are part of a password
    values["idempotency_key"] = values["idempotency_key"] or uuid.uuid4().hex
    return values


def _user_payload(values: dict[str, str]) -> dict[str, Any]:
    """The form as UserCreate: the one scope field the chosen role uses, as typed (the API checks it)."""
    payload: dict[str, Any] = {"username": values["username"], "password": values["password"], "role": values["role"]}
    if values["display_name"]:
        payload["display_name"] = values["display_name"]
    scope = SCOPE_FIELD.get(values["role"])
    if scope is not None:
        payload[scope] = values[scope] or None
    return payload


async def _render_users(
    request: Request, page: PageContext, *, values: dict[str, str], problem: ApiProblem | None = None,
    role: str = "", cursor: str = "", created: str = "", status_code: int = 200, form_only: bool = False,
) -> Response:
    api = public_api(request)
    errors, other_errors = split_problem(problem, USER_FORM_FIELDS)
    form_values = {"values": values, "errors": errors, "other_errors": other_errors, "problem": problem,
                   "roles": role_choices(page), "scope_field": SCOPE_FIELD}
    if form_only:
        organisations = await _organisations(api, page)
        return render(request, page, "admin/_user_form.html", status_code=status_code, organisations=organisations,
                      show_all_scopes=False, **form_values)
    users, organisations = await asyncio.gather(
        api.get("/auth/users", token=page.token,
                params={"role": role if role in ROLES else None, "cursor": cursor, "limit": USERS_PAGE_SIZE}),
        _organisations(api, page),
    )
    names = {str(organisation["id"]): organisation["name"] for organisation in organisations}
    return render(
        request, page, "admin/users.html", status_code=status_code, users=users["items"],
        next_cursor=users["next_cursor"], role=role, cursor=cursor, created=created, organisations=organisations,
        organisation_names=names, show_all_scopes=not values["role"], all_roles=ROLES, **form_values,
    )


@router.get("/admin", response_class=HTMLResponse)
async def admin_home(request: Request, page: SignedIn) -> Response:
    _user_managers(page)
    return redirect(request, "/admin/users")


@router.get("/admin/users", response_class=HTMLResponse)
async def users_page(request: Request, page: SignedIn, role: str = "", cursor: str = "", created: str = "") -> Response:
    _user_managers(page)
    return await _render_users(request, page, values=_user_form_values(), role=role, cursor=cursor, created=created)


@router.get("/admin/users/scope", response_class=HTMLResponse)
async def user_scope_field(request: Request, page: SignedIn, role: str = "") -> Response:
    """The scope field the chosen role needs (htmx swaps it in when the role changes)."""
    _user_managers(page)
    values = _user_form_values()
    values["role"] = role if role in ROLES else ""
    organisations = await _organisations(public_api(request), page) if values["role"] == "org_member" else []
    return render(request, page, "admin/_scope_field.html", values=values, errors={}, organisations=organisations,
                  show_all_scopes=not values["role"], scope_field=SCOPE_FIELD, roles=role_choices(page))


@router.post("/admin/users", response_class=HTMLResponse)
async def user_create(request: Request, page: SignedIn) -> Response:
    _user_managers(page)
    form = await request.form()
    values = _user_form_values(form)
    try:
        user = await public_api(request).post("/auth/users", token=page.token, json=_user_payload(values),
                                              headers=idempotency_headers(form))
    except ApiProblem as problem:
        if problem.status in NOT_FOR_THE_FORM:
            raise
        values["password"] = ""  # never sent back into a page
        return await _render_users(request, page, values=values, problem=problem, status_code=refusal_status(problem, request),
                                   form_only=is_htmx(request))
    return redirect(request, f"/admin/users?role={user['role']}&created={user['username']}")


# --- the rule set and its preview ----------------------------------------------------------------

def _weights_of(form: FormData | None, ruleset: dict[str, Any]) -> dict[str, str]:
    """The weights as typed, or as in force."""
    if form is None:
        return {rule: plain_amount(ruleset["weights"][rule]) for rule in RULES}
    return {rule: form_text(form, rule) for rule in RULES}


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _json_weights(weights: dict[str, str]) -> dict[str, Any]:
    """Numbers where the text is one; otherwise the text itself, for the API to name what is wrong with it."""
    result: dict[str, Any] = {}
    for rule, text in weights.items():
        number = _as_number(text)
        result[rule] = number if number is not None else text
    return result


def _preview_weights(weights: dict[str, str]) -> dict[str, float] | None:
    """The edited weights if they can be previewed (numbers, none below 0, some above 0); the API judges the rest."""
    numbers = {rule: _as_number(text) for rule, text in weights.items()}
    if any(number is None or number < 0 for number in numbers.values()):
        return None
    clean = {rule: float(number or 0.0) for rule, number in numbers.items()}
    return clean if math.fsum(clean.values()) > 0 else None


def reweigh(candidates: list[dict[str, Any]], weights: dict[str, float]) -> tuple[list[dict[str, Any]], list[str]]:
    """The candidates as the API ranked them, each with its rank and its score under `weights`, the weighted mean
    of the per-rule scores it carries; ordered by that score (then offer id, as the API breaks ties).

    Also returns the rules the edited weights count but no candidate carries a score for (their current
    weight is 0): then no new order is given, as it would be a guess."""
    total = math.fsum(weights.values())
    carried = {item["rule"] for candidate in candidates for item in candidate["explanation"]}
    missing = [rule for rule, weight in weights.items() if weight > 0 and rule not in carried] if candidates else []
    rows = []
    for rank, candidate in enumerate(candidates, start=1):
        scores = {item["rule"]: float(item["score"]) for item in candidate["explanation"]}
        new_score = math.fsum(weights[rule] * scores.get(rule, 0.0) for rule in weights) / total if total > 0 else 0.0
        rows.append({**candidate, "rank": rank, "new_score": round(new_score, 4)})
    if missing:
        return rows, missing
    ordered = sorted(rows, key=lambda row: (-row["new_score"], str(row["offer_id"])))
    for new_rank, row in enumerate(ordered, start=1):
        row["new_rank"] = new_rank
        row["change"] = row["rank"] - new_rank
    return rows, missing


async def _preview(api: PublicApi, page: PageContext, sample: str, weights: dict[str, str]) -> dict[str, Any]:
    """What the preview partial shows for one sample need."""
    preview: dict[str, Any] = {"sample": sample, "rows": [], "ranked": [], "missing": [], "missing_labels": [], "invalid": False,
                               "why_none": None, "offers": {}, "organisations": {}, "limit": PREVIEW_LIMIT}
    if not sample:
        return preview
    edited = _preview_weights(weights)
    found = await api.get("/api/candidates", token=page.token, params={"need_id": sample, "limit": PREVIEW_LIMIT})
    candidates: list[dict[str, Any]] = found["items"]
    preview["why_none"] = found.get("why_none")
    offers, organisations = await asyncio.gather(
        api.get_each("/api/offers", [candidate["offer_id"] for candidate in candidates], token=page.token),
        api.get_each("/api/organisations", [candidate["organisation_id"] for candidate in candidates], token=page.token),
    )
    preview.update(offers=offers, organisations=organisations)
    if edited is None:
        preview.update(rows=[{**candidate, "rank": rank} for rank, candidate in enumerate(candidates, start=1)],
                       invalid=True)
        return preview
    rows, missing = reweigh(candidates, edited)
    preview.update(rows=rows, missing=missing, missing_labels=[i18n.gettext(RULE[rule]) for rule in missing],
                   ranked=[] if missing else sorted(rows, key=lambda row: row["new_rank"]))
    return preview


async def _sample_needs(api: PublicApi, page: PageContext, sample: str) -> list[dict[str, Any]]:
    body = await api.get("/api/needs", token=page.token, params={"status": "open", "limit": SAMPLE_NEEDS})
    needs: list[dict[str, Any]] = body["items"]
    if sample and sample not in {need["id"] for need in needs}:
        try:
            needs = [await api.get(f"/api/needs/{sample}", token=page.token), *needs]
        except ApiProblem as problem:
            if problem.status not in (404, 422):
                raise
    return needs


def _sample_of(needs: list[dict[str, Any]], requested: str) -> str:
    ids = [need["id"] for need in needs]
    return requested if requested in ids else (ids[0] if ids else "")


async def _render_rules(
    request: Request, page: PageContext, *, form: FormData | None = None, sample: str = "",
    problem: ApiProblem | None = None, published: str = "", status_code: int = 200,
) -> Response:
    api = public_api(request)
    ruleset, needs = await asyncio.gather(api.get("/api/rulesets/current", token=page.token),
                                          _sample_needs(api, page, sample))
    sample = _sample_of(needs, sample)
    weights = _weights_of(form, ruleset)
    version = form_text(form, "version") if form is not None else str(ruleset["version"])
    preview = await _preview(api, page, sample, weights)
    errors, other_errors = split_problem(problem, frozenset(RULES))
    template = "admin/_rules_form.html" if is_htmx(request) and form is not None else "admin/rules.html"
    return render(
        request, page, template, status_code=status_code, ruleset=ruleset, weights=weights, version=version,
        needs=needs, sample=sample, preview=preview, errors=errors, other_errors=other_errors, problem=problem,
        published=published, rules=RULES, rule_hints=RULE_HINTS,
        parameter_labels=PARAMETER_LABELS, hard_filters=HARD_FILTERS, current_weights=ruleset["weights"],
    )


@router.get("/admin/rules", response_class=HTMLResponse)
async def rules_page(request: Request, page: SignedIn, sample: str = "", published: str = "") -> Response:
    _admins(page)
    return await _render_rules(request, page, sample=sample, published=published)


@router.post("/admin/rules/preview", response_class=HTMLResponse)
async def rules_preview(request: Request, page: SignedIn) -> Response:
    """The preview alone, for the weights and sample as they stand in the form (htmx, on every change)."""
    _admins(page)
    form = await request.form()
    api = public_api(request)
    ruleset = await api.get("/api/rulesets/current", token=page.token)
    weights = _weights_of(form, ruleset)
    preview = await _preview(api, page, form_text(form, "sample"), weights)
    return render(request, page, "admin/_preview.html", preview=preview,
                  current_weights=ruleset["weights"])


@router.post("/admin/rules", response_class=HTMLResponse)
async def rules_publish(request: Request, page: SignedIn) -> Response:
    """`action=preview` (the default, without script) shows the preview; `action=publish` publishes a new version."""
    _admins(page)
    form = await request.form()
    sample = form_text(form, "sample")
    if form_text(form, "action") != "publish":
        return await _render_rules(request, page, form=form, sample=sample)
    api = public_api(request)
    version = form_text(form, "version")
    try:
        current = await api.get("/api/rulesets/current", token=page.token)
        body = {"weights": _json_weights(_weights_of(form, current)), "parameters": current["parameters"]}
        saved = await api.call("PUT", "/api/rulesets/current", token=page.token, json=body,
                               headers={"If-Match": f'"{version}"'} if version.isdigit() else {})
    except ApiProblem as problem:
        if problem.status in NOT_FOR_THE_FORM:
            raise
        return await _render_rules(request, page, form=form, sample=sample, problem=problem,
                                   status_code=refusal_status(problem, request))
    return redirect(request, f"/admin/rules?published={saved['version']}&sample={sample}")
