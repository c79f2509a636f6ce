"""Request bodies the benchmarks send: directive metadata (from samples/directives), PDFs of a chosen
size (optionally signed with pyHanko by a throwaway CA) and multipart/form-data encoding."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

from bench.harness import ROOT
from docroute import demo_pdfs

SAMPLES = ROOT / "samples"


def sample_directives(directory: Path = SAMPLES / "directives") -> list[dict[str, Any]]:
    """The sample directives' metadata (UTF-8 JSON, Vietnamese text intact)."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.json"))]


def dated(metadata: dict[str, Any], issued: dt.date) -> dict[str, Any]:
    """The sample as if issued on `issued`: its due date (when it has one) moves by the same number of days.

    The samples are a real dispatch of April 2021: sent unchanged, the tasks of the one with a due date are
    overdue from their first second and routing's overdue scan reminds units of each of them; live traffic
    carries current dates.
    """
    out: dict[str, Any] = json.loads(json.dumps(metadata))
    shift = issued - dt.date.fromisoformat(out["issued_date"])
    out["issued_date"] = issued.isoformat()
    if out.get("due_date"):
        out["due_date"] = (dt.date.fromisoformat(out["due_date"]) + shift).isoformat()
    return out


def numbered(metadata: dict[str, Any], serial: int) -> dict[str, Any]:
    """The sample with its document number (số) replaced by `serial`, so every submission is a new
    directive (intake refuses a second directive with the same issuer and number) and the rules'
    notation patterns (e.g. ^KH-BCĐ$) still match."""
    out: dict[str, Any] = json.loads(json.dumps(metadata))
    number: str = out["number"]
    for separator in ("/", "-"):
        head, sep, tail = number.partition(separator)
        if sep and head.isdigit():
            out["number"] = f"{serial}{sep}{tail}"
            break
    else:
        raise ValueError(f"sample number {number!r} has no leading digits")
    out["external_id"] = f"bench-{serial}"
    return out


def pdf_of_size(size: int, text: str = "docroute bench") -> bytes:
    """A valid one-page PDF padded to about `size` bytes with random (incompressible) bytes."""
    return demo_pdfs.minimal_pdf(text, size=size)


Signer = demo_pdfs.DemoPki


def make_signer(name: str = "Nguyễn Văn Đo") -> Signer:
    """A throwaway CA and a leaf it issued; `ca_pem` is the trust store the archive is given."""
    return demo_pdfs.make_pki("docroute bench CA", name, organisation="docroute bench", leaf_days=30)


sign_pdf = demo_pdfs.sign_pdf


def multipart(fields: dict[str, str], files: list[tuple[str, str, str, bytes]]) -> tuple[bytes, str]:
    """multipart/form-data body and its Content-Type; files are (field, filename, content type, bytes).
    Filenames go out UTF-8 encoded (as browsers send them), so Vietnamese names survive."""
    boundary = f"----docroute-bench-{uuid.uuid4().hex}"
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'.encode()
        out += b"Content-Type: application/json; charset=utf-8\r\n\r\n"
        out += value.encode("utf-8") + b"\r\n"
    for name, filename, content_type, data in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def directive_body(metadata: dict[str, Any], pdf: bytes, filename: str = "văn-bản.pdf") -> tuple[bytes, str]:
    """POST /v1/directives as multipart: the `metadata` JSON part and one `files` part."""
    return multipart(
        {"metadata": json.dumps(metadata, ensure_ascii=False)}, [("files", filename, "application/pdf", pdf)]
    )
