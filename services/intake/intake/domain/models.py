"""Directive (văn bản đến) metadata and the rules that make submitted metadata acceptable."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from intake.domain.document_types import normalise_document_type, type_from_abbreviation
from intake.domain.enums import Confidentiality, DirectiveStatus, Urgency
from intake.domain.errors import InvalidMetadata, StateSecretRefused
from intake.domain.numbers import DocumentNumber, notation_type_abbreviation, parse_number
from intake.domain.text import collapse, fold

AGENCY_CODE = re.compile(r"^[0-9A-Z.]{1,35}$")
MAX_ISSUER_NAME = 200
MAX_SUBJECT = 500
MAX_TO_PLACES = 1000


@dataclass(frozen=True)
class Issuer:
    name: str
    code: str | None = None


@dataclass(frozen=True)
class Signer:
    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass(frozen=True)
class DirectiveMetadata:
    issuer: Issuer
    number: DocumentNumber
    document_type: str
    issued_date: date
    subject: str
    place: str | None = None
    content: str | None = None
    signer: Signer | None = None
    urgency: Urgency = Urgency.THUONG
    confidentiality: Confidentiality = Confidentiality.THUONG
    due_date: date | None = None
    page_amount: int | None = None
    to_places: tuple[str, ...] = ()
    external_id: str | None = None

    @property
    def duplicate_key(self) -> str:
        """Same issuer + number + issued date means the same document (numbers compare numerically)."""
        return "|".join(
            (
                fold(self.issuer.name),
                str(self.number.value),
                self.number.code_notation.casefold(),
                self.issued_date.isoformat(),
            )
        )


@dataclass(frozen=True)
class StoredAttachment:
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    bucket: str
    key: str


@dataclass(frozen=True)
class Directive:
    id: str
    organisation: str
    arrival_number: int
    arrival_date: date
    received_at: datetime
    metadata: DirectiveMetadata
    attachments: tuple[StoredAttachment, ...] = ()
    status: DirectiveStatus = DirectiveStatus.REGISTERED
    submitted_by: str | None = None
    raw_metadata: str = "{}"
    # 1 when registered, one more per update; the directive this one replaced, and the one that replaced it.
    revision: int = 1
    replaces: str | None = None
    replaced_by: str | None = None


def _optional(text: str | None) -> str | None:
    if text is None:
        return None
    cleaned = collapse(text)
    return cleaned or None


def ensure_sendable(confidentiality: str) -> Confidentiality:
    """Only non-secret documents may be registered; state secrets are refused with the reason."""
    try:
        level = Confidentiality(confidentiality)
    except ValueError:
        raise InvalidMetadata(
            f"must be one of {', '.join(c.value for c in Confidentiality)}", field="confidentiality"
        ) from None
    if level is not Confidentiality.THUONG:
        raise StateSecretRefused(
            f"'{level.value}' documents contain state secrets and must not be sent over this system: "
            "Luật Bảo vệ bí mật nhà nước forbids transmitting them over internet-connected networks and "
            "QCVN 102:2016/BTTTT excludes them from electronic document exchange; deliver them by the "
            "secret-document channel instead"
        )
    return level


def new_metadata(
    *,
    issuer_name: str,
    number: str,
    issued_date: date,
    subject: str,
    issuer_code: str | None = None,
    document_type: str | None = None,
    place: str | None = None,
    content: str | None = None,
    signer: Signer | None = None,
    urgency: str = Urgency.THUONG.value,
    confidentiality: str = Confidentiality.THUONG.value,
    due_date: date | None = None,
    page_amount: int | None = None,
    to_places: tuple[str, ...] | list[str] = (),
    external_id: str | None = None,
) -> DirectiveMetadata:
    """Applies the intake rules to submitted values; raises an InvalidMetadata naming the field."""
    level = ensure_sendable(confidentiality)
    name = collapse(issuer_name)
    if not name:
        raise InvalidMetadata("the issuing organisation's name is required", field="issuer.name")
    if len(name) > MAX_ISSUER_NAME:
        raise InvalidMetadata(f"longer than {MAX_ISSUER_NAME} characters", field="issuer.name")
    code = issuer_code.strip() if issuer_code else None
    if code is not None and not AGENCY_CODE.match(code):
        raise InvalidMetadata(
            "an agency identifier (mã định danh) is 1–35 characters of 0-9, A-Z and '.', e.g. 000.00.00.G22",
            field="issuer.code",
        )
    parsed = parse_number(number)
    kind = (
        normalise_document_type(document_type)
        if document_type is not None and document_type.strip()
        else type_from_abbreviation(notation_type_abbreviation(parsed))
    )
    summary = collapse(subject)
    if not summary:
        raise InvalidMetadata("the subject (trích yếu) is required", field="subject")
    if len(summary) > MAX_SUBJECT:
        raise InvalidMetadata(
            f"the subject (trích yếu) is longer than {MAX_SUBJECT} characters", field="subject"
        )
    try:
        priority = Urgency(urgency)
    except ValueError:
        raise InvalidMetadata(
            f"must be one of {', '.join(u.value for u in Urgency)}", field="urgency"
        ) from None
    if due_date is not None and due_date < issued_date:
        raise InvalidMetadata("the due date is before the issued date", field="due_date")
    if page_amount is not None and page_amount < 1:
        raise InvalidMetadata("must be 1 or more", field="page_amount")
    places = tuple(p for p in (collapse(p) for p in to_places) if p)
    if len("; ".join(places)) > MAX_TO_PLACES:
        raise InvalidMetadata(
            f"the recipients list is longer than {MAX_TO_PLACES} characters", field="to_places"
        )
    return DirectiveMetadata(
        issuer=Issuer(name=name, code=code),
        number=parsed,
        document_type=kind,
        issued_date=issued_date,
        subject=summary,
        place=_optional(place),
        content=content.strip() if content and content.strip() else None,
        signer=signer,
        urgency=priority,
        confidentiality=level,
        due_date=due_date,
        page_amount=page_amount,
        to_places=places,
        external_id=_optional(external_id),
    )
