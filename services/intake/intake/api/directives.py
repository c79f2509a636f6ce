"""Blueprint /v1/directives and /v1/register.csv: translate HTTP to the intake handlers and back."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote

from attachment_rules import ACCEPTED_CONTENT_TYPES
from flask import Response, current_app, request
from flask_smorest import Blueprint
from shared.auth import Principal, current_principal, require_roles
from shared.json_text import streams_own_body
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
from intake.api.submission import close_uploads, invalid, read_submission
from intake.domain.arrival import BUSINESS_TZ
from intake.domain.document_types import normalise_document_type
from intake.domain.errors import DirectiveNotFound, DuplicateDirective, InvalidNumber
from intake.domain.files import served_content_type
from intake.domain.models import Directive
from intake.domain.numbers import parse_number
from intake.handlers import (
    Submission,
    export_register,
    get_directive,
    list_register,
    open_attachment,
    register_directive,
)
from intake.settings import LARGE_UPLOAD_BYTES

blp = Blueprint("directives", __name__, url_prefix="/v1", description="Incoming directives (văn bản đến)")

READERS = ("clerk", "submitter", "auditor", "admin")
# The shared web layer's refusals (shared.query, shared.json_text), documented on each operation.
BAD_REQUEST = (
    "A query parameter the operation does not declare, a NUL in a path parameter, or JSON text that cannot "
    "be stored (NUL, unpaired surrogates, nesting deeper than 64 levels)"
)
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


# A directive's submission as POST /v1/directives documents it (also the body of :replace).
SUBMISSION_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": DirectiveMultipartIn},
        "application/json": {"schema": DirectiveJsonIn},
    },
}
SUBMISSION_PARAMETERS = [
    {"in": "header", "name": "Idempotency-Key", "schema": {"type": "string"}, "required": False}
]


def created_headers(location: str) -> dict[str, Any]:
    """The headers of a 201 that registered a directive (or answers an earlier registration again)."""
    return {
        "Location": {"description": location, "schema": {"type": "string"}},
        "Idempotent-Replayed": {
            "description": "`true` when this repeats an earlier answer",
            "schema": {"type": "string"},
        },
    }


def _only_own(principal: Principal) -> str | None:
    return None if principal.has_any(*REGISTER_ROLES) else principal.sub


@blp.route("/directives", methods=["POST"])
@require_roles("submitter", "clerk")
@blp.doc(requestBody=SUBMISSION_BODY, parameters=SUBMISSION_PARAMETERS)
@blp.response(
    201,
    DirectiveOut,
    description="Registered (or the first answer again for a repeated key)",
    headers=created_headers("URL of the directive"),
)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(
    409,
    description="Already registered; `existing_id` and `existing_url` only for a caller who may read "
    "that directive",
)
@blp.alt_response(413, description="A file, the metadata or the whole body is over its limit")
@blp.alt_response(415, description="Neither multipart/form-data nor application/json")
@blp.alt_response(
    422,
    description="Invalid metadata or file (named in `errors`); state secrets, programs and types outside the "
    "accepted list are refused; Idempotency-Key reused with a different body",
)
@blp.alt_response(
    503,
    description="Object store or database unavailable, or too many large uploads in progress; "
    "see Retry-After",
    headers={"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
)
@streams_own_body
def create_directive() -> tuple[dict[str, Any], dict[str, str]]:
    """Register an incoming directive with its signed files; answers with its arrival number (số đến)."""
    deps = _deps()
    principal = current_principal()
    with upload_slot(deps):
        submission = read_submission(request, submitted_by=principal.sub)
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
            raise _duplicate_problem(exc, submission, principal) from None
        finally:
            close_uploads(submission.uploads)
    directive = registration.directive
    headers = {"Location": directive_url(directive.id)}
    if not registration.created:
        headers["Idempotent-Replayed"] = "true"
    return directive_resource(directive), headers


@contextmanager
def upload_slot(deps: Deps) -> Iterator[None]:
    """Holds one of the process's large-upload slots for a large (or unsized, chunked) body.

    A large body is spooled to disk and may be held in memory while it is staged: bounding how many run at
    once keeps a pod inside its memory and temporary-disk limits. Beyond the bound: 503 with Retry-After.
    """
    length = request.content_length
    if length is not None and length <= LARGE_UPLOAD_BYTES:
        yield
        return
    if not deps.large_uploads.acquire(blocking=False):
        raise Problem(
            503,
            "Service Unavailable",
            f"this server is already receiving {deps.settings.max_large_uploads} large upload(s); "
            "nothing was registered, retry later",
            type="too-many-large-uploads",
            headers={"Retry-After": str(deps.settings.retry_after)},
        )
    try:
        yield
    finally:
        deps.large_uploads.release()


def _duplicate_problem(exc: DuplicateDirective, submission: Submission, principal: Principal) -> Problem:
    """409; the existing directive's id and URL only for a caller who may read that directive."""
    meta = submission.metadata
    detail = (
        f"{meta.number.display} of {meta.issuer.name} issued {meta.issued_date.isoformat()} "
        "is already registered"
    )
    try:
        get_directive(exc.existing_id, repository=_deps().repository, only_submitted_by=_only_own(principal))
    except DirectiveNotFound:
        extra: dict[str, str] = {}
    else:
        detail += f" as directive {exc.existing_id}"
        extra = {"existing_id": exc.existing_id, "existing_url": directive_url(exc.existing_id)}
    return Problem(
        409,
        "Directive already registered",
        detail,
        type="duplicate-directive",
        errors={"number": [detail]},
        extra=extra,
    )


@blp.route("/directives", methods=["GET"])
@require_roles(*READERS)
@blp.arguments(RegisterQueryIn, location="query", as_kwargs=True)
@blp.response(200, DirectivePageOut)
@blp.alt_response(400, description=BAD_REQUEST)
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
        urgency=filters.get("urgency"),
        status=filters.get("status"),
        due_from=filters.get("due_from"),
        due_to=filters.get("due_to"),
        unfinished=bool(filters.get("unfinished")),
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
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(404, description="No such directive, or one this submitter did not submit")
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
@blp.doc(
    responses={
        200: {
            # Served with the type it was registered with (one of the accepted list).
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in sorted(ACCEPTED_CONTENT_TYPES)
            },
            "headers": {
                "Content-Disposition": {
                    "description": "The file name (RFC 6266)",
                    "schema": {"type": "string"},
                },
                "ETag": {"description": "Quoted SHA-256 of the bytes", "schema": {"type": "string"}},
                "Repr-Digest": {"description": "RFC 9530 sha-256 digest", "schema": {"type": "string"}},
            },
        }
    }
)
@blp.alt_response(400, description=BAD_REQUEST)
@blp.alt_response(404, description="No such directive or attachment")
@blp.alt_response(
    503,
    description="Object store unavailable; see Retry-After",
    headers={"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
)
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

    # A type stored before the allow-list existed (text/html...) is served as a neutral download.
    response = Response(
        generate(), mimetype=served_content_type(attachment.content_type), direct_passthrough=True
    )
    response.call_on_close(close)
    response.headers["Content-Length"] = str(attachment.size)
    response.headers["Content-Disposition"] = _content_disposition(attachment.filename)
    response.headers["ETag"] = f'"{attachment.sha256}"'
    digest = base64.b64encode(bytes.fromhex(attachment.sha256)).decode("ascii")
    response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
    return response


# OWASP's CSV injection rule: a cell a spreadsheet would read as a formula starts with one of these, possibly
# after blanks it trims; a leading single quote makes it text and stays readable.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: str) -> str:
    """The value, quoted with a leading ' when a spreadsheet would run it as a formula."""
    if value.startswith(_FORMULA_START) or value.lstrip(" \t\r\n").startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_row(d: Directive) -> list[str]:
    return [csv_cell(cell) for cell in _csv_cells(d)]


def _csv_cells(d: Directive) -> list[str]:
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
@blp.response(200, description="UTF-8 with BOM so spreadsheet programs read Vietnamese correctly")
@blp.doc(responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
@blp.alt_response(400, description=BAD_REQUEST)
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
