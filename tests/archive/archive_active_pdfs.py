"""Test helper: PDFs carrying active content (JavaScript, embedded files, launch actions), written by hand."""

from __future__ import annotations

import io
import zlib


def pdf_with(*, catalog_extra: bytes = b"", extra: tuple[bytes, ...] = ()) -> bytes:
    """A one-page PDF with a correct xref table; `catalog_extra` goes into the catalog dictionary and `extra`
    are further objects, numbered from 6."""
    stream = b"BT /F1 18 Tf 50 750 Td (Cong van so 1393/CVT-CL) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *extra,
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref_at = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n".encode())
    out.write(b"0000000000 65535 f \n")
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode())
    return out.getvalue()


def plain_pdf() -> bytes:
    """No active content at all."""
    return pdf_with()


def javascript_pdf() -> bytes:
    """Runs a script when opened."""
    return pdf_with(
        catalog_extra=b"/OpenAction 6 0 R ", extra=(b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>",)
    )


def launch_pdf() -> bytes:
    """Starts a program when opened."""
    return pdf_with(catalog_extra=b"/OpenAction 6 0 R ", extra=(b"<< /S /Launch /F (cmd.exe) >>",))


def embedded_file_pdf() -> bytes:
    """Carries a file inside it."""
    payload = b"MZ\x90\x00"
    return pdf_with(
        catalog_extra=b"/Names << /EmbeddedFiles << /Names [(a.exe) 6 0 R] >> >> ",
        extra=(
            b"<< /Type /Filespec /F (a.exe) /EF << /F 7 0 R >> >>",
            b"<< /Type /EmbeddedFile /Length 4 >>\nstream\n" + payload + b"\nendstream",
        ),
    )


def hidden_javascript_pdf() -> bytes:
    """The script's action sits in a compressed object stream under an escaped name: no "JavaScript" in
    the raw bytes."""
    hidden = zlib.compress(b"6 0 << /S /J#61vaScript /JS (app.alert\\(1\\)) >>")
    return pdf_with(
        catalog_extra=b"/OpenAction 6 0 R ",
        extra=(
            b"<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length "
            + str(len(hidden)).encode()
            + b" >>\nstream\n"
            + hidden
            + b"\nendstream",
        ),
    )
