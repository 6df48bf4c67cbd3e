from __future__ import annotations

from functools import lru_cache

from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class OffersSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DUIJIE_OFFERS_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/offers.db"


@lru_cache
def get_settings() -> OffersSettings:
    return OffersSettings()
