"""Archive blueprints: records, content, fixity, legal hold, audit log and directive packages."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from flask import Response, current_app, request, stream_with_context
from flask_smorest import Blueprint
from shared.auth import current_principal, require_roles

from archive import audit as audit_chain
from archive import export, fixity, records
from archive.adapters import audit_log, repository
from archive.api import schemas
from archive.deps import ArchiveDeps
from archive.domain.acceptance import served_type

records_blp = Blueprint("records", __name__, description="Archived records (auditor, admin)")
audit_blp = Blueprint("audit", __name__, description="The hash-chained audit log")
fixity_blp = Blueprint("fixity", __name__, description="Fixity sweeps")
packages_blp = Blueprint("packages", __name__, description="BagIt packages of directives")

READERS = ("auditor", "admin")
V = TypeVar("V", bound=Callable[..., Any])

# The errors an archive operation can answer besides 401/403 (every /v1 route) and 422 (a declared
# body or query schema); each is an RFC 9457 problem+json body.
BAD_QUERY = "An undeclared query parameter, or a NUL character in one (the body names them)"
NO_RECORD = "No record with this id (record-not-found)"
NO_DIRECTIVE = "The archive holds nothing of this directive (directive-not-found)"
ALTERED = (
    "The archived bytes no longer match the record or the audit chain, or the object is missing "
    "(fixity-failed); nothing is served and the failure is recorded"
)
STORE_DOWN = "The object store cannot be reached (store-unavailable)"
PACKAGE_HEADERS = {
    "Content-Disposition": {
        "description": 'attachment; filename="directive-<id>.zip"',
        "schema": {"type": "string"},
    },
}
CONTENT_HEADERS = {
    "Content-Disposition": {
        "description": "attachment; filename*=UTF-8''<percent-encoded name>",
        "schema": {"type": "string"},
    },
    "Digest": {"description": "sha-256=<hex digest of the bytes>", "schema": {"type": "string"}},
    "X-Content-SHA256": {"description": "The record's SHA-256, hex", "schema": {"type": "string"}},
}


def _deps() -> ArchiveDeps:
    deps: ArchiveDeps = current_app.extensions["archive_deps"]
    return deps


def _actor() -> str:
    return current_principal().sub


def _page(items: list[Any], total: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"items": items, "total": total, "page": args["page"], "per_page": args["per_page"]}


def _errors(blp: Blueprint, *errors: tuple[int, str]) -> Callable[[V], V]:
    """Documents the errors a route answers: 400 (BAD_QUERY, every route), then each (status, description)."""

    def document(view: V) -> V:
        # In the order stacked alt_response decorators would add them: the last one listed first.
        for status, description in reversed([(400, BAD_QUERY), *errors]):
            view = blp.alt_response(status, description=description)(view)
        return view

    return document


def _binary(media_type: str, headers: dict[str, Any]) -> dict[str, Any]:
    """The documentation of a 200 whose body is bytes of `media_type`, with `headers`."""
    content = {media_type: {"schema": {"type": "string", "format": "binary"}}}
    return {"responses": {200: {"headers": headers, "content": content}}}


@records_blp.route("/records")
@require_roles(*READERS)
@records_blp.arguments(schemas.RecordQuery, location="query")
@records_blp.response(200, schemas.RecordPage, description="A page of records, newest first")
@_errors(records_blp)
def list_records(args: dict[str, Any]) -> dict[str, Any]:
    flt = repository.RecordFilter(
        directive_id=args.get("directive"),
        issuer=args.get("issuer"),
        number=args.get("number"),
        date_from=args.get("date_from"),
        date_to=args.get("date_to"),
        signature_status=args.get("signature_status"),
        q=args.get("q"),
    )
    with _deps().engine.connect() as conn:
        rows, total = repository.search_records(conn, flt, page=args["page"], per_page=args["per_page"])
    return _page([repository.row_view(r) for r in rows], total, args)


@records_blp.route("/records/<record_id>")
@require_roles(*READERS)
@records_blp.response(200, schemas.RecordOut, description="The record and its signature report (audited)")
@_errors(records_blp, (404, NO_RECORD))
def get_record(record_id: str) -> dict[str, Any]:
    return records.view_record(record_id, engine=_deps().engine, actor=_actor())


@records_blp.route("/records/<record_id>/content")
@require_roles(*READERS)
@records_blp.response(200, description="The archived bytes, exactly as received, after a SHA-256 re-check")
@records_blp.doc(**_binary("*/*", CONTENT_HEADERS))
@_errors(records_blp, (404, NO_RECORD), (409, ALTERED), (503, STORE_DOWN))
def get_content(record_id: str) -> Response:
    deps = _deps()
    if request.method == "HEAD":
        # The headers only: no bytes are read, and the look is audited as a view of the record.
        record = records.view_record(record_id, engine=deps.engine, actor=_actor())
        response = Response(status=200, mimetype=served_type(record["content_type"]))
        _content_headers(response, record)
        return response
    content = records.read_verified_content(record_id, engine=deps.engine, vault=deps.vault, actor=_actor())
    record = content.record
    response = Response(stream_with_context(content.chunks()), mimetype=served_type(record["content_type"]))
    _content_headers(response, record)
    return response


def _content_headers(response: Response, record: dict[str, Any]) -> None:
    response.headers["Content-Length"] = str(record["size"])
    response.headers["Digest"] = f"sha-256={record['sha256']}"
    response.headers["X-Content-SHA256"] = record["sha256"]
    # RFC 6266: filename* keeps Vietnamese names intact.
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(record['filename'])}"


@records_blp.route("/records/<record_id>/fixity", methods=["POST"])
@require_roles(*READERS)
@records_blp.response(
    200, schemas.FixityOut, description="The outcome; a failure is also recorded and announced"
)
@_errors(records_blp, (404, NO_RECORD), (503, STORE_DOWN))
def post_fixity(record_id: str) -> dict[str, Any]:
    deps = _deps()
    outcome = fixity.check_fixity(record_id, engine=deps.engine, vault=deps.vault, actor=_actor())
    return {
        "record_id": outcome.record_id,
        "ok": outcome.ok,
        "actual_sha256": outcome.actual_sha256,
        "detail": outcome.detail,
    }


@records_blp.route("/records/<record_id>/legal-hold", methods=["PUT"])
@require_roles("admin")
@records_blp.arguments(schemas.LegalHoldIn)
@records_blp.response(200, schemas.RecordOut, description="The record with its hold set or lifted (audited)")
@_errors(
    records_blp,
    (404, NO_RECORD),
    (409, "The store refused the change (object-locked), or the archived object is missing (fixity-failed)"),
    (503, STORE_DOWN),
)
def put_legal_hold(body: dict[str, Any], record_id: str) -> dict[str, Any]:
    deps = _deps()
    return records.set_legal_hold(
        record_id,
        on=body["legal_hold"],
        reason=body["reason"],
        actor=_actor(),
        engine=deps.engine,
        vault=deps.vault,
    )


@fixity_blp.route("/fixity/runs")
@require_roles(*READERS)
@fixity_blp.arguments(schemas.PageQuery, location="query")
@fixity_blp.response(200, schemas.FixityRunPage, description="A page of fixity sweeps, newest first")
@_errors(fixity_blp)
def list_fixity_runs(args: dict[str, Any]) -> dict[str, Any]:
    with _deps().engine.connect() as conn:
        items, total = repository.list_fixity_runs(conn, page=args["page"], per_page=args["per_page"])
    return _page(items, total, args)


@audit_blp.route("/audit")
@require_roles(*READERS)
@audit_blp.arguments(schemas.AuditQuery, location="query")
@audit_blp.response(200, schemas.AuditPage, description="A page of audit entries, oldest first")
@_errors(audit_blp)
def list_audit(args: dict[str, Any]) -> dict[str, Any]:
    with _deps().engine.connect() as conn:
        entries, total = audit_log.list_entries(
            conn,
            directive_id=args.get("directive"),
            actor=args.get("actor"),
            since=args.get("since"),
            until=args.get("until"),
            page=args["page"],
            per_page=args["per_page"],
        )
    return _page([e.__dict__ for e in entries], total, args)


@audit_blp.route("/audit/verify")
@require_roles(*READERS)
@audit_blp.response(
    200,
    schemas.AuditVerifyOut,
    description="The chain walked and compared with every checkpoint in the object-locked bucket; "
    "`ok` is false on any break or mismatch",
)
@_errors(audit_blp, (503, STORE_DOWN))
def verify_audit() -> dict[str, Any]:
    deps = _deps()
    result = audit_chain.verify_audit(engine=deps.engine, vault=deps.vault)
    chain = result.chain
    checkpoint = None
    if result.checkpoint is not None:
        checkpoint = {
            "key": result.checkpoint_key,
            "count": result.checkpoint.count,
            "head_hash": result.checkpoint.head_hash,
            "created_at": result.checkpoint.created_at,
            "ok": result.checkpoint_problem is None,
            "problem": result.checkpoint_problem,
        }
    return {
        "ok": result.ok,
        "count": chain.count,
        "head_hash": chain.head_hash,
        "broken_seq": chain.broken_seq,
        "reason": result.reason,
        "checkpoint": checkpoint,
        "checkpoints_checked": result.checkpoints_checked,
        "problems": list(result.problems),
        "unindexed": list(result.unindexed),
    }


@packages_blp.route("/directives/<directive_id>/package", methods=["GET"])
@require_roles(*READERS)
@packages_blp.response(200, description="A zipped BagIt bag (SHA-256 manifests); building it is audited")
@packages_blp.doc(**_binary("application/zip", PACKAGE_HEADERS))
@_errors(packages_blp, (404, NO_DIRECTIVE), (409, ALTERED), (503, STORE_DOWN))
def get_package(directive_id: str) -> Response:
    deps = _deps()
    disposition = f'attachment; filename="directive-{export.safe_name(directive_id)}.zip"'
    if request.method == "HEAD":
        # A HEAD says whether there is a package without building one: building it reads and audits
        # every record and leaves a folder behind, since a HEAD's body is never read.
        export.ensure_packageable(directive_id, engine=deps.engine)
        response = Response(status=200, mimetype="application/zip")
        response.headers["Content-Disposition"] = disposition
        return response
    zip_path, workdir = export.build_package_zip(
        directive_id, engine=deps.engine, vault=deps.vault, actor=_actor()
    )

    def stream(path: Path = zip_path) -> Any:
        with path.open("rb") as fh:
            while chunk := fh.read(64 * 1024):
                yield chunk

    # Not direct_passthrough: the server's close() must reach the response, read to the end or not (a
    # client that hangs up), so that the folder is removed.
    response = Response(stream_with_context(stream()), mimetype="application/zip")
    response.call_on_close(lambda: shutil.rmtree(workdir, ignore_errors=True))
    response.headers["Content-Length"] = str(zip_path.stat().st_size)
    response.headers["Content-Disposition"] = disposition
    return response


__all__ = ["audit_blp", "fixity_blp", "packages_blp", "records_blp"]
