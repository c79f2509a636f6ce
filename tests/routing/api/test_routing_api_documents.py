"""Rule and unit documents over HTTP: plain data only, bounded text, regexes on a linear-time engine."""

import json

import pytest
from routing_testkit import SAMPLES

YAML = {"Content-Type": "application/yaml"}

# The shape of the security review's 531-byte body: nested aliases in a description and in an unknown
# `defaults` key, which expanded to 13 MB when the version was stored.
LAUGHS = "\n".join(
    [
        "version: 1",
        "defaults:",
        '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        "  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]",
        "  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]",
        "  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]",
        "  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]",
        "  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]",
        "rules:",
        "  - id: bomb",
        "    description: [*f,*f,*f,*f,*f,*f,*f,*f,*f]",
        "    match: {subject: {any: [lol]}}",
        "    tasks: [{to: {units: [SYT]}, role: chu_tri}]",
        "",
    ]
)


def versions(rapp):
    return rapp.client.get("/v1/rules/versions", headers=rapp.auth("auditor")).get_json()["total"]


def test_an_alias_bomb_is_refused_before_it_expands_and_nothing_is_stored(rapp):
    rapp.load_samples()
    before = versions(rapp)
    assert len(LAUGHS.encode()) < 600
    r = rapp.client.put("/v1/rules", data=LAUGHS.encode(), headers=rapp.auth("clerk") | YAML)
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["type"].endswith("invalid-document")
    assert body["errors"]["body"] == ["YAML anchors (&a) are not accepted, at line 3, column 6"]
    assert versions(rapp) == before
    units = rapp.client.post(
        "/v1/units:import",
        data=b"units:\n  - &u {code: X1, name: x}\n  - *u\n",
        headers=rapp.auth("clerk") | YAML,
    )
    assert units.status_code == 422 and "anchors" in units.get_json()["errors"]["body"][0]


def test_unknown_keys_and_non_text_descriptions_are_named(rapp):
    rapp.load_samples()
    doc = """
defaults: {due: {thuong: {working_days: 10}}, lol: [1, 2]}
rules:
  - id: r1
    description: [not, text]
    match: {subject: {any: [x]}}
    tasks: [{to: {units: [SYT]}, role: chu_tri}]
"""
    r = rapp.client.put("/v1/rules", data=doc.encode(), headers=rapp.auth("clerk") | YAML)
    assert r.status_code == 422
    assert set(r.get_json()["errors"]) == {"(defaults).lol", "r1.description"}
    units = rapp.client.post(
        "/v1/units:import",
        data=b"units:\n  - {code: X1, name: x, colour: red}\n",
        headers=rapp.auth("clerk") | YAML,
    )
    assert units.status_code == 422 and units.get_json()["errors"] == {
        "units[0].colour": ["unknown field; use active, code, groups, name, tags"]
    }


def test_deep_json_and_oversized_documents_are_refused(rapp):
    clerk = rapp.auth("clerk") | {"Content-Type": "application/json"}
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    r = rapp.client.put("/v1/rules", data=deep, headers=clerk)
    assert r.status_code == 422 and "nested deeper" in r.get_json()["detail"]
    big = json.dumps({"rules": [], "pad": "x" * (1 << 20)}).encode()
    assert rapp.client.put("/v1/rules", data=big, headers=clerk).status_code == 413


def test_a_catastrophic_pattern_is_stored_and_evaluated_on_a_linear_engine(rapp):
    rapp.load_samples()
    doc = """
rules:
  - id: redos
    match: {subject: {regex: "^(a+)+$"}}
    tasks: [{to: {units: [SYT]}, role: chu_tri}]
"""
    r = rapp.client.put("/v1/rules", data=doc.encode(), headers=rapp.auth("clerk") | YAML)
    assert r.status_code == 201, r.get_json()
    clerk = rapp.auth("clerk")
    # 28 characters stalled Python's engine for seconds (4x for every 2 more); 2,000 are answered here.
    for subject in ["a" * 28 + "!", "a" * 1999 + "!"]:
        r = rapp.client.post("/v1/rules:evaluate", json={"subject": subject}, headers=clerk)
        assert r.status_code == 200 and r.get_json()["matched_rules"] == []
    r = rapp.client.post("/v1/rules:evaluate", json={"subject": "a" * 2000}, headers=clerk)
    assert r.get_json()["matched_rules"] == ["redos"]
    r = rapp.client.post("/v1/rules:evaluate", json={"subject": "a" * 2001}, headers=clerk)
    assert r.status_code == 422 and "subject" in r.get_json()["errors"]


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\\1", "invalid escape sequence"),
        (r"(?=a)b", "invalid perl operator"),
        ("a" * 301, "at most 300"),
    ],
)
def test_patterns_the_linear_engine_cannot_run_are_refused_with_their_field(rapp, pattern, reason):
    rapp.load_samples()
    doc = (SAMPLES / "rules.yaml").read_text(encoding="utf-8")
    doc += f'  - id: extra\n    match: {{subject: {{regex: "{pattern}"}}}}\n'
    doc += "    tasks: [{to: {units: [SYT]}, role: chu_tri}]\n"
    r = rapp.client.put("/v1/rules", data=doc.encode(), headers=rapp.auth("clerk") | YAML)
    assert r.status_code == 422
    [message] = r.get_json()["errors"]["extra.match.subject.regex"]
    assert reason in message


def test_unit_free_text_is_bounded(rapp):
    clerk = rapp.auth("clerk")
    r = rapp.client.put(
        "/v1/units/X1", json={"name": "x", "tags": [f"t{i}" for i in range(51)]}, headers=clerk
    )
    assert r.status_code == 422 and "tags" in r.get_json()["errors"]
    r = rapp.client.put("/v1/units/X1", json={"name": "Đ" * 301}, headers=clerk)
    assert r.status_code == 422 and "name" in r.get_json()["errors"]
    r = rapp.client.post(
        "/v1/units:import",
        data=b'units:\n  - {code: X1, name: x, tags: ["' + b"t" * 65 + b'"]}\n',
        headers=clerk | YAML,
    )
    assert r.status_code == 422 and r.get_json()["errors"] == {
        "units[0].tags": ["at most 50 entries of at most 64 characters"]
    }
