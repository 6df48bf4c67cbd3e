"""The settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

JWT_ISSUER = "duijie-gateway"
JWT_AUDIENCE = "duijie"


class ServiceSettings(BaseSettings):
    """Settings of one service. Subclasses set `env_prefix`, e.g. DUIJIE_NEEDS_."""

    model_config = SettingsConfigDict(env_prefix="DUIJIE_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///var/service.db"
    # PEM of the gateway's public key: services verify tokens but can never mint them.
    jwt_public_key: str = Field(default="", repr=False)
    jwt_issuer: str = JWT_ISSUER
    jwt_audience: str = JWT_AUDIENCE
    # Connections kept open, and opened beyond them for a burst (closed again when it is over). Steady
    # load above the kept ones made the pool open and close a PostgreSQL connection per few requests,
    # each a server process to fork: keep enough. The sum, the most a process opens, is as before.
    db_pool_size: int = 20
    db_max_overflow: int = 10
    sql_echo: bool = False

    @field_validator("jwt_public_key")
    @classmethod
    def _public_key_is_pem(cls, value: str) -> str:
        if value and "BEGIN PUBLIC KEY" not in value:
            raise ValueError("jwt_public_key must be a PEM public key (-----BEGIN PUBLIC KEY-----)")
        return value
