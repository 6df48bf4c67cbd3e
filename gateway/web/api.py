"""The pages' only way to data: the platform's public API, called in-process with the user's own token.

Pages hold no business rule and read no database: they call exactly what curl would call
(`/api/...` through the proxy, `/auth/...`), so a page can never do what its user could not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from gateway.web.i18n import LANGUAGE_TAG
from services.common.http import REQUEST_ID_HEADER, request_id_var
from services.common.messages import current_locale

PAGE_API_TIMEOUT = httpx.Timeout(30.0)
# What a lookup of one item may answer when the user may not see it (403) or it is gone (404).
NOT_SHOWN = frozenset({403, 404})


@dataclass
class ApiProblem(Exception):
    """An RFC 9457 answer of the API, kept whole so that the page can show it next to the right field."""

    status: int
    title: str
    detail: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)

    def field_errors(self) -> dict[str, str]:
        """`{"quantity": "必须大于 0"}`: the first message for each field, for inline display."""
        messages: dict[str, str] = {}
        for error in self.errors:
            messages.setdefault(error.get("field", "body"), error.get("message", ""))
        return messages

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiProblem:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return cls(
            status=response.status_code,
            title=str(body.get("title") or response.reason_phrase),
            detail=str(body.get("detail") or ""),
            errors=[error for error in body.get("errors") or [] if isinstance(error, dict)],
            body=body,
        )


class PublicApi:
    """One in-process client for the whole app; each call names the token it acts with."""

    def __init__(self, app: FastAPI) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.internal", timeout=PAGE_API_TIMEOUT
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, token: str | None, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {
            "accept-language": LANGUAGE_TAG[current_locale.get()],
            REQUEST_ID_HEADER: request_id_var.get(),
        }
        if token:
            headers["authorization"] = f"Bearer {token}"
        headers.update(extra or {})
        return headers

    async def request(
        self, method: str, path: str, *, token: str | None, params: dict[str, Any] | None = None,
        json: Any = None, data: dict[str, Any] | None = None, files: Any = None, headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The raw answer, whatever its status (for downloads and for callers that inspect it)."""
        clean_params = {name: value for name, value in (params or {}).items() if value not in (None, "")}
        return await self._client.request(
            method, path, params=clean_params, json=json, data=data, files=files, headers=self._headers(token, headers)
        )

    async def call(self, method: str, path: str, *, token: str | None, **options: Any) -> Any:
        """The JSON of a successful answer; an ApiProblem otherwise."""
        response = await self.request(method, path, token=token, **options)
        if response.status_code >= 400:
            raise ApiProblem.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def get(self, path: str, *, token: str | None, params: dict[str, Any] | None = None) -> Any:
        return await self.call("GET", path, token=token, params=params)

    async def post(self, path: str, *, token: str | None, json: Any = None, **options: Any) -> Any:
        return await self.call("POST", path, token=token, json=json, **options)

    async def get_each(self, path: str, ids: Iterable[Any], *, token: str | None) -> dict[str, dict[str, Any]]:
        """`{id: item}` for each distinct id, fetched at the same time; one the user may not see, or gone, is left out."""
        unique = list(dict.fromkeys(str(item) for item in ids if item))
        found = await asyncio.gather(*(self.get(f"{path}/{item}", token=token) for item in unique), return_exceptions=True)
        items: dict[str, dict[str, Any]] = {}
        for item, answer in zip(unique, found, strict=True):
            if isinstance(answer, ApiProblem) and answer.status in NOT_SHOWN:
                continue
            if isinstance(answer, BaseException):
                raise answer
            items[item] = answer
        return items
