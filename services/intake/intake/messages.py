"""Wire schema of intake.directive_registered.v1, the event intake emits (strict: unknown fields refused)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from marshmallow import RAISE, Schema, fields, validate
from shared.envelope import Envelope
from shared.naming import events_exchange, routing_key

from intake.domain.enums import Confidentiality, Urgency
from intake.domain.models import Directive

SERVICE = "intake"
DIRECTIVE_REGISTERED = "directive_registered"
DIRECTIVE_REGISTERED_TYPE = f"{SERVICE}.{DIRECTIVE_REGISTERED}"
DIRECTIVE_REGISTERED_VERSION = 1
EXCHANGE = events_exchange(SERVICE)
DIRECTIVE_REGISTERED_KEY = routing_key(SERVICE, DIRECTIVE_REGISTERED, DIRECTIVE_REGISTERED_VERSION)
DIRECTIVE_REVOKED = "directive_revoked"
DIRECTIVE_REVOKED_TYPE = f"{SERVICE}.{DIRECTIVE_REVOKED}"


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class IssuerWire(_Strict):
    name = fields.String(required=True)
    code = fields.String(required=True, allow_none=True)


class SignerWire(_Strict):
    competence = fields.String(required=True, allow_none=True)
    position = fields.String(required=True, allow_none=True)
    full_name = fields.String(required=True, allow_none=True)


class DirectiveMetadataWire(_Strict):
    issuer = fields.Nested(IssuerWire, required=True)
    number = fields.String(required=True)
    code_number = fields.String(required=True)
    code_notation = fields.String(required=True)
    document_type = fields.String(required=True)
    issued_date = fields.Date(required=True)
    place = fields.String(required=True, allow_none=True)
    subject = fields.String(required=True)
    content = fields.String(required=True, allow_none=True)
    signer = fields.Nested(SignerWire, required=True, allow_none=True)
    urgency = fields.String(required=True, validate=validate.OneOf([u.value for u in Urgency]))
    confidentiality = fields.String(
        required=True, validate=validate.OneOf([c.value for c in Confidentiality])
    )
    due_date = fields.Date(required=True, allow_none=True)
    page_amount = fields.Integer(required=True, allow_none=True)
    to_places = fields.List(fields.String(), required=True)
    external_id = fields.String(required=True, allow_none=True)


class AttachmentWire(_Strict):
    id = fields.String(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True, validate=validate.Range(min=0))
    sha256 = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))
    bucket = fields.String(required=True)
    key = fields.String(required=True)


class DirectiveRegisteredWire(_Strict):
    """Payload of intake.directive_registered.v1 (docs/design.md, "Events")."""

    directive_id = fields.String(required=True)
    arrival_number = fields.Integer(required=True, validate=validate.Range(min=1))
    arrival_date = fields.Date(required=True)
    received_at = fields.AwareDateTime(required=True)
    metadata = fields.Nested(DirectiveMetadataWire, required=True)
    attachments = fields.List(fields.Nested(AttachmentWire), required=True)


@functools.cache
def _wire_schema() -> DirectiveRegisteredWire:
    # One instance per process (made on first use): building a marshmallow schema costs far more than
    # validating with it.
    return DirectiveRegisteredWire()


def directive_registered_payload(directive: Directive) -> dict[str, Any]:
    """The event payload of a registered directive, checked against the wire schema before it leaves."""
    meta = directive.metadata
    signer = meta.signer
    payload: dict[str, Any] = {
        "directive_id": directive.id,
        "arrival_number": directive.arrival_number,
        "arrival_date": directive.arrival_date.isoformat(),
        "received_at": directive.received_at.isoformat(),
        "metadata": {
            "issuer": {"name": meta.issuer.name, "code": meta.issuer.code},
            "number": meta.number.display,
            "code_number": meta.number.code_number,
            "code_notation": meta.number.code_notation,
            "document_type": meta.document_type,
            "issued_date": meta.issued_date.isoformat(),
            "place": meta.place,
            "subject": meta.subject,
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
            "due_date": meta.due_date.isoformat() if meta.due_date else None,
            "page_amount": meta.page_amount,
            "to_places": list(meta.to_places),
            "external_id": meta.external_id,
        },
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "bucket": a.bucket,
                "key": a.key,
            }
            for a in directive.attachments
        ],
    }
    errors = _wire_schema().validate(payload)
    if errors:
        raise ValueError(f"directive_registered payload breaks its wire schema: {errors}")
    return payload


def directive_registered_envelope(directive: Directive) -> Envelope:
    return directive_registered_event(directive)(directive)


def directive_registered_event(provisional: Directive) -> Callable[[Directive], Envelope]:
    """Checks the event of `provisional` against the wire schema now; returns what makes the event of the
    numbered directive later.

    A registration takes its arrival number inside its transaction, and from then until the commit the
    year's counter row is locked: every other registration waits. The directive that comes out of the
    numbering differs from `provisional` only in that number (the database gives it, always >= 1), so the
    payload is built and checked here, before the lock, and only the number is set under it.
    """
    checked = directive_registered_payload(dataclasses.replace(provisional, arrival_number=1))

    def event(directive: Directive) -> Envelope:
        if directive.id != provisional.id or directive.arrival_number < 1:
            raise ValueError(f"not the numbered form of directive {provisional.id}: {directive.id}")
        return Envelope.new(
            DIRECTIVE_REGISTERED_TYPE,
            {**checked, "arrival_number": directive.arrival_number},
            producer=SERVICE,
            version=DIRECTIVE_REGISTERED_VERSION,
        )

    return event


class DirectiveRevokedWire(_Strict):
    """Payload of intake.directive_revoked.v1: which directive, why, when and by whom; `packet` names the
    revoking edXML packet's staged copy when the revocation came over the exchange."""

    directive_id = fields.String(required=True)
    arrival_number = fields.Integer(required=True)
    number = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    revoked_at = fields.AwareDateTime(required=True)
    revoked_by = fields.String(required=True)
    packet = fields.Nested(AttachmentWire, required=True, allow_none=True)


def directive_revoked_event(
    directive: Directive, *, reason: str, at: datetime, by: str, packet: dict[str, Any] | None = None
) -> Envelope:
    payload = {
        "directive_id": directive.id,
        "arrival_number": directive.arrival_number,
        "number": directive.metadata.number.display,
        "reason": reason,
        "revoked_at": at.isoformat(),
        "revoked_by": by,
        "packet": packet,
    }
    errors = DirectiveRevokedWire().validate(payload)
    if errors:
        raise ValueError(f"directive_revoked payload breaks its wire schema: {errors}")
    return Envelope.new(DIRECTIVE_REVOKED_TYPE, payload, producer=SERVICE, version=1)


DIRECTIVE_UPDATED = "directive_updated"
DIRECTIVE_UPDATED_TYPE = f"{SERVICE}.{DIRECTIVE_UPDATED}"
DIRECTIVE_REPLACED = "directive_replaced"
DIRECTIVE_REPLACED_TYPE = f"{SERVICE}.{DIRECTIVE_REPLACED}"


class DirectiveUpdatedWire(_Strict):
    """Payload of intake.directive_updated.v1: the directive's new revision — what changed (`changes`,
    field → {from, to}; added files under `attachments`), the whole metadata as it is now, the files added,
    when, by whom and why; `packet` names the update packet's staged copy when it came over the exchange."""

    directive_id = fields.String(required=True)
    arrival_number = fields.Integer(required=True)
    number = fields.String(required=True)
    revision = fields.Integer(required=True, validate=validate.Range(min=2))
    changes = fields.Dict(keys=fields.String(), values=fields.Dict(), required=True)
    metadata = fields.Nested(DirectiveMetadataWire, required=True)
    attachments_added = fields.List(fields.Nested(AttachmentWire), required=True)
    reason = fields.String(required=True, allow_none=True, validate=validate.Length(max=2000))
    updated_at = fields.AwareDateTime(required=True)
    updated_by = fields.String(required=True)
    packet = fields.Nested(AttachmentWire, required=True, allow_none=True)


def attachment_wire(attachment: Any) -> dict[str, Any]:
    return {
        "id": attachment.id,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "bucket": attachment.bucket,
        "key": attachment.key,
    }


def directive_updated_event(
    directive: Directive,
    *,
    changes: dict[str, dict[str, Any]],
    added: list[dict[str, Any]],
    reason: str | None,
    at: datetime,
    by: str,
    packet: dict[str, Any] | None = None,
) -> Envelope:
    """The event of `directive` as its new revision made it (revision and metadata already the new ones)."""
    payload = {
        "directive_id": directive.id,
        "arrival_number": directive.arrival_number,
        "number": directive.metadata.number.display,
        "revision": directive.revision,
        "changes": changes,
        "metadata": directive_registered_payload(directive)["metadata"],
        "attachments_added": added,
        "reason": reason,
        "updated_at": at.isoformat(),
        "updated_by": by,
        "packet": packet,
    }
    errors = DirectiveUpdatedWire().validate(payload)
    if errors:
        raise ValueError(f"directive_updated payload breaks its wire schema: {errors}")
    return Envelope.new(DIRECTIVE_UPDATED_TYPE, payload, producer=SERVICE, version=1)


class ReplacementWire(_Strict):
    directive_id = fields.String(required=True)
    arrival_number = fields.Integer(required=True)
    number = fields.String(required=True)


class DirectiveReplacedWire(_Strict):
    """Payload of intake.directive_replaced.v1: `directive_id` was replaced by `replacement` (registered
    and announced as a directive of its own), when, by whom and why."""

    directive_id = fields.String(required=True)
    arrival_number = fields.Integer(required=True)
    number = fields.String(required=True)
    replacement = fields.Nested(ReplacementWire, required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    replaced_at = fields.AwareDateTime(required=True)
    replaced_by = fields.String(required=True)


def directive_replaced_event(
    directive: Directive, replacement: Directive, *, reason: str, at: datetime, by: str
) -> Envelope:
    payload = {
        "directive_id": directive.id,
        "arrival_number": directive.arrival_number,
        "number": directive.metadata.number.display,
        "replacement": {
            "directive_id": replacement.id,
            "arrival_number": replacement.arrival_number,
            "number": replacement.metadata.number.display,
        },
        "reason": reason,
        "replaced_at": at.isoformat(),
        "replaced_by": by,
    }
    errors = DirectiveReplacedWire().validate(payload)
    if errors:
        raise ValueError(f"directive_replaced payload breaks its wire schema: {errors}")
    return Envelope.new(DIRECTIVE_REPLACED_TYPE, payload, producer=SERVICE, version=1)
