"""Approvals per second through the gateway: the approval saga over real processes.

    python -m bench.saga                      # PostgreSQL at DUIJIE_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/postgres)
    python -m bench.saga --approvals 200 --concurrency 1,8,32 --needs 100 --offers 4
    python -m bench.saga --sqlite             # SQLite files (also the fallback when PostgreSQL is not reachable)

The platform runs as it does under `duijie up`: gateway, needs, offers and matching, one uvicorn process
each, on fresh databases (one PostgreSQL database per service, dropped at the end). Everything goes through
the gateway's public API: the bootstrap admin creates a coordinator of 441302, who registers and verifies an
organisation and creates one of its members; the member posts offers with room for every approval, the
coordinator posts needs; once the matching service's read models have them, the coordinator proposes one
match of 1 unit per approval (spread over the needs and offers) and then approves them with
`POST /api/matches/{id}/approve` (each with its own Idempotency-Key, as a client would), --approvals per
concurrency level. A few warm-up approvals run first and are not counted.

After each level the bench checks what the saga left: every match of the level `approved` (else counted as
failed or still approving), each offer's `reserved` and each need's `committed` equal to the units approved
on it so far.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from duijie_cli import keys, stack
from duijie_cli.processes import Supervisor, port_in_use
from services.common import migrate
from services.offers.schemas import credit_code_check_character

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
COUNTY = "441302"  # 惠州市惠城区
VILLAGES = ("441302110201", "441302110202", "441302104201", "441302104202")
CREDIT_BODY = "52441302MJBENCH01"
ADMIN_USER = "bench-admin"


# --- databases -----------------------------------------------------------------------------------

def _async_pg(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise ValueError(f"not a postgresql:// URL: {url!r}")


def _with_database(url: str, name: str) -> str:
    base, _, rest = url.rpartition("/")
    query = rest.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.partition(':')[0]}:***@{host}"


async def _pg_reachable(admin_url: str) -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = create_async_engine(_async_pg(admin_url), connect_args={"timeout": 3})
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()
    except Exception as exc:  # any failure means: fall back to SQLite
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


async def _create_pg(admin_url: str, names: list[str]) -> None:
    engine = create_async_engine(_async_pg(admin_url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for name in names:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def _drop_pg(admin_url: str, names: list[str]) -> list[str]:
    """Drops them; returns those still there afterwards."""
    engine = create_async_engine(_async_pg(admin_url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for name in names:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            rows = await connection.execute(text("SELECT datname FROM pg_database WHERE datname = ANY(:names)"),
                                            {"names": names})
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


# --- the platform --------------------------------------------------------------------------------

def _free_base_port(span: int = 4) -> int:
    """A port p with p .. p+span-1 free on loopback, below the ephemeral range (where outgoing connections,
    e.g. to PostgreSQL, could take one between this check and the bind)."""
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(20000, 32000 - span)
        if not any(port_in_use("127.0.0.1", base + i) for i in range(span)):
            return base
    raise RuntimeError("no run of free ports on loopback")


@dataclass
class Platform:
    work: Path
    admin_password: str
    pg_admin_url: str | None
    pg_names: list[str] = field(default_factory=list)
    supervisor: Supervisor | None = None
    gateway_url: str = ""

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
            alive = [child.name for child in self.supervisor.children if child.alive()]
            if alive:
                print(f"warning: still running after stop: {', '.join(alive)}", flush=True)
        if self.pg_admin_url and self.pg_names:
            left = asyncio.run(_drop_pg(self.pg_admin_url, self.pg_names))
            if left:
                print(f"warning: databases not dropped: {', '.join(left)}", flush=True)
        shutil.rmtree(self.work, ignore_errors=True)


def start_platform(pg_admin_url: str | None) -> Platform:
    services = stack.deployed_services()
    missing = {"needs", "offers", "matching", "gateway"} - set(services)
    if missing:
        raise SystemExit(f"bench.saga needs every app; missing in this build: {', '.join(sorted(missing))}")
    platform = Platform(Path(tempfile.mkdtemp(prefix="duijie-bench-saga-")), uuid.uuid4().hex, pg_admin_url)
    environ = {key: value for key, value in os.environ.items() if not key.startswith("DUIJIE_")}
    try:
        if pg_admin_url:
            run_id = uuid.uuid4().hex[:8]
            platform.pg_names = [f"duijie_bench_saga_{name}_{run_id}" for name in services]
            asyncio.run(_create_pg(pg_admin_url, platform.pg_names))
            for name, database in zip(services, platform.pg_names, strict=True):
                environ[f"{stack.env_prefix(name)}DATABASE_URL"] = _with_database(_async_pg(pg_admin_url), database)
        for name in services:
            migrate.upgrade(name, stack.database_url(name, platform.work, environ))
        secrets = keys.load_or_create(platform.work, environ={})
        specs = stack.plan(data_dir=platform.work, host="127.0.0.1", port=_free_base_port(), secrets=secrets,
                           bootstrap_admin=f"{ADMIN_USER}:{platform.admin_password}", environ=environ,
                           access_log=False, services=services)
        platform.supervisor = Supervisor(specs, platform.work)
        platform.gateway_url = next(spec.url for spec in specs if spec.name == "gateway")
        platform.supervisor.start()
        platform.supervisor.wait_ready(90)
    except BaseException:
        platform.stop()
        raise
    return platform


# --- seeding through the gateway -----------------------------------------------------------------

class BenchError(RuntimeError):
    pass


def _ok(response: httpx.Response, *statuses: int) -> Any:
    if response.status_code not in (statuses or (200, 201)):
        raise BenchError(f"{response.request.method} {response.request.url.path} → {response.status_code}: {response.text[:500]}")
    return response.json()


async def _bounded(limit: int, jobs: Sequence[Awaitable[Any]]) -> list[Any]:
    """Awaits the coroutines, at most `limit` at a time."""
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Awaitable[Any]) -> Any:
        async with semaphore:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))


async def _sign_in(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    token = _ok(await client.post("/auth/token", data={"username": username, "password": password}))
    return {"Authorization": f"Bearer {token['access_token']}"}


@dataclass
class Seeded:
    coordinator: dict[str, str]
    need_ids: list[str]
    offer_ids: list[str]
    proposals: list[tuple[str, str, str]]  # (match id, need id, offer id), in the order they will be approved


async def seed(client: httpx.AsyncClient, admin_password: str, *, proposals: int, needs: int, offers: int) -> Seeded:
    admin = await _sign_in(client, ADMIN_USER, admin_password)
    coordinator_password = uuid.uuid4().hex
    _ok(await client.post("/auth/users", headers=admin, json={
        "username": "bench-coordinator", "password": coordinator_password, "role": "coordinator", "region_code": COUNTY}))
    coordinator = await _sign_in(client, "bench-coordinator", coordinator_password)
    organisation = _ok(await client.post("/api/organisations", headers=coordinator, json={
        "name": "惠州市对接压测服务中心", "org_type": "social_organisation",
        "credit_code": CREDIT_BODY + credit_code_check_character(CREDIT_BODY), "grade": 4, "region_codes": [COUNTY]}))
    _ok(await client.post(f"/api/organisations/{organisation['id']}/verify", headers=coordinator))
    member_password = uuid.uuid4().hex
    _ok(await client.post("/auth/users", headers=coordinator, json={
        "username": "bench-member", "password": member_password, "role": "org_member",
        "organisation_id": organisation["id"]}))
    member = await _sign_in(client, "bench-member", member_password)

    today = date.today()
    per_offer = math.ceil(proposals / offers) + 5
    per_need = math.ceil(proposals / needs)

    async def offer(i: int) -> str:
        created = _ok(await client.post("/api/offers", headers=member, json={
            "organisation_id": organisation["id"], "title": f"课桌椅捐赠（第 {i + 1} 批）", "categories": ["education"],
            "kind": "goods", "quantity": per_offer, "unit": "set", "region_codes": [COUNTY],
            "available_from": today.isoformat(), "available_until": (today + timedelta(days=365)).isoformat(),
            "beneficiary_groups": [], "skills": []}))
        return str(created["id"])

    async def need(i: int) -> str:
        created = _ok(await client.post("/api/needs", headers=coordinator, json={
            "title": f"村小学课桌椅更新 {i + 1:04d} 号", "category": "education", "kind": "goods", "quantity": per_need,
            "unit": "set", "beneficiaries": 120, "beneficiary_groups": ["students"], "urgency": 3,
            "needed_by": (today + timedelta(days=60)).isoformat(), "village_code": VILLAGES[i % len(VILLAGES)]}))
        return str(created["id"])

    offer_ids = [await offer(i) for i in range(offers)]
    need_ids = await _bounded(8, [need(i) for i in range(needs)])

    # The matching service learns of them from the change feeds: wait until the last need sees every offer.
    deadline = time.monotonic() + 60
    while True:
        response = await client.get("/api/candidates", headers=coordinator, params={"need_id": need_ids[-1], "limit": 100})
        seen = {item["offer_id"] for item in response.json().get("items", [])} if response.status_code == 200 else set()
        if set(offer_ids) <= seen:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"the matching read models did not show the offers within 60 s (last answer "
                             f"{response.status_code}: {response.text[:300]})")
        await asyncio.sleep(0.2)

    async def propose(i: int) -> tuple[str, str, str]:
        need_id, offer_id = need_ids[i % needs], offer_ids[i % offers]
        body = {"need_id": need_id, "offer_id": offer_id, "quantity": "1"}
        deadline = time.monotonic() + 30
        while True:
            response = await client.post("/api/matches", headers={**coordinator, "Idempotency-Key": str(uuid.uuid4())},
                                         json=body)
            if response.status_code != 404 or time.monotonic() > deadline:  # 404 until that need is in the read model
                return str(_ok(response, 201)["id"]), need_id, offer_id
            await asyncio.sleep(0.2)

    made = await _bounded(8, [propose(i) for i in range(proposals)])
    return Seeded(coordinator, need_ids, offer_ids, made)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each app so far (Linux /proc; empty elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    found = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        found[name] = (int(fields[11]) + int(fields[12])) / tick
    return found


# --- the load ------------------------------------------------------------------------------------

@dataclass
class Level:
    concurrency: int
    approvals: int
    seconds: float
    latencies: list[float]
    codes: Counter[int]
    states: Counter[str]
    holds_ok: bool
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU time per approval, by app
    reserve_ms: float = float("nan")  # medians, from each match's history: approve → saga_committing
    commit_ms: float = float("nan")  # saga_committing → approved

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)] * 1000 if ordered else float("nan")


async def approve_all(base_url: str, headers: dict[str, str], match_ids: list[str],
                      concurrency: int) -> tuple[float, list[float], Counter[int]]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for match_id in match_ids:
        queue.put_nowait(match_id)
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120, trust_env=False) as client:
        async def worker() -> None:
            while not queue.empty():
                match_id = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.post(f"/api/matches/{match_id}/approve",
                                                 headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
                    code = response.status_code
                except httpx.HTTPError:
                    code = 0
                latencies.append(time.perf_counter() - started)
                codes[code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, codes


async def match_states(client: httpx.AsyncClient, headers: dict[str, str], match_ids: list[str],
                       settle: float = 30.0) -> dict[str, str]:
    """The status of each match, waiting up to `settle` seconds for sagas still `approving` (the worker's)."""
    async def status_of(match_id: str) -> str:
        response = await client.get(f"/api/matches/{match_id}", headers=headers)
        return str(response.json()["status"]) if response.status_code == 200 else f"HTTP {response.status_code}"

    deadline = time.monotonic() + settle
    while True:
        states = await _bounded(16, [status_of(m) for m in match_ids])
        if "approving" not in states or time.monotonic() > deadline:
            return dict(zip(match_ids, states, strict=True))
        await asyncio.sleep(0.5)


async def step_medians(client: httpx.AsyncClient, headers: dict[str, str], match_ids: list[str]) -> tuple[float, float]:
    """Median ms of the reservation step (approve → saga_committing) and the commitment step (→ approved),
    from the timestamps of each approved match's history."""
    async def steps(match_id: str) -> tuple[float, float] | None:
        response = await client.get(f"/api/matches/{match_id}/history", headers=headers)
        if response.status_code != 200:
            return None
        at = {event["action"]: datetime.fromisoformat(event["created_at"]) for event in response.json()}
        if not {"approve", "saga_committing", "approved"} <= at.keys():
            return None
        return ((at["saga_committing"] - at["approve"]).total_seconds() * 1000,
                (at["approved"] - at["saga_committing"]).total_seconds() * 1000)

    found = [pair for pair in await _bounded(16, [steps(m) for m in match_ids]) if pair is not None]
    if not found:
        return float("nan"), float("nan")
    return statistics.median(p[0] for p in found), statistics.median(p[1] for p in found)


async def holds_match(client: httpx.AsyncClient, headers: dict[str, str], seeded: Seeded,
                      approved: list[tuple[str, str, str]]) -> list[str]:
    """Compares each offer's reserved and each need's committed with the units approved on it; returns mismatches."""
    by_offer = Counter(offer_id for _, _, offer_id in approved)
    by_need = Counter(need_id for _, need_id, _ in approved)
    problems = []
    for kind, ids, field_name, expected in (("offers", seeded.offer_ids, "reserved", by_offer),
                                            ("needs", seeded.need_ids, "committed", by_need)):
        bodies = await _bounded(16, [client.get(f"/api/{kind}/{i}", headers=headers) for i in ids])
        for item_id, response in zip(ids, bodies, strict=True):
            held = Decimal(str(_ok(response)[field_name]))
            if held != expected[item_id]:
                problems.append(f"{kind[:-1]} {item_id}: {field_name} {held}, approved {expected[item_id]}")
    return problems


async def run(gateway_url: str, admin_password: str, pids: dict[str, int], *, approvals: int, levels: list[int], needs: int, offers: int,
              warmup: int) -> list[Level]:
    total = warmup + approvals * len(levels)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60, trust_env=False) as client:
        started = time.perf_counter()
        print(f"seeding: a coordinator, an organisation and its member, {offers} offers, {min(needs, total)} needs, "
              f"{total} proposals…", flush=True)
        seeded = await seed(client, admin_password, proposals=total, needs=min(needs, total), offers=offers)
        print(f"  seeded in {time.perf_counter() - started:.1f} s", flush=True)
        approved: list[tuple[str, str, str]] = []
        plan = ([("warm-up", 4, warmup)] if warmup else []) + [(f"concurrency {c}", c, approvals) for c in levels]
        start = 0
        results = []
        for label, concurrency, count in plan:
            batch = seeded.proposals[start:start + count]
            start += count
            print(f"  {label}: {count} approvals…", flush=True)
            cpu_before = cpu_seconds(pids)
            elapsed, latencies, codes = await approve_all(gateway_url, seeded.coordinator, [m for m, _, _ in batch],
                                                          concurrency)
            cpu_after = cpu_seconds(pids)
            cpu_ms = {name: (cpu_after[name] - cpu_before[name]) * 1000 / count for name in cpu_after if name in cpu_before}
            states = await match_states(client, seeded.coordinator, [m for m, _, _ in batch])
            approved += [row for row in batch if states[row[0]] == "approved"]
            problems = await holds_match(client, seeded.coordinator, seeded, approved)
            for problem in problems[:10]:
                print(f"    mismatch: {problem}", flush=True)
            odd = {code: n for code, n in codes.items() if code != 200}
            if odd:
                print(f"    answers other than 200: {dict(sorted(odd.items()))}", flush=True)
            if label != "warm-up":
                reserve_ms, commit_ms = await step_medians(client, seeded.coordinator,
                                                           [m for m, _, _ in batch if states[m] == "approved"])
                results.append(Level(concurrency, count, elapsed, latencies, codes, Counter(states.values()),
                                     not problems, cpu_ms, reserve_ms, commit_ms))
    return results


def print_table(results: list[Level], backend: str, approvals: int) -> None:
    print(f"\nPOST /api/matches/{{id}}/approve through the gateway on {backend}: {approvals} approvals per level, "
          "1 unit each; one uvicorn process per app\n")
    header = (f"{'concurrency':>11} {'approvals':>9} {'seconds':>8} {'approvals/s':>11} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'p99 ms':>8} {'approved':>8} {'failed':>6} {'approving':>9} {'holds':>6}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.concurrency:>11} {r.approvals:>9} {r.seconds:>8.2f} {r.approvals / r.seconds:>11.1f} "
              f"{r.percentile(0.50):>8.1f} {r.percentile(0.95):>8.1f} {r.percentile(0.99):>8.1f} "
              f"{r.states['approved']:>8} {r.states['failed']:>6} {r.states['approving']:>9} "
              f"{'ok' if r.holds_ok else 'WRONG':>6}")
    print("\nholds: every offer's reserved and every need's committed equal the units approved on it so far")
    print("\nwhere a p50 approval goes (medians, from the match histories' timestamps):")
    print(f"{'concurrency':>11} {'reserve ms':>10} {'commit ms':>10} {'rest ms':>8}")
    for r in results:
        rest = r.percentile(0.50) - r.reserve_ms - r.commit_ms
        print(f"{r.concurrency:>11} {r.reserve_ms:>10.1f} {r.commit_ms:>10.1f} {rest:>8.1f}")
    print("reserve: offers' reservation and the step stored; commit: needs' commitment and `approved` stored; rest: "
          "the gateway's hop, the Idempotency-Key claim, storing `approving`, the answer")
    apps = sorted({name for r in results for name in r.cpu_ms})
    if apps:
        print("\nCPU ms per approval, by app (while the level ran; includes background work):")
        print(f"{'concurrency':>11} " + " ".join(f"{name:>9}" for name in apps))
        for r in results:
            print(f"{r.concurrency:>11} " + " ".join(f"{r.cpu_ms.get(name, float('nan')):>9.1f}" for name in apps))
        print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--approvals", type=int, default=100, help="approvals per concurrency level (default 100)")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (default 1,8,32)")
    parser.add_argument("--needs", type=int, default=100, help="needs the proposals are spread over (default 100)")
    parser.add_argument("--offers", type=int, default=4, help="offers the proposals are spread over (default 4)")
    parser.add_argument("--warmup", type=int, default=10, help="uncounted approvals first (default 10)")
    parser.add_argument("--pg-url", default=os.environ.get("DUIJIE_TEST_PG_URL") or DEFAULT_PG_URL,
                        help="a PostgreSQL admin URL (default DUIJIE_TEST_PG_URL, else " + DEFAULT_PG_URL + ")")
    parser.add_argument("--sqlite", action="store_true", help="SQLite files instead of PostgreSQL")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.concurrency.split(",") if level.strip()]
    if not levels or min(levels) < 1 or args.approvals < 1 or args.needs < 1 or args.offers < 1 or args.warmup < 0:
        parser.error("--approvals, --needs, --offers and every --concurrency level must be positive")

    pg: str | None = None if args.sqlite else args.pg_url
    if pg:
        why = asyncio.run(_pg_reachable(pg))
        if why is not None:
            print(f"PostgreSQL at {_redacted(pg)} is not reachable ({why}); falling back to SQLite", flush=True)
            pg = None
    backend = f"PostgreSQL ({_redacted(pg)})" if pg else "SQLite"
    print(f"starting gateway, needs, offers and matching on {backend}…", flush=True)
    started = time.perf_counter()
    platform = start_platform(pg)
    print(f"  migrated and ready in {time.perf_counter() - started:.1f} s", flush=True)
    try:
        assert platform.supervisor is not None
        pids = {child.name: child.process.pid for child in platform.supervisor.children if child.process is not None}
        results = asyncio.run(run(platform.gateway_url, platform.admin_password, pids, approvals=args.approvals,
                                  levels=levels, needs=args.needs, offers=args.offers, warmup=args.warmup))
    finally:
        started = time.perf_counter()
        platform.stop()
        print(f"stopped every app{' and dropped its databases' if pg else ''} in {time.perf_counter() - started:.1f} s",
              flush=True)
    print_table(results, "PostgreSQL" if pg else "SQLite", args.approvals)


if __name__ == "__main__":
    main(sys.argv[1:])
