"""The admin's pages: units (list, import a YAML file, deactivate) and routing rules (edit with the
API's validation messages, a dry run of where a sample directive would go, version history with a diff)."""

from __future__ import annotations

import difflib
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from console.app import api, requires
from console.client import ApiError

blueprint = Blueprint("admin", __name__)

WRITERS = ("admin", "clerk")
READERS = (*WRITERS, "auditor")


@blueprint.get("/quan-tri/don-vi")
@requires(*READERS)
def units() -> str:
    page = api().get("routing", "/v1/units", {"per_page": 200, "active": request.args.get("active")})
    return render_template("units.html", page=page, message=request.args.get("message"))


@blueprint.post("/quan-tri/don-vi/nhap")
@requires(*WRITERS)
def import_units() -> Response:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return redirect(url_for("admin.units", message="Chưa chọn tệp YAML."))
    try:
        result = api().send_body(
            "POST", "routing", "/v1/units:import", body=upload.read(), content_type="application/yaml"
        )
    except ApiError as exc:
        return redirect(url_for("admin.units", message=f"Không nhập được: {exc}"))
    counts = ", ".join(
        f"{key}: {len(value)}" for key, value in (result or {}).items() if isinstance(value, list)
    )
    return redirect(url_for("admin.units", message=f"Đã nhập tệp đơn vị ({counts})."))


@blueprint.post("/quan-tri/don-vi/<code>/ngung")
@requires(*WRITERS)
def deactivate(code: str) -> Response:
    api().delete("routing", f"/v1/units/{code}")
    return redirect(url_for("admin.units", message=f"Đã ngừng đơn vị {code}."))


def _rules_source(rules: dict[str, Any]) -> str:
    return str(rules.get("source") or "")


@blueprint.get("/quan-tri/quy-tac")
@requires(*READERS)
def rules() -> str:
    client = api()
    current = client.get("routing", "/v1/rules")
    versions = client.get("routing", "/v1/rules/versions")
    return render_template(
        "rules.html", rules=current, source=_rules_source(current), versions=versions, errors=[], result=None
    )


@blueprint.post("/quan-tri/quy-tac")
@requires(*WRITERS)
def save_rules() -> Response | tuple[str, int]:
    source = request.form.get("source", "")
    client = api()
    try:
        client.send_body(
            "PUT", "routing", "/v1/rules", body=source.encode("utf-8"), content_type="application/yaml"
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        errors = [f"{name}: {'; '.join(messages)}" for name, messages in exc.field_errors.items()] or [
            str(exc)
        ]
        current = client.get("routing", "/v1/rules")
        versions = client.get("routing", "/v1/rules/versions")
        page = render_template(
            "rules.html", rules=current, source=source, versions=versions, errors=errors, result=None
        )
        return page, 422
    return redirect(url_for("admin.rules"))


@blueprint.post("/quan-tri/quy-tac/thu")
@requires(*READERS)
def dry_run() -> str:
    client = api()
    metadata = {
        "issuer": {"name": request.form.get("issuer_name", "")},
        "number": request.form.get("number", ""),
        "document_type": request.form.get("document_type") or None,
        "subject": request.form.get("subject", ""),
        "urgency": request.form.get("urgency") or "thuong",
    }
    try:
        result: Any = client.post(
            "routing", "/v1/rules:evaluate", json={k: v for k, v in metadata.items() if v}
        )
    except ApiError as exc:
        if exc.status != 422:
            raise
        result = {"error": str(exc), "errors": exc.field_errors}
    current = client.get("routing", "/v1/rules")
    versions = client.get("routing", "/v1/rules/versions")
    return render_template(
        "rules.html",
        rules=current,
        source=_rules_source(current),
        versions=versions,
        errors=[],
        result=result,
        sample=metadata,
    )


@blueprint.get("/quan-tri/quy-tac/phien-ban/<int:version>")
@requires(*READERS)
def version(version: int) -> str:
    client = api()
    chosen = client.get("routing", f"/v1/rules/versions/{version}")
    previous = client.get("routing", f"/v1/rules/versions/{version - 1}") if version > 1 else {}
    diff = difflib.unified_diff(
        _rules_source(previous).splitlines(),
        _rules_source(chosen).splitlines(),
        fromfile=f"phiên bản {version - 1}",
        tofile=f"phiên bản {version}",
        lineterm="",
    )
    return render_template("rule_version.html", chosen=chosen, diff=list(diff), version=version)
