"""edXML test packets built from the standard's skeleton: the official sample's order, another vendor's
shuffled shape with extensions, a zip and dd/MM/yyyy dates."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

from intake.domain import edxml

NS = edxml.NS
PACKETS = Path(__file__).resolve().parent / "packets"
PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
DOCX = b"PK-not-really-a-docx"


def official_packet(*, attachment: bytes = PDF, doc_type: int = 0, extra_header: str = "") -> bytes:
    """The official sample's element order: DocumentId right after To, ToPlaces last."""
    payload = base64.b64encode(attachment).decode()
    return (
        PACKETS.joinpath("official-order.xml")
        .read_text(encoding="utf-8")
        .format(NS=NS, payload=payload, doc_type=doc_type, extra_header=extra_header)
        .encode()
    )


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def shuffled_vendor_packet() -> bytes:
    """Another vendor: parts shuffled, vendor extensions, bare content ids, a zipped attachment with its
    base64 broken over lines, a Party number and dd/MM/yyyy dates."""
    payload = base64.encodebytes(zipped({"171-CV.pdf": PDF, "phu-luc.docx": DOCX})).decode()
    return (
        PACKETS.joinpath("shuffled-vendor.xml")
        .read_text(encoding="utf-8")
        .format(NS=NS, payload=payload)
        .encode()
    )


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><Subject>&lol9;</Subject></edXML>"""
