"""`duijie up` as a process: demo data (idempotent), clean stops, clear startup failures. SQLite only."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from duijie_cli import demo_data
from duijie_cli.main import app
from gateway import repository
from services.common.db import Database
from tests.e2e.conftest import Platform, free_base_port, pid_alive, platform_env, sign_in, uvicorns_on

ROLES = ("admin", "coordinator", "officer", "org_member")


def _counts(platform: Platform, headers: dict[str, str]) -> dict[str, int]:
    with platform.client() as client:
        return {path: len(client.get(path, headers=headers, params={"limit": 200}).json()["items"])
                for path in ("/api/needs", "/api/offers", "/api/organisations", "/api/pairings")}


def test_demo_loads_through_the_api_prints_logins_and_is_idempotent(tmp_path: Path) -> None:
    platform = Platform(port=free_base_port(), data_dir=tmp_path / "data", output=tmp_path / "up-1.log",
                        env=platform_env(None), args=["--demo"])
    platform.start()
    try:
        output = platform.text()
        logins_path = platform.data_dir / "demo-logins.json"
        logins = json.loads(logins_path.read_text())
        assert set(logins) == set(ROLES)
        for role in ROLES:  # one login per role, printed with its password
            assert re.search(rf"{role}\s.*{re.escape(logins[role]['username'])}\s.*{re.escape(logins[role]['password'])}", output)
        assert stat.S_IMODE(logins_path.stat().st_mode) == 0o600
        assert stat.S_IMODE((platform.data_dir / "keys" / "jwt-private.pem").stat().st_mode) == 0o600

        with platform.client() as client:
            tokens = {role: sign_in(client, logins[role]["username"], logins[role]["password"]) for role in ROLES}
            assert client.get("/auth/me", headers=tokens["officer"]).json()["village_code"] == demo_data.DONGSHENG
            censhan = client.get("/api/needs", headers=tokens["admin"], params={"region": demo_data.CENSHAN}).json()["items"]
            assert {"岑山村村委办公楼建设", "岑山村人畜饮水工程"} <= {need["title"] for need in censhan}
            fund = client.get("/api/offers", headers=tokens["org_member"], params={"q": "同心"}).json()["items"]
            assert [offer["quantity"] for offer in fund] == ["550000.00"]
        first = _counts(platform, tokens["admin"])
        assert first == {"/api/needs": len(demo_data.NEEDS), "/api/offers": len(demo_data.OFFERS),
                         "/api/organisations": len(demo_data.ORGANISATIONS), "/api/pairings": len(demo_data.PAIRINGS)}
        pids = platform.child_pids()
    finally:
        status = platform.stop()
    assert status == 0, platform.text()
    assert not [pid for pid in pids.values() if pid_alive(pid)], "a child outlived SIGTERM"
    assert not uvicorns_on(platform.port)
    assert "stopped every app" in platform.text()

    # The same data directory again: nothing is duplicated, the same logins still work.
    platform.output = tmp_path / "up-2.log"
    platform.start()
    try:
        assert "created nothing new" in platform.text(), platform.text()
        with platform.client() as client:
            admin = sign_in(client, logins["admin"]["username"], logins["admin"]["password"])
        assert _counts(platform, admin) == first
    finally:
        assert platform.stop() == 0


def _up(tmp_path: Path, port: int, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duijie_cli.main", "up", "--port", str(port), "--data-dir", str(tmp_path / "data"),
         "--ready-timeout", "60"],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def test_an_app_that_dies_while_starting_stops_everything_with_its_log(tmp_path: Path) -> None:
    port = free_base_port()
    env = platform_env(None)
    env["DUIJIE_BOOTSTRAP_ADMIN"] = "no-colon-here"  # the gateway refuses to start on it
    result = _up(tmp_path, port, env)
    assert result.returncode == 1, result.stdout + result.stderr
    message = result.stderr
    assert "gateway exited with status" in message
    assert "DUIJIE_BOOTSTRAP_ADMIN must be username:password" in message  # the tail of its log
    assert not uvicorns_on(port)
    assert not list((tmp_path / "data" / "run").glob("*.pid"))


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    port = free_base_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port + 1))
        busy.listen()
        result = _up(tmp_path, port, platform_env(None))
    assert result.returncode == 1
    assert f"127.0.0.1:{port + 1} (needs)" in result.stderr
    assert not uvicorns_on(port)


def test_migrate_and_users_create_write_the_gateway_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [key for key in os.environ if key.startswith("DUIJIE_")]:
        monkeypatch.delenv(name)
    data_dir = str(tmp_path / "data")
    runner = CliRunner()
    migrated = runner.invoke(app, ["migrate", "--service", "gateway", "--data-dir", data_dir])
    assert migrated.exit_code == 0, migrated.output
    create = ["users", "create", "--username", "first-admin", "--role", "admin", "--data-dir", data_dir]
    created = runner.invoke(app, create, input="a-long-passphrase\na-long-passphrase\n")
    assert created.exit_code == 0, created.output
    assert "a-long-passphrase" not in created.output  # asked without echo
    again = runner.invoke(app, [*create, "--password", "another-passphrase"])
    assert again.exit_code == 1 and "taken" in again.output
    short = runner.invoke(app, ["users", "create", "--username", "lucun-officer", "--role", "officer", "--village-code",
                                "441302110202", "--password", "short", "--data-dir", data_dir])
    assert short.exit_code == 1 and "password" in short.output
    no_village = runner.invoke(app, ["users", "create", "--username", "lucun-officer", "--role", "officer",
                                     "--password", "a-long-passphrase", "--data-dir", data_dir])
    assert no_village.exit_code == 1 and "village_code" in no_village.output

    async def stored() -> tuple[str, str] | None:
        database = Database(f"sqlite+aiosqlite:///{data_dir}/gateway.db")
        try:
            async with database.transaction() as session:
                user = await repository.get_user_by_username(session, "first-admin")
                return (user.role, user.password_hash) if user else None
        finally:
            await database.dispose()

    found = asyncio.run(stored())
    assert found is not None and found[0] == "admin"
    assert PasswordHasher().verify(found[1], "a-long-passphrase")
