"""The XML signature (W3C XML-DSig, enveloped) of an edXML packet, checked with signxml.

Two questions, answered apart: is the signature intact for the certificate the packet carries (the bytes
were not changed after signing), and does that certificate chain to the trust store (who signed it)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DSIG = "{http://www.w3.org/2000/09/xmldsig#}"


@dataclass(frozen=True)
class SignatureCheck:
    status: str  # valid | invalid | absent
    subject: str | None = None
    trusted: bool = False
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "subject": self.subject,
            "trusted": self.trusted,
            "detail": self.detail,
        }


def _certificate_pem(signature: Any) -> bytes | None:
    found = signature.find(f".//{DSIG}X509Certificate")
    if found is None or not (found.text or "").strip():
        return None
    der = base64.b64decode("".join(found.text.split()))
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n".encode("ascii")


def check_signature(packet: bytes, *, trust_store: Path | None) -> SignatureCheck:
    """The packet's signature verdict. The packet was already read by the edXML reader, which refuses DTDs
    and entities, so lxml meets none here; it is told not to load or resolve any all the same."""
    from cryptography import x509
    from lxml import etree
    from signxml import XMLVerifier
    from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(packet, parser=parser)
    signature = root.find(f".//{DSIG}Signature")
    if signature is None:
        return SignatureCheck("absent")
    pem = _certificate_pem(signature)
    if pem is None:
        return SignatureCheck("invalid", detail="the signature carries no X509Certificate")
    try:
        subject = x509.load_pem_x509_certificate(pem).subject.rfc4514_string()
    except ValueError:
        return SignatureCheck("invalid", detail="the signature's certificate cannot be read")
    try:
        XMLVerifier().verify(root, x509_cert=pem.decode("ascii"))
    except (InvalidSignature, InvalidDigest, InvalidInput, InvalidCertificate) as exc:
        return SignatureCheck("invalid", subject, detail=str(exc)[:500])
    trusted = False
    if trust_store is not None:
        try:
            XMLVerifier().verify(root, ca_pem_file=str(trust_store))
            trusted = True
        except (InvalidSignature, InvalidDigest, InvalidInput, InvalidCertificate):
            trusted = False
    return SignatureCheck("valid", subject, trusted)
