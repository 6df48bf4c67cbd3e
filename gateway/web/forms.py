"""What every role's pages share in handling a form: reading its fields, who may use it, and the API's refusals.

The API decides and the pages show its answers: a refusal's messages go next to the fields they name,
the rest above the form, and htmx gets a status it swaps (base.html) so that the form shows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData

from gateway.web.api import ApiProblem
from gateway.web.i18n import N_, gettext
from gateway.web.session import PageContext
from services.common.identity import Principal, Role

GOVERNORS = frozenset({Role.COORDINATOR, Role.ADMIN})
# htmx swaps 2xx, 409 and 422 answers only (base.html's htmx-config).
SWAPPED_STATUSES = frozenset({409, 422})
# Refusals a page cannot show beside a form: signed out, or the platform itself in trouble.
NOT_FOR_THE_FORM = frozenset({401, 500, 502, 503, 504})
IDEMPOTENCY_KEY_LENGTH = range(8, 101)
NOT_ALLOWED = N_("Not allowed")


def not_allowed(detail: str) -> ApiProblem:
    """The refusal the API itself would give, in the page's language (`detail` is a message id)."""
    return ApiProblem(403, title=gettext(NOT_ALLOWED), detail=gettext(detail))


def require_role(page: PageContext, roles: Iterable[Role], detail: str) -> Principal:
    """The signed-in user, if their role is one of `roles`; other roles have pages of their own."""
    if page.principal is None or page.principal.role not in set(roles):
        raise not_allowed(detail)
    return page.principal


def is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


def refusal_status(problem: ApiProblem, request: Request) -> int:
    """A plain form gets the refusal's own status; htmx only swaps 409 and 422, so other refusals come as 409."""
    if problem.status in SWAPPED_STATUSES or not is_htmx(request):
        return problem.status
    return 409


def form_text(form: FormData | None, name: str) -> str:
    """A field as typed, without surrounding spaces; '' when the form does not have it (or sends a file)."""
    value = form.get(name) if form is not None else None
    return value.strip() if isinstance(value, str) else ""


def form_texts(form: FormData, name: str) -> list[str]:
    """Every non-empty value of a repeated field (check boxes, multiple selects)."""
    return [value.strip() for value in form.getlist(name) if isinstance(value, str) and value.strip()]


def idempotency_headers(form: FormData) -> dict[str, str]:
    """The form's one-time key as `Idempotency-Key`: pressing submit twice then creates one thing, not two.

    A key of an odd length (not one this page wrote) is left out rather than refused."""
    key = form_text(form, "idempotency_key")
    return {"Idempotency-Key": key} if len(key) in IDEMPOTENCY_KEY_LENGTH else {}


def plain_amount(value: Any) -> str:
    """'45.00' → '45', '12.50' → '12.5': an amount as a person would type it into a field (the API sends decimals)."""
    if value is None or value == "":
        return ""
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except InvalidOperation:
        return str(value)


def split_problem(
    problem: ApiProblem | None, fields: Iterable[str], rename: dict[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The API's messages: those naming a field of the form keyed by that field, the others for above the form.

    The API names nested fields by their path ('categories.0', 'weights.urgency'): the message goes to the
    deepest part that is a field of the form. `rename` maps the API's name of a field to the form's."""
    if problem is None:
        return {}, []
    known = set(fields)
    placed: dict[str, str] = {}
    others: list[str] = []
    for error in problem.errors:
        path = [(rename or {}).get(part, part) for part in str(error.get("field", "")).split(".")]
        name = next((part for part in reversed(path) if part in known), None)
        message = str(error.get("message", ""))
        if name is None:
            others.append(message)
        else:
            placed.setdefault(name, message)
    return placed, others
