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
from shared.json_text import loads_checked
from shared.problems import Problem

from intake.adapters.spool import Blob
from intake.api.json_stream import LONG_STRING, InvalidJsonBody, read_json_stream
from intake.api.multipart import DEFAULT_MAX_FIELD_SIZE, MalformedMultipart, Part, read_parts
from intake.api.schemas import DirectiveJsonIn, DirectiveMetadataIn
from intake.domain.models import DirectiveMetadata, Signer, new_metadata
from intake.handlers import Submission, Upload

JSON_TYPES = frozenset({"application/json"})
MULTIPART = "multipart/form-data"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_ATTACHMENT_CONTENT = re.compile(r"^attachments\[(\d+)\]\.content_base64$")


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


def load_or_invalid(schema: Schema, data: Any) -> dict[str, Any]:
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
    try:
        streamed = read_json_stream(request.stream.read)
    except InvalidJsonBody as exc:
        raise invalid({"_body": [str(exc)]}) from None
    try:
        body = streamed.document
        if not isinstance(body, dict):
            raise invalid({"_body": ["the body must be a JSON object with the directive metadata"]})
        too_long = [path for path in streamed.spooled if not _ATTACHMENT_CONTENT.match(path)]
        if too_long:
            raise invalid({path: [f"too long (over {LONG_STRING} characters)"] for path in too_long})
        loaded = load_or_invalid(_schema(DirectiveJsonIn), body)
        uploads: list[Upload] = []
        for index, item in enumerate(loaded.pop("attachments")):
            name = f"attachments[{index}].content_base64"
            spooled = streamed.spooled.get(name)
            data: Blob | bytes
            if spooled is not None:
                if spooled.error is not None:
                    raise invalid({name: [spooled.error]})
                data = spooled.blob
            else:
                try:
                    data = base64.b64decode(item["content_base64"], validate=True)
                except (binascii.Error, ValueError):
                    raise invalid({name: ["not valid base64"]}) from None
            uploads.append(
                Upload(
                    field=f"attachments[{index}]",
                    filename=item["filename"],
                    content_type=item["content_type"],
                    data=data,
                )
            )
    except BaseException:
        streamed.close()
        raise
    # The raw metadata kept for the record is what the sender wrote, minus the (large) file contents.
    raw = {key: value for key, value in body.items() if key != "attachments"}
    return loaded, json.dumps(raw, ensure_ascii=False), uploads


def _metadata_text(part: Part | None) -> str | None:
    if part is None:
        return None
    # Some senders attach the metadata as a file part; it is read back from its (small) blob then.
    data = part.data if part.blob is None else part.blob.reader().read(DEFAULT_MAX_FIELD_SIZE + 1)
    if len(data) > DEFAULT_MAX_FIELD_SIZE:
        raise invalid({"metadata": [f"over {DEFAULT_MAX_FIELD_SIZE} bytes"]})
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid({"metadata": ["must be UTF-8 encoded JSON"]}) from None


def _from_multipart(request: Request) -> tuple[dict[str, Any], str, list[Upload]]:
    try:
        parts = read_parts(request)
    except MalformedMultipart as exc:
        raise invalid({"_body": [str(exc)]}) from None
    try:
        text = _metadata_text(next((part for part in parts if part.name == "metadata"), None))
        if text is None or not text.strip():
            raise invalid({"metadata": ["a `metadata` part with the directive metadata as JSON is required"]})
        try:
            body = loads_checked(text)
        except ValueError as exc:
            raise invalid({"metadata": [f"not valid JSON: {exc}"]}) from None
        if not isinstance(body, dict):
            raise invalid({"metadata": ["must be a JSON object"]})
        loaded = load_or_invalid(_schema(DirectiveMetadataIn), body)
    except BaseException:
        for part in parts:
            if part.blob is not None:
                part.blob.close()
        raise
    uploads = [
        Upload(
            field=f"files[{index}]",
            filename=part.filename or "",
            content_type=part.content_type or "application/octet-stream",
            data=part.blob if part.blob is not None else part.data,
        )
        for index, part in enumerate(part for part in parts if part.name == "files" and part.is_file)
    ]
    for part in parts:
        if part.blob is not None and part.name != "files":
            part.blob.close()
    return loaded, text, uploads


def close_uploads(uploads: list[Upload] | tuple[Upload, ...]) -> None:
    """Removes the spooled files of a submission (the request is over)."""
    for upload in uploads:
        upload.blob.close()


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
    try:
        metadata = _metadata(loaded)
    except BaseException:
        close_uploads(uploads)
        raise
    return Submission(
        metadata=metadata,
        raw_metadata=raw,
        uploads=tuple(uploads),
        submitted_by=submitted_by,
        idempotency_key=key,
    )
