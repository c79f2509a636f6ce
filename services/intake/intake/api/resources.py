"""JSON shapes of directives as the API shows them (dumped through the schemas in intake.api.schemas)."""

from __future__ import annotations

import json
from typing import Any

from intake.domain.models import Directive

API_PREFIX = "/v1"


def directive_url(directive_id: str) -> str:
    return f"{API_PREFIX}/directives/{directive_id}"


def attachment_url(directive_id: str, attachment_id: str) -> str:
    return f"{directive_url(directive_id)}/attachments/{attachment_id}"


def directive_resource(directive: Directive) -> dict[str, Any]:
    meta = directive.metadata
    signer = meta.signer
    return {
        "id": directive.id,
        "status": directive.status.value,
        "organisation": directive.organisation,
        "arrival_number": directive.arrival_number,
        "arrival_date": directive.arrival_date,
        "received_at": directive.received_at,
        "issuer": {"name": meta.issuer.name, "code": meta.issuer.code},
        "number": meta.number.display,
        "code_number": meta.number.code_number,
        "code_notation": meta.number.code_notation,
        "document_type": meta.document_type,
        "issued_date": meta.issued_date,
        "place": meta.place,
        "subject": meta.subject,
        "content": meta.content,
        "signer": None
        if signer is None
        else {"competence": signer.competence, "position": signer.position, "full_name": signer.full_name},
        "urgency": meta.urgency.value,
        "confidentiality": meta.confidentiality.value,
        "due_date": meta.due_date,
        "page_amount": meta.page_amount,
        "to_places": list(meta.to_places),
        "external_id": meta.external_id,
        "attachments": [
            {
                "id": a.id,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "url": attachment_url(directive.id, a.id),
            }
            for a in directive.attachments
        ],
        "url": directive_url(directive.id),
        "exchange": _exchange(directive),
        "revision": directive.revision,
        "replaces": None if directive.replaces is None else _link(directive.replaces),
        "replaced_by": None if directive.replaced_by is None else _link(directive.replaced_by),
    }


def _link(directive_id: str) -> dict[str, str]:
    return {"id": directive_id, "url": directive_url(directive_id)}


def _exchange(directive: Directive) -> dict[str, Any] | None:
    """What the document exchange said beyond the metadata (edXML packets only): recipients, trace, the
    XML signature's verdict, links to other documents."""
    try:
        raw = json.loads(directive.raw_metadata or "{}")
    except ValueError:
        return None
    found = raw.get("exchange") if isinstance(raw, dict) else None
    return found if isinstance(found, dict) else None
