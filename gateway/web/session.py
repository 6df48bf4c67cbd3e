"""Who is looking at a page: the JWT in an HttpOnly cookie, the language, and CSRF protection of every form.

The token is the same one `POST /auth/token` gives any client; pages never see it from script
(HttpOnly), and SameSite=Lax keeps it off other sites' POSTs. Every unsafe request must also carry
a CSRF token (form field `csrf_token` or header `X-CSRF-Token`): an HMAC of a random per-browser
cookie under the gateway's key, so another site can neither read nor forge it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response

from gateway.web.i18n import parse_locale
from services.common.errors import AppError, Unauthorized
from services.common.identity import Principal, TokenVerifier
from services.common.messages import DEFAULT_LOCALE, Locale, Text, current_locale, locale_from_header

SESSION_COOKIE = "duijie_session"
CSRF_COOKIE = "duijie_csrf"
LANG_COOKIE = "duijie_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ONE_YEAR = 365 * 24 * 3600


class CsrfRejected(AppError):
    status, code = 403, "csrf-rejected"
    title = Text("请求来源无法验证", "Request origin not verified")


CSRF_MISSING = Text(
    "表单已过期或来源不明，请刷新页面后重试。",
    "The form has expired or did not come from this site; reload the page and try again.",
)


class SignInRequired(Exception):
    """Raised by page dependencies; the pages' handler answers with the login page (or HX-Redirect)."""


@dataclass(frozen=True, slots=True)
class PageContext:
    """What every page template needs: who, in which language, and the CSRF token for its forms."""

    principal: Principal | None
    token: str | None
    locale: Locale
    csrf_token: str
    display_name: str = ""


def _csrf_key(request: Request) -> bytes:
    key: bytes = request.app.state.csrf_key
    return key


def csrf_token_for(request: Request, browser_secret: str) -> str:
    return hmac.new(_csrf_key(request), browser_secret.encode(), hashlib.sha256).hexdigest()


def browser_secret(request: Request) -> str:
    """The browser's CSRF secret; a new one is made (and set by `remember_browser`) on its first visit."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing
    secret: str | None = getattr(request.state, "new_csrf_secret", None)
    if secret is None:
        secret = secrets.token_urlsafe(32)
        request.state.new_csrf_secret = secret
    return secret


def remember_browser(request: Request, response: Response) -> None:
    secret = getattr(request.state, "new_csrf_secret", None)
    if secret is not None:
        response.set_cookie(CSRF_COOKIE, secret, max_age=ONE_YEAR, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")


async def check_csrf(request: Request) -> None:
    if request.method not in UNSAFE_METHODS:
        return
    secret = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not secret or not sent or not hmac.compare_digest(sent, csrf_token_for(request, secret)):
        raise CsrfRejected(CSRF_MISSING)


def page_locale(request: Request) -> Locale:
    """The language switch's cookie first (it follows the user's setting), then the browser's languages."""
    return parse_locale(request.cookies.get(LANG_COOKIE)) or locale_from_header(request.headers.get("accept-language"))


def _principal(request: Request, token: str | None) -> Principal | None:
    if not token:
        return None
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return verifier.verify(token)
    except Unauthorized:
        return None  # expired or foreign: the page asks to sign in again


async def page_context(request: Request) -> PageContext:
    locale = page_locale(request)
    current_locale.set(locale)
    await check_csrf(request)
    token = request.cookies.get(SESSION_COOKIE)
    principal = _principal(request, token)
    return PageContext(
        principal=principal,
        token=token if principal else None,
        locale=locale,
        csrf_token=csrf_token_for(request, browser_secret(request)),
        display_name=principal.username if principal else "",
    )


async def signed_in(context: Annotated[PageContext, Depends(page_context)]) -> PageContext:
    if context.principal is None:
        raise SignInRequired
    return context


Page = Annotated[PageContext, Depends(page_context)]
SignedIn = Annotated[PageContext, Depends(signed_in)]


def start_session(request: Request, response: Response, token: str, ttl_seconds: int, locale: Locale | None) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, token, max_age=ttl_seconds, httponly=True, samesite="lax", secure=secure, path="/")
    if locale is not None:
        remember_locale(request, response, locale)


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def remember_locale(request: Request, response: Response, locale: Locale) -> None:
    response.set_cookie(LANG_COOKIE, locale, max_age=ONE_YEAR, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/")


__all__ = ["DEFAULT_LOCALE", "Page", "PageContext", "SignInRequired", "SignedIn"]
