"""The văn thư's pages: the incoming register (sổ đăng ký văn bản đến), registering a directive, and a
directive's own page with its files, every unit's task and its revisions, where a clerk updates (cập nhật),
revokes (thu hồi) or refuses (từ chối tiếp nhận) it."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from console.app import api, requires
from console.client import ApiError

blueprint = Blueprint("clerk", __name__)

READERS = ("clerk", "submitter", "auditor", "admin")
FORM_FIELDS = (
    "issuer_name", "issuer_code", "number", "document_type", "issued_date", "place", "subject", "content",
    "urgency", "due_date", "page_amount", "to_places", "signer_competence", "signer_position", "signer_name",
)  # fmt: skip
# The API names fields by the metadata's JSON paths; the form by flat names.
API_FIELD = {
    "issuer.name": "issuer_name",
    "issuer.code": "issuer_code",
    "signer.competence": "signer_competence",
    "signer.position": "signer_position",
    "signer.full_name": "signer_name",
}


@blueprint.get("/so-den")
@requires(*READERS)
def register() -> str:
    args = request.args
    year = args.get("year", "").strip()
    params: dict[str, Any] = {
        "q": args.get("q"),
        "issuer": args.get("issuer"),
        "number": args.get("number"),
        "document_type": args.get("document_type"),
        "page": args.get("page", type=int) or 1,
        "per_page": 25,
    }
    if year.isdigit():
        params |= {"arrival_from": f"{year}-01-01", "arrival_to": f"{year}-12-31"}
    for name in ("urgency", "status"):
        if args.get(name):
            params[name] = args[name]
    params |= due_filter(args.get("han", ""), date.today())
    page = api().get("intake", "/v1/directives", params)
    pages = max(1, -(-int(page["total"]) // int(page["per_page"])))
    return render_template(
        "register.html", page=page, pages=pages, filters=args, year=year or str(date.today().year)
    )


# "Hạn xử lý" in the register's filters: what is still to do and due within a week, or already past due.
DUE_SOON_DAYS = 7


def due_filter(choice: str, today: date) -> dict[str, Any]:
    """intake's register parameters for the "Hạn xử lý" filter: `sap-den-han` (due today or within
    DUE_SOON_DAYS days, not yet done), `qua-han` (due before today, not yet done), anything else none."""
    if choice == "sap-den-han":
        return {
            "unfinished": "true",
            "due_from": today.isoformat(),
            "due_to": (today + timedelta(days=DUE_SOON_DAYS)).isoformat(),
        }
    if choice == "qua-han":
        return {"unfinished": "true", "due_to": (today - timedelta(days=1)).isoformat()}
    return {}


@blueprint.get("/so-den.csv")
@requires("clerk", "auditor", "admin")
def register_csv() -> Response:
    year = request.args.get("year", str(date.today().year))
    download = api().download("intake", f"/v1/register.csv?year={int(year)}")
    return Response(
        download.content,
        content_type=download.content_type,
        headers={"Content-Disposition": f"attachment; filename=so-den-{int(year)}.csv"},
    )


def _metadata(form: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "issuer": {"name": form.get("issuer_name", "")},
        "number": form.get("number", ""),
        "issued_date": form.get("issued_date", ""),
        "subject": form.get("subject", ""),
        "urgency": form.get("urgency") or "thuong",
        "confidentiality": "thuong",
    }
    optional = {
        "document_type": form.get("document_type"),
        "place": form.get("place"),
        "content": form.get("content"),
        "due_date": form.get("due_date"),
    }
    metadata |= {key: value for key, value in optional.items() if value}
    if form.get("issuer_code"):
        metadata["issuer"]["code"] = form["issuer_code"]
    if form.get("page_amount"):
        metadata["page_amount"] = (
            int(form["page_amount"]) if form["page_amount"].isdigit() else form["page_amount"]
        )
    places = [line.strip() for line in form.get("to_places", "").splitlines() if line.strip()]
    if places:
        metadata["to_places"] = places
    signer = {
        "competence": form.get("signer_competence"),
        "position": form.get("signer_position"),
        "full_name": form.get("signer_name"),
    }
    if any(signer.values()):
        metadata["signer"] = {key: value for key, value in signer.items() if value}
    return metadata


@blueprint.get("/so-den/moi")
@requires("clerk", "submitter")
def new_directive() -> str:
    return render_template("register_new.html", values={}, errors={}, message=None)


@blueprint.post("/so-den/moi")
@requires("clerk", "submitter")
def new_directive_post() -> Response | tuple[str, int]:
    values = {name: request.form.get(name, "") for name in FORM_FIELDS}
    files = [
        ("files", (upload.filename or "tep", upload.read(), upload.mimetype or "application/octet-stream"))
        for upload in request.files.getlist("files")
        if upload.filename
    ]
    metadata = json.dumps(_metadata(request.form), ensure_ascii=False)
    try:
        created = api().post(
            "intake",
            "/v1/directives",
            data={"metadata": metadata},
            files=files,
            headers={"Idempotency-Key": request.form.get("idempotency_key") or ""}
            if request.form.get("idempotency_key")
            else None,
        )
    except ApiError as exc:
        if exc.status not in (409, 413, 415, 422):
            raise
        errors: dict[str, list[str]] = {}
        for name, messages in exc.field_errors.items():
            key = API_FIELD.get(name, "files" if name.startswith(("files", "attachments")) else name)
            errors.setdefault(key, []).extend(messages)
        return render_template(
            "register_new.html", values=values, errors=errors, message=str(exc)
        ), exc.status
    return redirect(url_for("clerk.directive", directive_id=created["id"], created=1))


# A clerk's two ways to end a registered directive: the console's path, intake's call, what the page says.
LIFECYCLE = {
    "thu-hoi": ("revoke", "Đã thu hồi văn bản; các đơn vị được báo hủy việc."),
    "tu-choi": ("reject", "Đã từ chối tiếp nhận văn bản; nơi gửi được báo lý do."),
}


def _directive_page(directive_id: str, **extra: Any) -> str:
    client = api()
    found = client.get("intake", f"/v1/directives/{directive_id}")
    # Revision 1 is the registration itself: the history is worth a call once there has been an update.
    revisions = None
    if int(found.get("revision") or 1) > 1:
        revisions = client.get("intake", f"/v1/directives/{directive_id}/revisions")["items"]
    progress = None
    if g.person.has("clerk", "auditor", "admin"):
        try:
            progress = client.get("routing", f"/v1/directives/{directive_id}/progress")
        except ApiError as exc:
            if exc.status != 404:  # not routed yet
                raise
    return render_template(
        "directive.html",
        directive=found,
        progress=progress,
        revisions=revisions,
        field_names=FIELD_NAMES,
        update=extra.pop("update", None) or _update_values(found),
        created=request.args.get("created"),
        message=request.args.get("message"),
        **extra,
    )


@blueprint.get("/van-ban/<directive_id>")
@requires(*READERS)
def directive(directive_id: str) -> str:
    return _directive_page(directive_id)


@blueprint.post("/van-ban/<directive_id>/<any('thu-hoi', 'tu-choi'):action>")
@requires("clerk")
def end_directive(directive_id: str, action: str) -> Response | tuple[str, int]:
    """Revoke or refuse, with the reason typed; the API's refusal stands next to the reason field."""
    call, done = LIFECYCLE[action]
    reason = request.form.get("reason", "")
    try:
        api().post("intake", f"/v1/directives/{directive_id}:{call}", json={"reason": reason})
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        # A field message when the API names the reason; otherwise its detail (e.g. 409: already refused).
        errors = exc.field_errors.get("reason") or [str(exc)]
        page = _directive_page(directive_id, lifecycle_form=action, reason=reason, lifecycle_errors=errors)
        return page, exc.status
    return redirect(url_for("clerk.directive", directive_id=directive_id, message=done))


# The fields an update may change, as the form names them; the page's history names them in Vietnamese.
UPDATE_FIELDS = ("subject", "due_date", "urgency", "content")
FIELD_NAMES = {
    "subject": "Trích yếu",
    "due_date": "Hạn xử lý",
    "urgency": "Độ khẩn",
    "content": "Nội dung",
    "attachments": "Tệp đính kèm",
}


def _update_values(directive: dict[str, Any]) -> dict[str, str]:
    """The update form's fields as the directive has them now (the due date written dd/MM/yyyy)."""
    due = directive.get("due_date")
    values = {
        "subject": directive.get("subject") or "",
        "due_date": date.fromisoformat(due).strftime("%d/%m/%Y") if due else "",
        "urgency": directive.get("urgency") or "thuong",
        "content": directive.get("content") or "",
    }
    shown = {f"shown_{name}": value for name, value in values.items()}
    return {**values, **shown, "shown_revision": str(directive.get("revision") or 1), "reason": ""}


def iso_date(typed: str) -> str | None:
    """dd/MM/yyyy (or ISO) as the API wants it; empty is None (no due date). Anything else is sent as typed,
    so the API's own message about it stands next to the field."""
    typed = typed.strip()
    if not typed:
        return None
    for pattern in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(typed, pattern).date().isoformat()
        except ValueError:
            continue
    return typed


def merge_patch(shown: dict[str, str], typed: dict[str, str]) -> dict[str, Any]:
    """The fields the clerk changed from what the form showed (RFC 7396: an emptied due date or content is
    null), so an update made meanwhile by someone else to another field is not undone."""
    patch: dict[str, Any] = {}
    for name in UPDATE_FIELDS:
        before, after = shown.get(name, "").strip(), typed.get(name, "").strip()
        if name == "due_date":
            before, after = iso_date(before) or "", iso_date(after) or ""
        if after != before:
            patch[name] = (after or None) if name in ("due_date", "content") else after
    return patch


@blueprint.post("/van-ban/<directive_id>/cap-nhat")
@requires("clerk")
def update_directive(directive_id: str) -> Response | tuple[str, int]:
    """Cập nhật văn bản: PATCH of what changed, with the reason and added files; the API's refusal stands
    next to its field and what was typed is kept."""
    form = request.form
    typed = {name: form.get(name, "") for name in (*UPDATE_FIELDS, "reason")}
    patch = merge_patch({name: form.get(f"shown_{name}", "") for name in UPDATE_FIELDS}, typed)
    added = [
        {
            "filename": upload.filename,
            "content_type": upload.mimetype or "application/octet-stream",
            "content_base64": base64.b64encode(upload.read()).decode("ascii"),
        }
        for upload in request.files.getlist("files")
        if upload.filename
    ]
    if added:
        patch["attachments"] = added
    if typed["reason"].strip():
        patch["reason"] = typed["reason"].strip()
    try:
        updated = api().send_body(
            "PATCH",
            "intake",
            f"/v1/directives/{directive_id}",
            body=json.dumps(patch, ensure_ascii=False).encode("utf-8"),
            content_type="application/merge-patch+json",
        )
    except ApiError as exc:
        if exc.status not in (409, 413, 415, 422):
            raise
        errors: dict[str, list[str]] = {}
        for name, messages in exc.field_errors.items():
            key = "files" if name.startswith("attachments") else name
            errors.setdefault(key if key in (*UPDATE_FIELDS, "reason", "files") else "_", []).extend(messages)
        # The form keeps what was typed, compared still against what it showed when it was opened.
        shown = {n: form.get(n, "") for n in (*(f"shown_{f}" for f in UPDATE_FIELDS), "shown_revision")}
        page = _directive_page(
            directive_id,
            update={**typed, **shown},
            update_errors=errors,
            update_message=str(exc),
        )
        return page, exc.status
    if str(updated["revision"]) == form.get("shown_revision"):
        done = "Không có gì thay đổi: văn bản giữ nguyên."
    else:
        done = f"Đã cập nhật: phiên bản {updated['revision']}"
    return redirect(url_for("clerk.directive", directive_id=directive_id, message=done))


@blueprint.get("/van-ban/<directive_id>/tep/<attachment_id>")
@requires(*READERS)
def attachment(directive_id: str, attachment_id: str) -> Response:
    download = api().download("intake", f"/v1/directives/{directive_id}/attachments/{attachment_id}")
    return Response(
        download.content,
        content_type=download.content_type,
        headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"},
    )
