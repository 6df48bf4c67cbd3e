"""What the /auth API accepts and returns. A password goes in, and never comes out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, StringConstraints, ValidationInfo, field_validator

from gateway.auth import USERNAME_MAX, USERNAME_MIN, USERNAME_PATTERN, normalise_username, password_problem, username_problem
from services.common.errors import bilingual_error
from services.common.vocabulary import RegionPrefix, VillageCode

UserRole = Literal["officer", "org_member", "coordinator", "admin"]
UserLocale = Literal["zh-CN", "en"]
Scope = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,49}$")]


def _username(value: object) -> object:
    if not isinstance(value, str):
        return value
    username = normalise_username(value)
    problem = username_problem(username)
    if problem is not None:
        raise bilingual_error(problem)
    return username


Username = Annotated[
    str,
    BeforeValidator(_username),
    Field(json_schema_extra={"minLength": USERNAME_MIN, "maxLength": USERNAME_MAX, "pattern": USERNAME_PATTERN.pattern}),
]


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserCreate(BaseModel):
    # No blanket whitespace stripping: spaces are part of a password, and sign-in does not strip them.
    model_config = ConfigDict(extra="forbid")

    username: Username
    # SecretStr: a password never appears in a repr, a log line or an error message.
    password: SecretStr
    role: UserRole
    village_code: VillageCode | None = None
    organisation_id: uuid.UUID | None = None
    region_code: RegionPrefix | None = None
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    locale: UserLocale = "zh-CN"
    scopes: Annotated[list[Scope], Field(max_length=20)] = []

    @field_validator("password")
    @classmethod
    def _password_policy(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # `username` is declared first, so it is here when it was valid.
        problem = password_problem(info.data.get("username"), value.get_secret_value())
        if problem is not None:
            raise bilingual_error(problem)
        return value


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    role: UserRole
    village_code: str | None = None
    organisation_id: uuid.UUID | None = None
    region_code: str | None = None
    display_name: str
    locale: UserLocale
    scopes: list[str]
    active: bool
    created_at: datetime


class MeUpdate(BaseModel):
    """What a person may change about themselves: the language of their pages and messages."""

    model_config = ConfigDict(extra="forbid")

    locale: UserLocale


class Me(BaseModel):
    """The signed-in person, as the web pages need them."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    username: str
    role: UserRole
    village_code: str | None = None
    organisation_id: uuid.UUID | None = None
    region_code: str | None = None
    display_name: str
    locale: UserLocale
