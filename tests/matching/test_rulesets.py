"""Rule sets are versioned data: read by anyone signed in, replaced only by an admin, validated."""

from __future__ import annotations

from typing import Any

import pytest

from services.matching.rules import DEFAULT_RULESET
from tests.matching.conftest import VILLAGE_A, Platform, problem


def _rules(**weights: float) -> dict[str, Any]:
    return {
        "weights": {**DEFAULT_RULESET.weights.model_dump(), **weights},
        "parameters": DEFAULT_RULESET.parameters.model_dump(),
    }


async def test_version_one_is_the_default_and_a_put_makes_a_new_version(platform: Platform) -> None:
    organisation = await platform.organisation()
    await platform.offer(organisation)
    need = await platform.need(VILLAGE_A)
    await platform.sync()

    current = await platform.matching.get("/api/rulesets/current", headers=platform.tokens.officer(VILLAGE_A))
    assert current.status_code == 200 and current.headers["ETag"] == '"1"'
    assert current.json()["version"] == 1
    assert current.json()["weights"] == DEFAULT_RULESET.weights.model_dump()
    assert current.json()["parameters"] == DEFAULT_RULESET.parameters.model_dump()

    only_urgency = {rule: 0.0 for rule in DEFAULT_RULESET.weights.model_dump()} | {"urgency": 2.0}
    put = await platform.matching.put("/api/rulesets/current", json=_rules(**only_urgency), headers=platform.admin)
    assert put.status_code == 200, put.text
    assert (put.json()["version"], put.headers["ETag"]) == (2, '"2"')
    assert (await platform.matching.get("/api/rulesets/current", headers=platform.admin)).json()["weights"] == only_urgency
    old = await platform.matching.get("/api/rulesets/1", headers=platform.admin)
    assert old.json()["weights"] == DEFAULT_RULESET.weights.model_dump()
    problem(await platform.matching.get("/api/rulesets/9", headers=platform.admin), 404)

    # Scores now follow version 2: urgency 3 of 5 alone, weight share 1.
    candidates = (await platform.candidates(need_id=need["id"])).json()
    assert candidates["ruleset_version"] == 2
    [item] = candidates["items"]
    assert item["ruleset_version"] == 2 and item["score"] == 0.5
    assert [(e["rule"], e["weight"]) for e in item["explanation"]] == [("urgency", 1.0)]


async def test_only_an_admin_may_change_the_rules(platform: Platform) -> None:
    for headers in (platform.tokens.coordinator("44"), platform.tokens.officer(VILLAGE_A), platform.tokens.service()):
        problem(await platform.matching.put("/api/rulesets/current", json=_rules(), headers=headers), 403)
    problem(await platform.matching.put("/api/rulesets/current", json=_rules()), 401)
    problem(await platform.matching.get("/api/rulesets/current"), 401)
    assert (await platform.matching.get("/api/rulesets/current", headers=platform.admin)).json()["version"] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda body: body["weights"].update(proximity=-0.1), "weights.proximity"),
        (lambda body: body["weights"].update(dict.fromkeys(body["weights"], 0.0)), "weights"),
        (lambda body: body["weights"].update(urgency="inf"), "weights.urgency"),
        (lambda body: body["parameters"].update(half_distance_km=0), "parameters.half_distance_km"),
        (lambda body: body["parameters"].update(deadline_horizon_days=0), "parameters.deadline_horizon_days"),
        (lambda body: body["parameters"].update(same_province_bonus=0.9), "parameters"),
        (lambda body: body["weights"].update(popularity=1.0), "weights.popularity"),
        (lambda body: body.pop("parameters"), "parameters"),
    ],
)
async def test_bad_rules_are_a_422_naming_the_field(platform: Platform, change: Any, field: str) -> None:
    body = _rules()
    change(body)
    response = await platform.matching.put("/api/rulesets/current", json=body, headers={**platform.admin, "Accept-Language": "en"})
    error = problem(response, 422)
    assert field in [e["field"] for e in error["errors"]]
    assert (await platform.matching.get("/api/rulesets/current", headers=platform.admin)).json()["version"] == 1


async def test_a_stale_if_match_is_refused(platform: Platform) -> None:
    first = await platform.matching.put("/api/rulesets/current", json=_rules(), headers={**platform.admin, "If-Match": '"1"'})
    assert first.status_code == 200 and first.json()["version"] == 2
    problem(await platform.matching.put("/api/rulesets/current", json=_rules(), headers={**platform.admin, "If-Match": '"1"'}), 412)
    assert (await platform.matching.get("/api/rulesets/current", headers=platform.admin)).json()["version"] == 2
