"""The cost of the gateway's hop, measured on real processes.

    python -m bench.gateway                          # PostgreSQL at DUIJIE_TEST_PG_URL if set, else SQLite
    python -m bench.gateway --needs 100000 --duration 10 --connections 32

Side by side, with one uvicorn process each and the same load generator (wrk when installed, else an
httpx-based one), the same page of 50 open needs and one need by id:
  (a) bare     a typed FastAPI endpoint serving the page from memory (the yardstick)
  (b) direct   the needs service, with --needs needs stored in its database
  (c) gateway  the same requests through the gateway (token check, proxy, streaming)
Targets (issue 3): (b) ≥ 35 % of (a) and (c) ≥ 80 % of (b) on the list page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from duijie_cli import keys, stack
from duijie_cli.processes import Supervisor, port_in_use
from gateway.auth import mint_user_token
from services.common import migrate
from services.needs.models import Need

BENCH_DB = "duijie_bench_needs"
CATEGORIES = ("infrastructure", "education", "health", "industry", "elderly_children", "culture")


@dataclass
class Result:
    target: str
    endpoint: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


# --- the data ------------------------------------------------------------------------------------

def _pg_url(admin_url: str, name: str) -> str:
    base = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+asyncpg://", admin_url)
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


async def _create_pg(admin_url: str) -> str:
    engine = create_async_engine(_pg_url(admin_url, "postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
    await engine.dispose()
    return _pg_url(admin_url, BENCH_DB)


async def _drop_pg(admin_url: str) -> None:
    engine = create_async_engine(_pg_url(admin_url, "postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
    await engine.dispose()


async def _seed(url: str, count: int) -> str:
    """`count` needs, 80 % open, over 2,000 villages; returns the id of one open need."""
    rng = random.Random(7)
    engine = create_async_engine(url)
    today, now = date.today(), datetime.now(UTC)
    sample = ""
    async with engine.begin() as connection:
        for start in range(0, count, 5000):
            rows = []
            for i in range(start, min(count, start + 5000)):
                county = rng.choice(("441302", "450123", "450621", "330206", "610502", "220211"))
                need_id = uuid.uuid4()
                status = "open" if rng.random() < 0.8 else rng.choice(("draft", "closed", "fulfilled"))
                rows.append({
                    "id": need_id, "title": f"需求 {i}", "description": "村道硬化、饮水工程、校舍维修……",
                    "category": rng.choice(CATEGORIES), "kind": "funds", "unit": "CNY",
                    "quantity": Decimal(rng.randrange(10_000, 1_000_000)), "committed": Decimal(0), "delivered": Decimal(0),
                    "beneficiaries": rng.randrange(10, 3000), "beneficiary_groups": ["general"], "skills": [],
                    "urgency": rng.randint(1, 5), "needed_by": today + timedelta(days=rng.randrange(30, 700)),
                    "village_code": f"{county}{rng.randrange(100, 120):03d}{rng.randrange(200, 300):03d}",
                    "lat": None, "lon": None, "channel": "online", "requester_name": None, "requester_phone": None,
                    "status": status, "version": 1, "created_by": "bench",
                    # one a minute, as a real register fills: the keyset index (status, created_at, id) then applies
                    "created_at": now - timedelta(minutes=count - i), "updated_at": now,
                })
                if status == "open" and not sample:
                    sample = str(need_id)
            await connection.execute(insert(Need), rows)
        if connection.dialect.name == "postgresql":
            await connection.execute(text("ANALYZE needs"))
    await engine.dispose()
    return sample


# --- the load ------------------------------------------------------------------------------------

def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, token: str, seconds: int, connections: int, threads: int) -> tuple[float, float, float, int]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(errors.group(1)) if errors else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return rps, _ms(*p50.groups()), _ms(*p99.groups()), failed  # type: ignore[union-attr]


async def _httpx_load(url: str, token: str, seconds: int, connections: int) -> tuple[float, float, float, int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, limits=limits, trust_env=False) as client:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code >= 400
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return (len(latencies) / elapsed, latencies[len(latencies) // 2] * 1000,
            latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, errors)


def measure(url: str, token: str, seconds: int, connections: int, threads: int) -> tuple[float, float, float, int]:
    check = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, trust_env=False, timeout=10)
    check.raise_for_status()
    if shutil.which("wrk"):
        _wrk(url, token, 2, connections, threads)  # warm-up
        return _wrk(url, token, seconds, connections, threads)
    asyncio.run(_httpx_load(url, token, 2, connections))
    return asyncio.run(_httpx_load(url, token, seconds, connections))


# --- the run -------------------------------------------------------------------------------------

def _free_base() -> int:
    for base in range(18600, 19600, 10):
        if not any(port_in_use("127.0.0.1", base + offset) for offset in range(6)):
            return base
    raise RuntimeError("no free ports")


def run(needs: int, seconds: int, connections: int, threads: int, pg_admin_url: str | None) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="duijie-bench-"))
    needs_url = asyncio.run(_create_pg(pg_admin_url)) if pg_admin_url else f"sqlite+aiosqlite:///{work / 'needs.db'}"
    backend = "PostgreSQL" if pg_admin_url else "SQLite"
    print(f"seeding {needs:,} needs in {backend}…", flush=True)
    migrate.upgrade("needs", needs_url)
    migrate.upgrade("gateway", f"sqlite+aiosqlite:///{work / 'gateway.db'}")
    sample_id = asyncio.run(_seed(needs_url, needs))

    secrets = keys.load_or_create(work, environ={})
    environ = {key: value for key, value in os.environ.items() if not key.startswith("DUIJIE_")}
    environ.update(DUIJIE_NEEDS_DATABASE_URL=needs_url, DUIJIE_GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{work / 'gateway.db'}")
    base = _free_base()
    specs = stack.plan(data_dir=work, host="127.0.0.1", port=base, secrets=secrets, bootstrap_admin=None,
                       environ=environ, access_log=False, services=["needs", "gateway"])
    bare = stack.AppSpec(name="bare", target="bench._bare_app:create_app", host="127.0.0.1", port=base + 5,
                         env={**environ, "PYTHONUNBUFFERED": "1"}, access_log=False)
    supervisor = Supervisor([bare, *specs], work)
    token = mint_user_token(secrets.private_pem, user_id=uuid.uuid4(), username="bench", role="org_member",
                            ttl_seconds=3600, organisation_id=uuid.uuid4())
    results = []
    try:
        supervisor.start()
        supervisor.wait_ready(90)
        urls = {"bare": bare.url, "direct": specs[0].url, "gateway": specs[-1].url}
        endpoints = {"list of 50": "/api/needs?status=open&limit=50", "one by id": f"/api/needs/{sample_id}"}
        for endpoint, path in endpoints.items():
            for target, root in urls.items():
                print(f"  {target:8} {endpoint} …", flush=True)
                rps, p50, p99, errors = measure(root + path, token, seconds, connections, threads)
                results.append(Result(target, endpoint, rps, p50, p99, errors))
    finally:
        supervisor.stop()
        if pg_admin_url:
            asyncio.run(_drop_pg(pg_admin_url))
        shutil.rmtree(work, ignore_errors=True)
    return results


def print_table(results: list[Result], needs: int, backend: str, generator: str, connections: int) -> None:
    print(f"\nGET through each target: {needs:,} needs in {backend}; {generator}, {connections} connections; "
          "one uvicorn process each\n")
    print(f"{'endpoint':<12} {'target':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}  ratio")
    by_key = {(r.endpoint, r.target): r for r in results}
    for r in results:
        ratio = ""
        if r.target == "direct" and (r.endpoint, "bare") in by_key:
            ratio = f"direct/bare = {r.rps / by_key[(r.endpoint, 'bare')].rps:.0%}"
        if r.target == "gateway":
            ratio = f"gateway/direct = {r.rps / by_key[(r.endpoint, 'direct')].rps:.0%}"
        print(f"{r.endpoint:<12} {r.target:<8} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7}  {ratio}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--needs", type=int, default=None, help="needs stored (default 100,000 on PostgreSQL, 20,000 on SQLite)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--pg-url", default=os.environ.get("DUIJIE_TEST_PG_URL"),
                        help="a PostgreSQL admin URL (default DUIJIE_TEST_PG_URL); without one, SQLite")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite even when a PostgreSQL URL is known")
    args = parser.parse_args(argv)
    pg = None if args.sqlite else args.pg_url
    needs = args.needs or (100_000 if pg else 20_000)
    results = run(needs, args.duration, args.connections, args.threads, pg)
    generator = "wrk" if shutil.which("wrk") else "httpx load generator"
    print_table(results, needs, "PostgreSQL" if pg else "SQLite", generator, args.connections)


if __name__ == "__main__":
    main(sys.argv[1:])
