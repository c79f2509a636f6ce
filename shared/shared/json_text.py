"""JSON request text that can be stored: no NUL characters, no unpaired UTF-16 surrogates, bounded nesting.

JSON lets a sender write `\\u0000` and a lone `\\ud800`. Python decodes both into a str, and the request
then failed deep inside a handler: PostgreSQL refuses NUL in text, and no UTF-8 encoder takes a lone
surrogate (both were 500s). They are refused as the body is read, naming the field, for every service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from shared.problems import Problem

__all__ = [
    "MAX_JSON_DEPTH",
    "check_json_text",
    "find_unstorable",
    "loads_checked",
    "streams_own_body",
    "view_streams_own_body",
]

# Far deeper than any docroute document (metadata nests three levels), far shallower than the interpreter's
# recursion limit, so depth is refused with a message instead of a RecursionError.
MAX_JSON_DEPTH = 64
# Only a body that contains one of these escapes can decode to an unstorable str; others skip the walk.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abAB][0-9a-fA-F]{2}|[dD][c-fC-F][0-9a-fA-F]{2})")
_SURROGATES = re.compile("[\ud800-\udfff]")


def _flaw(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain a NUL character"
    if _SURROGATES.search(text):
        return "must not contain an unpaired UTF-16 surrogate (invalid Unicode)"
    return None


def find_unstorable(document: Any) -> tuple[str, str] | None:
    """The first (path, message) of a str in the document (key or value) that cannot be stored, or None.

    Also reports nesting deeper than MAX_JSON_DEPTH. Walks without recursion.
    """
    stack: list[tuple[str, Any, int]] = [("", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return path or "_body", f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(value, str):
            if (message := _flaw(value)) is not None:
                return path or "_body", message
        elif isinstance(value, dict):
            for key, inner in value.items():
                child = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and (message := _flaw(key)) is not None:
                    return child.encode("utf-8", "replace").decode("utf-8"), message
                stack.append((child, inner, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", inner, depth + 1) for index, inner in enumerate(value))
    return None


def _refuse(path: str, message: str) -> Problem:
    # The path may itself hold the offending character: keep what can be shown.
    shown = path.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")
    return Problem(
        400,
        "Invalid JSON text",
        f"{shown}: {message}",
        type="invalid-json-text",
        errors={shown: [message]},
    )


def check_json_text(raw: bytes) -> None:
    """Raises a 400 Problem when the JSON body decodes to text that cannot be stored (see module doc).

    A body that does not parse is left alone: the parser of the view reports that with its own message.
    """
    # Both tests run in C over the bytes; most bodies pass them and are never decoded twice.
    deep = raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
    if not deep and not _SUSPECT_ESCAPE.search(raw):
        return
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return
    if (found := find_unstorable(document)) is not None:
        raise _refuse(*found)


def loads_checked(text: str | bytes) -> Any:
    """json.loads that raises ValueError for invalid JSON or JSON nested too deeply, and a 400 Problem for
    unstorable text."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if (found := find_unstorable(document)) is not None:
        raise _refuse(*found)
    return document


_STREAMS_OWN_BODY = "_docroute_streams_own_body"


F = TypeVar("F", bound=Callable[..., Any])


def streams_own_body(view: F) -> F:
    """Marks a view that reads (and checks) its JSON body itself, as a stream: the shared layer then does not
    read the whole body into memory up front to check it."""
    setattr(view, _STREAMS_OWN_BODY, True)
    return view


def view_streams_own_body(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, _STREAMS_OWN_BODY, False))
