"""Loads the demo through the gateway's public HTTP API, as any client would, and idempotently.

Every item is looked up before it is created (organisations by credit code, offers by organisation and
title, needs by village and title, pairings by organisation and village, users by a 409 on their name),
so a second `duijie up --demo` on the same data directory adds nothing.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from duijie_cli import demo_data as data
from duijie_cli.keys import write_private

LOGINS_FILE = "demo-logins.json"
ROLES = ("admin", "coordinator", "officer", "org_member")


class DemoError(RuntimeError):
    pass


@dataclass(frozen=True)
class Login:
    role: str
    username: str
    password: str
    scope: str = ""


def new_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, ~120 bits


def demo_logins(data_dir: Path, bootstrap_admin: str | None) -> dict[str, Login]:
    """The demo's logins, made once and kept in `<data-dir>/demo-logins.json` (owner-only).

    The admin is DUIJIE_BOOTSTRAP_ADMIN when set (and then not written down), else a generated one.
    """
    path = data_dir / LOGINS_FILE
    stored: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    logins: dict[str, Login] = {}
    if bootstrap_admin:
        username, _, password = bootstrap_admin.partition(":")
        logins["admin"] = Login("admin", username.strip().lower(), password, "all")
    else:
        logins["admin"] = Login(**stored["admin"]) if "admin" in stored else Login("admin", "admin", new_password(), "all")
    for user in data.USERS:
        scope = user.village_code or user.region_code or user.organisation or ""
        previous = stored.get(user.role)
        if previous and previous.get("username") == user.username:
            logins[user.role] = Login(**previous)
        else:
            logins[user.role] = Login(user.role, user.username, new_password(), scope)
    keep = {role: asdict(login) for role, login in logins.items() if not (role == "admin" and bootstrap_admin)}
    if keep != stored:
        write_private(path, json.dumps(keep, ensure_ascii=False, indent=2) + "\n")
    return logins


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:300]}"
    detail = body.get("detail") or body.get("title") or body
    errors = body.get("errors")
    return f"{response.status_code} {detail}" + (f" {errors}" if errors else "")


class DemoLoader:
    def __init__(self, client: httpx.Client, logins: dict[str, Login], today: date | None = None) -> None:
        self.client = client
        self.logins = logins
        self.today = today or date.today()
        self.created: Counter[str] = Counter()
        self.existing: Counter[str] = Counter()
        self.organisation_ids: dict[str, str] = {}
        self._headers: dict[str, str] = {}
        self.warnings: list[str] = []

    # --- HTTP ------------------------------------------------------------------------------

    def sign_in(self, login: Login) -> dict[str, str]:
        response = self.client.post("/auth/token", data={"username": login.username, "password": login.password})
        if response.status_code != 200:
            raise DemoError(
                f"cannot sign in as {login.username!r} ({_problem(response)}). An admin with another password "
                "already exists in this data directory: set DUIJIE_BOOTSTRAP_ADMIN=username:password to that admin, "
                "or use a fresh --data-dir."
            )
        return {"Authorization": f"Bearer {response.json()['access_token']}", "Accept-Language": "en"}

    def _call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, headers=self._headers, **kwargs)
        if response.status_code not in ok:
            raise DemoError(f"{method} {path}: {_problem(response)}")
        return response

    def _items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("GET", path, params={"limit": 200, **params}).json()["items"]
        return items

    def _count(self, kind: str, created: bool) -> None:
        (self.created if created else self.existing)[kind] += 1

    # --- the load --------------------------------------------------------------------------

    def load(self) -> None:
        self._headers = self.sign_in(self.logins["admin"])
        for organisation in data.ORGANISATIONS:
            self._organisation(organisation)
        for pairing in data.PAIRINGS:
            self._pairing(pairing)
        for offer in data.OFFERS:
            self._offer(offer)
        for need in data.NEEDS:
            self._need(need)
        for user in data.USERS:
            self._user(user)

    def _organisation(self, spec: data.Organisation) -> None:
        found = [item for item in self._items("/api/organisations", q=spec.credit_code) if item["credit_code"] == spec.credit_code]
        if found:
            organisation = found[0]
        else:
            organisation = self._call("POST", "/api/organisations", json={
                "name": spec.name, "org_type": spec.org_type, "credit_code": spec.credit_code, "grade": spec.grade,
                "region_codes": spec.region_codes, "description": spec.description, "contact": {"name": spec.contact},
            }).json()
        self._count("organisations", not found)
        if spec.verified and not organisation["verified"]:
            self._call("POST", f"/api/organisations/{organisation['id']}/verify")
        self.organisation_ids[spec.key] = organisation["id"]

    def _pairing(self, spec: data.Pairing) -> None:
        organisation_id = self.organisation_ids[spec.organisation]
        found = self._items("/api/pairings", organisation_id=organisation_id, village_code=spec.village, status="active")
        if not found:
            self._call("POST", "/api/pairings", json={"organisation_id": organisation_id, "village_code": spec.village,
                                                      "note": spec.note})
        self._count("pairings", not found)

    def _offer(self, spec: data.Offer) -> None:
        organisation_id = self.organisation_ids[spec.organisation]
        found = [item for item in self._items("/api/offers", organisation_id=organisation_id, q=spec.title)
                 if item["title"] == spec.title]
        if not found:
            body: dict[str, Any] = {
                "organisation_id": organisation_id, "title": spec.title, "description": spec.description,
                "categories": spec.categories, "kind": spec.kind, "quantity": spec.quantity, "unit": spec.unit,
                "region_codes": spec.region_codes, "available_from": self.today.isoformat(),
                "available_until": (self.today + timedelta(days=spec.available_days)).isoformat(),
                "beneficiary_groups": spec.beneficiary_groups, "skills": spec.skills,
            }
            if spec.centre:
                centre = data.VILLAGE_BY_CODE[spec.centre]
                body.update(lat=centre.lat, lon=centre.lon, radius_km=spec.radius_km)
            self._call("POST", "/api/offers", json=body)
        self._count("offers", not found)

    def _need(self, spec: data.Need) -> None:
        found = [item for item in self._items("/api/needs", region=spec.village, q=spec.title) if item["title"] == spec.title]
        if not found:
            village = data.VILLAGE_BY_CODE[spec.village]
            body: dict[str, Any] = {
                "title": spec.title, "description": spec.description, "category": spec.category, "kind": spec.kind,
                "quantity": spec.quantity, "unit": spec.unit, "beneficiaries": spec.beneficiaries,
                "beneficiary_groups": spec.beneficiary_groups, "urgency": spec.urgency,
                "needed_by": (self.today + timedelta(days=spec.needed_in_days)).isoformat(),
                "village_code": spec.village, "lat": village.lat, "lon": village.lon, "skills": spec.skills,
                "channel": spec.channel,
            }
            if spec.requester:
                body["requester"] = spec.requester
            self._call("POST", "/api/needs", json=body)
        self._count("needs", not found)

    def _user(self, spec: data.DemoUser) -> None:
        login = self.logins[spec.role]
        body: dict[str, Any] = {"username": login.username, "password": login.password, "role": spec.role,
                                "display_name": spec.display_name}
        if spec.village_code:
            body["village_code"] = spec.village_code
        if spec.region_code:
            body["region_code"] = spec.region_code
        if spec.organisation:
            body["organisation_id"] = self.organisation_ids[spec.organisation]
        response = self._call("POST", "/auth/users", json=body, ok=(201, 409))
        self._count("users", response.status_code == 201)
        if response.status_code == 409:  # there already: is the password we print still theirs?
            check = self.client.post("/auth/token", data={"username": login.username, "password": login.password})
            if check.status_code != 200:
                self.warnings.append(f"{login.username} exists with a password other than the one printed")


def load_demo(gateway_url: str, logins: dict[str, Login], timeout: float = 30.0) -> DemoLoader:
    with httpx.Client(base_url=gateway_url, timeout=timeout, trust_env=False) as client:
        loader = DemoLoader(client, logins)
        loader.load()
    return loader
