"""One OpenAPI for the whole platform: the gateway's own paths plus every reachable service's /api/ paths.

Swagger UI at /docs reads it, and is served from vendored files (no CDN).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from gateway.upstreams import UPSTREAM_ERRORS, Upstreams, describe
from services.common.http import REQUEST_ID_HEADER, request_id_var

log = logging.getLogger("duijie.gateway.openapi")

SCHEMA_REF = "#/components/schemas/"
SECURITY_SCHEME = "OAuth2PasswordBearer"
PUBLIC_PATHS = ("/auth/token", "/auth/service-token", "/healthz", "/readyz")
# When a service was down, look again soon rather than hiding its paths for the whole cache period.
RETRY_MISSING_SECONDS = 5.0
SPEC_FETCH_TIMEOUT = 5.0
SPEC_ERRORS: tuple[type[BaseException], ...] = (*UPSTREAM_ERRORS, ValueError)  # ValueError: not JSON

Spec = dict[str, Any]


# --- merging (pure) -------------------------------------------------------------------------

def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    """A copy of `node` whose schema $refs follow `renames`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMA_REF) and ref[len(SCHEMA_REF):] in renames:
            return {**node, "$ref": SCHEMA_REF + renames[ref[len(SCHEMA_REF):]]}
        return {key: _rewrite_refs(value, renames) for key, value in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _renames(existing: Mapping[str, Any], incoming: Mapping[str, Any], service: str) -> dict[str, str]:
    """Incoming schemas whose name is taken by a different schema get the service's name as a prefix.

    Repeats until stable: renaming one schema changes the refs, and so the content, of those that use it.
    """
    renames: dict[str, str] = {}
    while True:
        clashing = {
            name for name, schema in incoming.items()
            if name not in renames and name in existing and existing[name] != _rewrite_refs(schema, renames)
        }
        if not clashing:
            return renames
        renames.update({name: f"{service}.{name}" for name in clashing})


def _refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
            yield ref[len(SCHEMA_REF):]
        for value in node.values():
            yield from _refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs_in(item)


def _reachable_schemas(paths: Mapping[str, Any], schemas: Mapping[str, Any]) -> dict[str, Any]:
    """Only the schemas some path uses: internal endpoints' shapes stay out of the public spec."""
    seen: set[str] = set()
    pending = list(_refs_in(paths))
    while pending:
        name = pending.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        pending.extend(_refs_in(schemas[name]))
    return {name: schemas[name] for name in sorted(seen)}


def _secure(spec: Spec) -> None:
    """Bearer tokens from /auth/token on everything but the public paths, so Swagger's Authorize works."""
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "oauth2", "flows": {"password": {"tokenUrl": "/auth/token", "scopes": {}}},
    }
    spec["security"] = [{SECURITY_SCHEME: []}]
    for path in PUBLIC_PATHS:
        for operation in spec["paths"].get(path, {}).values():
            if isinstance(operation, dict):
                operation["security"] = []


def merge_specs(own: Spec, upstream_specs: Mapping[str, Spec]) -> Spec:
    """The gateway's spec plus each service's /api/ paths, schemas merged without clashes."""
    merged = copy.deepcopy(own)
    paths: dict[str, Any] = merged.setdefault("paths", {})
    components = merged.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    tag_names = {tag.get("name") for tag in merged.get("tags", [])}
    for service, spec in upstream_specs.items():
        incoming: dict[str, Any] = spec.get("components", {}).get("schemas", {})
        renames = _renames(schemas, incoming, service)
        for name, schema in incoming.items():
            schemas.setdefault(renames.get(name, name), _rewrite_refs(schema, renames))
        for path, item in spec.get("paths", {}).items():
            if path.startswith("/api/") and path not in paths:
                paths[path] = _rewrite_refs(item, renames)
        for tag in spec.get("tags", []):
            if tag.get("name") not in tag_names:
                merged.setdefault("tags", []).append(tag)
                tag_names.add(tag.get("name"))
    components["schemas"] = _reachable_schemas(paths, schemas)
    _secure(merged)
    return merged


# --- fetching and caching --------------------------------------------------------------------

async def _fetch_spec(upstreams: Upstreams, service: str) -> Spec | None:
    """A service's own OpenAPI, or None when it is down or answers nonsense (its paths are then left out)."""
    client = upstreams.client(service)
    timeout = httpx.Timeout(SPEC_FETCH_TIMEOUT, connect=upstreams.timeout.connect)
    try:
        response = await client.get("/openapi.json", timeout=timeout, headers={REQUEST_ID_HEADER: request_id_var.get()})
        spec = response.json() if response.status_code == 200 else None
    except SPEC_ERRORS as exc:
        log.warning("no OpenAPI from %s: %s", service, describe(exc))
        return None
    return spec if isinstance(spec, dict) and isinstance(spec.get("paths"), dict) else None


class MergedOpenAPI:
    """Fetched on first use and kept for a short while: services change only when redeployed."""

    def __init__(self, own: Callable[[], Spec], *, ttl_seconds: float) -> None:
        self._own = own
        self._ttl = ttl_seconds
        self._cached: Spec | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def spec(self, upstreams: Upstreams) -> Spec:
        if self._cached is not None and time.monotonic() < self._expires:
            return self._cached
        async with self._lock:  # one refresh at a time; the others wait for it
            if self._cached is not None and time.monotonic() < self._expires:
                return self._cached
            names = upstreams.names
            fetched = await asyncio.gather(*(_fetch_spec(upstreams, name) for name in names))
            specs = {name: spec for name, spec in zip(names, fetched, strict=True) if spec is not None}
            merged = merge_specs(self._own(), specs)
            ttl = self._ttl if len(specs) == len(names) else min(self._ttl, RETRY_MISSING_SECONDS)
            self._cached, self._expires = merged, time.monotonic() + ttl
            return merged


# --- endpoints -----------------------------------------------------------------------------

SWAGGER = "/static/swagger"
router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request) -> JSONResponse:
    merged: MergedOpenAPI = request.app.state.openapi
    return JSONResponse(await merged.spec(request.app.state.upstreams))


@router.get("/docs")
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="对接 Duijie API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
        # No call to validator.swagger.io: the page must work without leaving the platform.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )
