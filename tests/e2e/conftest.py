"""The real platform: `duijie up` as a subprocess on free loopback ports, once per backend and module."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from duijie_cli.stack import deployed_services
from tests.support import TestDatabases


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)

READY_LINE = "Press Ctrl-C to stop."
START_TIMEOUT = 120.0


def free_base_port(span: int = 4) -> int:
    """A port p such that p .. p+span-1 are all free on loopback."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + span >= 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + span):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no run of free ports")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


@dataclass
class Platform:
    """One running `duijie up`."""

    port: int
    data_dir: Path
    output: Path
    env: dict[str, str]
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    services: list[str] = field(default_factory=deployed_services)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def service_url(self, name: str) -> str:
        offset = {"gateway": 0, "needs": 1, "offers": 2, "matching": 3}[name]
        return f"http://127.0.0.1:{self.port + offset}"

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace") if self.output.exists() else ""

    def pid(self, name: str) -> int:
        return int((self.data_dir / "run" / f"{name}.pid").read_text())

    def child_pids(self) -> dict[str, int]:
        return {name: self.pid(name) for name in self.services}

    def start(self) -> None:
        command = [sys.executable, "-m", "duijie_cli.main", "up", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), *self.args]
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while READY_LINE not in self.text():
            if self.process.poll() is not None:
                raise AssertionError(f"duijie up exited with {self.process.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"duijie up not ready after {START_TIMEOUT} s:\n{self.text()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as a service manager would; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, trust_env=False)


def platform_env(admin: tuple[str, str] | None, database_urls: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DUIJIE_")}
    env.update(COLUMNS="200", NO_COLOR="1", PYTHONUNBUFFERED="1")
    if admin is not None:
        env["DUIJIE_BOOTSTRAP_ADMIN"] = f"{admin[0]}:{admin[1]}"
    for service, url in (database_urls or {}).items():
        env[f"DUIJIE_{service.upper()}_DATABASE_URL"] = url
    return env


def pg_databases(dbs: TestDatabases, services: list[str]) -> dict[str, str]:
    """Empty PostgreSQL databases, one per service: `duijie up` migrates them itself."""
    async def create() -> dict[str, str]:
        return {name: await dbs._create_pg(f"duijie_e2e_{name}_{dbs.run_id}") for name in services}

    return asyncio.run(create())


@dataclass(frozen=True)
class Admin:
    username: str
    password: str


@pytest.fixture(scope="module")
def admin() -> Admin:
    return Admin("e2e-admin", secrets.token_urlsafe(16))


@pytest.fixture(scope="module")
def platform(backend: str, admin: Admin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """`duijie up` on SQLite files, or on per-service PostgreSQL databases."""
    tmp = tmp_path_factory.mktemp(f"e2e-{backend}-{uuid.uuid4().hex[:6]}")
    dbs = TestDatabases(tmp)
    urls = pg_databases(dbs, deployed_services()) if backend == "postgresql" else None
    running = Platform(port=free_base_port(), data_dir=tmp / "data", output=tmp / "duijie-up.log",
                       env=platform_env((admin.username, admin.password), urls), args=[])
    try:
        running.start()
        yield running
        pids = running.child_pids()
        status = running.stop()
        assert status == 0, running.text()
        assert not [name for name, pid in pids.items() if pid_alive(pid)], "children outlived duijie up"
        assert not uvicorns_on(running.port), "an app still serves one of the platform's ports"
    finally:
        if running.process is not None and running.process.poll() is None:
            running.process.kill()
        asyncio.run(dbs.drop_all())


def sign_in(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    response = client.post("/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def uvicorns_on(base_port: int, span: int = 4) -> list[int]:
    """Pids of live processes whose command line serves one of the platform's ports (orphans, after a stop)."""
    wanted = {f"--port\0{port}\0".encode() for port in range(base_port, base_port + span)}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"uvicorn" in cmdline and any(token in cmdline for token in wanted) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
