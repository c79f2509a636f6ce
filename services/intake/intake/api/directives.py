"""Blueprint /v1/directives and /v1/register.csv: translate HTTP to the intake handlers and back."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import Response, current_app, request
from flask_smorest import Blueprint
from shared.auth import Principal, current_principal, require_roles
from shared.problems import Problem

from intake.adapters.repository import RegisterQuery
from intake.api.deps import Deps
from intake.api.resources import directive_resource, directive_url
from intake.api.schemas import (
    DirectiveJsonIn,
    DirectiveMultipartIn,
    DirectiveOut,
    DirectivePageOut,
    RegisterExportIn,
    RegisterQueryIn,
)
from intake.api.submission import invalid, read_submission
from intake.domain.arrival import BUSINESS_TZ
from intake.domain.document_types import normalise_document_type
from intake.domain.errors import DuplicateDirective, InvalidNumber
from intake.domain.models import Directive
from intake.domain.numbers import parse_number
from intake.handlers import (
    export_register,
    get_directive,
    list_register,
    open_attachment,
    register_directive,
)

blp = Blueprint("directives", __name__, url_prefix="/v1", description="Incoming directives (văn bản đến)")

READERS = ("clerk", "submitter", "auditor", "admin")
# Roles that see the whole register; a submitter (an e-office system) sees only what it submitted.
REGISTER_ROLES = frozenset({"clerk", "auditor", "admin"})
CSV_COLUMNS = (
    "Số đến",
    "Ngày đến",
    "Tác giả",
    "Mã định danh",
    "Số, ký hiệu",
    "Ngày tháng văn bản",
    "Tên loại",
    "Trích yếu nội dung",
    "Mức độ khẩn",
    "Hạn giải quyết",
    "Số trang",
    "Số tệp đính kèm",
    "Mã tham chiếu",
    "Mã văn bản",
)


def _deps() -> Deps:
    deps: Deps = current_app.extensions["intake"]
    return deps


def _only_own(principal: Principal) -> str | None:
    return None if principal.has_any(*REGISTER_ROLES) else principal.sub


@blp.route("/directives", methods=["POST"])
@require_roles("submitter", "clerk")
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "multipart/form-data": {"schema": DirectiveMultipartIn},
            "application/json": {"schema": DirectiveJsonIn},
        },
    },
    parameters=[{"in": "header", "name": "Idempotency-Key", "schema": {"type": "string"}, "required": False}],
)
@blp.response(201, DirectiveOut, description="Registered (or the first answer again for a repeated key)")
@blp.alt_response(409, description="Already registered (problem+json with existing_id and existing_url)")
@blp.alt_response(413, description="A file is over the upload limit")
@blp.alt_response(415, description="Neither multipart/form-data nor application/json")
@blp.alt_response(422, description="Invalid metadata or file; state-secret documents are refused")
@blp.alt_response(503, description="Object store or database unavailable; see Retry-After")
def create_directive() -> tuple[dict[str, Any], dict[str, str]]:
    """Register an incoming directive with its signed files; answers with its arrival number (số đến)."""
    deps = _deps()
    submission = read_submission(request, submitted_by=current_principal().sub)
    try:
        registration = register_directive(
            submission,
            repository=deps.repository,
            staging=deps.staging,
            organisation=deps.settings.organisation,
            max_upload_bytes=deps.settings.max_upload_bytes,
            clock=deps.clock,
            department=deps.department,
        )
    except DuplicateDirective as exc:
        raise Problem(
            409,
            "Directive already registered",
            str(exc),
            type="duplicate-directive",
            errors={"number": [str(exc)]},
            extra={"existing_id": exc.existing_id, "existing_url": directive_url(exc.existing_id)},
        ) from None
    directive = registration.directive
    headers = {"Location": directive_url(directive.id)}
    if not registration.created:
        headers["Idempotent-Replayed"] = "true"
    return directive_resource(directive), headers


@blp.route("/directives", methods=["GET"])
@require_roles(*READERS)
@blp.arguments(RegisterQueryIn, location="query", as_kwargs=True)
@blp.response(200, DirectivePageOut)
def list_directives(page: int, per_page: int, **filters: Any) -> dict[str, Any]:
    """The register (sổ đăng ký văn bản đến), newest first; `q` matches subject words without diacritics."""
    number_value: int | None = None
    notation: str | None = None
    if number := filters.get("number"):
        if number.strip().isdigit():
            number_value = int(number)
        else:
            try:
                parsed = parse_number(number)
            except InvalidNumber as exc:
                raise invalid({"number": [str(exc)]}) from None
            number_value, notation = parsed.value, parsed.code_notation
    document_type = filters.get("document_type")
    query = RegisterQuery(
        issuer=filters.get("issuer"),
        number_value=number_value,
        notation=notation,
        document_type=normalise_document_type(document_type) if document_type else None,
        arrival_from=filters.get("arrival_from"),
        arrival_to=filters.get("arrival_to"),
        q=filters.get("q"),
        submitted_by=_only_own(current_principal()),
    )
    items, total = list_register(query, repository=_deps().repository, page=page, per_page=per_page)
    return {
        "items": [directive_resource(d) for d in items],
        "total": total,
        "page": page,
        "per_page": per_page,
    }


@blp.route("/directives/<string:directive_id>", methods=["GET"])
@require_roles(*READERS)
@blp.response(200, DirectiveOut)
def read_directive(directive_id: str) -> dict[str, Any]:
    """One directive with its metadata and attachment list."""
    directive = get_directive(
        directive_id, repository=_deps().repository, only_submitted_by=_only_own(current_principal())
    )
    return directive_resource(directive)


def _content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback plus filename* in UTF-8, so Vietnamese names survive every browser."""
    fallback = filename.encode("ascii", "replace").decode("ascii").replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@blp.route("/directives/<string:directive_id>/attachments/<string:attachment_id>", methods=["GET"])
@require_roles(*READERS)
@blp.response(200, description="The exact bytes that were submitted")
def download_attachment(directive_id: str, attachment_id: str) -> Response:
    """Streams an attachment byte for byte (the store verifies its SHA-256 while reading)."""
    deps = _deps()
    attachment, opened = open_attachment(
        directive_id,
        attachment_id,
        repository=deps.repository,
        staging=deps.staging,
        only_submitted_by=_only_own(current_principal()),
    )
    chunks = opened.__enter__()
    closed = False

    def close() -> None:
        nonlocal closed
        if not closed:
            closed = True
            opened.__exit__(None, None, None)

    def generate() -> Iterator[bytes]:
        try:
            yield from chunks
        finally:
            close()

    response = Response(generate(), mimetype=attachment.content_type, direct_passthrough=True)
    response.call_on_close(close)
    response.headers["Content-Length"] = str(attachment.size)
    response.headers["Content-Disposition"] = _content_disposition(attachment.filename)
    response.headers["ETag"] = f'"{attachment.sha256}"'
    digest = base64.b64encode(bytes.fromhex(attachment.sha256)).decode("ascii")
    response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
    return response


def _csv_row(d: Directive) -> list[str]:
    meta = d.metadata
    return [
        str(d.arrival_number),
        d.arrival_date.strftime("%d/%m/%Y"),
        meta.issuer.name,
        meta.issuer.code or "",
        meta.number.display,
        meta.issued_date.strftime("%d/%m/%Y"),
        meta.document_type,
        meta.subject,
        meta.urgency.value,
        meta.due_date.strftime("%d/%m/%Y") if meta.due_date else "",
        "" if meta.page_amount is None else str(meta.page_amount),
        str(len(d.attachments)),
        meta.external_id or "",
        d.id,
    ]


@blp.route("/register.csv", methods=["GET"])
@require_roles("clerk", "auditor", "admin")
@blp.arguments(RegisterExportIn, location="query", as_kwargs=True)
@blp.response(200, description="text/csv; UTF-8 with BOM so spreadsheet programs read Vietnamese correctly")
def register_csv(year: int | None = None) -> Response:
    """The year's register (sổ đăng ký văn bản đến) in số đến order, as CSV."""
    chosen = year or datetime.now(BUSINESS_TZ).year
    directives = export_register(chosen, repository=_deps().repository)

    def generate() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        yield "\ufeff".encode() + buffer.getvalue().encode("utf-8")
        for directive in directives:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(_csv_row(directive))
            yield buffer.getvalue().encode("utf-8")

    response = Response(generate(), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="so-den-{chosen}.csv"'
    return response
