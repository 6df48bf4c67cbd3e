"""Importing a bureau's needs sheet: 100,000 rows through POST /api/needs/import, on SQLite and PostgreSQL.

    python -m bench.imports                      # 100000 rows, CSV and XLSX, SQLite (and PostgreSQL if configured)
    python -m bench.imports --rows 20000 --formats csv
    python -m bench.imports --kind offers        # 100000 offers of 50 organisations through POST /api/offers/import

The needs app runs in-process behind httpx's ASGI transport (the HTTP framing is not what is measured);
PostgreSQL is used when DUIJIE_TEST_PG_URL names a server, in a database created and dropped here.
Each figure is the wall time of the whole request: upload, parse, validate every row, one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import httpx
from openpyxl import Workbook

from services.needs.app import create_app
from services.needs.config import NeedsSettings
from tests.support import TestDatabases, Tokens

HEADER = ["项目名称", "类别", "帮扶方式", "数量或金额", "单位", "受益人数", "受益群体", "需求截止日期", "村代码", "紧急程度"]
KINDS = [("资金", "元", lambda r: f"{r.randint(1, 300)}万元"), ("物资", "册", lambda r: str(r.randint(10, 5000))),
         ("培训", "人", lambda r: str(r.randint(5, 200))), ("服务", "人天", lambda r: str(r.randint(1, 60)))]
CATEGORIES = ["基础设施", "教育", "人才", "医疗卫生", "产业", "一老一小"]
GROUPS = ["全体村民", "学生", "残疾人", "老年人、留守儿童", "低收入人口"]


def sheet_rows(count: int, seed: int = 7) -> list[list[str]]:
    rng = random.Random(seed)
    deadline = (date.today() + timedelta(days=365)).isoformat()
    rows = [HEADER]
    for number in range(count):
        kind, unit, amount = rng.choice(KINDS)
        village = f"441302{rng.randint(100, 120):03d}{rng.randint(200, 260):03d}"
        rows.append([f"需求项目 {number}", rng.choice(CATEGORIES), kind, amount(rng), unit, str(rng.randint(0, 5000)),
                     rng.choice(GROUPS), deadline, village, str(rng.randint(1, 5))])
    return rows


def as_csv(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def as_xlsx(rows: Sequence[Sequence[str]]) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("needs")
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


async def time_import(backend: str, data: bytes, name: str, tmp: Path) -> tuple[float, int]:
    databases = TestDatabases(tmp)
    tokens = Tokens.generate()
    try:
        url = await databases.create("needs", backend, label="bench")
        app = create_app(NeedsSettings(database_url=url, jwt_public_key=tokens.public_pem))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://needs", timeout=600) as client:
            started = time.perf_counter()
            response = await client.post("/api/needs/import", files={"file": (name, data)},
                                         headers=tokens.coordinator("441302"))
            elapsed = time.perf_counter() - started
        await app.state.db.dispose()
        if response.status_code != 201:
            raise RuntimeError(f"import failed: {response.status_code} {response.text[:500]}")
        return elapsed, int(response.json()["created"])
    finally:
        await databases.drop_all()


# --- offers: a coordinator publishes the offers of the organisations of a city -------------------------

OFFER_HEADER = ["组织", "供给名称", "领域", "帮扶方式", "数量或金额", "单位", "服务地区", "开始日期", "结束日期", "受益群体", "技能"]
OFFER_KINDS = [("资金", "元", lambda r: f"{r.randint(1, 300)}万元"), ("物资", "册", lambda r: str(r.randint(10, 5000))),
               ("培训", "人", lambda r: str(r.randint(5, 200))), ("服务", "人天", lambda r: str(r.randint(1, 60)))]
OFFER_REGIONS = ["4413", "441302", "441303", "441322、441323", "441302104"]
BENCH_ORGANISATIONS = 50


def bench_credit_codes(count: int = BENCH_ORGANISATIONS) -> list[str]:
    from services.offers.schemas import credit_code_check_character

    bodies = [f"53441300MJ{number:07d}" for number in range(1, count + 1)]
    return [body + credit_code_check_character(body) for body in bodies]


def offer_sheet_rows(count: int, seed: int = 7) -> list[list[str]]:
    rng = random.Random(seed)
    codes = bench_credit_codes()
    start, until = date.today().isoformat(), (date.today() + timedelta(days=365)).isoformat()
    rows = [OFFER_HEADER]
    for number in range(count):
        kind, unit, amount = rng.choice(OFFER_KINDS)
        rows.append([rng.choice(codes), f"供给项目 {number}", "、".join(rng.sample(CATEGORIES, 2)), kind, amount(rng), unit,
                     rng.choice(OFFER_REGIONS), start, until, rng.choice(GROUPS), "电商、数控" if kind == "培训" else ""])
    return rows


async def time_offer_import(backend: str, data: bytes, name: str, tmp: Path) -> tuple[float, int]:
    """The organisations are registered and verified first; only the import is timed."""
    from services.offers.app import create_app as create_offers_app
    from services.offers.config import OffersSettings

    databases = TestDatabases(tmp)
    tokens = Tokens.generate()
    try:
        url = await databases.create("offers", backend, label="bench")
        app = create_offers_app(OffersSettings(database_url=url, jwt_public_key=tokens.public_pem))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://offers", timeout=600) as client:
            for number, code in enumerate(bench_credit_codes()):
                registered = await client.post("/api/organisations", headers=tokens.admin(), json={
                    "name": f"惠州市公益组织 {number}", "org_type": "social_organisation", "credit_code": code,
                    "region_codes": ["4413"],
                })
                registered.raise_for_status()
                verified = await client.post(f"/api/organisations/{registered.json()['id']}/verify", headers=tokens.admin())
                verified.raise_for_status()
            started, cpu_started = time.perf_counter(), time.process_time()
            response = await client.post("/api/offers/import", files={"file": (name, data)},
                                         headers=tokens.coordinator("4413"))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        # On a shared machine the wall time includes waiting for a core; this process's CPU time does not
        # (PostgreSQL's own work is not in it).
        print(f"  ({backend} {name}: {cpu:.1f} s of this process's CPU)", flush=True)
        await app.state.db.dispose()
        if response.status_code != 201:
            raise RuntimeError(f"import failed: {response.status_code} {response.text[:500]}")
        return elapsed, int(response.json()["created"])
    finally:
        await databases.drop_all()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--kind", choices=["needs", "offers"], default="needs")
    args = parser.parse_args(argv)
    rows = sheet_rows(args.rows) if args.kind == "needs" else offer_sheet_rows(args.rows)
    timed = time_import if args.kind == "needs" else time_offer_import
    files = {"csv": as_csv(rows), "xlsx": as_xlsx(rows)}
    backends = ["sqlite"] + (["postgresql"] if TestDatabases.pg_admin_url() else [])
    print(f"{'backend':<12}{'format':<8}{'rows':>10}{'size MB':>10}{'seconds':>10}{'rows/s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            for table_format in args.formats.split(","):
                data = files[table_format]
                seconds, created = asyncio.run(timed(backend, data, f"{args.kind}.{table_format}", Path(tmp)))
                print(f"{backend:<12}{table_format:<8}{created:>10}{len(data) / 2**20:>10.1f}{seconds:>10.2f}"
                      f"{created / seconds:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
