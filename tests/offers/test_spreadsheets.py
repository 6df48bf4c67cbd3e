"""Coordinators register organisations and organisations publish offers from spreadsheets, and export what they see."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from services.common.identity import Principal, Role
from services.common.spreadsheets import MAX_UPLOAD_BYTES
from services.offers import repository, service
from services.offers.models import Base
from services.offers.schemas import OfferFilters, OrganisationCreate
from tests.offers.conftest import (
    BEILUN,
    HUIZHOU,
    OffersService,
    new_credit_code,
    offer_body,
    org_body,
    post_offer,
    post_org,
    verified_org,
)
from tests.support import empty_tables

FUTURE = (date.today() + timedelta(days=120)).isoformat()
TODAY = date.today().isoformat()
TEMPLATE_CREDIT_CODE = "53441300MJL000017Y"  # the templates' example organisation

ORG_HEADER = ["组织名称", "组织类型", "统一社会信用代码", "评估等级", "服务地区", "联系人", "联系电话", "简介"]
ORG_HEADER_EN = ["Name", "Type", "Credit code", "Grade", "Regions", "Contact", "Contact phone", "Description"]
OFFER_HEADER = ["组织", "供给名称", "领域", "帮扶方式", "数量或金额", "单位", "服务地区", "开始日期", "结束日期", "受益群体", "技能"]
OFFER_HEADER_EN = ["Organisation", "Title", "Categories", "Kind", "Quantity", "Unit", "Regions", "Available from",
                   "Available until", "Beneficiary groups", "Skills"]


def org_row(credit_code: str | None = None, **changes: str) -> list[str]:
    row = {"name": "惠州市慈善助学基金会", "org_type": "基金会", "credit_code": credit_code or new_credit_code(),
           "grade": "4A", "regions": HUIZHOU, "contact": "陈主任", "phone": "0752-2345678", "description": "资助乡村学校"}
    row.update(changes)
    return list(row.values())


def offer_row(organisation: str, **changes: str) -> list[str]:
    row = {"organisation": organisation, "title": "职业技能培训名额", "categories": "人才、教育", "kind": "培训",
           "quantity": "60", "unit": "人", "regions": HUIZHOU, "from": TODAY, "until": FUTURE,
           "groups": "残疾人、失地农民", "skills": "电商、数控"}
    row.update(changes)
    return list(row.values())


def csv_bytes(rows: list[list[Any]], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def read_table(data: bytes, table_format: str) -> list[list[Any]]:
    if table_format == "csv":
        return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    workbook = load_workbook(io.BytesIO(data), read_only=True)
    return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]


async def upload(offers: OffersService, what: str, data: bytes, headers: dict[str, str], *, dry_run: bool = False,
                 name: str = "sheet.csv") -> Any:
    return await offers.client.post(
        f"/api/{what}/import", params={"dry_run": str(dry_run).lower()}, files={"file": (name, data)}, headers=headers
    )


async def all_of(offers: OffersService, what: str) -> list[dict[str, Any]]:
    response = await offers.client.get(f"/api/{what}?limit=200", headers=offers.tokens.admin())
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def feed(offers: OffersService) -> list[dict[str, Any]]:
    response = await offers.client.get("/internal/changes?limit=2000", headers=offers.tokens.service())
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- templates ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("table_format", ["csv", "xlsx"])
@pytest.mark.parametrize(("what", "first_zh", "first_en"), [("organisations", "组织名称*", "Name*"),
                                                           ("offers", "组织", "Organisation")])
async def test_the_template_speaks_the_callers_language_and_imports_as_is(
    offers: OffersService, table_format: str, what: str, first_zh: str, first_en: str
) -> None:
    if what == "offers":  # the example row names the example organisation
        await verified_org(offers, credit_code=TEMPLATE_CREDIT_CODE)

    chinese = await offers.client.get(f"/api/{what}/import/template?format={table_format}")
    english = await offers.client.get(f"/api/{what}/import/template?format={table_format}",
                                      headers={"Accept-Language": "en"})

    assert chinese.status_code == english.status_code == 200
    assert f"{what}-template.{table_format}" in chinese.headers["content-disposition"]
    assert read_table(chinese.content, table_format)[0][0] == first_zh
    assert read_table(english.content, table_format)[0][0] == first_en
    for template in (chinese, english):
        report = await upload(offers, what, template.content, offers.tokens.coordinator(HUIZHOU), dry_run=True,
                              name=f"t.{table_format}")
        assert report.status_code == 200, report.text
        assert (report.json()["rows"], report.json()["errors"]) == (1, []), report.text


# --- organisations ---------------------------------------------------------------------------------

async def test_a_coordinator_registers_organisations_from_a_chinese_sheet(offers: OffersService) -> None:
    codes = [new_credit_code(), new_credit_code()]
    rows = [ORG_HEADER, org_row(codes[0]),
            org_row(codes[1].lower(), name="惠城区青年志愿者协会", org_type="社会团体", grade="AAA",
                    regions="441302、441303", contact="", phone="", description="")]

    response = await upload(offers, "organisations", csv_bytes(rows), offers.tokens.coordinator(HUIZHOU))

    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["rows"], report["created"], report["errors"], len(report["ids"])) == (2, 2, [], 2)
    stored = {organisation["credit_code"]: organisation for organisation in await all_of(offers, "organisations")}
    assert set(stored) == set(codes)
    assert (stored[codes[0]]["org_type"], stored[codes[0]]["grade"], stored[codes[0]]["verified"]) == ("foundation", 4, False)
    assert stored[codes[0]]["contact"] == {"name": "陈主任", "phone": "0752-2345678"}
    second = stored[codes[1]]
    assert (second["org_type"], second["grade"], second["region_codes"], second["contact"]) == (
        "social_organisation", 3, ["441302", "441303"], None)
    changes = await feed(offers)
    assert sorted((change["entity"], change["op"], change["entity_id"]) for change in changes) == sorted(
        ("organisation", "created", organisation_id) for organisation_id in report["ids"])
    assert changes[0]["data"]["credit_code"] in codes and changes[0]["actor"]


BAD_ORGANISATION_ROWS = [
    (org_row("91441300000000001Y"), "统一社会信用代码"),  # a wrong check character
    (org_row("91441300ABC"), "统一社会信用代码"),  # too short
    (org_row(org_type="扶贫办"), "组织类型"),
    (org_row(grade="6A"), "评估等级"),
    (org_row(regions="44130"), "服务地区"),
    (org_row(regions=BEILUN), "服务地区"),  # outside the coordinator's region
    (org_row(name="惠"), "组织名称"),
    (org_row(phone="call me"), "联系电话"),
]


async def test_a_dry_run_lists_every_bad_organisation_row_and_writes_nothing(offers: OffersService) -> None:
    taken = await post_org(offers)
    repeated = new_credit_code()
    rows = [org_row(), *(row for row, _ in BAD_ORGANISATION_ROWS), org_row(taken["credit_code"]), org_row(repeated),
            org_row(repeated)]

    response = await upload(offers, "organisations", csv_bytes([ORG_HEADER, *rows]), offers.tokens.coordinator(HUIZHOU),
                            dry_run=True)

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["dry_run"], report["rows"], report["created"], report["ids"]) == (True, len(rows), 0, [])
    expected = {(number, column) for number, (_, column) in enumerate(BAD_ORGANISATION_ROWS, start=3)}
    after_bad = 3 + len(BAD_ORGANISATION_ROWS)
    expected |= {(after_bad, "统一社会信用代码"), (after_bad + 2, "统一社会信用代码")}
    assert {(error["row"], error["column"]) for error in report["errors"]} == expected
    messages = {error["row"]: error["message"] for error in report["errors"]}
    assert messages[3] == "统一社会信用代码校验位不正确，请核对"
    assert messages[after_bad] == f"统一社会信用代码 {taken['credit_code']} 已被另一个组织登记。"
    assert messages[after_bad + 2] == f"与第 {after_bad + 1} 行的统一社会信用代码相同"
    assert [o["id"] for o in await all_of(offers, "organisations")] == [taken["id"]]
    assert len(await feed(offers)) == 1


async def test_a_real_run_with_a_bad_credit_code_registers_nothing(offers: OffersService) -> None:
    rows = [ORG_HEADER_EN, org_row(), org_row("91441300000000001Y")]

    response = await upload(offers, "organisations", csv_bytes(rows),
                            {**offers.tokens.coordinator(HUIZHOU), "Accept-Language": "en"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["error_count"] == 1
    assert problem["errors"] == [{"row": 3, "column": "Credit code",
                                  "message": "The check character of the credit code is wrong; check the code"}]
    assert "nothing was imported" in problem["detail"]
    assert await all_of(offers, "organisations") == []
    assert await feed(offers) == []


async def test_only_coordinators_and_admins_register_organisations(offers: OffersService) -> None:
    data = csv_bytes([ORG_HEADER, org_row()])
    for headers in (offers.tokens.member(uuid.uuid4()), offers.tokens.officer("441302104201")):
        response = await upload(offers, "organisations", data, headers)
        assert response.status_code == 403, response.text
    assert await all_of(offers, "organisations") == []


ORGANISATION_COMPARED = ["name", "org_type", "credit_code", "grade", "region_codes", "contact", "description"]


@pytest.mark.parametrize("table_format", ["csv", "xlsx"])
async def test_organisations_exported_then_imported_are_the_same(offers: OffersService, table_format: str) -> None:
    await verified_org(offers)
    await post_org(offers, name="惠城区青年志愿者协会", org_type="volunteer_team", grade=None, contact=None,
                   region_codes=["441302", "441303"], description="周末支教, \"青年之家\"\n每月两次")
    before = await all_of(offers, "organisations")

    exported = await offers.client.get(f"/api/organisations/export?format={table_format}", headers=offers.tokens.admin())
    assert exported.status_code == 200
    assert f"organisations.{table_format}" in exported.headers["content-disposition"]
    # A credit code names one organisation: the export moves to another deployment (here: the same one, emptied).
    await empty_tables(offers.app.state.db, Base.metadata)
    response = await upload(offers, "organisations", exported.content, offers.tokens.admin(), name=f"e.{table_format}")

    assert response.status_code == 201, response.text
    assert response.json()["ignored_columns"] == []
    after = await all_of(offers, "organisations")
    assert sorted(tuple(str(o[key]) for key in ORGANISATION_COMPARED) for o in after) == sorted(
        tuple(str(o[key]) for key in ORGANISATION_COMPARED) for o in before)
    assert all(organisation["verified"] is False for organisation in after)  # as registered one by one


async def test_reimporting_an_export_refuses_the_registered_credit_codes(offers: OffersService) -> None:
    organisation = await post_org(offers)
    exported = await offers.client.get("/api/organisations/export?format=csv", headers=offers.tokens.admin())

    response = await upload(offers, "organisations", exported.content, offers.tokens.admin())

    assert response.status_code == 422
    assert response.json()["errors"] == [{"row": 2, "column": "统一社会信用代码",
                                          "message": f"统一社会信用代码 {organisation['credit_code']} 已被另一个组织登记。"}]


async def test_the_organisation_export_follows_the_list_filters_and_its_visibility(offers: OffersService) -> None:
    verified = await verified_org(offers)
    await post_org(offers, name="未认证的协会")

    member_view = await offers.client.get("/api/organisations/export?format=csv",
                                          headers={**offers.tokens.member(uuid.uuid4()), "Accept-Language": "en"})
    filtered = await offers.client.get("/api/organisations/export?format=csv&verified=false", headers=offers.tokens.admin())

    rows = read_table(member_view.content, "csv")
    assert rows[0][:3] == ["Name", "Type", "Credit code"] and rows[0][-4:] == [
        "ID", "Verification", "Verified at", "Registered at"]
    assert [(row[0], row[9]) for row in rows[1:]] == [(verified["name"], "verified")]
    assert rows[1][6] == ""  # the contact's phone is for those who speak for the organisation
    assert [row[0] for row in read_table(filtered.content, "csv")[1:]] == ["未认证的协会"]


# --- offers ------------------------------------------------------------------------------------------

async def test_a_member_imports_offers_for_their_organisation_without_naming_it(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    member = offers.tokens.member(organisation["id"], subject="member-chen")
    rows = [OFFER_HEADER[1:], offer_row("")[1:],
            offer_row("", title="助学金", categories="教育", kind="资金", quantity="145万元", unit="元", regions="441302",
                      groups="学生、留守儿童", skills="")[1:]]

    response = await upload(offers, "offers", csv_bytes(rows), member)

    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["rows"], report["created"], report["errors"]) == (2, 2, [])
    stored = {offer["title"]: offer for offer in await all_of(offers, "offers")}
    assert stored["助学金"]["quantity"] == "1450000.00"
    assert (stored["助学金"]["kind"], stored["助学金"]["unit"], stored["助学金"]["organisation_id"]) == (
        "funds", "CNY", organisation["id"])
    assert stored["职业技能培训名额"]["categories"] == ["talent", "education"]
    assert stored["职业技能培训名额"]["beneficiary_groups"] == ["disabled", "landless_farmers"]
    history = await offers.client.get(f"/api/offers/{stored['助学金']['id']}/history", headers=member)
    assert [(entry["op"], entry["actor"]) for entry in history.json()] == [("created", "member-chen")]
    assert history.json()[0]["changes"]["quantity"] == [None, "1450000.00"]


async def test_a_coordinator_names_organisations_by_credit_code_or_id(offers: OffersService) -> None:
    first, second = await verified_org(offers), await verified_org(offers, name="惠州职业技术学院", org_type="school")
    rows = [OFFER_HEADER, offer_row(first["credit_code"].lower()), offer_row(second["id"], title="数控培训")]

    response = await upload(offers, "offers", csv_bytes(rows), offers.tokens.coordinator(HUIZHOU))

    assert response.status_code == 201, response.text
    stored = {offer["title"]: offer["organisation_id"] for offer in await all_of(offers, "offers")}
    assert stored == {"职业技能培训名额": first["id"], "数控培训": second["id"]}


async def test_gb18030_csv_english_headers_and_xlsx_cells_read_the_same(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    member = offers.tokens.member(organisation["id"])
    chinese = csv_bytes([OFFER_HEADER, offer_row(organisation["credit_code"], title="岑山村助学", until="2027年6月30日")],
                        "gb18030")
    english = csv_bytes([OFFER_HEADER_EN, offer_row("", title="Tutoring", categories="Education", kind="Service",
                                                    quantity="12", unit="session", groups="Students", skills="")])
    workbook = xlsx_bytes([OFFER_HEADER, [organisation["credit_code"], "图书捐赠", "教育", "物资", 1200, "册", int(HUIZHOU),
                                          date.today(), date.today() + timedelta(days=30), "学生", None]])

    responses = [await upload(offers, "offers", chinese, member), await upload(offers, "offers", english, member),
                 await upload(offers, "offers", workbook, member, name="offers.xlsx")]

    assert [response.status_code for response in responses] == [201, 201, 201], [r.text for r in responses]
    stored = {offer["title"]: offer for offer in await all_of(offers, "offers")}
    assert stored["岑山村助学"]["available_until"] == "2027-06-30"
    assert stored["岑山村助学"]["skills"] == ["电商", "数控"]
    assert (stored["Tutoring"]["kind"], stored["Tutoring"]["unit"], stored["Tutoring"]["quantity"]) == (
        "service", "session", "12.00")
    assert (stored["图书捐赠"]["quantity"], stored["图书捐赠"]["region_codes"]) == ("1200.00", [HUIZHOU])


def bad_offer_rows(code: str) -> list[tuple[list[str], str]]:
    return [
        (offer_row(code, regions="44130"), "服务地区"),
        (offer_row(code, unit="册"), "单位"),  # a unit of goods for a training
        (offer_row(code, unit="桶"), "单位"),  # no such unit
        (offer_row(code, categories="扶贫"), "领域"),
        (offer_row(code, kind="捐款"), "帮扶方式"),
        (offer_row(code, quantity="-60"), "数量或金额"),
        (offer_row(code, quantity="六十"), "数量或金额"),
        (offer_row(code, quantity="60.5"), "数量或金额"),  # trainees are whole people
        (offer_row(code, until="2020-01-01", **{"from": "2019-01-01"}), "结束日期"),
        (offer_row(code, until="明年春天"), "结束日期"),
        (offer_row(code, regions=""), "服务地区"),  # neither regions nor a radius
        (offer_row(code, title=""), "供给名称"),
        (offer_row(new_credit_code()), "组织"),  # no such organisation
        (offer_row("not-a-code"), "组织"),
        (offer_row(""), "组织"),  # a coordinator names the organisation
    ]


async def test_a_dry_run_lists_every_bad_offer_row_and_writes_nothing(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    bad = bad_offer_rows(organisation["credit_code"])
    data = csv_bytes([OFFER_HEADER, offer_row(organisation["credit_code"]), *(row for row, _ in bad)])

    response = await upload(offers, "offers", data, offers.tokens.coordinator(HUIZHOU), dry_run=True)

    assert response.status_code == 200, response.text
    report = response.json()
    counts = (report["dry_run"], report["rows"], report["created"], report["error_count"])
    assert counts == (True, 1 + len(bad), 0, len(bad)), report["errors"]
    assert [(error["row"], error["column"]) for error in report["errors"]] == [
        (number, column) for number, (_, column) in enumerate(bad, start=3)]
    assert all(error["message"] for error in report["errors"])
    assert await all_of(offers, "offers") == []
    assert len(await feed(offers)) == 2  # the organisation's registration and verification only


@pytest.mark.parametrize(
    ("cells", "body", "column"),
    [
        ({"quantity": "-60"}, {"quantity": -60}, "Quantity"),
        ({"unit": "book"}, {"unit": "book"}, "Unit"),
        ({"until": "2020-01-01", "from": "2019-01-01"}, {"available_until": "2020-01-01", "available_from": "2019-01-01"},
         "Available until"),
        ({"regions": "44130"}, {"region_codes": ["44130"]}, "Regions"),
        ({"title": "x"}, {"title": "x"}, "Title"),
    ],
)
async def test_a_rows_message_is_the_single_creates(
    offers: OffersService, cells: dict[str, str], body: dict[str, Any], column: str
) -> None:
    organisation = await verified_org(offers)
    headers = {**offers.tokens.member(organisation["id"]), "Accept-Language": "en"}
    single = await offers.client.post("/api/offers", json=offer_body(organisation["id"], **body), headers=headers)

    imported = await upload(offers, "offers", csv_bytes([OFFER_HEADER_EN, offer_row("", **cells)]), headers)

    assert single.status_code == imported.status_code == 422, (single.text, imported.text)
    [field_error] = single.json()["errors"]
    assert imported.json()["errors"] == [{"row": 2, "column": column, "message": field_error["message"]}]


async def test_a_real_run_with_one_bad_row_publishes_nothing(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    code = organisation["credit_code"]
    data = csv_bytes([OFFER_HEADER, offer_row(code), offer_row(code, title="二期"), offer_row(code, quantity="-1")])

    response = await upload(offers, "offers", data, {**offers.tokens.coordinator(HUIZHOU), "Accept-Language": "en"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["error_count"], problem["errors"][0]["row"], problem["errors"][0]["column"]) == (1, 4, "Quantity")
    assert await all_of(offers, "offers") == []
    assert len(await feed(offers)) == 2


async def test_a_member_cannot_import_offers_for_another_organisation(offers: OffersService) -> None:
    own, other = await verified_org(offers), await verified_org(offers, name="另一个基金会")
    member = offers.tokens.member(own["id"])
    data = csv_bytes([OFFER_HEADER, offer_row(""), offer_row(other["credit_code"]), offer_row(other["id"])])

    response = await upload(offers, "offers", data, member)

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"row": row, "column": "组织", "message": "组织成员只能为本组织发布供给。"} for row in (3, 4)]
    assert await all_of(offers, "offers") == []


async def test_the_same_refusals_as_publishing_one_offer(offers: OffersService) -> None:
    verified, unverified = await verified_org(offers), await post_org(offers, name="待认证协会")
    huizhou_rows = csv_bytes([OFFER_HEADER, offer_row(verified["credit_code"]), offer_row(unverified["credit_code"])])

    outsider = await upload(offers, "offers", huizhou_rows, offers.tokens.coordinator(BEILUN))
    governing = await upload(offers, "offers", huizhou_rows, offers.tokens.coordinator(HUIZHOU))
    officer = await upload(offers, "offers", huizhou_rows, offers.tokens.officer("441302104201"))

    assert [(e["row"], e["message"]) for e in outsider.json()["errors"]] == [
        (2, "只有该组织的成员或其所在地区的协调员可以管理它的供给。"), (3, "只有该组织的成员或其所在地区的协调员可以管理它的供给。")]
    assert [(e["row"], e["column"]) for e in governing.json()["errors"]] == [(3, "组织")]
    assert "待认证协会" in governing.json()["errors"][0]["message"]
    assert officer.status_code == 403
    assert await all_of(offers, "offers") == []


@pytest.mark.parametrize("what", ["organisations", "offers"])
@pytest.mark.parametrize(
    ("data", "status", "expected"),
    [
        (b"", 422, "空"),
        (b"\xef\xbb\xbf\r\n", 422, "空"),
        (b"headers only", 422, "没有数据行"),
        (b"PK\x03\x04 not really a workbook", 422, "无法读取"),
    ],
)
async def test_unreadable_files_get_a_clear_message(
    offers: OffersService, what: str, data: bytes, status: int, expected: str
) -> None:
    if data == b"headers only":
        data = csv_bytes([ORG_HEADER if what == "organisations" else OFFER_HEADER])
    response = await upload(offers, what, data, offers.tokens.admin())
    assert response.status_code == status, response.text
    assert expected in response.json()["detail"]


@pytest.mark.parametrize(("what", "header", "missing"), [("organisations", ORG_HEADER, "统一社会信用代码"),
                                                          ("offers", OFFER_HEADER, "数量或金额")])
async def test_a_missing_required_column_is_reported_on_the_header_row(
    offers: OffersService, what: str, header: list[str], missing: str
) -> None:
    organisation = await verified_org(offers)
    row = org_row() if what == "organisations" else offer_row(organisation["credit_code"])
    position = header.index(missing)
    data = csv_bytes([header[:position] + header[position + 1:], row[:position] + row[position + 1:]])

    response = await upload(offers, what, data, offers.tokens.admin())

    assert response.status_code == 422
    assert response.json()["errors"] == [{"row": 1, "column": missing, "message": "缺少此列"}]
    assert len(await all_of(offers, "organisations")) == 1 and await all_of(offers, "offers") == []


@pytest.mark.parametrize("what", ["organisations", "offers"])
async def test_a_file_over_the_limit_is_refused(offers: OffersService, what: str) -> None:
    data = csv_bytes([OFFER_HEADER]) + b"x" * (MAX_UPLOAD_BYTES + 10)
    response = await upload(offers, what, data, offers.tokens.admin())
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert await all_of(offers, what) == []


OFFER_COMPARED = ["organisation_id", "title", "description", "categories", "kind", "quantity", "unit", "region_codes",
                  "radius_km", "lat", "lon", "available_from", "available_until", "beneficiary_groups", "skills"]


@pytest.mark.parametrize("table_format", ["csv", "xlsx"])
async def test_offers_exported_then_imported_are_the_same(offers: OffersService, table_format: str) -> None:
    organisation = await verified_org(offers)
    member = offers.tokens.member(organisation["id"])
    await post_offer(offers, organisation["id"])
    await post_offer(offers, organisation["id"], title="助学金", categories=["education"], kind="funds",
                     quantity="1450000.50", unit="CNY", region_codes=[], radius_km=35.5, lat=-23.125, lon=114.4,
                     beneficiary_groups=[], skills=[], description="临水路段, \"助学\"\n每年两期",
                     available_from=(date.today() - timedelta(days=30)).isoformat())
    before = await all_of(offers, "offers")

    exported = await offers.client.get(f"/api/offers/export?format={table_format}", headers=member)
    assert exported.status_code == 200
    assert f"offers.{table_format}" in exported.headers["content-disposition"]
    response = await upload(offers, "offers", exported.content, member, name=f"e.{table_format}")

    assert response.status_code == 201, response.text
    assert response.json()["ignored_columns"] == []
    original_ids = {offer["id"] for offer in before}
    copies = [offer for offer in await all_of(offers, "offers") if offer["id"] not in original_ids]
    assert sorted(tuple(str(offer[key]) for key in OFFER_COMPARED) for offer in copies) == sorted(
        tuple(str(offer[key]) for key in OFFER_COMPARED) for offer in before)


async def test_the_offer_export_shows_status_and_amounts_and_follows_the_filters(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    training = await post_offer(offers, organisation["id"])
    await post_offer(offers, organisation["id"], title="助学金", categories=["education"], kind="funds", quantity="5000",
                     unit="CNY")
    reserved = await offers.client.post(f"/internal/offers/{training['id']}/reservations",
                                        json={"match_id": str(uuid.uuid4()), "quantity": "10"},
                                        headers=offers.tokens.service())
    assert reserved.status_code == 200, reserved.text

    english = await offers.client.get("/api/offers/export?format=csv&kind=training",
                                      headers={**offers.tokens.member(uuid.uuid4()), "Accept-Language": "en"})
    everything = await offers.client.get("/api/offers/export?format=xlsx", headers=offers.tokens.admin())

    rows = read_table(english.content, "csv")
    assert rows[0][-7:] == ["Organisation name", "ID", "Status", "Reserved", "Delivered", "Available", "Posted at"]
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert (row["Organisation"], row["Organisation name"], row["ID"]) == (
        organisation["credit_code"], organisation["name"], training["id"])
    assert (row["Status"], row["Reserved"], row["Delivered"], row["Available"]) == ("active", "10.00", "0.00", "50.00")
    assert (row["Kind"], row["Unit"], row["Categories"]) == ("Training", "trainee", "Talent、Education")
    assert sorted(row[1] for row in read_table(everything.content, "xlsx")[1:]) == ["助学金", "职业技能培训名额"]


async def test_an_export_reads_in_batches_and_misses_no_row(offers: OffersService) -> None:
    organisation = await verified_org(offers)
    rows = [OFFER_HEADER, *(offer_row(organisation["credit_code"], title=f"培训名额 {n}") for n in range(25))]
    assert (await upload(offers, "offers", csv_bytes(rows), offers.tokens.admin())).status_code == 201

    batches = [batch async for batch in service.export_offers(offers.app.state.db, filters=OfferFilters(), locale="zh",
                                                             batch=7)]

    assert [len(batch) for batch in batches] == [7, 7, 7, 4]
    assert sorted(row[1] for batch in batches for row in batch) == sorted(f"培训名额 {n}" for n in range(25))


async def test_a_credit_code_registered_while_the_file_was_checked_refuses_the_whole_file(offers: OffersService) -> None:
    taken = await post_org(offers)
    admin = Principal(subject="admin-1", role=Role.ADMIN)
    rows = [service._new_organisation_values(OrganisationCreate.model_validate(org_body(**changes)), admin)
            for changes in ({}, {"credit_code": taken["credit_code"]})]

    async with offers.app.state.db.session() as session:
        assert await repository.add_organisations(session, rows) is False
        await session.commit()

    assert [organisation["id"] for organisation in await all_of(offers, "organisations")] == [taken["id"]]
