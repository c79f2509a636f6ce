"""Directive repository: stores a registration in one transaction and answers the register's queries."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from shared.envelope import Envelope
from shared.outbox import OutboxItem, add_to_outbox, outbox_row
from sqlalchemy.engine import Connection, Engine, RowMapping

from intake.adapters.counter import registration_postgresql, take_arrival_number
from intake.adapters.status_store import (
    NewStatus,
    append_new_statuses,
    append_statuses,
    statuses_param,
)
from intake.adapters.tables import attachments, directive_revisions, directives, outbox, status_updates
from intake.domain.arrival import ArrivalSeries
from intake.domain.enums import Confidentiality, DirectiveStatus, Urgency
from intake.domain.models import Directive, DirectiveMetadata, Issuer, Signer, StoredAttachment
from intake.domain.numbers import DocumentNumber
from intake.domain.status import StatusCode
from intake.domain.text import fold
from shared import json_bytes


@dataclass(frozen=True)
class IdempotentHit:
    directive: Directive
    request_hash: str


@dataclass(frozen=True)
class RegisterQuery:
    """Filters of the register (sổ đăng ký văn bản đến); all optional."""

    issuer: str | None = None
    number_value: int | None = None
    notation: str | None = None
    document_type: str | None = None
    arrival_from: date | None = None
    arrival_to: date | None = None
    q: str | None = None
    year: int | None = None
    submitted_by: str | None = None
    urgency: str | None = None
    status: str | None = None
    due_from: date | None = None
    due_to: date | None = None
    # Still registered and without status 06 (every chủ trì task done), as routing reported it.
    unfinished: bool = False


@dataclass(frozen=True)
class NewRegistration:
    """Everything about a registration except the arrival number, which is drawn inside the transaction."""

    series: ArrivalSeries
    idempotency_owner: str | None
    idempotency_key: str | None
    request_hash: str
    correlation_id: str | None
    build: Callable[[int], Directive]
    event: Callable[[Directive], Envelope]
    exchange: str
    # 01 and 03 for the sender, written with the directive ({arrival_number} filled in with its number).
    statuses: tuple[NewStatus, ...] = ()


_OUTBOX_PARAMS = ("message_id", "exchange", "routing_key", "body", "headers", "created_at")


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes; everything is written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _json_text(value: Any) -> str:
    """A JSON parameter of the registration statement (dates and times in ISO 8601, UTF-8 unescaped)."""
    return json_bytes.dumps(value, default=_json_default).decode("utf-8")


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _attach(conn: Connection, directive_id: str, files: Sequence[StoredAttachment]) -> None:
    """Adds files to a registered directive after its others."""
    if not files:
        return
    position = conn.execute(
        sa.select(sa.func.count()).select_from(attachments).where(attachments.c.directive_id == directive_id)
    ).scalar_one()
    conn.execute(
        sa.insert(attachments),
        [
            {
                "id": f.id,
                "directive_id": directive_id,
                "position": position + offset,
                "filename": f.filename,
                "content_type": f.content_type,
                "size": f.size,
                "sha256": f.sha256,
                "bucket": f.bucket,
                "key": f.key,
            }
            for offset, f in enumerate(files)
        ],
    )


class DirectiveRepository:
    """SQLAlchemy Core access to directives and attachments of one intake database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # A registration on PostgreSQL is one atomic statement: no transaction block around it.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Built once: a constant statement is compiled once, then found in SQLAlchemy's cache.
        self._registration = registration_postgresql(statuses=False)
        self._registration_with_statuses = registration_postgresql(statuses=True)

    # -- writes ---------------------------------------------------------------------------------------

    def register(self, new: NewRegistration) -> Directive:
        """Number, directive, attachments and outbox event commit together or not at all."""
        # Every row is built before the transaction: from the counter UPSERT to the commit, the counter
        # row is locked and every other registration of the year waits, so that stretch runs only the
        # statements themselves (constant INSERTs whose compiled form SQLAlchemy caches).
        provisional = new.build(0)
        directive_row = self._directive_row(provisional, new)
        attachment_rows = [
            {
                "id": a.id,
                "directive_id": provisional.id,
                "position": position,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "bucket": a.bucket,
                "key": a.key,
            }
            for position, a in enumerate(provisional.attachments)
        ]
        if self.engine.dialect.name == "postgresql":
            return self._register_postgresql(new, directive_row, attachment_rows)
        with self.engine.begin() as conn:
            # The counter UPSERT goes first: on SQLite it takes the write lock before any read, so
            # concurrent writers queue on the busy timeout instead of failing a lock upgrade.
            number = take_arrival_number(conn, new.series)
            directive = new.build(number)
            directive_row["arrival_number"] = number
            conn.execute(sa.insert(directives), directive_row)
            if attachment_rows:
                conn.execute(sa.insert(attachments), attachment_rows)
            add_to_outbox(conn, outbox, new.event(directive), exchange=new.exchange)
            append_statuses(conn, new.statuses, arrival_number=number)
        return directive

    def _register_postgresql(
        self, new: NewRegistration, directive_row: dict[str, Any], attachment_rows: list[dict[str, Any]]
    ) -> Directive:
        """The registration as one statement in autocommit (see registration_postgresql)."""
        params: dict[str, Any] = {
            "counter_organisation": new.series.organisation,
            "counter_year": new.series.year,
            "directive": _json_text({k: v for k, v in directive_row.items() if k != "arrival_number"}),
            "attachments": _json_text(attachment_rows),
        }
        # The event as it will be sent, with number 1; the statement puts in the number it takes.
        queued = outbox_row(OutboxItem(new.event(new.build(1)), new.exchange), datetime.now(UTC))
        params.update({f"o_{name}": queued[name] for name in _OUTBOX_PARAMS})
        params["o_headers"] = _json_text(queued["headers"])
        statement = self._registration
        if new.statuses:
            statement = self._registration_with_statuses
            params["statuses"] = _json_text(statuses_param(new.statuses))
            params["status_count"] = len(new.statuses)
        with self._autocommit.connect() as conn:
            number = int(conn.execute(statement, params).scalar_one())
        return new.build(number)

    @staticmethod
    def _directive_row(directive: Directive, new: NewRegistration) -> dict[str, Any]:
        meta = directive.metadata
        signer = meta.signer
        return {
            "id": directive.id,
            "organisation": directive.organisation,
            "arrival_year": new.series.year,
            "arrival_number": directive.arrival_number,
            "arrival_date": directive.arrival_date,
            "received_at": directive.received_at,
            "status": directive.status.value,
            "issuer_name": meta.issuer.name,
            "issuer_code": meta.issuer.code,
            "issuer_folded": fold(meta.issuer.name),
            "number": meta.number.display,
            "code_number": meta.number.code_number,
            "code_number_value": meta.number.value,
            "code_notation": meta.number.code_notation,
            "notation_key": meta.number.code_notation.casefold(),
            "number_form": meta.number.form,
            "document_type": meta.document_type,
            "issued_date": meta.issued_date,
            "place": meta.place,
            "subject": meta.subject,
            "subject_folded": fold(meta.subject),
            "content": meta.content,
            "signer": None
            if signer is None
            else {
                "competence": signer.competence,
                "position": signer.position,
                "full_name": signer.full_name,
            },
            "urgency": meta.urgency.value,
            "confidentiality": meta.confidentiality.value,
            "due_date": meta.due_date,
            "page_amount": meta.page_amount,
            "to_places": list(meta.to_places),
            "external_id": meta.external_id,
            "raw_metadata": directive.raw_metadata,
            "duplicate_key": meta.duplicate_key,
            "idempotency_owner": new.idempotency_owner,
            "idempotency_key": new.idempotency_key,
            "request_hash": new.request_hash,
            "submitted_by": directive.submitted_by,
            "correlation_id": new.correlation_id,
            "revision": directive.revision,
            "replaces": directive.replaces,
            "replaced_by": directive.replaced_by,
        }

    # -- reads ----------------------------------------------------------------------------------------

    def set_status(
        self,
        directive_id: str,
        *,
        expected: str,
        status: str,
        event: Envelope,
        exchange: str,
        evidence: StoredAttachment | None = None,
        values: dict[str, Any] | None = None,
        link: tuple[str, dict[str, Any]] | None = None,
        statuses: Sequence[NewStatus] = (),
    ) -> bool:
        """Moves the directive from `expected` to `status` with its event, the file that asked for it as
        one more of its files, and the statuses its sender is told (15, each once), in one transaction;
        False (nothing written) if it was not `expected`.

        `values`: more columns of the directive to set; `link`: (another directive's id, its columns to set)
        in the same transaction (a replacement names the replaced directive and is named by it)."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                sa.update(directives)
                .where(directives.c.id == directive_id, directives.c.status == expected)
                .values(status=status, **(values or {}))
            ).rowcount
            if changed != 1:
                return False
            if link is not None:
                conn.execute(sa.update(directives).where(directives.c.id == link[0]).values(**link[1]))
            if evidence is not None:
                _attach(conn, directive_id, [evidence])
            add_to_outbox(conn, outbox, event, exchange=exchange)
            # Last, as every status writer does: the directive's row, then the cursor row.
            append_new_statuses(conn, statuses)
        return True

    def update(
        self,
        directive_id: str,
        *,
        revision: int,
        values: dict[str, Any],
        record: dict[str, Any],
        files: Sequence[StoredAttachment],
        event: Envelope,
        exchange: str,
        statuses: Sequence[NewStatus] = (),
    ) -> bool:
        """Makes revision `revision` + 1 of a registered directive at `revision`: its new column values, the
        revision's record, its added files, its event and the statuses its sender is told (15) in one
        transaction; False (nothing written) if the directive is no longer registered at that revision."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                sa.update(directives)
                .where(
                    directives.c.id == directive_id,
                    directives.c.status == DirectiveStatus.REGISTERED.value,
                    directives.c.revision == revision,
                )
                .values(revision=revision + 1, **values)
            ).rowcount
            if changed != 1:
                return False
            _attach(conn, directive_id, files)
            conn.execute(
                sa.insert(directive_revisions),
                {"directive_id": directive_id, "revision": revision + 1, **record},
            )
            add_to_outbox(conn, outbox, event, exchange=exchange)
            append_new_statuses(conn, statuses)
        return True

    def revisions(self, directive_id: str) -> list[dict[str, Any]]:
        """The directive's updates (revision 2 on), oldest first."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(directive_revisions)
                    .where(directive_revisions.c.directive_id == directive_id)
                    .order_by(directive_revisions.c.revision)
                )
                .mappings()
                .all()
            )
        return [{**row, "at": _aware(row["at"])} for row in rows]

    def find_by_external_id(self, issuer_code: str, external_id: str) -> Directive | None:
        """The directive an exchange packet names by its sender and DocumentId."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(directives.c.id).where(
                    directives.c.external_id == external_id, directives.c.issuer_code == issuer_code
                )
            ).first()
        return None if row is None else self.get(str(row.id))

    def get(self, directive_id: str) -> Directive | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(directives).where(directives.c.id == directive_id)).mappings().first()
            )
            if row is None:
                return None
            return self._hydrate(conn, [row])[0]

    def find_idempotent(self, owner: str, key: str) -> IdempotentHit | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(directives).where(
                        (directives.c.idempotency_owner == owner) & (directives.c.idempotency_key == key)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            return IdempotentHit(directive=self._hydrate(conn, [row])[0], request_hash=row["request_hash"])

    def find_duplicate(self, duplicate_key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(directives.c.id).where(directives.c.duplicate_key == duplicate_key)
            ).scalar_one_or_none()
            return None if value is None else str(value)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(directives)).scalar_one())

    def list(self, query: RegisterQuery, *, page: int, per_page: int) -> tuple[list[Directive], int]:
        condition = self._conditions(query)
        with self.engine.connect() as conn:
            total = int(
                conn.execute(sa.select(sa.func.count()).select_from(directives).where(condition)).scalar_one()
            )
            rows = (
                conn.execute(
                    sa.select(directives)
                    .where(condition)
                    .order_by(directives.c.received_at.desc(), directives.c.arrival_number.desc())
                    .limit(per_page)
                    .offset((page - 1) * per_page)
                )
                .mappings()
                .all()
            )
            return self._hydrate(conn, rows), total

    def iter_register(self, query: RegisterQuery, *, batch: int = 500) -> Iterator[Directive]:
        """The register in arrival order (year, then số đến), in batches so exports stay small in memory."""
        condition = self._conditions(query)
        offset = 0
        while True:
            with self.engine.connect() as conn:
                rows = (
                    conn.execute(
                        sa.select(directives)
                        .where(condition)
                        .order_by(directives.c.arrival_year, directives.c.arrival_number, directives.c.id)
                        .limit(batch)
                        .offset(offset)
                    )
                    .mappings()
                    .all()
                )
                found = self._hydrate(conn, rows)
            yield from found
            if len(rows) < batch:
                return
            offset += batch

    @staticmethod
    def _conditions(query: RegisterQuery) -> sa.ColumnElement[bool]:
        c = directives.c
        parts: list[sa.ColumnElement[bool]] = []
        if query.issuer:
            parts.append(c.issuer_folded.like(_like(fold(query.issuer)), escape="\\"))
        if query.number_value is not None:
            parts.append(c.code_number_value == query.number_value)
        if query.notation:
            parts.append(c.notation_key == query.notation.casefold())
        if query.document_type:
            parts.append(c.document_type == query.document_type)
        if query.arrival_from is not None:
            parts.append(c.arrival_date >= query.arrival_from)
        if query.arrival_to is not None:
            parts.append(c.arrival_date <= query.arrival_to)
        if query.q:
            parts.append(c.subject_folded.like(_like(fold(query.q)), escape="\\"))
        if query.year is not None:
            parts.append(c.arrival_year == query.year)
        if query.submitted_by is not None:
            parts.append(c.submitted_by == query.submitted_by)
        if query.urgency:
            parts.append(c.urgency == query.urgency)
        if query.status:
            parts.append(c.status == query.status)
        if query.due_from is not None:
            parts.append(c.due_date >= query.due_from)
        if query.due_to is not None:
            parts.append(c.due_date <= query.due_to)
        if query.unfinished:
            done = sa.exists().where(
                status_updates.c.directive_id == c.id,
                status_updates.c.status_code == StatusCode.COMPLETED.value,
            )
            parts.append(sa.and_(c.status == DirectiveStatus.REGISTERED.value, sa.not_(done)))
        return sa.and_(sa.true(), *parts)

    def _hydrate(self, conn: Connection, rows: Sequence[RowMapping]) -> list[Directive]:
        ids = [row["id"] for row in rows]
        files: dict[str, list[StoredAttachment]] = {i: [] for i in ids}
        if ids:
            for a in conn.execute(
                sa.select(attachments)
                .where(attachments.c.directive_id.in_(ids))
                .order_by(attachments.c.directive_id, attachments.c.position)
            ).mappings():
                files[a["directive_id"]].append(
                    StoredAttachment(
                        id=a["id"],
                        filename=a["filename"],
                        content_type=a["content_type"],
                        size=int(a["size"]),
                        sha256=a["sha256"],
                        bucket=a["bucket"],
                        key=a["key"],
                    )
                )
        return [self._directive(row, tuple(files[row["id"]])) for row in rows]

    @staticmethod
    def _directive(row: RowMapping, files: tuple[StoredAttachment, ...]) -> Directive:
        signer = row["signer"]
        meta = DirectiveMetadata(
            issuer=Issuer(name=row["issuer_name"], code=row["issuer_code"]),
            number=DocumentNumber(
                code_number=row["code_number"], code_notation=row["code_notation"], form=row["number_form"]
            ),
            document_type=row["document_type"],
            issued_date=row["issued_date"],
            subject=row["subject"],
            place=row["place"],
            content=row["content"],
            signer=None if signer is None else Signer(**signer),
            urgency=Urgency(row["urgency"]),
            confidentiality=Confidentiality(row["confidentiality"]),
            due_date=row["due_date"],
            page_amount=row["page_amount"],
            to_places=tuple(row["to_places"] or ()),
            external_id=row["external_id"],
        )
        return Directive(
            id=row["id"],
            organisation=row["organisation"],
            arrival_number=row["arrival_number"],
            arrival_date=row["arrival_date"],
            received_at=_aware(row["received_at"]),
            metadata=meta,
            attachments=files,
            status=DirectiveStatus(row["status"]),
            submitted_by=row["submitted_by"],
            raw_metadata=row["raw_metadata"],
            revision=int(row["revision"] or 1),
            replaces=row["replaces"],
            replaced_by=row["replaced_by"],
        )
