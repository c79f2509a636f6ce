"""A unit's hộp việc: its own tasks, newest and most urgent first; take, acknowledge, work and complete them.

Every call goes out with the unit's own token, so routing answers 404 for anything of another unit: the
console has no way to show another unit's work.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from console.app import api, requires
from console.client import ApiError

blueprint = Blueprint("unit", __name__)

URGENCY_RANK = {"hoa_toc": 0, "thuong_khan": 1, "khan": 2, "thuong": 3}
OPEN = ("assigned", "received", "in_progress")


def inbox_order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open before closed, overdue first, then the most urgent, and the newest first within each of those."""
    newest_first = sorted(tasks, key=lambda task: str(task.get("created_at") or ""), reverse=True)
    return sorted(
        newest_first,
        key=lambda task: (
            task.get("status") not in OPEN,
            not task.get("overdue"),
            URGENCY_RANK.get(task.get("urgency") or "thuong", 3),
        ),
    )


@blueprint.get("/hop-viec")
@requires(unit=True)
def inbox() -> str:
    code = g.person.unit
    status = request.args.get("status") or None
    page = api().get("routing", f"/v1/units/{code}/tasks", {"status": status, "per_page": 100})
    tasks = inbox_order(page["items"])
    return render_template("inbox.html", tasks=tasks, total=page["total"], status=status)


@blueprint.get("/viec/<task_id>")
@requires("clerk", "auditor", "admin", unit=True)
def task(task_id: str) -> str:
    found = api().get("routing", f"/v1/tasks/{task_id}")
    return render_template("task.html", task=found, message=request.args.get("message"))


@blueprint.post("/viec/<task_id>/nhan")
@requires(unit=True)
def acknowledge(task_id: str) -> Response:
    api().post("routing", f"/v1/tasks/{task_id}/ack")
    return redirect(url_for("unit.task", task_id=task_id, message="Đã nhận việc."))


@blueprint.post("/viec/<task_id>/trang-thai")
@requires(unit=True)
def change_status(task_id: str) -> Response:
    status = request.form.get("status", "")
    if status not in ("in_progress", "completed", "rejected"):
        abort(400)
    fields = {"status": status}
    for name in ("note", "reply_number"):
        if request.form.get(name):
            fields[name] = request.form[name]
    report = request.files.get("report")
    client = api()
    try:
        if report is not None and report.filename:
            client.post(
                "routing",
                f"/v1/tasks/{task_id}/status",
                data=fields,
                files=[
                    (
                        "report",
                        (report.filename, report.read(), report.mimetype or "application/octet-stream"),
                    )
                ],
            )
        else:
            client.post("routing", f"/v1/tasks/{task_id}/status", json=fields)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return redirect(url_for("unit.task", task_id=task_id, message=f"Không cập nhật được: {exc}"))
    done = {
        "in_progress": "Đã chuyển sang đang xử lý.",
        "completed": "Đã báo cáo hoàn thành.",
        "rejected": "Đã từ chối.",
    }
    return redirect(url_for("unit.task", task_id=task_id, message=done[status]))


@blueprint.get("/viec/<task_id>/tep/<attachment_id>")
@requires("clerk", "auditor", "admin", unit=True)
def task_file(task_id: str, attachment_id: str) -> Response:
    download = api().download("routing", f"/v1/tasks/{task_id}/attachments/{attachment_id}")
    return Response(
        download.content, content_type=download.content_type, headers={"Content-Disposition": "attachment"}
    )
