"""The auditor's pages: archive search, a record's page (checksum, signature in plain words, retention,
legal hold, fixity), its verified download, a directive's BagIt package and the audit chain's verdict."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request

from console.app import api, requires

blueprint = Blueprint("audit", __name__)

READERS = ("auditor", "admin")
SIGNATURE_WORDS = {
    "valid": "Chữ ký số hợp lệ, do tổ chức được tin cậy cấp",
    "untrusted": "Chữ ký số còn nguyên vẹn nhưng chứng thư không thuộc tổ chức được tin cậy",
    "invalid": "Chữ ký số KHÔNG hợp lệ: tài liệu đã bị thay đổi sau khi ký hoặc chữ ký hỏng",
    "unsigned": "Tài liệu không có chữ ký số",
}


@blueprint.get("/luu-tru")
@requires(*READERS)
def records() -> str:
    args = request.args
    params: dict[str, Any] = {
        key: args.get(key)
        for key in ("directive", "number", "issuer", "date_from", "date_to", "signature_status", "q")
    }
    params |= {"page": args.get("page", type=int) or 1, "per_page": 25}
    page = api().get("archive", "/v1/records", params)
    return render_template("records.html", page=page, filters=args, words=SIGNATURE_WORDS)


@blueprint.get("/luu-tru/<record_id>")
@requires(*READERS)
def record(record_id: str) -> str:
    found = api().get("archive", f"/v1/records/{record_id}")
    return render_template("record.html", record=found, words=SIGNATURE_WORDS)


@blueprint.get("/luu-tru/<record_id>/tai-ve")
@requires(*READERS)
def content(record_id: str) -> Response:
    # The archive re-checks the SHA-256 before it sends a byte; a record that fails is a 409, never bytes.
    download = api().download("archive", f"/v1/records/{record_id}/content")
    return Response(
        download.content, content_type=download.content_type, headers={"Content-Disposition": "attachment"}
    )


@blueprint.get("/luu-tru/van-ban/<directive_id>/goi.zip")
@requires(*READERS)
def package(directive_id: str) -> Response:
    download = api().download("archive", f"/v1/directives/{directive_id}/package")
    return Response(
        download.content,
        content_type="application/zip",
        headers={"Content-Disposition": f"attachment; filename=bagit-{directive_id}.zip"},
    )


@blueprint.get("/nhat-ky")
@requires(*READERS)
def audit_log() -> str:
    client = api()
    verdict = client.get("archive", "/v1/audit/verify")
    entries = client.get("archive", "/v1/audit", {"per_page": 50})
    return render_template("audit.html", verdict=verdict, entries=entries)
