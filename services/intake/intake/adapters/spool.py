"""Uploaded file contents held on disk past a small size: hashed, sized and sniffed as they are written.

A 200 MB submission used to be held in memory several times over (the raw body, its text, the parsed
base64 string, the decoded bytes: about 2.7 bytes of RSS per body byte), so one upload could take the
whole memory limit of a pod shared by all its threads. A file is now written once, in chunks, to a
temporary file (kept in memory only while it is small) and read back in chunks when it is staged.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from typing import BinaryIO, Protocol

from attachment_rules import HEADER_WINDOW, TRAILER_WINDOW

# Files up to this size stay in memory; larger ones go to a temporary file (under TMPDIR).
IN_MEMORY_LIMIT = 1024 * 1024
READ_CHUNK = 256 * 1024


class Blob(Protocol):
    """The contents of one uploaded file, with what the rules and the store need to know about them."""

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str: ...

    @property
    def head(self) -> bytes: ...

    @property
    def tail(self) -> bytes: ...

    def reader(self) -> BinaryIO:
        """A binary stream positioned at the first byte (one reader at a time)."""
        ...

    def close(self) -> None: ...


class BytesBlob:
    """A Blob over bytes already in memory (small files, tests)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.head = data[:HEADER_WINDOW]
        self.tail = data[-TRAILER_WINDOW:]

    def reader(self) -> BinaryIO:
        return io.BytesIO(self.data)

    def close(self) -> None:
        return None


class SpooledBlob:
    """A Blob written chunk by chunk; in memory up to IN_MEMORY_LIMIT bytes, then in a temporary file."""

    def __init__(self, *, in_memory_limit: int = IN_MEMORY_LIMIT) -> None:
        # Lives as long as the request, not a block: closed by close() (the view's finally).
        self._file: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=in_memory_limit, prefix="docroute-upload-"
        )
        self._digest = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.tail = b""
        self._sha256: str | None = None

    def write(self, chunk: bytes | memoryview) -> None:
        data = bytes(chunk)
        if not data:
            return
        self._file.write(data)
        self._digest.update(data)
        self.size += len(data)
        if len(self.head) < HEADER_WINDOW:
            self.head += data[: HEADER_WINDOW - len(self.head)]
        self.tail = (self.tail + data[-TRAILER_WINDOW:])[-TRAILER_WINDOW:]

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = self._digest.hexdigest()
        return self._sha256

    @property
    def on_disk(self) -> bool:
        return bool(getattr(self._file, "_rolled", False))

    @property
    def closed(self) -> bool:
        return bool(self._file.closed)

    def reader(self) -> BinaryIO:
        self._file.flush()
        self._file.seek(0)
        return self._file  # type: ignore[return-value]

    def close(self) -> None:
        self._file.close()
