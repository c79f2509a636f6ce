"""Diacritics folding, file-name sanitising and attachment checks."""

import pytest
from intake.domain.errors import AttachmentTooLarge, InvalidAttachment
from intake.domain.files import check_attachment, looks_like_pdf
from intake.domain.text import fold, sanitize_filename

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def test_fold_removes_diacritics_and_case() -> None:
    assert (
        fold("Triển khai Tháng hành động vì AN TOÀN THỰC PHẨM")
        == "trien khai thang hanh dong vi an toan thuc pham"
    )
    assert fold("Đề án  Đổi mới") == "de an doi moi"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Công văn 1393.pdf", "Công văn 1393.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\văn thư\\Kế hoạch.pdf", "Kế hoạch.pdf"),
        ("bad\x00name\x1f.pdf", "badname.pdf"),
        ("evil\u202efdp.exe", "evilfdp.exe"),
        ("a<b>c?.pdf", "a_b_c_.pdf"),
        ("...", "attachment"),
        ("", "attachment"),
        ("/", "attachment"),
        (".hidden.pdf", "hidden.pdf"),
    ],
)
def test_sanitize_filename(given: str, expected: str) -> None:
    assert sanitize_filename(given) == expected


def test_sanitize_filename_keeps_nfc_and_bounds_length() -> None:
    import unicodedata

    assert sanitize_filename(unicodedata.normalize("NFD", "Tờ trình.pdf")) == unicodedata.normalize(
        "NFC", "Tờ trình.pdf"
    )
    long = sanitize_filename("ệ" * 300 + ".pdf")
    assert long.endswith(".pdf")
    assert len(long.encode()) <= 200


def check(*, field: str, filename: str, content_type: str, data: bytes, max_bytes: int) -> str:
    return check_attachment(
        field=field,
        filename=filename,
        content_type=content_type,
        size=len(data),
        head=data[:1024],
        tail=data[-2048:],
        max_bytes=max_bytes,
    )


def test_pdf_sniffing() -> None:
    assert looks_like_pdf(PDF, PDF)
    assert not looks_like_pdf(b"PK\x03\x04 zip pretending", b"PK\x03\x04 zip pretending")
    assert not looks_like_pdf(b"%PDF-1.4 truncated without trailer", b"%PDF-1.4 truncated without trailer")


def test_declared_pdf_must_be_a_pdf() -> None:
    check(field="files[0]", filename="a.pdf", content_type="application/pdf", data=PDF, max_bytes=100)
    with pytest.raises(InvalidAttachment) as caught:
        check(
            field="files[1]", filename="a.pdf", content_type="application/pdf", data=b"hello", max_bytes=100
        )
    assert caught.value.field == "files[1]"
    # A .pdf name with a generic content type is still a PDF claim.
    with pytest.raises(InvalidAttachment):
        check(
            field="files[0]",
            filename="x.PDF",
            content_type="application/octet-stream",
            data=b"x",
            max_bytes=9,
        )
    check(field="files[0]", filename="a.txt", content_type="text/plain", data=b"hello", max_bytes=9)


@pytest.mark.parametrize("name", ["x.PDF ", "x.pdf\x00", "x.pdf.", "x.pdf\u200b", " x.Pdf\t"])
def test_the_pdf_check_runs_on_the_cleaned_name(name: str) -> None:
    # Each of these is stored under a .pdf name, so its bytes must be a PDF.
    assert sanitize_filename(name).rstrip(". ").lower().endswith(".pdf")
    with pytest.raises(InvalidAttachment, match="declared as a PDF"):
        check(
            field="files[0]",
            filename=name,
            content_type="application/octet-stream",
            data=b"GIF89a",
            max_bytes=99,
        )


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"MZ\x90\x00\x03rest of a PE file", "bao-cao.docx"),
        (b"\x7fELF\x02\x01\x01", "anh.png"),
        (b"#!/bin/sh\nrm -rf /\n", "ghi-chu.txt"),
        (b"\xcf\xfa\xed\xfe\x07", "x.bin.txt"),
        (b"plain bytes", "setup.exe"),
        (b"plain bytes", "Công văn.pdf.bat"),
        (b"plain bytes", "macro.vbs "),
    ],
)
def test_programs_are_refused_by_magic_bytes_or_name(data: bytes, name: str) -> None:
    with pytest.raises(InvalidAttachment, match="programs are not accepted") as caught:
        check(
            field="files[2]", filename=name, content_type="application/octet-stream", data=data, max_bytes=99
        )
    assert caught.value.field == "files[2]"


@pytest.mark.parametrize(
    "content_type", ["text/html", "image/svg+xml", "application/javascript", "text/html; x"]
)
def test_content_types_outside_the_allow_list_are_refused(content_type: str) -> None:
    with pytest.raises(InvalidAttachment, match="not an accepted attachment type") as caught:
        check(field="files[0]", filename="a.txt", content_type=content_type, data=b"hi", max_bytes=9)
    assert caught.value.field == "files[0].content_type"


@pytest.mark.parametrize("content_type", ["text/plain\r\nX-Injected: 1", "text/plain\x00", "a" * 200])
def test_malformed_content_types_are_refused(content_type: str) -> None:
    with pytest.raises(InvalidAttachment) as caught:
        check(field="files[0]", filename="a.txt", content_type=content_type, data=b"hi", max_bytes=9)
    assert caught.value.field == "files[0].content_type"


def test_allowed_content_types_are_normalised() -> None:
    normalised = check(
        field="f", filename="a.txt", content_type="Text/Plain; charset=UTF-8", data=b"x", max_bytes=9
    )
    assert normalised == "text/plain"
    assert (
        check(field="f", filename="a", content_type="", data=b"x", max_bytes=9) == "application/octet-stream"
    )


def test_size_limit_and_empty_files() -> None:
    with pytest.raises(AttachmentTooLarge) as caught:
        check(
            field="attachments[2]", filename="a.pdf", content_type="application/pdf", data=PDF, max_bytes=10
        )
    assert caught.value.field == "attachments[2]"
    with pytest.raises(InvalidAttachment):
        check(field="files[0]", filename="a.txt", content_type="text/plain", data=b"", max_bytes=10)
