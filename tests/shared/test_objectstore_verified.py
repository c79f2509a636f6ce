"""VerifiedBytes and VerifiedChunks: a digest that put may trust is always one computed from the bytes."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from shared.objectstore import ChecksumMismatch, VerifiedBytes, VerifiedChunks

DATA = "Công văn số 1393/CVT-CL".encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_verified_bytes_hash_what_they_are_given():
    verified = VerifiedBytes(DATA)
    assert verified.data == DATA and verified.sha256 == sha(DATA) and len(verified) == len(DATA)


def test_a_digest_cannot_be_chosen_or_changed():
    with pytest.raises(TypeError):
        VerifiedBytes(DATA, "0" * 64)  # type: ignore[call-arg]
    verified = VerifiedBytes(DATA)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.sha256 = "0" * 64  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.data = b"other"  # type: ignore[misc]


@pytest.mark.parametrize("mutable", [bytearray(DATA), memoryview(DATA)])
def test_only_immutable_bytes_are_accepted(mutable):
    # A bytearray could change after hashing and leave the digest describing other bytes.
    with pytest.raises(TypeError):
        VerifiedBytes(mutable)


def test_the_repr_leaves_out_the_bytes():
    assert "Công" not in repr(VerifiedBytes(DATA)) and sha(DATA) in repr(VerifiedBytes(DATA))


def test_read_all_carries_the_digest_computed_while_reading():
    chunks = VerifiedChunks(iter([DATA[:5], DATA[5:]]), bucket="b", key="k", expected=sha(DATA))
    verified = chunks.read_all()
    assert verified.data == DATA and verified.sha256 == sha(DATA)


def test_without_a_recorded_sha256_read_all_still_gives_the_bytes_own_digest():
    verified = VerifiedChunks(iter([DATA]), bucket="b", key="k", expected="").read_all()
    assert verified.sha256 == sha(DATA)


def test_bytes_that_differ_from_the_record_raise_after_the_last_chunk():
    chunks = VerifiedChunks(iter([DATA, b"!"]), bucket="b", key="k", expected=sha(DATA))
    assert next(chunks) == DATA and next(chunks) == b"!"
    with pytest.raises(ChecksumMismatch, match="b/k"):
        next(chunks)
    with pytest.raises(StopIteration):  # reported once; the stream is then simply over
        next(chunks)
    with pytest.raises(ChecksumMismatch):
        VerifiedChunks(iter([DATA, b"!"]), bucket="b", key="k", expected=sha(DATA)).read_all()
