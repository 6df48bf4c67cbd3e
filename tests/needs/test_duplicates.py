"""An officer posts a need the village already has open: the platform says so, and someone decides."""

from __future__ import annotations

import uuid

import pytest

from services.needs.service import MAX_COMPARED, MAX_REPORTED, DuplicateFinder, title_similarity
from tests.needs.conftest import LUZHOU_VILLAGE, OTHER_LUZHOU_VILLAGE, NeedsService, post_need
from tests.needs.test_spreadsheets import ZH_HEADER, csv_bytes, upload

GUARD_RAILS = {"title": "村道防护栏安装", "category": "infrastructure", "kind": "funds", "quantity": "200000", "unit": "CNY",
               "skills": []}


async def test_a_similar_need_of_the_same_village_is_flagged_with_the_other_ones_id(needs: NeedsService) -> None:
    first = await post_need(needs, **GUARD_RAILS)

    second = await post_need(needs, **{**GUARD_RAILS, "title": "村道防护栏 安装（二期）"})

    assert [(d["need_id"], d["title"]) for d in second["possible_duplicates"]] == [(first["id"], "村道防护栏安装")]
    assert first["possible_duplicates"] == []
    again = await needs.client.get(f"/api/needs/{second['id']}", headers=needs.tokens.officer(LUZHOU_VILLAGE))
    assert again.json()["possible_duplicates"][0]["need_id"] == first["id"]


@pytest.mark.parametrize(
    "changes",
    [
        {"title": "村小学图书室"},  # a different title
        {"kind": "goods", "unit": "item", "quantity": "200"},  # another kind
        {"category": "education"},  # another category
        {"village_code": OTHER_LUZHOU_VILLAGE},  # another village
    ],
)
async def test_what_differs_in_village_category_kind_or_title_is_not_a_duplicate(needs: NeedsService, changes: dict[str, str]) -> None:
    await post_need(needs, **GUARD_RAILS)
    other = await post_need(needs, **{**GUARD_RAILS, **changes})
    assert other["possible_duplicates"] == []


async def test_the_officer_keeps_both_and_the_warning_goes(needs: NeedsService) -> None:
    await post_need(needs, **GUARD_RAILS)
    second = await post_need(needs, **GUARD_RAILS)
    officer = needs.tokens.officer(LUZHOU_VILLAGE)

    decided = await needs.client.post(f"/api/needs/{second['id']}/duplicate-decision", json={"decision": "distinct"},
                                      headers=officer)

    assert decided.status_code == 200, decided.text
    assert decided.json()["possible_duplicates"] == []
    assert decided.json()["status"] == "open"
    listed = await needs.client.get("/api/needs/duplicates?region=441302", headers=needs.tokens.coordinator("441302"))
    assert listed.json()["items"] == []


async def test_the_officer_withdraws_the_duplicate(needs: NeedsService) -> None:
    await post_need(needs, **GUARD_RAILS)
    second = await post_need(needs, **GUARD_RAILS)

    decided = await needs.client.post(f"/api/needs/{second['id']}/duplicate-decision", json={"decision": "withdraw"},
                                      headers=needs.tokens.officer(LUZHOU_VILLAGE))

    assert decided.json()["status"] == "cancelled"
    withdrawn = await needs.client.get("/api/needs/duplicates?status=withdrawn", headers=needs.tokens.admin())
    assert [item["need_id"] for item in withdrawn.json()["items"]] == [second["id"]]


async def test_coordinators_list_likely_duplicates_of_their_region_only(needs: NeedsService) -> None:
    first = await post_need(needs, **GUARD_RAILS)
    second = await post_need(needs, **GUARD_RAILS)

    mine = await needs.client.get("/api/needs/duplicates", headers=needs.tokens.coordinator("441302"))
    elsewhere = await needs.client.get("/api/needs/duplicates", headers=needs.tokens.coordinator("450123"))
    outside = await needs.client.get("/api/needs/duplicates?region=45", headers=needs.tokens.coordinator("441302"))

    [item] = mine.json()["items"]
    assert (item["need_id"], item["other_need_id"], item["need_title"]) == (second["id"], first["id"], "村道防护栏安装")
    assert elsewhere.json()["items"] == []
    assert outside.status_code == 403


async def test_someone_elses_officer_cannot_decide(needs: NeedsService) -> None:
    await post_need(needs, **GUARD_RAILS)
    second = await post_need(needs, **GUARD_RAILS)
    response = await needs.client.post(f"/api/needs/{second['id']}/duplicate-decision", json={"decision": "distinct"},
                                       headers=needs.tokens.officer(OTHER_LUZHOU_VILLAGE))
    assert response.status_code in (403, 404)


async def test_an_import_warns_of_rows_resembling_open_needs_and_earlier_rows(needs: NeedsService) -> None:
    existing = await post_need(needs, **GUARD_RAILS)
    deadline = existing["needed_by"]
    row = ["村道防护栏安装", "基础设施", "资金", "20万元", "元", "100", "全体村民", deadline, LUZHOU_VILLAGE]
    library = ["村小学图书室", "教育", "资金", "5万", "元", "100", "学生", deadline, LUZHOU_VILLAGE]

    report = (await upload(needs, csv_bytes([ZH_HEADER, row, library, library]))).json()

    assert report["created"] == 3
    warnings = {(w["row"], w["need_id"], w["duplicate_of_row"]) for w in report["possible_duplicates"]}
    assert warnings == {(2, existing["id"], None), (4, None, 3)}
    assert report["duplicate_count"] == 2
    listed = await needs.client.get("/api/needs/duplicates", headers=needs.tokens.admin())
    assert len(listed.json()["items"]) == 2


def test_similarity_ignores_spacing_and_punctuation() -> None:
    assert title_similarity("村道防护栏", "村道 防护栏！") == 1.0
    assert title_similarity("村道防护栏", "村小学图书室") < 0.3


def _row(title: str) -> dict[str, object]:
    return {"id": uuid.uuid4(), "title": title, "village_code": LUZHOU_VILLAGE, "category": "infrastructure", "kind": "funds"}


def test_a_file_of_near_identical_rows_reports_the_closest_few_and_still_finds_an_old_identical_title() -> None:
    finder = DuplicateFinder([])
    first = _row("村道防护栏安装")
    finder.add(first, row=2)
    # More near-identical rows than the finder compares one by one: the work per row stays bounded.
    for number in range(MAX_COMPARED + 100):
        finder.add(_row(f"村道防护栏安装第{number}段"), row=number + 3)

    hits = finder.resembling(_row("村道防护栏安装"))

    assert len(hits) == MAX_REPORTED
    assert hits[0][0].id == first["id"] and hits[0][1] == 1.0  # identical, though far outside the compared window
    assert all(similarity >= 0.6 for _, similarity in hits)
