"""application/json submissions read as a stream: long strings (the base64 files) go to disk as they arrive.

The body is scanned chunk by chunk. Everything outside long strings (the metadata) is kept as a small
"skeleton" JSON text; each string longer than LONG_STRING characters is base64-decoded on the fly into a
SpooledBlob and stands in the skeleton as a placeholder. The skeleton is then parsed with the ordinary JSON
parser. A long string anywhere but `attachments[i].content_base64` is a field over its length limit.
"""

from __future__ import annotations

import binascii
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.json_text import find_unstorable
from shared.problems import Problem

from intake.adapters.spool import SpooledBlob

# No free-text field of a submission is anywhere near this long; base64 files usually are.
LONG_STRING = 64 * 1024
# The metadata, everything but the long strings: far above any real submission.
MAX_SKELETON = 2 * 1024 * 1024
READ_SIZE = 256 * 1024
_STRING_STOP = re.compile(rb'["\\]')
_PLACEHOLDER = "\x00docroute-spooled:"


class InvalidJsonBody(ValueError):
    """The body is not a JSON text the stream reader can take; the message says why."""


@dataclass
class SpooledString:
    """One long JSON string, base64-decoded into a blob while it is read; `error` when it was not base64."""

    blob: SpooledBlob = field(default_factory=SpooledBlob)
    error: str | None = None
    _pending: bytes = b""
    _padded: bool = False

    def feed(self, data: bytes) -> None:
        if self.error is not None or not data:
            return
        if b"\\" in data:
            # JSON may escape "/" as "\/" (PHP encoders do by default); any other escape is not base64.
            data = data.replace(b"\\/", b"/")
            if b"\\" in data:
                self.error = "not valid base64"
                return
        buffer = self._pending + data
        cut = len(buffer) - len(buffer) % 4
        if cut:
            if self._padded:
                self.error = "not valid base64 (data after the padding)"
                return
            try:
                decoded = binascii.a2b_base64(buffer[:cut], strict_mode=True)
            except binascii.Error:
                self.error = "not valid base64"
                return
            self._padded = b"=" in buffer[cut - 2 : cut]
            self.blob.write(decoded)
        self._pending = buffer[cut:]

    def finish(self) -> None:
        if self.error is None and self._pending:
            self.error = "not valid base64 (incorrect padding)"


@dataclass
class _Scanner:
    nonce: str
    long_string: int
    max_skeleton: int
    skeleton: bytearray = field(default_factory=bytearray)
    strings: list[SpooledString] = field(default_factory=list)
    _in_string: bool = False
    _escape: bool = False
    _current: bytearray = field(default_factory=bytearray)
    _spooled: SpooledString | None = None

    def _keep(self, data: bytes | bytearray) -> None:
        self.skeleton += data
        if len(self.skeleton) > self.max_skeleton:
            raise Problem(
                413,
                "Content Too Large",
                f"the metadata (the body without its base64 files) is over {self.max_skeleton} bytes",
                type="metadata-too-large",
            )

    def _string_bytes(self, data: bytes) -> None:
        if self._spooled is not None:
            self._spooled.feed(data)
            return
        self._current += data
        if len(self._current) > self.long_string:
            self._spooled = SpooledString()
            self._spooled.feed(bytes(self._current))
            self._current.clear()

    def _end_string(self) -> None:
        if self._spooled is not None:
            self._spooled.finish()
            index = len(self.strings)
            self.strings.append(self._spooled)
            self._keep(f'"\\u0000{_PLACEHOLDER[1:]}{self.nonce}:{index}"'.encode("ascii"))
            self._spooled = None
        else:
            self._keep(b'"' + self._current + b'"')
            self._current.clear()

    def feed(self, chunk: bytes) -> None:
        pos, end = 0, len(chunk)
        while pos < end:
            if not self._in_string:
                quote = chunk.find(b'"', pos)
                if quote < 0:
                    self._keep(chunk[pos:])
                    return
                self._keep(chunk[pos:quote])
                self._in_string = True
                pos = quote + 1
            elif self._escape:
                self._string_bytes(b"\\" + chunk[pos : pos + 1])
                self._escape = False
                pos += 1
            else:
                match = _STRING_STOP.search(chunk, pos)
                if match is None:
                    self._string_bytes(chunk[pos:])
                    return
                stop = match.start()
                if stop > pos:
                    self._string_bytes(chunk[pos:stop])
                if chunk[stop] == 0x5C:  # a backslash: keep it with the character it escapes
                    if stop + 1 < end:
                        self._string_bytes(chunk[stop : stop + 2])
                        pos = stop + 2
                    else:
                        self._escape = True
                        pos = stop + 1
                else:
                    self._end_string()
                    self._in_string = False
                    pos = stop + 1

    def finish(self) -> None:
        if self._in_string:
            raise InvalidJsonBody("not valid JSON (the body ends inside a string)")

    def close(self) -> None:
        for string in self.strings:
            string.blob.close()
        if self._spooled is not None:
            self._spooled.blob.close()


@dataclass
class StreamedJson:
    """The parsed body (long strings replaced by "") and the spooled strings by their JSON path."""

    document: Any
    spooled: dict[str, SpooledString]

    def close(self) -> None:
        for string in self.spooled.values():
            string.blob.close()


def _replace_placeholders(
    document: Any, nonce: str, strings: list[SpooledString]
) -> dict[str, SpooledString]:
    prefix = f"{_PLACEHOLDER}{nonce}:"
    found: dict[str, SpooledString] = {}
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key in list(value):
                child = f"{path}.{key}" if path else str(key)
                inner = value[key]
                if isinstance(inner, str) and inner.startswith(prefix):
                    found[child] = strings[int(inner[len(prefix) :])]
                    value[key] = ""
                else:
                    stack.append((child, inner))
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                child = f"{path}[{index}]"
                if isinstance(inner, str) and inner.startswith(prefix):
                    found[child] = strings[int(inner[len(prefix) :])]
                    value[index] = ""
                else:
                    stack.append((child, inner))
    return found


def read_json_stream(
    read: Callable[[int], bytes],
    *,
    long_string: int = LONG_STRING,
    max_skeleton: int = MAX_SKELETON,
) -> StreamedJson:
    """Reads a JSON body through `read(n)` until it returns b"".

    Raises InvalidJsonBody for a body that is not JSON, a 400 Problem for text that cannot be stored
    (shared.json_text), a 413 Problem for metadata over max_skeleton. The caller closes the result.
    """
    nonce = uuid.uuid4().hex
    scanner = _Scanner(nonce=nonce, long_string=long_string, max_skeleton=max_skeleton)
    try:
        while chunk := read(READ_SIZE):
            scanner.feed(chunk)
        scanner.finish()
        try:
            text = bytes(scanner.skeleton).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidJsonBody("the body must be UTF-8 encoded JSON") from None
        try:
            document = json.loads(text)
        except RecursionError:
            raise InvalidJsonBody("nested too deeply") from None
        except ValueError as exc:
            raise InvalidJsonBody(f"not valid JSON: {exc}") from None
        if isinstance(document, str) and document.startswith(f"{_PLACEHOLDER}{nonce}:"):
            raise InvalidJsonBody("the body must be a JSON object, not one long string")
        spooled = _replace_placeholders(document, nonce, scanner.strings)
    except BaseException:
        scanner.close()
        raise
    result = StreamedJson(document=document, spooled=spooled)
    if (flaw := find_unstorable(document)) is not None:
        result.close()
        path, message = flaw
        raise Problem(
            400, "Invalid JSON text", f"{path}: {message}", type="invalid-json-text", errors={path: [message]}
        )
    return result
