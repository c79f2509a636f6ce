"""Turns a POST /v1/directives request (multipart or JSON) into a Submission; refusals become problems."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from flask import Request
from marshmallow import Schema, ValidationError
from shared.problems import Problem

from intake.api.multipart import MalformedMultipart, read_parts
from intake.api.schemas import DirectiveJsonIn, DirectiveMetadataIn
from intake.domain.models import DirectiveMetadata, Signer, new_metadata
from intake.handlers import Submission, Upload

JSON_TYPES = frozenset({"application/json"})
MULTIPART = "multipart/form-data"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages -> {"issuer.name": [...], "attachments[0].filename": [...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix or "_schema"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for name, texts in _flatten(value, path).items():
                out.setdefault(name, []).extend(texts)
    elif isinstance(messages, list | tuple):
        out[prefix or "_schema"] = [str(m) for m in messages]
    else:
        out[prefix or "_schema"] = [str(messages)]
    return out


def invalid(errors: Mapping[str, list[str]], detail: str | None = None) -> Problem:
    count = sum(len(v) for v in errors.values())
    return Problem(
        422,
        "Validation failed",
        detail or f"The request has {count} invalid field value(s).",
        type="validation-error",
        errors=dict(errors),
    )


@functools.cache
def _schema(kind: type[Schema]) -> Schema:
    # One instance per schema class and process, made on first use: constructing a marshmallow schema
    # (binding every field) costs more than loading with it, and instances hold no per-request state.
    return kind()


def _load(schema: Schema, data: Any) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise invalid(_flatten(exc.messages)) from None
    return loaded


def _metadata(loaded: Mapping[str, Any]) -> DirectiveMetadata:
    signer = loaded.get("signer")
    issuer = loaded["issuer"]
    return new_metadata(
        issuer_name=issuer["name"],
        issuer_code=issuer.get("code"),
        number=loaded["number"],
        document_type=loaded.get("document_type"),
        issued_date=loaded["issued_date"],
        subject=loaded["subject"],
        place=loaded.get("place"),
        content=loaded.get("content"),
        signer=Signer(**signer) if signer else None,
        urgency=loaded["urgency"],
        confidentiality=loaded["confidentiality"],
        due_date=loaded.get("due_date"),
        page_amount=loaded.get("page_amount"),
        to_places=loaded.get("to_places") or [],
        external_id=loaded.get("external_id"),
    )


def idempotency_key(request: Request) -> str | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None or value == "":
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise invalid({IDEMPOTENCY_HEADER: ["must be 1–255 visible ASCII characters, e.g. a UUID"]})
    return value


def _from_json(request: Request) -> tuple[dict[str, Any], str, list[Upload]]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise invalid({"_body": ["the body must be a JSON object with the directive metadata"]})
    loaded = _load(_schema(DirectiveJsonIn), body)
    uploads: list[Upload] = []
    for index, item in enumerate(loaded.pop("attachments")):
        try:
            data = base64.b64decode(item["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid({f"attachments[{index}].content_base64": ["not valid base64"]}) from None
        uploads.append(
            Upload(
                field=f"attachments[{index}]",
                filename=item["filename"],
                content_type=item["content_type"],
                data=data,
            )
        )
    # The raw metadata kept for the record is what the sender wrote, minus the (large) file contents.
    raw = {key: value for key, value in body.items() if key != "attachments"}
    return loaded, json.dumps(raw, ensure_ascii=False), uploads


def _from_multipart(request: Request) -> tuple[dict[str, Any], str, list[Upload]]:
    try:
        parts = read_parts(request)
    except MalformedMultipart as exc:
        raise invalid({"_body": [str(exc)]}) from None
    metadata = next((part for part in parts if part.name == "metadata"), None)
    text: str | None = None
    if metadata is not None:
        try:
            text = metadata.data.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid({"metadata": ["must be UTF-8 encoded JSON"]}) from None
    if text is None or not text.strip():
        raise invalid({"metadata": ["a `metadata` part with the directive metadata as JSON is required"]})
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise invalid({"metadata": [f"not valid JSON: {exc}"]}) from None
    if not isinstance(body, dict):
        raise invalid({"metadata": ["must be a JSON object"]})
    loaded = _load(_schema(DirectiveMetadataIn), body)
    uploads = [
        Upload(
            field=f"files[{index}]",
            filename=part.filename or "",
            content_type=part.content_type or "application/octet-stream",
            data=part.data,
        )
        for index, part in enumerate(part for part in parts if part.name == "files" and part.is_file)
    ]
    return loaded, text, uploads


def read_submission(request: Request, *, submitted_by: str) -> Submission:
    """Parses and validates the request; raises Problem (415/422) or an InvalidMetadata domain error."""
    key = idempotency_key(request)
    mimetype = request.mimetype
    if mimetype in JSON_TYPES:
        loaded, raw, uploads = _from_json(request)
    elif mimetype == MULTIPART:
        loaded, raw, uploads = _from_multipart(request)
    else:
        raise Problem(
            415,
            "Unsupported Media Type",
            f"send multipart/form-data (metadata + files) or application/json, not {mimetype or 'no type'}",
            type="unsupported-media-type",
        )
    return Submission(
        metadata=_metadata(loaded),
        raw_metadata=raw,
        uploads=tuple(uploads),
        submitted_by=submitted_by,
        idempotency_key=key,
    )
