"""Builds a directive's BagIt package: metadata, verified record bytes, signature reports, tasks, audit."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bagit
from sqlalchemy.engine import Engine

from archive.adapters import audit_log, repository
from archive.common import Clock, Vault, utcnow
from archive.domain.audit import AuditEvent, utc_text
from archive.domain.errors import DirectiveNotFound, FixityFailed
from archive.fixity import check_record_row, record_fixity_outcome

Progress = Callable[[int, int, str], None]
_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


def safe_name(name: str) -> str:
    # Keep Vietnamese letters; drop path separators and control characters a filename could smuggle in.
    cleaned = _UNSAFE.sub("_", name).strip(" .")
    return cleaned[:150] or "file"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True, default=_json_default) + "\n",
        encoding="utf-8",
    )


def ensure_packageable(directive_id: str, *, engine: Engine) -> None:
    """DirectiveNotFound unless the archive holds something of the directive (what build_bag needs)."""
    with engine.connect() as conn:
        known = repository.get_directive(conn, directive_id) is not None or bool(
            repository.directive_records(conn, directive_id)
        )
    if not known:
        raise DirectiveNotFound(f"the archive holds nothing of directive {directive_id}")


def build_bag(
    directive_id: str,
    out_dir: Path,
    *,
    engine: Engine,
    vault: Vault,
    actor: str,
    progress: Progress | None = None,
    clock: Clock = utcnow,
) -> Path:
    """Writes the bag into `out_dir` (which must not exist) and returns it.

    Each record's bytes are re-hashed while they are written; a mismatch aborts the export with
    FixityFailed (and is recorded like any other fixity failure) instead of packaging altered bytes.
    """
    with engine.connect() as conn:
        directive = repository.get_directive(conn, directive_id)
        rows = repository.directive_records(conn, directive_id)
        tasks = repository.directive_task_events(conn, directive_id)
    if directive is None and not rows:
        raise DirectiveNotFound(f"the archive holds nothing of directive {directive_id}")
    out_dir.mkdir(parents=True)
    total = len(rows)
    manifest: list[dict[str, Any]] = []
    for index, row in enumerate(rows, start=1):
        if progress is not None:
            progress(index, total, row.filename)
        folder = out_dir / "records" / row.id
        folder.mkdir(parents=True)
        target = folder / safe_name(row.filename)
        with target.open("wb") as sink:
            outcome = check_record_row(vault, row, sink=sink, engine=engine)
        if not outcome.ok:
            with engine.begin() as conn:
                record_fixity_outcome(conn, row, outcome, trigger="export", actor=actor, now=clock())
            shutil.rmtree(out_dir, ignore_errors=True)
            raise FixityFailed(row.id, f"record {row.id}: {outcome.detail}; the package was not built")
        view = repository.row_view(row)
        report = view.pop("signature_report")
        _write_json(folder / "signature-report.json", report)
        view["path"] = f"data/records/{row.id}/{target.name}"
        manifest.append(view)
    _write_json(
        out_dir / "directive.json",
        {
            "directive_id": directive_id,
            "arrival_number": directive.arrival_number if directive is not None else None,
            "arrival_date": directive.arrival_date if directive is not None else None,
            "received_at": directive.received_at if directive is not None else None,
            "metadata": dict(directive.metadata) if directive is not None else None,
        },
    )
    _write_json(out_dir / "records.json", manifest)
    _write_json(
        out_dir / "tasks.json",
        [
            {
                "event_id": t.event_id,
                "event_type": t.event_type,
                "task_id": t.task_id,
                "unit": t.unit,
                "status": t.status,
                "occurred_at": t.occurred_at,
                "payload": t.payload,
            }
            for t in tasks
        ],
    )
    now = clock()
    with engine.begin() as conn:
        # The export itself is a read of every record: audit it before the entries are written out,
        # so the package's audit trail ends with its own creation.
        audit_log.append(
            conn,
            AuditEvent(
                action="package_exported",
                actor=actor,
                occurred_at=now,
                directive_id=directive_id,
                details={"records": [r.id for r in rows]},
            ),
        )
        entries = audit_log.directive_entries(conn, directive_id)
    _write_json(
        out_dir / "audit.json",
        [
            {
                "seq": e.seq,
                "action": e.action,
                "actor": e.actor,
                "occurred_at": utc_text(e.occurred_at),
                "directive_id": e.directive_id,
                "record_id": e.record_id,
                "source_event_id": e.source_event_id,
                "details": e.details,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in entries
        ],
    )
    bag_info = {
        "Source-Organization": "docroute archive",
        "External-Identifier": directive_id,
        "Bagging-Date": now.astimezone(UTC).date().isoformat(),
        "External-Description": "Directive metadata, archived records with signature reports, task history "
        "and audit entries",
    }
    bagit.make_bag(str(out_dir), bag_info=bag_info, checksums=["sha256"])
    return out_dir


def zip_bag(bag_dir: Path, zip_path: Path) -> Path:
    """Zips the bag under a top-level folder named like the bag (the usual way to ship a serialized bag)."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(bag_dir.rglob("*")):
            if path.is_file():
                archive.write(path, Path(bag_dir.name) / path.relative_to(bag_dir))
    return zip_path


def build_package_zip(
    directive_id: str, *, engine: Engine, vault: Vault, actor: str, clock: Clock = utcnow
) -> tuple[Path, Path]:
    """(zip path, temp dir to remove when done)."""
    workdir = Path(tempfile.mkdtemp(prefix="docroute-bag-"))
    try:
        bag = build_bag(
            directive_id,
            workdir / f"directive-{safe_name(directive_id)}",
            engine=engine,
            vault=vault,
            actor=actor,
            clock=clock,
        )
        return zip_bag(bag, workdir / f"{bag.name}.zip"), workdir
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
