"""The matching service's settings (env prefix DUIJIE_MATCHING_)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class MatchingSettings(ServiceSettings):
    # hide_input_in_errors: a rejected setting must never print the client secret it was given.
    model_config = SettingsConfigDict(env_prefix="DUIJIE_MATCHING_", extra="ignore", hide_input_in_errors=True)

    database_url: str = "sqlite+aiosqlite:///var/matching.db"

    # The services whose change feeds fill the read models, and the gateway that issues service tokens.
    needs_url: str = "http://127.0.0.1:8001"
    offers_url: str = "http://127.0.0.1:8002"
    gateway_url: str = "http://127.0.0.1:8000"
    # OAuth2 client credentials of this service at the gateway (DUIJIE_GATEWAY_SERVICE_CLIENTS holds the same pair).
    service_client_id: str = "matching"
    service_client_secret: SecretStr = Field(default=SecretStr(""), repr=False)

    connect_timeout: float = Field(default=2.0, gt=0)
    read_timeout: float = Field(default=10.0, gt=0)
    pool_timeout: float = Field(default=5.0, gt=0)

    # Read-model sync: how often each feed is polled when caught up (≤ 0.5 s, so a change shows within 2 s),
    # how many changes one poll asks for, and the longest pause after upstream errors.
    sync_enabled: bool = True
    sync_interval_seconds: float = Field(default=0.25, gt=0, le=0.5)
    sync_batch_size: int = Field(default=500, ge=1, le=2000)
    sync_max_backoff_seconds: float = Field(default=5.0, gt=0, le=300)

    # A run still "queued" or "running" without a heartbeat this long was interrupted (a crash): it is failed.
    run_stale_seconds: float = Field(default=120.0, gt=0)

    # The approval saga: transient upstream failures (timeouts, 5xx, refused connections) are retried with
    # exponential backoff and jitter, at most `saga_retry_attempts` times and `saga_retry_timeout_seconds` in
    # all, within the request; what is still unfinished then is left to the worker. A saga being run holds a
    # lease of `saga_lease_seconds`, renewed at every step: the worker resumes only sagas whose lease ran out.
    saga_retry_attempts: int = Field(default=3, ge=1, le=20)
    saga_retry_timeout_seconds: float = Field(default=8.0, gt=0, le=120)
    saga_retry_wait_initial: float = Field(default=0.1, ge=0, le=10)
    saga_retry_wait_max: float = Field(default=1.0, ge=0, le=60)
    saga_retry_wait_jitter: float = Field(default=0.2, ge=0, le=10)
    saga_lease_seconds: float = Field(default=30.0, gt=0, le=3600)

    # The worker (in every process): resumes unfinished sagas at start-up and every interval, pushes
    # deliveries the upstreams have not acknowledged yet, and sends webhooks.
    worker_enabled: bool = True
    worker_interval_seconds: float = Field(default=2.0, gt=0, le=300)
    worker_batch_size: int = Field(default=50, ge=1, le=1000)

    # Webhooks of organisations: each delivery is tried up to `webhook_max_attempts` times with exponential
    # backoff from `webhook_backoff_seconds` (capped at an hour), each with this timeout.
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Webhooks to loopback or private addresses are refused unless this is set (a trusted test or intranet).
    webhook_allow_private_hosts: bool = False

    @field_validator("needs_url", "offers_url", "gateway_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a service URL starts with http:// or https://")
        return value.rstrip("/")

    def upstream_urls(self) -> dict[str, str]:
        return {"needs": self.needs_url, "offers": self.offers_url, "gateway": self.gateway_url}


@lru_cache
def get_settings() -> MatchingSettings:
    return MatchingSettings()
