"""The pages every visitor shares: sign in and out, the language switch, the home page, the region pickers.

Each role's pages live in a module of their own (village.py, organisation.py, coordinator.py,
admin.py, reports.py); they all get their data from the public API (api.py), never from a database.
"""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response

from gateway.web import regions
from gateway.web.api import ApiProblem, PublicApi
from gateway.web.i18n import LANGUAGE_TAG, parse_locale
from gateway.web.render import redirect, render
from gateway.web.session import (
    CsrfRejected,
    Page,
    PageContext,
    SignedIn,
    SignInRequired,
    end_session,
    page_context,
    remember_locale,
    start_session,
)
from services.common.errors import AppError
from services.common.identity import Role
from services.common.messages import current_locale

router = APIRouter(include_in_schema=False)

HOME_OF_ROLE = {
    Role.OFFICER: "/village",
    Role.ORG_MEMBER: "/org",
    Role.COORDINATOR: "/coord/approvals",
    Role.ADMIN: "/admin/users",
}


def public_api(request: Request) -> PublicApi:
    api: PublicApi = request.app.state.public_api
    return api


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: never an open redirect to another host."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def home_of(context: PageContext) -> str:
    return HOME_OF_ROLE.get(context.principal.role, "/login") if context.principal else "/login"


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, page: Page) -> Response:
    return redirect(request, home_of(page))


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, page: Page, next: str | None = None) -> Response:
    return render(request, page, "login.html", next=safe_next(next, ""), username="", error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    page: Page,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    api = public_api(request)
    response = await api.request("POST", "/auth/token", token=None, data={"username": username, "password": password})
    if response.status_code != 200:
        problem = ApiProblem.from_response(response)
        return render(request, page, "login.html", status_code=response.status_code, next=safe_next(next, ""),
                      username=username, error=problem)
    token_body = response.json()
    token = token_body["access_token"]
    me = await api.get("/auth/me", token=token)
    locale = parse_locale(me.get("locale"))
    target = safe_next(next, HOME_OF_ROLE.get(Role(me["role"]), "/"))
    reply = redirect(request, target)
    start_session(request, reply, token, int(token_body["expires_in"]), locale)
    return reply


@router.post("/logout")
async def logout(request: Request, page: Page) -> Response:
    reply = redirect(request, "/login")
    end_session(reply)
    return reply


@router.post("/language")
async def switch_language(
    request: Request,
    page: Page,
    locale: Annotated[str, Form(max_length=10)],
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    """Remembered in a cookie, and as the user's own setting when signed in."""
    chosen = parse_locale(locale) or page.locale
    if page.token:
        current_locale.set(chosen)
        await public_api(request).call("PATCH", "/auth/me", token=page.token, json={"locale": LANGUAGE_TAG[chosen]})
    reply = redirect(request, safe_next(next))
    remember_locale(request, reply, chosen)
    return reply


@router.get("/regions", response_class=HTMLResponse)
async def region_options(request: Request, page: SignedIn, parent: str = "", selected: str = "") -> Response:
    """The <option>s one level below `parent`, for the cascading province → city → county → township pickers."""
    children = await asyncio.to_thread(regions.children, parent if parent.isdigit() else "")
    return render(request, page, "partials/region_options.html", regions=children, selected=selected)


def install_page_handlers(app: FastAPI) -> None:
    """Pages answer in HTML: a sign-in redirect, and readable refusals instead of problem+json."""

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(request, f"/login?next={quote(target)}")

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        return await _error_page(request, exc.status, exc.title.render(), exc.detail.render())

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> Response:
        if exc.status == 401:
            reply = redirect(request, f"/login?next={quote(request.url.path)}")
            end_session(reply)
            return reply
        return await _error_page(request, exc.status, exc.title, exc.detail)


async def _error_page(request: Request, status_code: int, title: str, detail: str) -> Response:
    try:
        context = await page_context(request)
    except AppError:
        context = PageContext(principal=None, token=None, locale=current_locale.get(), csrf_token="")
    return render(request, context, "error.html", status_code=status_code, title=title, detail=detail)
