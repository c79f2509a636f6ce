"""routing's /openapi.json tells the truth: every body and answer documented, and real answers follow it."""

import hashlib
import io
import re
from datetime import UTC, datetime

import pytest
from routing import deadlines, dispatch
from routing.api import responses
from routing_testkit import SAMPLES, registered_event

PROBLEM = "application/problem+json"
WRITES = {"post", "put", "patch"}


@pytest.fixture
def spec(rapp):
    r = rapp.client.get("/openapi.json")
    assert r.status_code == 200
    return r.get_json()


def operations(spec):
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def resolved(spec, response):
    """A response as documented, following a `$ref` to the shared components (401, 403, default)."""
    if "$ref" in response:
        return spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response


def ref_name(schema):
    return schema["$ref"].rsplit("/", 1)[-1] if "$ref" in schema else None


def test_every_operation_documents_its_success_its_body_and_its_problems(spec):
    ops = [op for op in operations(spec) if op[0].startswith("/v1/")]
    assert len(ops) == 21
    for path, method, operation in ops:
        where = f"{method.upper()} {path}"
        success = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        assert success, where
        for code, response in success.items():
            [(media, content)] = response["content"].items()
            assert content["schema"], (where, code)
            assert media in {"application/json", "application/octet-stream", "*/*"}, (where, code)
        if method in WRITES and not path.endswith("/ack"):
            body = operation["requestBody"]["content"]
            assert body and all(c["schema"] for c in body.values()), where
        errors = {code: resolved(spec, r) for code, r in operation["responses"].items() if code[0] in "45"}
        assert {"401", "403"} <= set(errors), where
        for code, response in errors.items():
            assert list(response["content"]) == [PROBLEM], (where, code)
            # Routing's own problem schema, or the one every service shares for 401/403.
            assert ref_name(response["content"][PROBLEM]["schema"]) in {"ProblemDetails", "Problem"}
    problem = spec["components"]["schemas"]["ProblemDetails"]
    assert set(problem["required"]) == {"type", "title", "status"}


def test_query_parameters_are_declared(spec):
    params = {
        (method, path): {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        for path, method, op in operations(spec)
    }
    assert params[("get", "/v1/units")] == {"group", "active", "page", "per_page"}
    assert params[("get", "/v1/units/{code}/tasks")] == {"status", "page", "per_page"}
    assert params[("get", "/v1/directives")] == {"status", "page", "per_page"}
    assert params[("get", "/v1/rules/versions")] == {"page", "per_page"}


def _operation_for(spec, method, url):
    path = url.split("?", 1)[0]
    for template, methods in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method in methods:
            return template, methods[method]
    raise AssertionError(f"{method.upper()} {path} is not documented")


def test_real_answers_follow_the_documented_schemas(rapp, spec):
    """Drives every operation once (and a few errors) and validates each answer with the schema its
    operation documents for that status; the schemas refuse undocumented keys."""
    rapp.load_samples()
    store = rapp.deps.store
    store.ensure_bucket("docroute-staging")
    data = b"%PDF-1.4 x"
    digest = hashlib.sha256(data).hexdigest()
    store.put("docroute-staging", "d/1", data, size=len(data), content_type="application/pdf", sha256=digest)
    attachment = {
        "id": "a1",
        "filename": "Công văn.pdf",
        "content_type": "application/pdf",
        "size": 10,
        "sha256": digest,
    }
    event = registered_event(
        "120-KH-BCD.json", attachments=[attachment | {"bucket": "docroute-staging", "key": "d/1"}]
    )
    dispatch.route_directive(event, engine=rapp.deps.engine, calendar=rapp.deps.calendar)
    rapp.relay()
    directive = event.payload["directive_id"]
    clerk, auditor, syt = rapp.auth("clerk"), rapp.auth("auditor"), rapp.auth("unit", "SYT")
    seen = set()

    def check(method, url, headers, expect, **kw):
        r = getattr(rapp.client, method)(url, headers=headers, **kw)
        assert r.status_code == expect, (method, url, r.get_data(as_text=True)[:500])
        template, operation = _operation_for(spec, method, url)
        seen.add((method, template))
        documented = resolved(spec, operation["responses"][str(expect)])
        [(media, content)] = documented["content"].items()
        binary = media in ("application/octet-stream", "*/*")
        assert r.mimetype == media or binary, (url, r.mimetype)
        if not binary:
            name = ref_name(content["schema"])
            schema = getattr(responses, "ProblemDetails" if name == "Problem" else name)
            assert schema().validate(r.get_json()) == {}, (method, url, schema().validate(r.get_json()))
        return r.data if binary else r.get_json()

    check("get", "/v1/units?group=so-nganh", auditor, 200)
    check(
        "post",
        "/v1/units:import",
        clerk | {"Content-Type": "application/yaml"},
        200,
        data=(SAMPLES / "units.yaml").read_bytes(),
    )
    check("get", "/v1/units/SYT", auditor, 200)
    check("put", "/v1/units/UBND.X", clerk, 201, json={"name": "Ủy ban nhân dân xã", "groups": ["ubnd"]})
    check("put", "/v1/units/UBND.X", clerk, 200, json={"name": "UBND xã"})
    check("delete", "/v1/units/UBND.X", clerk, 200)
    check("get", "/v1/rules", auditor, 200)
    check(
        "put",
        "/v1/rules",
        clerk | {"Content-Type": "application/yaml"},
        200,
        data=(SAMPLES / "rules.yaml").read_bytes(),
    )
    check("get", "/v1/rules/versions", auditor, 200)
    check("get", "/v1/rules/versions/1", auditor, 200)
    check(
        "post",
        "/v1/rules:evaluate",
        auditor,
        200,
        json={"subject": "an toàn thực phẩm", "number": "1/KH-BCĐ"},
    )
    polled = check("post", "/v1/units/SYT/tasks:poll", syt, 200, json={"max": 5})
    task = polled["items"][0]["id"]
    check("get", "/v1/units/SYT/tasks?status=assigned", syt, 200)
    check("get", f"/v1/tasks/{task}", syt, 200)
    check("get", f"/v1/tasks/{task}/attachments/a1", syt, 200)
    check("post", f"/v1/tasks/{task}/ack", syt, 200)
    check("post", "/v1/units/SYT/tasks:ack", syt, 200, json={"ids": [task, "nope"]})
    check("post", f"/v1/tasks/{task}/status", syt, 200, json={"status": "in_progress", "note": "Đang xử lý"})
    check(
        "post",
        f"/v1/tasks/{task}/status",
        syt,
        200,
        content_type="multipart/form-data",
        data={"status": "completed", "report": (io.BytesIO(b"%PDF-1.4 r"), "báo cáo.pdf", "application/pdf")},
    )
    check("get", "/v1/directives?status=routed", auditor, 200)
    check("get", f"/v1/directives/{directive}/progress", auditor, 200)
    check(
        "post",
        f"/v1/directives/{directive}/assignments",
        clerk,
        200,
        json={"assignments": [{"unit": "BPTV", "role": "de_biet", "due_date": "2021-05-20"}]},
    )
    deadlines.scan_overdue(engine=rapp.deps.engine, now=datetime(2030, 1, 1, tzinfo=UTC))
    check("get", "/v1/overdue", auditor, 200)
    # Problems follow ProblemDetails too.
    check("get", "/v1/units/NOPE", auditor, 404)
    check("get", "/v1/units", {}, 401)
    check("put", "/v1/units/X", auditor, 403, json={"name": "x"})
    check("post", f"/v1/tasks/{task}/ack", rapp.auth("unit", "CTTDT"), 404)
    check("post", "/v1/units/SYT/tasks:poll", syt, 422, json={"max": 0})
    check("put", "/v1/rules", clerk | {"Content-Type": "text/plain"}, 415, data=b"x")
    check("put", "/v1/rules", clerk | {"Content-Type": "application/yaml"}, 422, data=b"rules: [{id: x}]")
    assert len(seen) == 21  # every documented operation was driven at least once
