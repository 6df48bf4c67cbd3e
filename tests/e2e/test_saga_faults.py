"""The approval saga over real processes: needs and offers stopped mid-way, then restarted; the matching
worker finishes every saga. Each app is its own uvicorn process on a free port, on SQLite files."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from duijie_cli.keys import load_or_create
from duijie_cli.stack import AppSpec, plan
from services.common import migrate
from services.offers.schemas import credit_code_check_character
from tests.e2e.conftest import free_base_port

VILLAGE = "441302104201"
CREDIT_CODE = "514413000000000" + "77" + credit_code_check_character("51441300000000077")
FAST_SAGAS = {
    "DUIJIE_MATCHING_WORKER_INTERVAL_SECONDS": "0.2", "DUIJIE_MATCHING_SAGA_RETRY_ATTEMPTS": "2",
    "DUIJIE_MATCHING_SAGA_RETRY_WAIT_INITIAL": "0.05", "DUIJIE_MATCHING_SAGA_RETRY_WAIT_MAX": "0.1",
    "DUIJIE_MATCHING_SAGA_RETRY_WAIT_JITTER": "0", "DUIJIE_MATCHING_CONNECT_TIMEOUT": "0.5",
    "DUIJIE_MATCHING_READ_TIMEOUT": "3",
}


@dataclass
class Stack:
    specs: dict[str, AppSpec]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        spec = self.specs[name]
        with open(self.logs / f"{name}.log", "ab") as out:
            self.processes[name] = subprocess.Popen(spec.argv(), env=spec.env, stdout=out, stderr=subprocess.STDOUT,
                                                    stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{spec.url}/healthz", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.processes[name].poll() is None, (self.logs / f"{name}.log").read_text()
            assert time.monotonic() < deadline, f"{name} did not start"
            time.sleep(0.1)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    data = tmp_path / "data"
    environ = {key: value for key, value in os.environ.items() if not key.startswith("DUIJIE_")}
    keys = load_or_create(data, environ)
    password = secrets.token_urlsafe(16)
    specs = plan(data_dir=data, host="127.0.0.1", port=free_base_port(), secrets=keys,
                 bootstrap_admin=f"saga-admin:{password}", environ=environ, access_log=False)
    running = Stack({spec.name: spec for spec in specs}, tmp_path)
    running.specs["matching"].env.update(FAST_SAGAS)
    for spec in specs:
        migrate.upgrade(spec.name, spec.env[f"DUIJIE_{spec.name.upper()}_DATABASE_URL"])
    try:
        for spec in specs:
            running.start(spec.name)
        running.specs["gateway"].env["E2E_ADMIN_PASSWORD"] = password
        yield running
    finally:
        for name in list(running.processes):
            running.stop(name)


def _ok(response: httpx.Response, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200, 201)), response.text
    return response.json()


def _until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_the_worker_finishes_sagas_after_needs_and_offers_come_back(stack: Stack) -> None:
    with httpx.Client(base_url=stack.specs["gateway"].url, timeout=30, trust_env=False) as client:
        token = _ok(client.post("/auth/token", data={"username": "saga-admin",
                                                     "password": stack.specs["gateway"].env["E2E_ADMIN_PASSWORD"]}))
        admin = {"Authorization": f"Bearer {token['access_token']}"}
        organisation = _ok(client.post("/api/organisations", headers=admin, json={
            "name": "惠州市慈善总会", "org_type": "social_organisation", "credit_code": CREDIT_CODE,
            "grade": 4, "region_codes": ["4413"]}))
        _ok(client.post(f"/api/organisations/{organisation['id']}/verify", headers=admin))
        offer = _ok(client.post("/api/offers", headers=admin, json={
            "organisation_id": organisation["id"], "title": "课桌椅", "categories": ["education"], "kind": "goods",
            "quantity": 10, "unit": "set", "region_codes": ["441302"], "available_from": date.today().isoformat(),
            "available_until": (date.today() + timedelta(days=180)).isoformat(), "beneficiary_groups": [], "skills": []}))
        need = _ok(client.post("/api/needs", headers=admin, json={
            "title": "村小学课桌椅", "category": "education", "kind": "goods", "quantity": 10, "unit": "set",
            "beneficiaries": 120, "beneficiary_groups": ["students"], "urgency": 3,
            "needed_by": (date.today() + timedelta(days=60)).isoformat(), "village_code": VILLAGE}))

        def propose() -> dict[str, Any] | None:
            response = client.post("/api/matches", headers=admin,
                                   json={"need_id": need["id"], "offer_id": offer["id"], "quantity": "2"})
            return response.json() if response.status_code == 201 else None  # 404 until the read models have them

        first = _until("the read models", propose)
        second = _ok(client.post("/api/matches", headers=admin,
                                 json={"need_id": need["id"], "offer_id": offer["id"], "quantity": "3"}), 201)

        # needs is down: the reservation is taken, the commitment cannot be; the saga waits at `committing`.
        stack.stop("needs")
        waiting = _ok(client.post(f"/api/matches/{first['id']}/approve", headers=admin), 202)
        assert waiting["status"] == "approving" and waiting["saga_step"] == "committing"
        # offers is down too: the next saga waits at `reserving`.
        stack.stop("offers")
        waiting = _ok(client.post(f"/api/matches/{second['id']}/approve", headers=admin), 202)
        assert waiting["saga_step"] == "reserving"
        time.sleep(1.0)  # the worker tries meanwhile, and fails
        assert client.get(f"/api/matches/{first['id']}", headers=admin).json()["status"] == "approving"

        stack.start("offers")
        stack.start("needs")

        def approved() -> bool:
            return all(client.get(f"/api/matches/{m['id']}", headers=admin).json()["status"] == "approved"
                       for m in (first, second))

        _until("the worker to finish both sagas", approved)
        assert client.get(f"/api/offers/{offer['id']}", headers=admin).json()["reserved"] == "5.00"
        assert client.get(f"/api/needs/{need['id']}", headers=admin).json()["committed"] == "5.00"
        history = client.get(f"/api/matches/{first['id']}/history", headers=admin).json()
        assert history[-1]["action"] == "approved" and history[-1]["actor"] == "system:saga-worker"
