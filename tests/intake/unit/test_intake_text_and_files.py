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


def test_pdf_sniffing() -> None:
    assert looks_like_pdf(PDF)
    assert not looks_like_pdf(b"PK\x03\x04 zip pretending")
    assert not looks_like_pdf(b"%PDF-1.4 truncated without trailer")


def test_declared_pdf_must_be_a_pdf() -> None:
    check_attachment(
        field="files[0]", filename="a.pdf", content_type="application/pdf", data=PDF, max_bytes=100
    )
    with pytest.raises(InvalidAttachment) as caught:
        check_attachment(
            field="files[1]", filename="a.pdf", content_type="application/pdf", data=b"hello", max_bytes=100
        )
    assert caught.value.field == "files[1]"
    # A .pdf name with a generic content type is still a PDF claim.
    with pytest.raises(InvalidAttachment):
        check_attachment(
            field="files[0]",
            filename="x.PDF",
            content_type="application/octet-stream",
            data=b"x",
            max_bytes=9,
        )
    check_attachment(
        field="files[0]", filename="a.txt", content_type="text/plain", data=b"hello", max_bytes=9
    )


def test_size_limit_and_empty_files() -> None:
    with pytest.raises(AttachmentTooLarge) as caught:
        check_attachment(
            field="attachments[2]", filename="a.pdf", content_type="application/pdf", data=PDF, max_bytes=10
        )
    assert caught.value.field == "attachments[2]"
    with pytest.raises(InvalidAttachment):
        check_attachment(
            field="files[0]", filename="a.txt", content_type="text/plain", data=b"", max_bytes=10
        )
