"""Demo PDFs for samples, tests and benchmarks: a hand-written PDF, a throwaway CA, pyHanko signing.

One maker for every caller (the sample files in `samples/pdfs`, the test suites, the benchmarks), so a PDF
the archive is tested with is the same kind of PDF a newcomer sees in `make run`. Nothing here is for
production signing: the demo CA's private key is thrown away as soon as the samples are signed.

    python -m docroute.demo_pdfs samples/pdfs     # regenerate the sample PDFs and their demo CA
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEMO_CA_FILE = "demo-ca.pem"


def minimal_pdf(
    text: str = "docroute",
    *,
    size: int = 0,
    version: str = "1.7",
    catalog_extra: bytes = b"",
    extra: tuple[bytes, ...] = (),
) -> bytes:
    """A valid one-page PDF (correct xref offsets) showing `text`; with `size`, padded to about that many
    bytes by an unused stream of random, incompressible bytes, so hashing and signature checks see it all.

    `catalog_extra` goes into the catalog dictionary and `extra` are further objects, numbered from 6 (how a
    test builds a PDF with an OpenAction, embedded files and the like). Without padding the bytes depend
    only on the arguments. The page font is Helvetica without an
    encoding for Vietnamese, so the page shows `text` without its diacritics ("Cục" as "Cuc").
    """
    stream = f"BT /F1 14 Tf 50 750 Td ({_pdf_string(text)}) Tj ET".encode("ascii", errors="replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *extra,
    ]
    skeleton = 900  # header, xref and trailer of the five small objects, give or take
    padding = max(size - skeleton - sum(len(o) for o in objects), 0) if size else 0
    if padding:
        objects.append(
            b"<< /Length " + str(padding).encode() + b" >>\nstream\n" + os.urandom(padding) + b"\nendstream"
        )
    out = bytearray(f"%PDF-{version}\n".encode() + b"%\xe2\xe3\xcf\xd3\n")
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


def _pdf_string(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    text = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


@dataclass(frozen=True)
class DemoPki:
    """A self-signed CA and one signing certificate it issued, as PEM; `ca_pem` is the trust store to give
    the archive for signatures to count as trusted."""

    ca_pem: bytes
    leaf_pem: bytes
    key_pem: bytes


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, signing_ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=not signing_ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signing_ca,
        crl_sign=signing_ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_pki(
    ca_name: str = "docroute demo CA",
    signer_name: str = "Nguyễn Văn Thử",
    *,
    organisation: str = "docroute (demo, not for production)",
    leaf_days: int = 3650,
) -> DemoPki:
    """A self-signed CA (20 years) and one signing certificate it issued (`leaf_days`); EC keys."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name, organisation))
        .issuer_name(_name(ca_name, organisation))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7300))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(signing_ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(signer_name, organisation))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=leaf_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing_ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return DemoPki(
        ca_pem=ca_cert.public_bytes(pem),
        leaf_pem=leaf_cert.public_bytes(pem),
        key_pem=leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def sign_pdf(pdf: bytes, pki: DemoPki, field_name: str = "Signature1") -> bytes:
    """Signs with pyHanko as an incremental update; the CA certificate travels in the CMS."""
    from pyhanko.keys import load_certs_from_pemder_data, load_private_key_from_pemder_data
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    cert = next(iter(load_certs_from_pemder_data(pki.leaf_pem)))
    ca = next(iter(load_certs_from_pemder_data(pki.ca_pem)))
    key = load_private_key_from_pemder_data(pki.key_pem, passphrase=None)
    signer = signers.SimpleSigner(
        signing_cert=cert,
        signing_key=key,
        cert_registry=SimpleCertificateStore.from_certs([ca]),  # type: ignore[no-untyped-call]
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name=field_name), signer=signer)
    return bytes(out.getvalue())


def write_samples(directives: Path, out: Path) -> list[Path]:
    """One signed PDF per sample directive (`<name>.pdf`, named like its JSON) and the demo CA that signed
    them (`demo-ca.pem`), into `out`. Returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    pki = make_pki()
    written = [out / DEMO_CA_FILE]
    written[0].write_bytes(pki.ca_pem)
    for source in sorted(directives.glob("*.json")):
        metadata = json.loads(source.read_text(encoding="utf-8"))
        text = f"{metadata['number']} - {metadata['issuer']['name']} (docroute sample)"
        target = out / f"{source.stem}.pdf"
        target.write_bytes(sign_pdf(minimal_pdf(text), pki))
        written.append(target)
    return written


# Demo agency identifiers (mã định danh) for the samples' senders: the samples name no real ones.
SAMPLE_SENDERS = {
    "1393-CVT-CL": "000.00.01.G23",
    "171-CV-BTGTU": "000.00.70.H10",
    "120-KH-BCD": "000.00.71.H10",
}


def write_packets(directives: Path, pdfs: Path, out: Path) -> list[Path]:
    """Each sample directive with its signed PDF as an edXML packet (QCVN 102), `<name>.xml` in `out`."""
    from intake.domain import edxml

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(directives.glob("*.json")):
        meta = json.loads(source.read_text(encoding="utf-8"))
        number, notation = (
            meta["number"].split("-", 1)
            if "-" in meta["number"].split("/")[0]
            else meta["number"].split("/", 1)
        )
        code = edxml.Code(number, notation)
        issued = dt.date.fromisoformat(meta["issued_date"])
        sender = SAMPLE_SENDERS[source.stem]
        signer = meta.get("signer") or {}
        packet = edxml.Packet(
            sender=edxml.Organ(organ_id=sender, name=meta["issuer"]["name"]),
            recipients=(
                edxml.Organ(organ_id="000.00.13.H10", name="Sở Thông tin và Truyền thông tỉnh Bình Phước"),
            ),
            code=code,
            subject=meta["subject"],
            place=meta.get("place"),
            promulgation_date=issued,
            document_type=edxml.DocumentTypeInfo(type_name=meta.get("document_type")),
            signer=edxml.SignerInfo(signer.get("competence"), signer.get("position"), signer.get("full_name"))
            if signer
            else None,
            due_date=dt.date.fromisoformat(meta["due_date"]) if meta.get("due_date") else None,
            to_places=tuple(meta.get("to_places", ())),
            other=edxml.OtherInfo(priority=edxml.PRIORITY_OF_URGENCY[meta.get("urgency", "thuong")]),
            steering_type=1,
            document_id=edxml.document_id(sender, issued, code),
            attachments=(
                edxml.Attachment(
                    "1", f"{source.stem}.pdf", "application/pdf", (pdfs / f"{source.stem}.pdf").read_bytes()
                ),
            ),
        )
        target = out / f"{source.stem}.xml"
        target.write_bytes(edxml.write_packet(packet))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[1]
    out = Path(args[0]) if args else root / "samples" / "pdfs"
    written = write_samples(root / "samples" / "directives", out)
    written += write_packets(root / "samples" / "directives", out, out.parent / "edxml")
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
