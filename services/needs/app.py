"""The needs service: villages' needs, their lifecycle and the quantity committed to them."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.app import create_service_app
from services.needs.config import NeedsSettings, get_settings
from services.needs.models import Change, IdempotencyRecord
from services.needs.router import internal, router


def create_app(settings: NeedsSettings | None = None) -> FastAPI:
    return create_service_app(
        name="needs",
        title="Duijie needs service",
        description="村级需求：发布、维护与承诺。Villages' needs: posting, lifecycle and commitments.",
        settings=settings or get_settings(),
        routers=[router, internal],
        change_model=Change,
        idempotency_model=IdempotencyRecord,
    )
