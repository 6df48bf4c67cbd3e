"""The gateway's settings (env prefix DUIJIE_GATEWAY_). It refuses to start on a missing or broken secret."""

from __future__ import annotations

from functools import lru_cache
from typing import Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from gateway.auth import normalise_username, parse_service_clients, password_problem, username_problem
from services.common.settings import ServiceSettings

UPSTREAMS = ("needs", "offers", "matching")


class GatewaySettings(ServiceSettings):
    # hide_input_in_errors: a rejected setting must never print the key or password it was given.
    model_config = SettingsConfigDict(env_prefix="DUIJIE_GATEWAY_", extra="ignore", hide_input_in_errors=True)

    database_url: str = "sqlite+aiosqlite:///var/gateway.db"
    # Ed25519 private key in PEM (PKCS8). Required: the gateway mints every token. The empty default
    # is validated too, so a missing key fails with the message below rather than "Field required".
    jwt_private_key: SecretStr = Field(default=SecretStr(""), validate_default=True)
    token_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # Where each service listens; None means not deployed (its paths answer 503).
    needs_url: str | None = "http://127.0.0.1:8001"
    offers_url: str | None = "http://127.0.0.1:8002"
    matching_url: str | None = None
    connect_timeout: float = Field(default=2.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    # Spreadsheet imports (POST …/import) answer only once every row is checked and written.
    import_timeout: float = Field(default=300.0, gt=0)
    pool_timeout: float = Field(default=5.0, gt=0)
    upstream_max_connections: int = Field(default=200, ge=1)
    openapi_cache_seconds: float = Field(default=30.0, ge=0)

    # OAuth2 client credentials of the services that call others' internal endpoints:
    # `matching:<secret>[,name:<secret>…]`. They get short-lived service tokens at POST /auth/service-token.
    service_clients: SecretStr | None = None
    service_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)

    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)

    # `username:password` of the first admin, read without the prefix; never a default.
    bootstrap_admin: SecretStr | None = Field(default=None, validation_alias="DUIJIE_BOOTSTRAP_ADMIN")

    @field_validator("jwt_private_key")
    @classmethod
    def _ed25519_private_key(cls, value: SecretStr) -> SecretStr:
        message = (
            "DUIJIE_GATEWAY_JWT_PRIVATE_KEY must be an Ed25519 private key in PEM (PKCS8, "
            "-----BEGIN PRIVATE KEY-----); generate one with `openssl genpkey -algorithm ed25519`"
        )
        try:
            key = serialization.load_pem_private_key(value.get_secret_value().encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(message) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(message)
        return value

    @field_validator("needs_url", "offers_url", "matching_url", mode="before")
    @classmethod
    def _http_url_or_none(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ValueError("a service URL starts with http:// or https://")
        return value.rstrip("/")

    @field_validator("service_clients", mode="before")
    @classmethod
    def _no_clients_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("service_clients")
    @classmethod
    def _name_colon_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_service_clients(value.get_secret_value())
        return value

    @field_validator("bootstrap_admin", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("bootstrap_admin")
    @classmethod
    def _username_colon_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _parse_bootstrap(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _public_key_matches(self) -> Self:
        """Derive the public key, or insist that a given one belongs to the private key."""
        derived = _public_pem(self.jwt_private_key.get_secret_value())
        if not self.jwt_public_key:
            self.jwt_public_key = derived
        elif _normalised_pem(self.jwt_public_key) != _normalised_pem(derived):
            raise ValueError("DUIJIE_GATEWAY_JWT_PUBLIC_KEY is not the public half of DUIJIE_GATEWAY_JWT_PRIVATE_KEY")
        return self

    @property
    def private_pem(self) -> str:
        return self.jwt_private_key.get_secret_value()

    @property
    def bootstrap_credentials(self) -> tuple[str, str] | None:
        return _parse_bootstrap(self.bootstrap_admin.get_secret_value()) if self.bootstrap_admin else None

    @property
    def service_client_secrets(self) -> dict[str, str]:
        return parse_service_clients(self.service_clients.get_secret_value()) if self.service_clients else {}

    def upstream_urls(self) -> dict[str, str | None]:
        return {"needs": self.needs_url, "offers": self.offers_url, "matching": self.matching_url}


def _parse_bootstrap(raw: str) -> tuple[str, str]:
    """`username:password` → the pair, or a ValueError that names the rule and never the secret."""
    username, colon, password = raw.partition(":")
    username = normalise_username(username)
    if not colon or not username or not password:
        raise ValueError("DUIJIE_BOOTSTRAP_ADMIN must be username:password (e.g. admin:a-long-passphrase)")
    problem = username_problem(username)
    if problem is not None:
        raise ValueError(f"DUIJIE_BOOTSTRAP_ADMIN: {problem.en}")
    problem = password_problem(username, password)
    if problem is not None:
        raise ValueError(f"DUIJIE_BOOTSTRAP_ADMIN: {problem.en}")
    return username, password


def _public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _normalised_pem(pem: str) -> str:
    return "".join(pem.split())


@lru_cache
def get_settings() -> GatewaySettings:
    return GatewaySettings()
