"""Urgency (mức độ khẩn) and confidentiality (độ mật) as ASCII snake_case Vietnamese terms."""

from __future__ import annotations

from enum import StrEnum


class Urgency(StrEnum):
    THUONG = "thuong"
    KHAN = "khan"
    THUONG_KHAN = "thuong_khan"
    HOA_TOC = "hoa_toc"


class Confidentiality(StrEnum):
    THUONG = "thuong"
    MAT = "mat"
    TOI_MAT = "toi_mat"
    TUYET_MAT = "tuyet_mat"


class DirectiveStatus(StrEnum):
    REGISTERED = "registered"
    REVOKED = "revoked"
    REPLACED = "replaced"
    # A clerk refused it (status 02 sent to its sender).
    REJECTED = "rejected"
