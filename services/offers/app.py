"""The offers service: organisations, what they offer and hold for matches, and their pairings with villages."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.app import create_service_app
from services.offers.config import OffersSettings, get_settings
from services.offers.models import Change, IdempotencyRecord
from services.offers.router import internal, offers, organisations, pairings


def create_app(settings: OffersSettings | None = None) -> FastAPI:
    return create_service_app(
        name="offers",
        title="Duijie offers service",
        description="社会组织、供给与结对帮扶。Organisations, their offers and reservations, and pairings with villages.",
        settings=settings or get_settings(),
        routers=[organisations, offers, pairings, internal],
        change_model=Change,
        idempotency_model=IdempotencyRecord,
    )
