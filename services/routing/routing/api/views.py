"""Blueprints of the routing API: units, rules, tasks and directives. They translate, use cases decide."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import quote

from flask import Response, current_app, jsonify, request
from flask_smorest import Blueprint
from marshmallow import ValidationError
from shared.auth import Principal, current_principal, require_roles
from shared.objectstore import ObjectNotFound, StoreUnavailable
from shared.problems import Problem

from routing import acks, deadlines, dispatch, leases, rules, tasks, units
from routing import progress as progress_cases
from routing import status as status_cases
from routing.api import responses, schemas
from routing.api.deps import Deps
from routing.api.openapi import BINARY, YAML_TYPES, document_body, json_body, problems, status_body
from routing.api.schemas import (
    AckIn,
    AssignmentsIn,
    DirectiveListArgs,
    EvaluateIn,
    PageArgs,
    PollIn,
    StatusIn,
    UnitIn,
    UnitListArgs,
    UnitTaskListArgs,
)
from routing.documents import MAX_DOCUMENT_BYTES, DocumentRefused, read_json, read_yaml
from routing.domain.calendar import local_date
from routing.domain.errors import (
    InvalidAssignment,
    InvalidTransition,
    InvalidUnit,
    NotFound,
    RuleSetInvalid,
    UnitDeactivated,
)
from routing.domain.tasks import Status
from routing.domain.units import parse_unit, parse_units_document

ERROR_TABLE: dict[type[Exception], tuple[int, str, str]] = {
    NotFound: (404, "not-found", "Not Found"),
    InvalidUnit: (422, "invalid-unit", "Invalid unit"),
    UnitDeactivated: (403, "unit-deactivated", "Unit deactivated"),
    InvalidTransition: (409, "invalid-transition", "Status change not allowed"),
    InvalidAssignment: (422, "invalid-assignment", "Invalid assignment"),
    tasks.ChecksumFailed: (502, "checksum-mismatch", "Stored file does not match its checksum"),
    ObjectNotFound: (502, "blob-missing", "Stored file is missing"),
    StoreUnavailable: (503, "store-unavailable", "Object store unavailable"),
}

# The hot paths' schemas are built once (loading with a schema instance keeps no state between calls).
POLL_IN = PollIn()
ACK_IN = AckIn()

MANAGERS = ("clerk", "admin")
READERS = ("clerk", "admin", "auditor")
STAFF = frozenset(READERS)
V = TypeVar("V", bound=Callable[..., Any])

units_blp = Blueprint(
    "units", __name__, url_prefix="/v1", description="Recipient units and their task queues"
)
rules_blp = Blueprint("rules", __name__, url_prefix="/v1", description="Routing rules, versioned")
tasks_blp = Blueprint(
    "tasks", __name__, url_prefix="/v1", description="Tasks, polling, progress and deadlines"
)


def deps() -> Deps:
    dep: Deps = current_app.extensions["routing"]
    return dep


def paged(
    list_page: Callable[..., tuple[list[dict[str, Any]], int]],
    args: dict[str, Any],
    *key: Any,
    **filters: Any,
) -> Response:
    """The page `args` asks for of what `list_page` lists (after `key`, filtered by `filters`)."""
    page, per_page = args["page"], args["per_page"]
    items, total = list_page(*key, engine=deps().engine, page=page, per_page=per_page, **filters)
    return jsonify({"items": items, "total": total, "page": page, "per_page": per_page})


def actor(principal: Principal) -> str:
    return principal.sub


def unit_scope(principal: Principal) -> str | None:
    """The unit the caller acts as wherever tasks are touched; None for staff without a unit claim.

    A `unit` claim wins over every role beside it: a token that carries one is that unit's token, even
    with clerk, auditor or admin (otherwise one mixed token would read and move every unit's tasks). A
    deactivated unit's token is refused here, before it expires.
    """
    if principal.unit is not None:
        units.require_active(principal.unit, engine=deps().engine)
        return principal.unit
    if principal.roles & STAFF:
        return None
    raise Problem(403, "Forbidden", "a unit token must carry the unit claim", type="forbidden")


def staff_only(principal: Principal) -> None:
    """Views over every unit's tasks: a token with a unit claim acts as that unit and may not use them."""
    if principal.unit is not None:
        raise Problem(
            403, "Forbidden", "a token with a unit claim sees only its own unit's tasks", type="forbidden"
        )


def writes(view: V) -> V:
    """View decorator for every change: auditors only read, whatever other roles their token carries."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "auditor" in current_principal().roles:
            raise Problem(
                403, "Forbidden", "a token with the auditor role cannot change anything", type="forbidden"
            )
        return view(*args, **kwargs)

    return cast(V, wrapper)


def own_unit_only(principal: Principal, code: str) -> None:
    """A unit account asking about another unit hears the same as for a unit that does not exist."""
    scope = unit_scope(principal)
    if scope is not None and scope != code:
        raise NotFound(f"no unit {code}")


def body_document() -> tuple[Any, str]:
    """A YAML or JSON request body of plain data, parsed; the text is kept as the version's source."""
    mimetype = request.mimetype
    if mimetype not in YAML_TYPES and mimetype != "application/json":
        raise Problem(415, "Unsupported Media Type", "send application/yaml or application/json")
    if (request.content_length or 0) > MAX_DOCUMENT_BYTES:
        raise Problem(413, "Content Too Large", f"a document has at most {MAX_DOCUMENT_BYTES} bytes")
    raw = request.get_data()
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise Problem(413, "Content Too Large", f"a document has at most {MAX_DOCUMENT_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        return (read_yaml(text) if mimetype in YAML_TYPES else read_json(text)), text
    except (DocumentRefused, UnicodeDecodeError) as exc:
        raise Problem(
            422, "Unreadable document", str(exc), type="invalid-document", errors={"body": [str(exc)]}
        ) from None


def load_json(schema: Any) -> Any:
    """The JSON request body loaded with `schema`; a missing or unreadable body is the empty object."""
    return load(schema, request.get_json(silent=True) or {})


def put_answer(body: Any, created: bool, location: str) -> Response:
    """A PUT's answer: 200 with `body`, or 201 with `body` and a Location naming what it made."""
    response = jsonify(body)
    if created:
        response.status_code = 201
        response.headers["Location"] = location
    return response


def load(schema: Any, data: Any) -> Any:
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise Problem(
            422,
            "Unprocessable Content",
            "the request did not validate",
            type="validation-error",
            errors=_flat(exc.messages),
        ) from None


def _flat(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(_flat(value, name))
            else:
                out[name] = [str(v) for v in (value if isinstance(value, list) else [value])]
    else:
        out[prefix or "body"] = [str(messages)]
    return out


def rules_problem(exc: RuleSetInvalid) -> Problem:
    return Problem(
        422,
        "Invalid rule set",
        str(exc),
        type="invalid-rules",
        errors=exc.errors,
        extra={"issues": [{"rule": i.rule, "field": i.field, "message": i.message} for i in exc.issues]},
    )


# ------------------------------------------------------------------------------------------------ units


@units_blp.route("/units", methods=["GET"])
@require_roles(*READERS)
@units_blp.response(200, responses.UnitPage)
@problems(units_blp, 400, 422)
@units_blp.arguments(UnitListArgs, location="query")
def list_units(args: dict[str, Any]) -> Response:
    """List recipient units, filtered by group or active flag."""
    return paged(units.list_units, args, group=args.get("group"), active=args.get("active"))


@units_blp.route("/units:import", methods=["POST"])
@require_roles(*MANAGERS)
@writes
@units_blp.doc(requestBody=document_body(schemas.UnitsDocument))
@units_blp.response(
    200, responses.ImportOut, description="What the import created, changed or found unchanged"
)
@problems(units_blp, 413, 415, 422)
def import_units() -> Response:
    """Import units from a YAML or JSON document (upsert); declares the new units' task queues."""
    doc, _ = body_document()
    result = units.import_units(parse_units_document(doc), engine=deps().engine, queues=deps().queues)
    return jsonify({"created": result.created, "updated": result.updated, "unchanged": result.unchanged})


@units_blp.route("/units/<code>", methods=["GET"])
@require_roles(*READERS)
@units_blp.response(200, responses.UnitOut)
@problems(units_blp, 404)
def get_unit(code: str) -> Response:
    """Read one unit."""
    return jsonify(units.get_unit(code, engine=deps().engine))


@units_blp.route("/units/<code>", methods=["PUT"])
@require_roles(*MANAGERS)
@writes
@units_blp.doc(requestBody=json_body(schemas.UnitIn))
@units_blp.response(200, responses.UnitOut, description="Replaced")
@units_blp.alt_response(201, schema=responses.UnitOut, description="Created; Location names it")
@problems(units_blp, 422)
def put_unit(code: str) -> Response:
    """Create or replace one unit; 201 when it is new."""
    body = load_json(UnitIn())
    unit = parse_unit(body, code=code)
    result, created = units.put_unit(unit, engine=deps().engine, queues=deps().queues)
    return put_answer(result, created, f"/v1/units/{quote(code)}")


@units_blp.route("/units/<code>", methods=["DELETE"])
@require_roles(*MANAGERS)
@writes
@units_blp.response(200, responses.UnitOut, description="Deactivated (active false)")
@problems(units_blp, 404)
def delete_unit(code: str) -> Response:
    """Deactivate a unit: its tasks and history stay, it gets no new assignments."""
    return jsonify(units.deactivate_unit(code, engine=deps().engine))


# ------------------------------------------------------------------------------------------------ rules


@rules_blp.route("/rules", methods=["GET"])
@require_roles(*READERS)
@rules_blp.response(200, responses.ActiveRulesOut)
@problems(rules_blp)
def get_rules() -> Response:
    """Read the active rule set."""
    return jsonify(rules.get_rules(engine=deps().engine))


@rules_blp.route("/rules", methods=["PUT"])
@require_roles(*MANAGERS)
@writes
@rules_blp.doc(requestBody=document_body(schemas.RuleSetDocument))
@rules_blp.response(200, responses.RuleVersionOut, description="The same set is the active version already")
@rules_blp.alt_response(
    201, schema=responses.RuleVersionOut, description="Stored as a new version; Location names it"
)
@problems(rules_blp, 413, 415, 422)
def put_rules() -> Response:
    """Store a new rule set version (YAML or JSON), validated against the known units."""
    doc, source = body_document()
    try:
        version = rules.put_rules(doc, source=source, engine=deps().engine, actor=actor(current_principal()))
    except RuleSetInvalid as exc:
        raise rules_problem(exc) from None
    return put_answer(version, version["created"], f"/v1/rules/versions/{version['version']}")


@rules_blp.route("/rules/versions", methods=["GET"])
@require_roles(*READERS)
@rules_blp.response(200, responses.RuleVersionPage)
@problems(rules_blp, 400, 422)
@rules_blp.arguments(PageArgs, location="query")
def rule_versions(args: dict[str, Any]) -> Response:
    """List the stored rule set versions, newest first."""
    return paged(rules.list_rule_versions, args)


@rules_blp.route("/rules/versions/<int:version>", methods=["GET"])
@require_roles(*READERS)
@rules_blp.response(200, responses.RuleVersionDetail)
@problems(rules_blp, 404)
def rule_version(version: int) -> Response:
    """Read one rule set version with its source text."""
    return jsonify(rules.get_rule_version(version, engine=deps().engine))


@rules_blp.route("/rules:evaluate", methods=["POST"])
@require_roles(*READERS)
@rules_blp.doc(requestBody=json_body(schemas.EvaluateIn))
@rules_blp.response(200, responses.EvaluationOut)
@problems(rules_blp, 422)
def evaluate_rules() -> Response:
    """Show the tasks the active rules would create for a directive, without creating them."""
    body = load_json(EvaluateIn())
    # "Today" is the business calendar's day, not the server's.
    arrival = body.pop("arrival_date", None) or local_date(datetime.now(UTC))
    return jsonify(rules.evaluate(body, arrival, engine=deps().engine, calendar=deps().calendar))


# ------------------------------------------------------------------------------------------------ tasks


@tasks_blp.route("/units/<code>/tasks:poll", methods=["POST"])
@require_roles("unit")
@writes
@tasks_blp.doc(requestBody=json_body(schemas.PollIn, required=False))
@tasks_blp.response(200, responses.PollOut)
@problems(tasks_blp, 404, 422, 429)
def poll(code: str) -> Response:
    """Take up to `max` tasks from the unit's queue, leased until acknowledged (long-poll)."""
    own_unit_only(current_principal(), code)
    body = load_json(POLL_IN)

    def take() -> leases.PollResult:
        return leases.poll_tasks(
            code,
            engine=deps().engine,
            queues=deps().queues,
            max_tasks=body["max"],
            wait_seconds=body["wait_seconds"],
            lease_seconds=body.get("lease_seconds") or deps().lease_seconds,
            known_units=deps().known_units,
        )

    if body["wait_seconds"] > 0:
        # Only a poll that may wait holds a thread long enough to need a place; a short one is any request.
        with deps().poll_gate.admit(code):
            result = take()
    else:
        result = take()
    return jsonify({"items": result.items, "reminders": result.reminders})


@tasks_blp.route("/units/<code>/tasks", methods=["GET"])
@require_roles("unit", *READERS)
@tasks_blp.response(200, responses.TaskPage)
@problems(tasks_blp, 400, 404, 422)
@tasks_blp.arguments(UnitTaskListArgs, location="query")
def unit_tasks(args: dict[str, Any], code: str) -> Response:
    """The unit's task ledger, oldest first, filtered by status."""
    own_unit_only(current_principal(), code)
    return paged(tasks.list_unit_tasks, args, code, status=args.get("status"))


@tasks_blp.route("/tasks/<task_id>", methods=["GET"])
@require_roles("unit", *READERS)
@tasks_blp.response(200, responses.TaskDetail)
@problems(tasks_blp, 404)
def get_task(task_id: str) -> Response:
    """Read one task with its status history."""
    return jsonify(tasks.get_task(task_id, engine=deps().engine, unit=unit_scope(current_principal())))


@tasks_blp.route("/tasks/<task_id>/ack", methods=["POST"])
@require_roles("unit")
@writes
@tasks_blp.response(
    200, responses.TaskDetail, description="Received (de_biet: completed); repeating is harmless"
)
@problems(tasks_blp, 404, 409)
def ack(task_id: str) -> Response:
    """Acknowledge receipt of a task (assigned → received); repeating it is harmless."""
    principal = current_principal()
    return jsonify(
        acks.ack_task(task_id, engine=deps().engine, unit=unit_scope(principal), actor=actor(principal))
    )


@tasks_blp.route("/units/<code>/tasks:ack", methods=["POST"])
@require_roles("unit")
@writes
@tasks_blp.doc(requestBody=json_body(schemas.AckIn))
@tasks_blp.response(200, responses.AckManyOut)
@problems(tasks_blp, 404, 422)
def ack_many(code: str) -> Response:
    """Acknowledge receipt of up to 100 of the unit's tasks at once; answers an outcome per distinct id."""
    principal = current_principal()
    own_unit_only(principal, code)
    body = load_json(ACK_IN)
    outcomes = acks.ack_tasks(code, body["ids"], engine=deps().engine, actor=actor(principal))
    counts = {result.value: 0 for result in acks.AckResult}
    for outcome in outcomes:
        counts[outcome.result.value] += 1
    return jsonify({"items": [o.to_json() for o in outcomes], "counts": counts})


@tasks_blp.route("/tasks/<task_id>/status", methods=["POST"])
@require_roles("unit")
@writes
@tasks_blp.doc(requestBody=status_body())
@tasks_blp.response(200, responses.TaskDetail)
@problems(tasks_blp, 404, 409, 413, 422, 503)
def change_status(task_id: str) -> Response:
    """Report progress on a task (JSON, or multipart with a report file)."""
    principal = current_principal()
    report = None
    if request.mimetype == "multipart/form-data":
        body = load(StatusIn(), dict(request.form.items()))
        upload = request.files.get("report")
        if upload is not None:
            report = status_cases.ReportUpload(
                filename=upload.filename or "report",
                content_type=upload.mimetype or "application/octet-stream",
                data=upload.read(),
            )
    else:
        body = load_json(StatusIn())
    return jsonify(
        status_cases.change_status(
            task_id,
            Status(body["status"]),
            note=body.get("note"),
            reply_number=body.get("reply_number"),
            report=report,
            engine=deps().engine,
            store=deps().store,
            bucket=deps().staging_bucket,
            unit=unit_scope(principal),
            actor=actor(principal),
        )
    )


@tasks_blp.route("/tasks/<task_id>/attachments/<attachment_id>", methods=["GET"])
@require_roles("unit", *READERS)
@tasks_blp.response(
    200,
    BINARY,
    # Served with the media type intake accepted it under (PDF, Word, images…): any type is documented.
    content_type="*/*",
    description="The file as stored (its own media type), checked against X-Checksum-SHA256",
)
@problems(tasks_blp, 404, 502, 503)
def attachment(task_id: str, attachment_id: str) -> Response:
    """Download a directive attachment of the task, checked against its SHA-256."""
    meta, data = tasks.read_attachment(
        task_id, attachment_id, engine=deps().engine, store=deps().store, unit=unit_scope(current_principal())
    )
    response = Response(data, mimetype=meta.get("content_type") or "application/octet-stream")
    filename = str(meta.get("filename") or attachment_id)
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    if meta.get("sha256"):
        response.headers["X-Checksum-SHA256"] = meta["sha256"]
    return response


@tasks_blp.route("/directives", methods=["GET"])
@require_roles(*READERS)
@tasks_blp.response(200, responses.DirectivePage)
@problems(tasks_blp, 400, 422)
@tasks_blp.arguments(DirectiveListArgs, location="query")
def list_directives(args: dict[str, Any]) -> Response:
    """List routed directives, filtered by status."""
    staff_only(current_principal())
    return paged(progress_cases.list_directives, args, status=args.get("status"))


@tasks_blp.route("/directives/<directive_id>/progress", methods=["GET"])
@require_roles(*READERS)
@tasks_blp.response(200, responses.ProgressOut)
@problems(tasks_blp, 404)
def progress(directive_id: str) -> Response:
    """A directive's progress: every unit's task, status counts and overdue units."""
    staff_only(current_principal())
    return jsonify(progress_cases.directive_progress(directive_id, engine=deps().engine))


@tasks_blp.route("/directives/<directive_id>/assignments", methods=["POST"])
@require_roles(*MANAGERS)
@writes
@tasks_blp.doc(requestBody=json_body(schemas.AssignmentsIn))
@tasks_blp.response(200, responses.ProgressOut, description="The directive's progress after the change")
@problems(tasks_blp, 404, 409, 422)
def assignments(directive_id: str) -> Response:
    """Add, change or cancel a directive's assignments by hand."""
    staff_only(current_principal())
    body = load_json(AssignmentsIn())
    items = [dispatch.Assignment(**a) for a in body["assignments"]]
    return jsonify(
        dispatch.assign(
            directive_id,
            items,
            engine=deps().engine,
            actor=actor(current_principal()),
            calendar=deps().calendar,
        )
    )


@tasks_blp.route("/overdue", methods=["GET"])
@require_roles(*READERS)
@tasks_blp.response(200, responses.OverduePage)
@problems(tasks_blp)
def overdue() -> Response:
    """Open tasks past their due time, grouped by unit."""
    staff_only(current_principal())
    items = deadlines.list_overdue(engine=deps().engine)
    return jsonify({"items": items, "total": len(items), "page": 1, "per_page": max(len(items), 1)})
