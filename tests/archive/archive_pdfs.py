"""Test helper: the signed, tampered and untrusted PDFs the archive tests use, from docroute.demo_pdfs."""

from __future__ import annotations

from dataclasses import dataclass

from docroute import demo_pdfs


def minimal_pdf(text: str = "Cong van so 1393/CVT-CL") -> bytes:
    return demo_pdfs.minimal_pdf(text)


Pki = demo_pdfs.DemoPki


def make_pki(ca_name: str = "docroute test CA", signer_name: str = "Nguyễn Văn Thử") -> Pki:
    """A self-signed CA and one signing certificate it issued (EC keys: fast to make)."""
    return demo_pdfs.make_pki(ca_name, signer_name, organisation="Ban Cơ yếu (test)")


sign_pdf = demo_pdfs.sign_pdf


def tamper_signed_content(signed: bytes, needle: bytes = b"1393") -> bytes:
    """Changes a byte inside the signed range (the page text) without touching the signature."""
    at = signed.index(needle)
    return signed[:at] + b"9" + signed[at + 1 :]


@dataclass(frozen=True)
class SignedSamples:
    trusted_pki: Pki
    stranger_pki: Pki
    unsigned: bytes
    valid: bytes
    tampered: bytes
    untrusted: bytes


def build_samples() -> SignedSamples:
    trusted = make_pki()
    stranger = make_pki("unknown CA", "Người lạ")
    base = minimal_pdf()
    valid = sign_pdf(base, trusted)
    return SignedSamples(
        trusted_pki=trusted,
        stranger_pki=stranger,
        unsigned=base,
        valid=valid,
        tampered=tamper_signed_content(valid),
        untrusted=sign_pdf(base, stranger),
    )
