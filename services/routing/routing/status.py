"""Status changes a unit reports on its task (in progress, completed, rejected), with a report file."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from shared.filenames import clean_filename
from shared.objectstore import ObjectStore
from sqlalchemy.engine import Engine

from routing.domain.tasks import Status, check_move
from routing.ledger import move, refresh_directive_status, visible_task
from routing.tasks import get_task

# type/subtype of RFC 9110 tokens; anything else (CR/LF, quotes, parameters) is stored as octet-stream.
_MEDIA_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}$")


@dataclass(frozen=True)
class ReportUpload:
    """A unit's report file as it arrived; `filename` and `content_type` are the sender's, not yet cleaned."""

    filename: str
    content_type: str
    data: bytes

    def stored_filename(self) -> str:
        """The name the ledger, the events and the archive keep: cleaned as intake cleans attachment names."""
        return clean_filename(self.filename, fallback="report")

    def stored_content_type(self) -> str:
        media = self.content_type.strip().lower()
        return media if _MEDIA_TYPE.match(media) else "application/octet-stream"


def change_status(
    task_id: str,
    status: Status,
    *,
    note: str | None,
    reply_number: str | None,
    report: ReportUpload | None,
    engine: Engine,
    store: ObjectStore | None,
    bucket: str,
    unit: str | None,
    actor: str,
) -> dict[str, Any]:
    """A unit reports progress; a report file goes to the staging bucket before the change is recorded."""
    with engine.connect() as conn:
        row = visible_task(conn, task_id, unit)
    check_move(Status(row.status), status, note=note)
    report_meta: dict[str, Any] | None = None
    if report is not None:
        if store is None:
            raise RuntimeError("no object store configured")
        digest = hashlib.sha256(report.data).hexdigest()
        key = f"tasks/{task_id}/{digest}"
        store.ensure_bucket(bucket)
        stored = store.put(
            bucket,
            key,
            report.data,
            size=len(report.data),
            content_type=report.stored_content_type(),
            sha256=digest,
            metadata={"task-id": task_id},
        )
        report_meta = {
            "bucket": bucket,
            "key": key,
            "sha256": digest,
            "size": stored.size,
            "filename": report.stored_filename(),
            "content_type": report.stored_content_type(),
        }
    with engine.begin() as conn:
        row = visible_task(conn, task_id, unit)
        move(conn, row, status, actor=actor, note=note, reply_number=reply_number, report=report_meta)
        refresh_directive_status(conn, row.directive_id)
    return get_task(task_id, engine=engine, unit=unit)
