"""Intake (on upload) and the archive (before it keeps a copy) judge a file by the same rules: one list of
accepted types, one PDF and one program sniffer (`attachment_rules`). A file intake takes is never refused
by the archive for its type or its bytes, and what one refuses the other refuses too."""

from __future__ import annotations

import pytest
from archive.domain.acceptance import Refused, check_acceptable
from attachment_rules import ACCEPTED_CONTENT_TYPES, PROGRAM_EXTENSIONS, extension, program_kind
from intake.domain.errors import InvalidAttachment
from intake.domain.files import check_attachment

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def intake_verdict(filename: str, content_type: str, data: bytes) -> str | None:
    """None when intake accepts the upload, else its refusal."""
    try:
        check_attachment(
            field="files[0]",
            filename=filename,
            content_type=content_type,
            size=len(data),
            head=data,
            tail=data,
            max_bytes=1 << 20,
        )
    except InvalidAttachment as exc:
        return str(exc)
    return None


def archive_verdict(filename: str, content_type: str, data: bytes) -> str | None:
    """None when the archive keeps the file, else its refusal (the name as intake stored it)."""
    try:
        check_acceptable(
            filename=filename,
            content_type=content_type,
            announced_size=len(data),
            stored_size=len(data),
            max_bytes=1 << 20,
            head=data,
            tail=data,
        )
    except Refused as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("content_type", sorted(ACCEPTED_CONTENT_TYPES))
def test_every_type_intake_accepts_the_archive_keeps(content_type: str) -> None:
    data = PDF if content_type.endswith("pdf") else "Báo cáo tháng 11".encode()
    name = "Báo cáo.pdf" if content_type.endswith("pdf") else "Báo cáo"
    assert intake_verdict(name, content_type, data) is None
    assert archive_verdict(name, content_type, data) is None


@pytest.mark.parametrize(
    ("filename", "content_type", "data"),
    [
        *[
            (f"cài đặt.{ext}", "application/octet-stream", b"harmless bytes")
            for ext in sorted(PROGRAM_EXTENSIONS)
        ],
        ("Công văn.pdf", "application/pdf", b"MZ\x90\x00 a PE file"),
        ("anh.png", "image/png", b"\x7fELF\x02\x01\x01"),
        ("ghi-chu.txt", "text/plain", b"#!/bin/sh\nrm -rf /\n"),
        ("x.pdf", "application/octet-stream", b"not a pdf at all"),
        ("trang.html", "text/html", b"<html><script>alert(1)</script></html>"),
        ("hinh.svg", "image/svg+xml", b"<svg onload='alert(1)'/>"),
    ],
)
def test_what_intake_refuses_the_archive_refuses(filename: str, content_type: str, data: bytes) -> None:
    assert intake_verdict(filename, content_type, data) is not None
    assert archive_verdict(filename, content_type, data) is not None


def test_a_program_is_named_by_its_bytes_first_then_by_its_name() -> None:
    assert program_kind("bao-cao.docx", b"MZ\x90\x00") == "a Windows/DOS executable (MZ header)"
    assert program_kind("setup.EXE. ", b"plain") == "a program or script: its name ends in .exe"
    assert program_kind("Công văn.pdf", PDF) is None
    # A name that is all extension has none; Windows drops trailing dots and spaces.
    assert (extension(".sh"), extension("x.pdf. "), extension("tệp")) == ("", "pdf", "")
