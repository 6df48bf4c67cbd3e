"""`GET /api/candidates?need_id=…` among 100k offers, on real processes, direct and through the gateway.

    python -m bench.candidates                       # SQLite, and PostgreSQL too when DUIJIE_TEST_PG_URL is set
    python -m bench.candidates --offers 100000 --requests 400 --concurrency 8 --sqlite

The matching database's read-model tables are filled directly (no upstream feeds): --offers offers of the
realistic mix of bench/matching.py (~3,000 counties, regions and radii, categories, windows, groups and
skills), their organisations with grades, pairings (结对), villages' received values and --needs open needs.
The matching app and the gateway then run as uvicorn processes (one each, as `duijie run` starts them; the
matching app's feed sync polls needs and offers services that are not running, and backs off), and the
load generator asks for the candidates of different needs, one after another and `--concurrency` at a time,
straight to matching and through the gateway (token check and proxy). It also times the first request after
an offer changed in the database, which must update the engine's offer table before it can answer.
Target (issue 4): p95 ≤ 20 ms through the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from bench.matching import PROFILES, synthetic_region
from duijie_cli import keys, stack
from duijie_cli.processes import Supervisor, port_in_use
from gateway.auth import mint_user_token
from services.common import migrate
from services.matching.models import NeedRM, OfferRM, OrganisationRM, PairingRM, VillageReceived
from services.matching.scoring import NeedView, OfferView

BENCH_DB = "duijie_bench_matching"
TARGET_P95_MS = 20.0


@dataclass
class Result:
    backend: str
    target: str
    concurrency: int
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int


# --- the data ------------------------------------------------------------------------------------

def _pg_url(admin_url: str, name: str) -> str:
    base = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+asyncpg://", admin_url)
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


async def _pg_database(admin_url: str, *, drop_only: bool = False) -> str:
    engine = create_async_engine(_pg_url(admin_url, "postgres"), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
        if not drop_only:
            await connection.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
    await engine.dispose()
    return _pg_url(admin_url, BENCH_DB)


def _uuid(rng: np.random.Generator) -> uuid.UUID:
    return uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | int(rng.integers(0, 2**62)), version=4)


def _shift(day: date | None, by: timedelta) -> date | None:
    return day + by if day is not None else None


async def seed(url: str, n_offers: int, n_needs: int, seed_value: int = 7) -> list[str]:
    """Fill the read models; returns the ids of the (open) needs."""
    needs, offers, context = synthetic_region(n_needs, n_offers, profile=PROFILES["realistic"], seed=seed_value)
    by = date.today() - context.today  # the synthetic day is fixed; the service scores against today
    rng = np.random.default_rng(seed_value + 1)
    org_ids: dict[str, uuid.UUID] = {}
    org_rows: list[dict[str, Any]] = []
    org_region: dict[str, str] = {}
    for view in offers:
        org_region.setdefault(view.organisation_id, view.region_codes[0][:6] if view.region_codes else "")
    offer_rows: list[dict[str, Any]] = []
    for seq, view in enumerate(offers, start=1):
        if view.organisation_id not in org_ids:
            org_ids[view.organisation_id] = _uuid(rng)
            org_rows.append({
                "id": org_ids[view.organisation_id], "name": f"社会组织 {len(org_rows)}", "grade": view.organisation_grade,
                "region_codes": [org_region[view.organisation_id]] if org_region[view.organisation_id] else [],
                "verified": True, "version": 1, "seq": len(org_rows) + 1,
            })
        offer_rows.append(_offer_row(view, _uuid(rng), org_ids[view.organisation_id], by, seq))
    need_rows = [_need_row(view, _uuid(rng), by, seq) for seq, view in enumerate(needs, start=1)]
    pairing_rows = [
        {"id": _uuid(rng), "organisation_id": org_ids[org], "village_code": village, "status": "active", "version": 1, "seq": k}
        for k, (org, village) in enumerate(sorted(context.pairings), start=1) if org in org_ids
    ]
    now = datetime.now(UTC)
    received_rows = [  # deliveries confirmed over the past weeks, one every few minutes
        {"village_code": code, "value_cny": Decimal(round(value)), "updated_at": now - timedelta(minutes=3 * k)}
        for k, (code, value) in enumerate(context.received_value_by_village.items())
    ]
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        for model, rows in ((OrganisationRM, org_rows), (OfferRM, offer_rows), (NeedRM, need_rows),
                            (PairingRM, pairing_rows), (VillageReceived, received_rows)):
            for start in range(0, len(rows), 5000):
                await connection.execute(insert(model), rows[start:start + 5000])
        if connection.dialect.name == "postgresql":
            await connection.execute(text("ANALYZE"))
    await engine.dispose()
    return [str(row["id"]) for row in need_rows]


def _offer_row(view: OfferView, offer_id: uuid.UUID, org_id: uuid.UUID, by: timedelta, seq: int) -> dict[str, Any]:
    available = Decimal(str(view.available))
    return {
        "id": offer_id, "organisation_id": org_id, "title": f"供给 {seq}", "categories": list(view.categories),
        "kind": view.kind, "unit": view.unit, "quantity": available + 10, "reserved": Decimal(10), "delivered": Decimal(0),
        "available": available, "region_codes": list(view.region_codes), "radius_km": view.radius_km,
        "lat": view.lat, "lon": view.lon, "available_from": _shift(view.available_from, by),
        "available_until": _shift(view.available_until, by), "beneficiary_groups": list(view.beneficiary_groups),
        "skills": list(view.skills), "status": view.status, "version": 1, "seq": seq,
    }


def _need_row(view: NeedView, need_id: uuid.UUID, by: timedelta, seq: int) -> dict[str, Any]:
    quantity = Decimal(str(view.quantity))
    return {
        "id": need_id, "title": f"需求 {seq}", "category": view.category, "kind": view.kind, "unit": view.unit,
        "quantity": quantity, "committed": quantity - Decimal(str(view.remaining)), "delivered": Decimal(0),
        "beneficiaries": view.beneficiaries, "beneficiary_groups": list(view.beneficiary_groups),
        "skills": list(view.skills), "urgency": view.urgency, "needed_by": view.needed_by + by,
        "village_code": view.village_code, "lat": view.lat, "lon": view.lon, "status": "open", "version": 1, "seq": seq,
    }


async def touch_offer(url: str, k: int) -> None:
    """Change one offer's available quantity, as the sync would after an offers-feed change."""
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        top = (await connection.execute(select(func.max(OfferRM.seq)))).scalar_one()
        offer_id = (await connection.execute(select(OfferRM.id).where(OfferRM.seq == 1 + (k * 7919) % 1000))).scalar_one()
        await connection.execute(
            update(OfferRM).where(OfferRM.id == offer_id)
            .values(available=OfferRM.available + 1, quantity=OfferRM.quantity + 1, seq=top + 1)
        )
    await engine.dispose()


# --- the load ------------------------------------------------------------------------------------

async def load(root: str, token: str, need_ids: Sequence[str], requests: int, concurrency: int) -> tuple[list[float], float, int]:
    """`requests` GETs over the needs in turn, `concurrency` at a time; latencies in seconds, elapsed, errors."""
    latencies: list[float] = []
    errors = 0
    queue = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=root, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 trust_env=False, timeout=30) as client:
        async def worker() -> None:
            nonlocal errors
            for i in queue:
                need_id = need_ids[(i * 37) % len(need_ids)]
                started = time.perf_counter()
                response = await client.get("/api/candidates", params={"need_id": need_id, "limit": 10})
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


async def _after_change(url: str, root: str, token: str, need_ids: Sequence[str], times: int) -> list[float]:
    """Latency of the first request after an offer changed (once the cache's refresh interval has passed)."""
    seen = []
    async with httpx.AsyncClient(base_url=root, headers={"Authorization": f"Bearer {token}"}, trust_env=False, timeout=30) as client:
        for k in range(times):
            await touch_offer(url, k)
            await asyncio.sleep(0.7)
            started = time.perf_counter()
            response = await client.get("/api/candidates", params={"need_id": need_ids[k % len(need_ids)], "limit": 10})
            seen.append(time.perf_counter() - started)
            response.raise_for_status()
    return seen


# --- the run -------------------------------------------------------------------------------------

def _free_base() -> int:
    for base in range(18700, 19700, 10):
        if not any(port_in_use("127.0.0.1", base + offset) for offset in range(5)):
            return base
    raise RuntimeError("no free ports")


def run(backend: str, pg_admin_url: str | None, args: argparse.Namespace) -> tuple[list[Result], list[float]]:
    work = Path(tempfile.mkdtemp(prefix="duijie-bench-candidates-"))
    url = asyncio.run(_pg_database(pg_admin_url)) if pg_admin_url else f"sqlite+aiosqlite:///{work / 'matching.db'}"
    gateway_url = f"sqlite+aiosqlite:///{work / 'gateway.db'}"
    try:
        print(f"[{backend}] seeding {args.offers:,} offers and {args.needs:,} needs…", flush=True)
        migrate.upgrade("matching", url)
        migrate.upgrade("gateway", gateway_url)
        t0 = time.perf_counter()
        need_ids = asyncio.run(seed(url, args.offers, args.needs))
        print(f"[{backend}] seeded in {time.perf_counter() - t0:.1f} s", flush=True)

        secrets = keys.load_or_create(work, environ={})
        environ = {key: value for key, value in os.environ.items() if not key.startswith("DUIJIE_")}
        environ.update(DUIJIE_MATCHING_DATABASE_URL=url, DUIJIE_GATEWAY_DATABASE_URL=gateway_url)
        specs = stack.plan(data_dir=work, host="127.0.0.1", port=_free_base(), secrets=secrets, bootstrap_admin=None,
                           environ=environ, access_log=False, services=["matching", "gateway"])
        supervisor = Supervisor(specs, work)
        token = mint_user_token(secrets.private_pem, user_id=uuid.uuid4(), username="bench", role="admin", ttl_seconds=7200)
        results: list[Result] = []
        try:
            supervisor.start()
            supervisor.wait_ready(180)
            roots = {"direct": specs[0].url, "gateway": specs[-1].url}
            t0 = time.perf_counter()
            asyncio.run(load(roots["direct"], token, need_ids, 1, 1))  # loads the read models' tables
            print(f"[{backend}] first request (offer table built) {time.perf_counter() - t0:.2f} s", flush=True)
            for target, root in roots.items():
                asyncio.run(load(root, token, need_ids, 50, 2))  # warm-up
                for concurrency in (1, args.concurrency):
                    latencies, elapsed, errors = asyncio.run(load(root, token, need_ids, args.requests, concurrency))
                    results.append(Result(
                        backend, target, concurrency, len(latencies), len(latencies) / elapsed, _percentile(latencies, 50),
                        _percentile(latencies, 95), _percentile(latencies, 99), errors,
                    ))
                    print(f"[{backend}]   {target} ×{concurrency}: p95 {results[-1].p95_ms:.1f} ms", flush=True)
            changed = asyncio.run(_after_change(url, roots["gateway"], token, need_ids, args.changes))
        finally:
            supervisor.stop()
    finally:
        if pg_admin_url:
            asyncio.run(_pg_database(pg_admin_url, drop_only=True))
        if args.keep:
            print(f"[{backend}] kept {work} (logs under logs/)", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results, changed


def print_table(results: list[Result], changes: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(f"\nGET /api/candidates?need_id=…&limit=10: {args.offers:,} offers, {args.needs:,} needs in turn; "
          "one uvicorn process each; httpx client\n")
    print(f"{'database':<10} {'target':<8} {'conc':>4} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'errors':>6}  target")
    for r in results:
        verdict = ""
        if r.target == "gateway":
            verdict = f"p95 ≤ {TARGET_P95_MS:.0f} ms: {'met' if r.p95_ms <= TARGET_P95_MS else 'NOT met'}"
        print(f"{r.backend:<10} {r.target:<8} {r.concurrency:>4} {r.requests:>8} {r.rps:>7.0f} {r.p50_ms:>7.2f} "
              f"{r.p95_ms:>7.2f} {r.p99_ms:>7.2f} {r.errors:>6}  {verdict}")
    for backend, seen in changes.items():
        ms = [s * 1000 for s in seen]
        print(f"{backend}: first request after an offer changed (via gateway, {len(ms)} changes): "
              f"median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.candidates", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--needs", type=int, default=2_000, help="open needs stored, and asked for in turn")
    parser.add_argument("--requests", type=int, default=400, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="the concurrent level measured besides 1")
    parser.add_argument("--changes", type=int, default=5, help="offer changes whose next request is timed")
    parser.add_argument("--pg-url", default=os.environ.get("DUIJIE_TEST_PG_URL"),
                        help="a PostgreSQL admin URL (default DUIJIE_TEST_PG_URL); without one, SQLite only")
    parser.add_argument("--sqlite", action="store_true", help="SQLite only, even when a PostgreSQL URL is known")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL only")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite files)")
    args = parser.parse_args(argv)
    backends: list[tuple[str, str | None]] = [] if args.pg else [("SQLite", None)]
    if args.pg_url and not args.sqlite:
        backends.append(("PostgreSQL", args.pg_url))
    results: list[Result] = []
    changes: dict[str, list[float]] = {}
    for backend, pg in backends:
        found, changes[backend] = run(backend, pg, args)
        results.extend(found)
    print_table(results, changes, args)


if __name__ == "__main__":
    main(sys.argv[1:])
