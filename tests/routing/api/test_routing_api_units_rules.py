"""Units and rules over HTTP: import, upsert, deactivate, validation problems, versions, evaluation."""

import json

import yaml
from routing_testkit import SAMPLES, sample_metadata

YAML = {"Content-Type": "application/yaml"}


def test_import_is_idempotent_and_reports_what_changed(rapp):
    clerk = rapp.auth("clerk") | YAML
    body = (SAMPLES / "units.yaml").read_bytes()
    first = rapp.client.post("/v1/units:import", data=body, headers=clerk).get_json()
    assert len(first["created"]) == 27 and first["updated"] == [] and first["unchanged"] == []
    again = rapp.client.post("/v1/units:import", data=body, headers=clerk).get_json()
    assert again["created"] == [] and len(again["unchanged"]) == 27
    doc = yaml.safe_load(body)
    doc["units"][0]["name"] = "Phòng Thông tin - Báo chí - Xuất bản (mới)"
    changed = rapp.client.post(
        "/v1/units:import",
        data=json.dumps(doc, ensure_ascii=False).encode(),
        headers=rapp.auth("admin") | {"Content-Type": "application/json"},
    ).get_json()
    assert changed["updated"] == ["STTTT.TTBCXB"] and len(changed["unchanged"]) == 26


def test_units_list_filters_pages_and_keeps_vietnamese(rapp):
    rapp.load_samples()
    r = rapp.client.get("/v1/units?group=phong-vhtt&per_page=4&page=2", headers=rapp.auth("auditor"))
    body = r.get_json()
    assert r.status_code == 200
    assert body["total"] == 11 and body["page"] == 2 and body["per_page"] == 4 and len(body["items"]) == 4
    one = rapp.client.get("/v1/units/PVHTT.DONGXOAI", headers=rapp.auth("clerk"))
    assert one.get_json()["name"] == "Phòng Văn hóa và Thông tin thành phố Đồng Xoài"
    assert "Đồng Xoài".encode() in one.data  # UTF-8 on the wire, not \u escapes


def test_put_creates_then_updates_and_delete_deactivates(rapp):
    clerk = rapp.auth("clerk")
    r = rapp.client.put(
        "/v1/units/UBND.HUYEN-1", json={"name": "Ủy ban nhân dân huyện", "groups": ["ubnd"]}, headers=clerk
    )
    assert r.status_code == 201 and r.headers["Location"] == "/v1/units/UBND.HUYEN-1"
    r = rapp.client.put("/v1/units/UBND.HUYEN-1", json={"name": "UBND huyện Đồng Phú"}, headers=clerk)
    assert r.status_code == 200 and r.get_json()["name"] == "UBND huyện Đồng Phú"
    r = rapp.client.delete("/v1/units/UBND.HUYEN-1", headers=clerk)
    assert r.get_json()["active"] is False
    listed = rapp.client.get("/v1/units?active=false", headers=clerk).get_json()
    assert [u["code"] for u in listed["items"]] == ["UBND.HUYEN-1"]


def test_bad_unit_code_is_a_problem(rapp):
    r = rapp.client.put("/v1/units/bad code", json={"name": "x"}, headers=rapp.auth("clerk"))
    assert r.status_code == 422
    assert r.mimetype == "application/problem+json"
    assert "code" in r.get_json()["errors"]


def test_unit_management_needs_clerk_or_admin(rapp):
    r = rapp.client.put("/v1/units/X1", json={"name": "x"}, headers=rapp.auth("auditor"))
    assert r.status_code == 403
    assert rapp.client.get("/v1/units").status_code == 401


def test_rules_refused_with_each_rule_id_and_field(rapp):
    rapp.load_samples()
    bad = """
rules:
  - id: ok-rule
    match: {subject: {any: ["i-Speed"]}}
    tasks: [{to: {groups: [ttdt]}, role: chu_tri}]
  - id: broken
    match: {notation: {regex: "(KH"}, subject: {fuzzy: "an toàn"}}
    tasks:
      - {to: {units: [KHONG.CO]}, role: chu_tri}
      - {to: {groups: [khong-co]}, role: lanh_dao}
"""
    r = rapp.client.put("/v1/rules", data=bad.encode(), headers=rapp.auth("clerk") | YAML)
    body = r.get_json()
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert set(body["errors"]) == {
        "broken.match.notation.regex",
        "broken.tasks[0].to.units",
        "broken.tasks[1].to.groups",
        "broken.tasks[1].role",
    }
    assert {"rule": "broken", "field": "tasks[0].to.units", "message": "unknown unit 'KHONG.CO'"} in body[
        "issues"
    ]
    versions = rapp.client.get("/v1/rules/versions", headers=rapp.auth("clerk")).get_json()
    assert versions["total"] == 1  # the refused set was not stored


def test_rules_are_versioned(rapp):
    rapp.load_samples()
    clerk = rapp.auth("clerk")
    same = rapp.client.put("/v1/rules", data=(SAMPLES / "rules.yaml").read_bytes(), headers=clerk | YAML)
    assert same.status_code == 200 and same.get_json()["version"] == 1
    doc = yaml.safe_load((SAMPLES / "rules.yaml").read_text(encoding="utf-8"))
    doc["rules"] = doc["rules"][:1]
    r = rapp.client.put("/v1/rules", json=doc, headers=clerk)
    assert r.status_code == 201 and r.headers["Location"] == "/v1/rules/versions/2"
    assert rapp.client.get("/v1/rules", headers=clerk).get_json()["version"] == 2
    versions = rapp.client.get("/v1/rules/versions", headers=clerk).get_json()
    assert [v["version"] for v in versions["items"]] == [2, 1] and versions["items"][0]["rules"] == ["ispeed"]


def test_rules_need_a_readable_document(rapp):
    r = rapp.client.put("/v1/rules", data=b"rules: [", headers=rapp.auth("clerk") | YAML)
    assert r.status_code == 422 and "body" in r.get_json()["errors"]
    r = rapp.client.put("/v1/rules", data=b"x", headers=rapp.auth("clerk") | {"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_evaluate_answers_tasks_without_creating_them(rapp):
    rapp.load_samples()
    body = sample_metadata("120-KH-BCD.json") | {"arrival_date": "2021-04-13"}
    r = rapp.client.post("/v1/rules:evaluate", json=body, headers=rapp.auth("clerk"))
    result = r.get_json()
    assert result["matched_rules"] == ["food-safety-month"] and result["rule_version"] == 1
    roles = {t["unit"]: t["role"] for t in result["tasks"]}
    assert roles["SYT"] == "phoi_hop" and roles["BPTV"] == "chu_tri" and len(roles) == 25
    assert all(t["due_date"] == "2021-05-15" for t in result["tasks"])
    listed = rapp.client.get("/v1/units/SYT/tasks", headers=rapp.auth("clerk")).get_json()
    assert listed["total"] == 0


def test_a_stored_version_can_be_read_back(rapp):
    rapp.load_samples()
    r = rapp.client.get("/v1/rules/versions/1", headers=rapp.auth("auditor"))
    assert r.status_code == 200
    assert "Tuyên truyền Tháng hành động vì an toàn thực phẩm năm 2021" in r.get_json()["source"]
    assert rapp.client.get("/v1/rules/versions/9", headers=rapp.auth("auditor")).status_code == 404


def test_create_app_from_settings_migrates_and_loads_first_start_files(tmp_path, monkeypatch):
    from routing.api import create_app
    from routing.settings import Settings
    from routing_testkit import SECRET

    settings = Settings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_JWT_SECRET": SECRET,
            "DOCROUTE_UNITS_FILE": str(SAMPLES / "units.yaml"),
            "DOCROUTE_RULES_FILE": str(SAMPLES / "rules.yaml"),
        }
    )
    app = create_app(settings)
    client = app.test_client()
    from shared.auth import issue_token

    auth = {"Authorization": f"Bearer {issue_token(SECRET, sub='c', roles=['clerk'])}"}
    assert client.get("/v1/units", headers=auth).get_json()["total"] == 27
    assert client.get("/v1/rules", headers=auth).get_json()["version"] == 1
    assert create_app(settings).test_client().get("/v1/rules/versions", headers=auth).get_json()["total"] == 1
    spec = client.get("/openapi.json").get_json()
    assert "/v1/units/{code}/tasks:poll" in spec["paths"] and "/v1/rules" in spec["paths"]
    assert client.get("/healthz").status_code == 200


def test_readiness_checks_database_broker_and_store(rapp):
    r = rapp.client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json()["checks"] == {"database": "ok", "broker": "ok", "object_store": "ok"}
