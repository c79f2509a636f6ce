"""Request bodies the benchmarks send: directive metadata (from samples/directives), PDFs of a chosen
size (optionally signed with pyHanko by a throwaway CA) and multipart/form-data encoding."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import ROOT

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
    """A valid one-page PDF padded to about `size` bytes with an unused stream of random (incompressible)
    bytes, so hashing and signature checks see the full size."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1", errors="replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    skeleton = 900  # header, xref and trailer of the five small objects, give or take
    padding = max(size - skeleton - sum(len(o) for o in objects), 0)
    if padding:
        objects.append(
            b"<< /Length " + str(padding).encode() + b" >>\nstream\n" + os.urandom(padding) + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@dataclass(frozen=True)
class Signer:
    """A self-signed CA and a leaf it issued; `ca_pem` is the trust store the archive is given."""

    ca_pem: bytes
    leaf_pem: bytes
    key_pem: bytes


def make_signer(name: str = "Nguyễn Văn Đo") -> Signer:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def subject(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "docroute bench"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(subject("docroute bench CA"))
        .issuer_name(subject("docroute bench CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(subject(name))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Signer(
        ca_pem=ca.public_bytes(pem),
        leaf_pem=leaf.public_bytes(pem),
        key_pem=leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def sign_pdf(pdf: bytes, signer: Signer) -> bytes:
    """An incremental-update pyHanko signature over the whole file (CA certificate embedded in the CMS)."""
    from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    cert = next(iter(load_certs_from_pemder_data(signer.leaf_pem)))
    ca = next(iter(load_certs_from_pemder_data(signer.ca_pem)))
    key = load_private_key_from_pemder_data(signer.key_pem, passphrase=None)
    simple = signers.SimpleSigner(
        signing_cert=cert,
        signing_key=key,
        cert_registry=SimpleCertificateStore.from_certs([ca]),  # type: ignore[no-untyped-call]
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name="Signature1"), signer=simple)
    return bytes(out.getvalue())


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
