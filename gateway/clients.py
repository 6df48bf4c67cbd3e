"""What the gateway itself asks of other services: whether an organisation exists (offers)."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.upstreams import UPSTREAM_ERRORS, Upstreams, upstream_failure
from services.common.errors import ServiceUnavailable
from services.common.http import REQUEST_ID_HEADER, request_id_var
from services.common.messages import Text

CANNOT_CHECK = Text(
    "暂时无法向组织服务核实该组织，请稍后重试。", "The organisation cannot be checked with the offers service right now; try again shortly."
)


async def find_organisation(
    upstreams: Upstreams, organisation_id: uuid.UUID, *, authorization: str
) -> dict[str, Any] | None:
    """The organisation as offers shows it to the caller (whose token is forwarded), or None when unknown to them."""
    client = upstreams.client("offers")
    headers = {"authorization": authorization, REQUEST_ID_HEADER: request_id_var.get(), "accept": "application/json"}
    try:
        response = await client.get(f"/api/organisations/{organisation_id}", headers=headers)
    except UPSTREAM_ERRORS as exc:
        raise upstream_failure("offers", exc) from exc
    if response.status_code in (403, 404):
        return None
    if response.status_code != 200:
        raise ServiceUnavailable(CANNOT_CHECK)
    try:
        body = response.json()
    except ValueError as exc:
        raise ServiceUnavailable(CANNOT_CHECK) from exc
    return body if isinstance(body, dict) else {}
