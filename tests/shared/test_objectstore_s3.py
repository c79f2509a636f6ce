"""S3Store against moto's S3-protocol server: the shared contract, and how a dead endpoint fails."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from minio.error import S3Error
from objectstore_contract import ObjectStoreContract
from shared.objectstore import ObjectNotFound, S3Store, StoreUnavailable
from urllib3 import HTTPResponse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
class TestS3Store(ObjectStoreContract):
    @pytest.fixture
    def store(self, s3_endpoint: str) -> S3Store:
        return S3Store(s3_endpoint, "testing", "testing", secure=False, region="us-east-1")


def test_closed_port_raises_store_unavailable_quickly():
    store = S3Store(f"127.0.0.1:{free_port()}", "testing", "testing", secure=False, region="us-east-1")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        store.stat("docroute-staging", f"{uuid.uuid4().hex}.pdf")
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.put(
            "docroute-staging",
            "k",
            b"x",
            size=1,
            content_type="text/plain",
            sha256="2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
        )
    assert time.monotonic() - started < 3.0


def _s3_error(code: str) -> S3Error:
    return S3Error(HTTPResponse(status=403), code, code, "/docroute-staging", "req", "host")


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"])
def test_ping_treats_rejected_credentials_as_unavailable(monkeypatch, code):
    store = S3Store("127.0.0.1:9", "ak", "sk")

    def refuse(bucket: str) -> bool:
        assert bucket == "docroute-staging"
        raise _s3_error(code)

    monkeypatch.setattr(store._client, "bucket_exists", refuse)
    with pytest.raises(StoreUnavailable, match=code):
        store.ping()


def test_error_codes_translate_to_port_errors(monkeypatch):
    store = S3Store("127.0.0.1:9", "ak", "sk")

    def missing(*args, **kwargs):
        raise _s3_error("NoSuchKey")

    monkeypatch.setattr(store._client, "stat_object", missing)
    with pytest.raises(ObjectNotFound):
        store.stat("docroute-staging", "k")
