"""multipart/form-data bodies split into their parts, with werkzeug's header rules but a cheaper splitter.

werkzeug's parser compiles a regular expression around each request's boundary (every request has its own,
so Python's pattern cache never helps) and streams every part through spooled files; for one 100 KB PDF that
was a fifth of a registration's CPU. python-multipart finds the boundary with plain byte searches. The part
headers are still read the way werkzeug reads them (UTF-8 lines; Content-Disposition and Content-Type through
werkzeug.http.parse_options_header, which also understands filename*=UTF-8''…), so Vietnamese file names and
the refusals of malformed bodies stay what they were, and Flask's limits on the number of parts and on the
size of a non-file field still apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header

from intake.adapters.spool import SpooledBlob

# Flask's own defaults for the two limits (MAX_FORM_PARTS, MAX_FORM_MEMORY_SIZE) when a request has none.
DEFAULT_MAX_PARTS = 1000
DEFAULT_MAX_FIELD_SIZE = 500_000
READ_SIZE = 256 * 1024


class MalformedMultipart(ValueError):
    """The body is not multipart/form-data that can be read (no boundary, broken framing, bad headers)."""


@dataclass(frozen=True)
class Part:
    """One part: its form name, the file name when it is a file, its content type, its bytes.

    A file's bytes are in `blob` (spooled to disk past a small size), a plain field's in `data`.
    """

    name: str
    filename: str | None
    content_type: str | None
    data: bytes
    blob: SpooledBlob | None = None

    @property
    def is_file(self) -> bool:
        # werkzeug's rule: a part is a file when its Content-Disposition names a filename (even an empty one).
        return self.filename is not None


@dataclass
class _Collector:
    max_parts: int
    max_field_size: int
    parts: list[Part] = field(default_factory=list)
    _headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    _header_name: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _chunks: list[bytes] = field(default_factory=list)
    _size: int = 0
    _name: str = ""
    _filename: str | None = None
    _content_type: str | None = None
    _blob: SpooledBlob | None = None
    blobs: list[SpooledBlob] = field(default_factory=list)

    def part_begin(self) -> None:
        if len(self.parts) >= self.max_parts:
            raise RequestEntityTooLarge(f"more than {self.max_parts} parts in the form")
        self._headers.clear()
        self._chunks.clear()
        self._size = 0

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers.append((bytes(self._header_name), bytes(self._header_value)))
        self._header_name.clear()
        self._header_value.clear()

    def headers_finished(self) -> None:
        headers: dict[str, str] = {}
        for raw_name, raw_value in self._headers:
            try:
                name, value = raw_name.decode(), raw_value.decode()
            except UnicodeDecodeError:
                raise MalformedMultipart("a part header is not UTF-8") from None
            headers[name.strip(" \t").lower()] = value.strip(" \t")
        disposition, options = parse_options_header(headers.get("content-disposition"))
        if disposition != "form-data" or "name" not in options:
            raise MalformedMultipart("a part has no Content-Disposition: form-data with a name")
        self._name = options["name"]
        self._filename = options.get("filename")
        content_type = headers.get("content-type")
        # lower-cased, as werkzeug's FileStorage.mimetype gives it
        self._content_type = parse_options_header(content_type)[0].lower() if content_type else None
        if self._filename is not None:
            self._blob = SpooledBlob()
            self.blobs.append(self._blob)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._blob is not None:
            self._blob.write(memoryview(data)[start:end])
            return
        if self._size > self.max_field_size:
            raise RequestEntityTooLarge(f"the form field {self._name!r} is over {self.max_field_size} bytes")
        self._chunks.append(data[start:end])

    def part_end(self) -> None:
        self.parts.append(
            Part(self._name, self._filename, self._content_type, b"".join(self._chunks), self._blob)
        )
        self._chunks.clear()
        self._blob = None

    def close(self) -> None:
        for blob in self.blobs:
            blob.close()


def read_parts(request: Request) -> list[Part]:
    """Every part of the request's multipart/form-data body, in order.

    Raises MalformedMultipart for a body that cannot be read as multipart/form-data, and werkzeug's
    RequestEntityTooLarge (413) past the body, part-count or field-size limits. Files are spooled (see
    intake.adapters.spool); the caller closes their blobs.
    """
    _, options = parse_options_header(request.headers.get("Content-Type"))
    boundary = options.get("boundary", "")
    if not boundary:
        raise MalformedMultipart("the Content-Type names no boundary")
    # The stream enforces MAX_CONTENT_LENGTH (413) and is parsed as it is read, so only the parts' bytes
    # are ever held, once, never the whole body beside them.
    stream = request.stream
    collector = _Collector(
        max_parts=request.max_form_parts or DEFAULT_MAX_PARTS,
        max_field_size=request.max_form_memory_size or DEFAULT_MAX_FIELD_SIZE,
    )
    parser = MultipartParser(
        # WSGI hands headers over as latin-1 text: this gives back the boundary's bytes as sent.
        boundary.encode("latin-1", "replace"),
        {
            "on_part_begin": collector.part_begin,
            "on_header_field": collector.header_field,
            "on_header_value": collector.header_value,
            "on_header_end": collector.header_end,
            "on_headers_finished": collector.headers_finished,
            "on_part_data": collector.part_data,
            "on_part_end": collector.part_end,
        },
    )
    try:
        try:
            while chunk := stream.read(READ_SIZE):
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise MalformedMultipart(f"the body is not valid multipart/form-data ({exc})") from None
        if parser.state != MultipartState.END:
            raise MalformedMultipart("the body ends before its closing boundary")
    except BaseException:
        collector.close()
        raise
    return collector.parts
