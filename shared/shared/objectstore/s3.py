"""The object store on an S3-protocol server (AWS S3, MinIO, Ceph RGW) through the minio client, keeping
each guarantee by the means the server was probed to offer."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, TypeVar, cast
from urllib.parse import quote, unquote

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.helpers import ObjectWriteResult, genheaders
from minio.retention import Retention as MinioRetention
from urllib3.util import Retry, Timeout

from shared.objectstore.capabilities import StoreCapabilities, WritePlan, plan_writes
from shared.objectstore.keylock import KeyLock
from shared.objectstore.port import (
    CHUNK_SIZE,
    ChecksumMismatch,
    ListedObject,
    ObjectLocked,
    ObjectNotFound,
    ObjectStoreError,
    Retention,
    StoredObject,
    StoreUnavailable,
    VerifiedBytes,
    VerifiedChunks,
    check_metadata,
    check_received,
    check_recorded,
    check_retention_change,
    validate_bucket,
    validate_key,
    validate_sha256,
)

T = TypeVar("T")

SHA256_META = "docroute-sha256"
_META_PREFIX = "x-amz-meta-"
_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NoSuchObject", "ResourceNotFound"})
_LOCKED = frozenset({"AccessDenied", "ObjectLocked", "InvalidRetentionPeriod"})
# S3 takes a single PUT up to 5 GiB; one request keeps one checksum header valid for the whole object.
_MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024
# A conditional write ("If-None-Match: *") that found the key taken: 412 when an object is there, 409 while
# another upload of the key is still in flight.
_WRITE_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
# Conditional PUTs tried before giving up on a key that other writers keep taking and dropping again.
_PUT_ATTEMPTS = 3
# How servers refuse a body that does not match its Content-MD5 or x-amz-checksum-* header.
# The SHA-256 a store computed of a copy (CopyObjectResult/ChecksumSHA256).
_COPY_CHECKSUM = re.compile(rb"<ChecksumSHA256>([A-Za-z0-9+/=]+)</ChecksumSHA256>")
_BAD_BODY = frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "InvalidChecksum"})
_AUTH_FAILED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"})
_S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
# Capabilities learnt per (endpoint, access key, probe bucket) in this process: one probe per server,
# however many stores are made.
_LEARNT: dict[tuple[str, str, str], StoreCapabilities] = {}


def _http_pool(connect_timeout: float, read_timeout: float) -> urllib3.PoolManager:
    # minio's default pool retries five times with five-minute timeouts; a dead store must fail in seconds
    # so that /readyz and request handlers answer instead of hanging.
    return urllib3.PoolManager(
        timeout=Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=10,
        retries=Retry(total=1, connect=1, read=0, backoff_factor=0.1, status_forcelist=[502, 503, 504]),
    )


def _as_sent(retention: Retention | None) -> Retention | None:
    """The retention as the request carries it: the header has millisecond precision."""
    if retention is None:
        return None
    until = retention.retain_until.astimezone(UTC)
    return Retention(retention.mode, until.replace(microsecond=until.microsecond // 1000 * 1000))


_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})$")


def parse_timestamp(text: str) -> datetime:
    """An S3 ISO 8601 timestamp with any number of fractional digits (RGW sends nine, which minio-py's own
    parser refuses), to the microsecond; ValueError when it is not one."""
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    seconds, fraction, zone = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    offset = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{seconds}.{micro}{offset}").astimezone(UTC)


def _parse_retention(mode: str | None, until: str | None) -> Retention | None:
    if not mode or not until:
        return None
    return Retention(cast(Any, mode.upper()), parse_timestamp(until))


class S3Store:
    """ObjectStore over S3: SHA-256 as user metadata, checked before upload and again through the server (its
    checksum or Content-MD5 check, or a read-back where it checks neither); no second version of a locked
    key (the server's conditional PUT, or `key_lock` where the server ignores it). See `write_plan`."""

    def __init__(
        self,
        endpoint: str,
        access_key: str | None,
        secret_key: str | None,
        *,
        secure: bool = False,
        region: str | None = None,
        connect_timeout: float = 1.0,
        read_timeout: float = 30.0,
        probe_bucket: str = "docroute-staging",
        capability_bucket: str = "docroute-capability-probe",
        key_lock: KeyLock | None = None,
        capabilities: StoreCapabilities | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.probe_bucket = validate_bucket(probe_bucket)
        # Where the capability probe writes (itself and "<name>-lock"); only probe objects live there.
        self.capability_bucket = validate_bucket(capability_bucket)
        self.key_lock = key_lock
        self._capabilities = capabilities
        self._learning = threading.Lock()
        self._versioned: dict[str, bool] = {}
        self._access_key = access_key or ""
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=_http_pool(connect_timeout, read_timeout),
        )
        self._region = region

    # -- error translation ----------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], *, locked_on_denied: bool = False) -> T:
        try:
            return fn()
        except S3Error as exc:
            raise self._translate(what, exc, locked_on_denied) from None
        except (ServerError, InvalidResponseError) as exc:
            raise StoreUnavailable(f"{what}: {exc}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"{what}: {self.endpoint} unreachable ({type(exc).__name__})") from None
        except MinioException as exc:
            raise ObjectStoreError(f"{what}: {exc}") from None

    @staticmethod
    def _translate(what: str, exc: S3Error, locked_on_denied: bool) -> ObjectStoreError:
        code = exc.code or ""
        if code in _NOT_FOUND:
            return ObjectNotFound(f"{what}: {code}")
        if locked_on_denied and code in _LOCKED:
            return ObjectLocked(f"{what}: {code}: {exc.message}")
        return ObjectStoreError(f"{what}: {code}: {exc.message}")

    # -- helpers --------------------------------------------------------------------------------------

    def _lock_enabled(self, bucket: str) -> bool:
        try:
            config = self._client.get_object_lock_config(bucket)
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                raise ObjectNotFound(f"no such bucket: {bucket}") from None
            if exc.code in ("ObjectLockConfigurationNotFoundError", "InvalidRequest"):
                return False
            raise self._translate(f"object lock of {bucket}", exc, False) from None
        return config is not None

    def _to_stored(self, bucket: str, key: str, headers: Mapping[str, str], size: int) -> StoredObject:
        lowered = {k.lower(): v for k, v in headers.items()}
        metadata = {
            name[len(_META_PREFIX) :]: unquote(value)
            for name, value in lowered.items()
            if name.startswith(_META_PREFIX) and name != _META_PREFIX + SHA256_META
        }
        return StoredObject(
            bucket=bucket,
            key=key,
            size=size,
            sha256=lowered.get(_META_PREFIX + SHA256_META, ""),
            content_type=lowered.get("content-type", "application/octet-stream"),
            version_id=lowered.get("x-amz-version-id") or None,
            metadata=metadata,
            retention=_parse_retention(
                lowered.get("x-amz-object-lock-mode"), lowered.get("x-amz-object-lock-retain-until-date")
            ),
            legal_hold=lowered.get("x-amz-object-lock-legal-hold", "").upper() == "ON",
        )

    def _locked_reason(self, obj: StoredObject) -> str | None:
        if obj.legal_hold:
            return "legal hold"
        if obj.retention is not None and obj.retention.active():
            return f"{obj.retention.mode} retention until {obj.retention.retain_until.isoformat()}"
        return None

    def _hash_object(self, bucket: str, key: str, version_id: str | None) -> str:
        digest = hashlib.sha256()
        with self._stream(bucket, key, version_id) as (_, chunks):
            for chunk in chunks:
                digest.update(chunk)
        return digest.hexdigest()

    @contextlib.contextmanager
    def _stream(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
        """One GET: the answer's headers (lower-cased) and its body in chunks."""
        what = f"get {bucket}/{key}"
        response = self._call(what, lambda: self._client.get_object(bucket, key, version_id=version_id))
        try:

            def chunks() -> Iterator[bytes]:
                try:
                    yield from response.stream(CHUNK_SIZE)
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    raise StoreUnavailable(f"{what}: interrupted ({type(exc).__name__})") from None

            yield {k.lower(): v for k, v in response.headers.items()}, chunks()
        finally:
            response.close()
            response.release_conn()

    def _remove_version(self, bucket: str, key: str, version_id: str | None, *, bypass: bool) -> None:
        headers: Any = {"x-amz-bypass-governance-retention": "true"} if bypass else None
        query: Any = {"versionId": version_id} if version_id else None
        # minio's remove_object cannot send the bypass header; _execute is the request primitive it uses.
        self._call(
            f"delete {bucket}/{key}",
            lambda: self._client._execute("DELETE", bucket, key, headers=headers, query_params=query),
            locked_on_denied=True,
        )

    # -- the port -------------------------------------------------------------------------------------

    def ensure_bucket(self, bucket: str, *, object_lock: bool = False) -> None:
        validate_bucket(bucket)
        if object_lock:
            # A lock bucket is made (or checked) when a service starts: the place to refuse a store that
            # cannot keep the lock guarantees, before anything is written.
            self.write_plan(object_lock=True)
        if self._call(f"bucket {bucket}", lambda: self._client.bucket_exists(bucket)):
            if object_lock:
                if not self._lock_enabled(bucket):
                    raise ObjectStoreError(f"bucket {bucket} exists without object lock")
                self._versioned[bucket] = True  # object lock implies versioning
            return
        try:
            self._call(
                f"create bucket {bucket}",
                lambda: self._client.make_bucket(bucket, location=self._region, object_lock=object_lock),
            )
        except ObjectStoreError as exc:
            # Another process created it between our check and our create.
            if "BucketAlreadyOwnedByYou" not in str(exc) and "BucketAlreadyExists" not in str(exc):
                raise
            return
        self._versioned[bucket] = object_lock  # made here: versioned exactly when object-locked

    # -- what the server can do -----------------------------------------------------------------------

    def capabilities(self) -> StoreCapabilities:
        """The server's capabilities, probed on first use and then kept (per process and server)."""
        if self._capabilities is None:
            with self._learning:
                if self._capabilities is None:
                    cache_key = (self.endpoint, self._access_key, self.capability_bucket)
                    known = _LEARNT.get(cache_key)
                    if known is None:
                        known = self._call("probe capabilities", self._probe)
                        _LEARNT[cache_key] = known
                    self._capabilities = known
        return self._capabilities

    def write_plan(self, *, object_lock: bool) -> WritePlan:
        """How puts keep each guarantee here; StoreLacksCapability (one line) where one cannot be kept.

        Only writes into versioned (object-lock) buckets need the single-version and lock means: a plain
        bucket has no locked object a second version could stack on."""
        return plan_writes(
            self.capabilities(), object_lock=object_lock, has_key_lock=self.key_lock is not None
        )

    def _probe(self) -> StoreCapabilities:
        """Tries each feature the guarantees rest on, in a bucket of its own, and removes what it wrote."""
        plain, locked = self.capability_bucket, f"{self.capability_bucket}-lock"
        for name, lock in ((plain, False), (locked, True)):
            if not self._client.bucket_exists(name):
                with contextlib.suppress(S3Error):  # made meanwhile by another process
                    self._client.make_bucket(name, location=self._region, object_lock=lock)
        run = uuid.uuid4().hex
        data = b"docroute capability probe"
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")
        written: list[tuple[str, str]] = []

        def put(
            bucket: str, key: str, headers: dict[str, str], refusals: frozenset[str] = frozenset()
        ) -> bool:
            """True when the server stored the object, False when it refused it with one of `refusals` (the
            answers that mean "the check worked"). Any other error is no answer about the feature (missing
            rights on the probe buckets, say) and ends the probe rather than passing for one."""
            try:
                self._client._execute("PUT", bucket, key, body=data, headers=cast(Any, headers))
            except S3Error as exc:
                if exc.code in refusals:
                    return False
                raise
            written.append((bucket, key))
            return True

        def refuses_second(bucket: str) -> bool:
            key = f"{run}/conditional"
            put(bucket, key, {"Content-MD5": md5})
            return not put(bucket, key, {"Content-MD5": md5, "If-None-Match": "*"}, _WRITE_RACE)

        wrong_sha = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode("ascii")
        wrong_md5 = base64.b64encode(hashlib.md5(b"other bytes", usedforsecurity=False).digest()).decode()
        until = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        try:
            conditional_unversioned = refuses_second(plain)
            conditional_versioned = refuses_second(locked)
            checksum = not put(
                plain,
                f"{run}/checksum",
                {"x-amz-sdk-checksum-algorithm": "SHA256", "x-amz-checksum-sha256": wrong_sha},
                _BAD_BODY,
            )
            content_md5 = not put(plain, f"{run}/md5", {"Content-MD5": wrong_md5}, _BAD_BODY)
            retained = f"{run}/retained"
            put(
                locked,
                retained,
                {
                    "Content-MD5": md5,
                    "x-amz-object-lock-mode": "GOVERNANCE",
                    "x-amz-object-lock-retain-until-date": until,
                },
            )
            head = self._client._execute("HEAD", locked, retained)
            lock_on_put = bool(head.headers.get("x-amz-object-lock-mode"))
            version = head.headers.get("x-amz-version-id")
            try:
                self._client._execute(
                    "DELETE",
                    locked,
                    retained,
                    query_params=cast(Any, {"versionId": version} if version else None),
                )
                retention_enforced = False
                written.remove((locked, retained))
            except S3Error as exc:
                if exc.code not in _LOCKED:
                    raise
                retention_enforced = lock_on_put
            put(plain, f"{run}/source", {"Content-MD5": md5})
            try:
                self._client._execute(
                    "PUT",
                    plain,
                    f"{run}/copy",
                    headers=cast(
                        Any,
                        {
                            "x-amz-copy-source": f"/{plain}/{run}/source",
                            "x-amz-copy-source-if-match": '"0123456789abcdef0123456789abcdef"',
                        },
                    ),
                )
                copy_conditions = False
                written.append((plain, f"{run}/copy"))
            except S3Error as exc:
                if exc.code != "PreconditionFailed":
                    raise
                copy_conditions = True
            copy_checksum, copy_lock, copy_conditional = self._probe_copy(
                plain, locked, f"{run}/source", f"{run}/copied", data, written
            )
        finally:
            self._remove_probe_objects(written)
        return StoreCapabilities(
            conditional_put_versioned=conditional_versioned,
            conditional_put_unversioned=conditional_unversioned,
            checksum_sha256=checksum,
            content_md5=content_md5,
            lock_on_put=lock_on_put,
            retention_enforced=retention_enforced,
            copy_source_conditions=copy_conditions,
            copy_checksum_sha256=copy_checksum,
            copy_lock=copy_lock,
            copy_conditional=copy_conditional,
        )

    def _copy_request(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, headers: Mapping[str, str]
    ) -> tuple[str | None, str | None]:
        """One CopyObject asking for the copy's SHA-256; (its base64 SHA-256 as the store answered it, or
        None, and the new version's id). S3Error as the server refused it."""
        response = self._client._execute(
            "PUT",
            dst_bucket,
            dst_key,
            headers=cast(
                Any,
                {
                    "x-amz-copy-source": quote(f"/{src_bucket}/{src_key}"),
                    "x-amz-metadata-directive": "COPY",
                    "x-amz-checksum-algorithm": "SHA256",
                    # moto wants it on a copy into an object-lock bucket, as on a PUT
                    "x-amz-sdk-checksum-algorithm": "SHA256",
                    **headers,
                },
            ),
        )
        found = _COPY_CHECKSUM.search(response.data or b"")
        checksum = found.group(1).decode("ascii") if found else None
        return checksum, response.headers.get("x-amz-version-id") or None

    def _probe_copy(
        self, plain: str, locked: str, source: str, copied: str, data: bytes, written: list[tuple[str, str]]
    ) -> tuple[bool, bool, bool]:
        """(copy_checksum_sha256, copy_lock, copy_conditional): a copy into the object-lock bucket under a
        legal hold, whose answered SHA-256 must be the source's, then a second copy with If-None-Match: *."""
        expected = base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
        try:
            checksum, version = self._copy_request(
                plain, source, locked, copied, {"x-amz-object-lock-legal-hold": "ON"}
            )
        except S3Error:
            return False, False, False  # no copy into a locked bucket at all: uploads it is
        written.append((locked, copied))
        # Copies are an optimisation: a refusal below (missing rights on the probe buckets, say) means
        # "do not copy", never a failed probe.
        try:
            head = self._client._execute("HEAD", locked, copied)
            held = head.headers.get("x-amz-object-lock-legal-hold", "").upper() == "ON"
            if held:
                self._set_hold(locked, copied, version, False)
        except (S3Error, ObjectStoreError):
            return False, False, False
        try:
            self._copy_request(plain, source, locked, copied, {"If-None-Match": "*"})
            conditional = False
        except S3Error as exc:
            conditional = exc.code in _WRITE_RACE
        return checksum == expected, held, conditional

    def _remove_probe_objects(self, written: list[tuple[str, str]]) -> None:
        for bucket, key in dict.fromkeys(written):
            # Probe objects only: every version goes, a GOVERNANCE one with bypass (a store that refuses
            # even that keeps it for the minute its retention lasts).
            with contextlib.suppress(S3Error, ServerError, InvalidResponseError):
                for item in self._client.list_objects(bucket, prefix=key, include_version=True):
                    if item.object_name == key:
                        self._remove_version(
                            bucket, key, item.version_id if item.version_id != "null" else None, bypass=True
                        )

    def _is_versioned(self, bucket: str) -> bool:
        """Whether the bucket is an object-lock (hence versioned) bucket; asked once per bucket, with the
        request every service's rights already allow (GetBucketObjectLockConfiguration)."""
        known = self._versioned.get(bucket)
        if known is None:
            known = self._call(f"object lock of {bucket}", lambda: self._lock_enabled(bucket))
            self._versioned[bucket] = known
        return known

    # -- writing --------------------------------------------------------------------------------------

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes | BinaryIO | VerifiedBytes,
        *,
        size: int,
        content_type: str,
        sha256: str,
        metadata: Mapping[str, str] | None = None,
        retention: Retention | None = None,
        legal_hold: bool = False,
    ) -> StoredObject:
        validate_bucket(bucket)
        validate_key(key)
        validate_sha256(sha256)
        user_metadata = check_metadata(metadata)
        if size > _MAX_SINGLE_PUT:
            raise ValueError("objects larger than 5 GiB are not supported")
        if isinstance(data, VerifiedBytes):
            # Hashed when they were read (or made): a second SHA-256 pass over them would only repeat it.
            body, digest = data.data, data.sha256
        else:
            body = bytes(data) if isinstance(data, bytes | bytearray | memoryview) else data.read(size + 1)
            digest = hashlib.sha256(body).hexdigest()
        check_received(bucket, key, size=size, sha256=sha256, received=len(body), digest=digest)
        versioned = self._is_versioned(bucket)
        plan = self.write_plan(object_lock=versioned)
        headers: dict[str, str | list[str] | tuple[str]] = {
            _META_PREFIX + name: quote(value, safe="") for name, value in user_metadata.items()
        }
        headers[_META_PREFIX + SHA256_META] = sha256
        # Object-lock buckets refuse uploads without an integrity header; the one sent is the one the server
        # was seen to check. check_received made `sha256` the body's digest, so a server that checks the
        # SHA-256 header, or the MD5 of the very same bytes, stores exactly the bytes that were hashed.
        integrity: dict[str, str] = {}
        if plan.integrity == "checksum-sha256":
            integrity["x-amz-sdk-checksum-algorithm"] = "SHA256"
            integrity["x-amz-checksum-sha256"] = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        else:
            integrity["Content-MD5"] = base64.b64encode(
                hashlib.md5(body, usedforsecurity=False).digest()
            ).decode("ascii")
        lock_after = plan.lock == "after-verify" and (retention is not None or legal_hold or versioned)
        if lock_after:
            # Unverified bytes are not locked yet (a corrupted version under retention could never be
            # removed), but a provisional legal hold keeps other writers from taking the key meanwhile.
            request = genheaders(headers, None, None, None, True)
        else:
            minio_retention = (
                MinioRetention(
                    GOVERNANCE if retention.mode == "GOVERNANCE" else COMPLIANCE,
                    retention.retain_until.astimezone(UTC),
                )
                if retention is not None
                else None
            )
            request = genheaders(headers, None, None, minio_retention, legal_hold)
        request["Content-Type"] = content_type
        request.update(integrity)  # after genheaders, which would take Content-MD5 for user metadata
        what = f"put {bucket}/{key}"

        def upload(only_if_absent: bool) -> ObjectWriteResult | None:
            # One PUT of the bytes we hashed (minio's put_object would copy them into a part first).
            extra = {"If-None-Match": "*"} if only_if_absent else {}
            try:
                return self._client._put_object(bucket, key, body, {**request, **extra})
            except S3Error as exc:
                if only_if_absent and exc.code in _WRITE_RACE:
                    return None
                if exc.code in _BAD_BODY:
                    raise ChecksumMismatch(f"{what}: the store refused the body ({exc.code})") from None
                raise

        if versioned and plan.single_version == "key-lock":
            assert self.key_lock is not None  # write_plan chose key-lock because there is one
            # The server would stack a second version over a locked one: our own lock makes "is the key
            # free?" and the write one step among all our writers.
            with self.key_lock.hold(bucket, key):
                current = self._current(bucket, key)
                if current is not None and (reason := self._locked_reason(current)) is not None:
                    raise ObjectLocked(f"cannot overwrite {bucket}/{key}: {reason}")
                result = self._call(what, functools.partial(upload, False))
                assert result is not None
                return self._finish(
                    bucket,
                    key,
                    body,
                    result,
                    plan,
                    lock_after,
                    sha256,
                    content_type,
                    user_metadata,
                    retention,
                    legal_hold,
                )
        conditional = (
            plan.single_version == "conditional-put"
            if versioned
            else (self.capabilities().conditional_put_unversioned)
        )
        result = self._conditional_upload(bucket, key, what, upload, conditional)
        return self._finish(
            bucket,
            key,
            body,
            result,
            plan,
            lock_after,
            sha256,
            content_type,
            user_metadata,
            retention,
            legal_hold,
        )

    def _current(self, bucket: str, key: str) -> StoredObject | None:
        try:
            return self.stat(bucket, key)
        except ObjectNotFound:
            return None

    def _conditional_upload(
        self,
        bucket: str,
        key: str,
        what: str,
        upload: Callable[[bool], ObjectWriteResult | None],
        conditional: bool,
    ) -> ObjectWriteResult:
        # The first request is the upload itself, conditional on the key being absent: for a new key (every
        # archived file) that is the whole cost, and the server decides "absent" atomically, so no writer
        # can slip in between a check and the write. Only when the key is taken do we look at what holds it:
        # a locked object is refused, an unlocked one is replaced (an unconditional PUT, as a plain bucket's
        # overwrite always was). A server that ignores the condition on a plain bucket gets plain PUTs: there
        # is no lock there for a second write to get around.
        if not conditional:
            result = self._call(what, functools.partial(upload, False))
            assert result is not None
            return result
        only_if_absent = True
        for _attempt in range(_PUT_ATTEMPTS):
            result = self._call(what, functools.partial(upload, only_if_absent))
            if result is not None:
                return result
            current = self._current(bucket, key)  # None: a 409 whose other upload has not landed (or failed)
            if current is not None and (reason := self._locked_reason(current)) is not None:
                raise ObjectLocked(f"cannot overwrite {bucket}/{key}: {reason}")
            only_if_absent = current is None
        raise ObjectStoreError(f"{what}: other writers kept taking the key ({_PUT_ATTEMPTS} attempts)")

    def _finish(
        self,
        bucket: str,
        key: str,
        body: bytes,
        result: ObjectWriteResult,
        plan: WritePlan,
        lock_after: bool,
        sha256: str,
        content_type: str,
        user_metadata: Mapping[str, str],
        retention: Retention | None,
        legal_hold: bool,
    ) -> StoredObject:
        version_id = result.version_id or None
        if plan.integrity != "read-back":
            # The server checked the body against the header it was seen to enforce (it would have refused
            # the request otherwise): what it holds is what we sent, no HEAD needed to learn it.
            return StoredObject(
                bucket=bucket,
                key=key,
                size=len(body),
                sha256=sha256,
                content_type=content_type,
                version_id=version_id,
                metadata=user_metadata,
                retention=_as_sent(retention),
                legal_hold=legal_hold,
            )
        # A server that checks neither header: hash what it now holds, before anything is locked.
        stored_sha = self._hash_object(bucket, key, version_id)
        if stored_sha != sha256:
            with contextlib.suppress(ObjectStoreError):
                if lock_after:
                    self._set_hold(bucket, key, version_id, False)
                self._remove_version(bucket, key, version_id, bypass=True)
            raise ChecksumMismatch(f"{bucket}/{key}: stored data hashes to {stored_sha}, expected {sha256}")
        if lock_after:
            if retention is not None:
                self._put_retention(bucket, key, version_id, retention, bypass=False)
            if not legal_hold:
                self._set_hold(bucket, key, version_id, False)
        return self.stat(bucket, key)

    def _set_hold(self, bucket: str, key: str, version_id: str | None, on: bool) -> None:
        fn = self._client.enable_object_legal_hold if on else self._client.disable_object_legal_hold
        self._call(
            f"legal hold of {bucket}/{key}",
            lambda: fn(bucket, key, version_id=version_id),
            locked_on_denied=True,
        )

    def _put_retention(
        self, bucket: str, key: str, version_id: str | None, retention: Retention | None, *, bypass: bool
    ) -> None:
        if retention is None:
            body = f'<Retention xmlns="{_S3_XMLNS}"></Retention>'.encode()
        else:
            until = retention.retain_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            body = (
                f'<Retention xmlns="{_S3_XMLNS}"><Mode>{retention.mode}</Mode>'
                f"<RetainUntilDate>{until}</RetainUntilDate></Retention>"
            ).encode()
        headers: dict[str, str] = {
            "Content-MD5": base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(
                "ascii"
            ),
        }
        if bypass:
            headers["x-amz-bypass-governance-retention"] = "true"
        query: dict[str, str] = {"retention": ""}
        if version_id:
            query["versionId"] = version_id
        # minio's set_object_retention can neither bypass governance nor clear a retention.
        self._call(
            f"set retention of {bucket}/{key}",
            lambda: self._client._execute(
                "PUT", bucket, key, body=body, headers=cast(Any, headers), query_params=cast(Any, query)
            ),
            locked_on_denied=True,
        )

    @contextlib.contextmanager
    def open(self, bucket: str, key: str) -> Iterator[VerifiedChunks]:
        validate_bucket(bucket)
        validate_key(key)
        # The GET answers with the same user metadata as a HEAD: the recorded SHA-256 comes with the bytes,
        # one request instead of two, and from the very version being read.
        with self._stream(bucket, key) as (headers, chunks):
            expected = headers.get(_META_PREFIX + SHA256_META, "")
            yield VerifiedChunks(chunks, bucket=bucket, key=key, expected=expected)

    @contextlib.contextmanager
    def open_with_info(self, bucket: str, key: str) -> Iterator[tuple[StoredObject, VerifiedChunks]]:
        validate_bucket(bucket)
        validate_key(key)
        # What stat() would say, taken from the GET's own headers: one request, and about this very version.
        with self._stream(bucket, key) as (headers, chunks):
            info = self._to_stored(bucket, key, headers, int(headers.get("content-length") or 0))
            yield info, VerifiedChunks(chunks, bucket=bucket, key=key, expected=info.sha256)

    def read(self, bucket: str, key: str) -> bytes:
        with self.open(bucket, key) as chunks:
            return b"".join(chunks)

    def stat(self, bucket: str, key: str) -> StoredObject:
        validate_bucket(bucket)
        validate_key(key)
        obj = self._call(f"stat {bucket}/{key}", lambda: self._client.stat_object(bucket, key))
        stored = self._to_stored(bucket, key, dict(obj.metadata or {}), int(obj.size or 0))
        if obj.version_id and stored.version_id is None:
            stored = dataclasses.replace(stored, version_id=obj.version_id)
        return stored

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.stat(bucket, key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, bucket: str, key: str) -> None:
        validate_bucket(bucket)
        validate_key(key)
        # On a versioned (object-lock) bucket a plain DELETE only adds a delete marker and retention would
        # never be consulted; deleting each version by id is what the lock actually guards.
        versions = self._call(
            f"list versions of {bucket}/{key}",
            lambda: [
                v.version_id
                for v in self._client.list_objects(bucket, prefix=key, include_version=True)
                if v.object_name == key
            ],
        )
        if not versions:
            return
        current = self.stat(bucket, key) if self.exists(bucket, key) else None
        if current is not None and (reason := self._locked_reason(current)) is not None:
            raise ObjectLocked(f"cannot delete {bucket}/{key}: {reason}")
        for version_id in versions:
            self._remove_version(bucket, key, version_id if version_id != "null" else None, bypass=False)

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ListedObject]:
        validate_bucket(bucket)
        listing = self._client.list_objects(bucket, prefix=prefix or None, recursive=True)
        # The listing pages lazily: every page's request can fail, so each step is translated.
        while True:
            item = self._call(f"list {bucket}/{prefix}*", lambda: next(listing, None))
            if item is None:
                return
            if item.is_dir or item.object_name is None:
                continue
            yield ListedObject(
                key=item.object_name,
                size=int(item.size or 0),
                last_modified=item.last_modified or datetime.now(UTC),
            )

    def set_retention(
        self, bucket: str, key: str, retention: Retention | None, *, bypass_governance: bool = False
    ) -> None:
        current = self.stat(bucket, key)
        if current.retention is not None and current.retention.active():
            check_retention_change(bucket, key, current.retention, retention, bypass_governance)
        self._put_retention(bucket, key, current.version_id, retention, bypass=bypass_governance)

    def set_legal_hold(self, bucket: str, key: str, on: bool) -> None:
        current = self.stat(bucket, key)
        self._set_hold(bucket, key, current.version_id, on)

    def copy(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        sha256: str,
        retention: Retention | None = None,
        legal_hold: bool = False,
    ) -> StoredObject:
        source = self.stat(src_bucket, src_key)
        check_recorded(src_bucket, src_key, source, sha256)
        # Copy through us rather than server-side so the bytes are hashed on the way; that one pass is what
        # put() checks against `sha256` (and the server against the checksum header).
        with self.open(src_bucket, src_key) as chunks:
            data = chunks.read_all()
        return self.put(
            dst_bucket,
            dst_key,
            data,
            size=len(data),
            content_type=source.content_type,
            sha256=sha256,
            metadata=source.metadata,
            retention=retention,
            legal_hold=legal_hold,
        )

    def server_copy(
        self,
        source: StoredObject,
        dst_bucket: str,
        dst_key: str,
        *,
        sha256: str,
        retention: Retention | None = None,
        legal_hold: bool = False,
    ) -> StoredObject | None:
        """The store copies `source` itself (CopyObject): no byte passes through here. None, before any
        request, when this store cannot keep the port's guarantees that way, and also when `dst_key` is
        taken: the caller then puts the bytes (put knows what to do over an existing object).

        What keeps the guarantees: the copy asks the store for its SHA-256 of what it wrote, which must
        be `sha256` (ChecksumMismatch otherwise, and the copy is removed); until that compare the copy is
        under a legal hold only, so bytes nobody checked never get retention; into an object-lock
        bucket the key is taken only if free, by If-None-Match: * where the store honours it on copies,
        else under the key lock after a HEAD, as put does.
        """
        validate_bucket(dst_bucket)
        validate_key(dst_key)
        validate_sha256(sha256)
        check_recorded(source.bucket, source.key, source, sha256)
        caps = self.capabilities()
        versioned = self._is_versioned(dst_bucket)
        if not caps.copy_checksum_sha256 or not caps.copy_lock:
            return None
        if versioned and not caps.copy_conditional and self.key_lock is None:
            return None
        what = f"copy {source.bucket}/{source.key} to {dst_bucket}/{dst_key}"
        headers = {"x-amz-object-lock-legal-hold": "ON"} if versioned or legal_hold else {}

        def copy(only_if_absent: bool) -> tuple[str | None, str | None] | None:
            try:
                return self._copy_request(
                    source.bucket,
                    source.key,
                    dst_bucket,
                    dst_key,
                    {**headers, **({"If-None-Match": "*"} if only_if_absent else {})},
                )
            except S3Error as exc:
                if only_if_absent and exc.code in _WRITE_RACE:
                    return None
                raise

        if versioned and not caps.copy_conditional:
            assert self.key_lock is not None
            with self.key_lock.hold(dst_bucket, dst_key):
                if self._current(dst_bucket, dst_key) is not None:
                    return None
                done = self._call(what, functools.partial(copy, False))
        else:
            done = self._call(what, functools.partial(copy, versioned))
        if done is None:
            return None
        checksum, version_id = done
        if checksum != base64.b64encode(bytes.fromhex(sha256)).decode("ascii"):
            with contextlib.suppress(ObjectStoreError):
                if headers:
                    self._set_hold(dst_bucket, dst_key, version_id, False)
                self._remove_version(dst_bucket, dst_key, version_id, bypass=True)
            raise ChecksumMismatch(f"{what}: the store's copy hashes to {checksum}, expected {sha256}")
        if headers:
            if retention is not None:
                self._put_retention(dst_bucket, dst_key, version_id, retention, bypass=False)
            if not legal_hold:
                self._set_hold(dst_bucket, dst_key, version_id, False)
        return StoredObject(
            bucket=dst_bucket,
            key=dst_key,
            size=source.size,
            sha256=sha256,
            content_type=source.content_type,
            version_id=version_id,
            metadata=dict(source.metadata),
            retention=_as_sent(retention),
            legal_hold=legal_hold,
        )

    def ping(self) -> None:
        try:
            self._client.bucket_exists(self.probe_bucket)
        except S3Error as exc:
            # Up, but refusing our credentials is as useless as down; any other answer means it is up.
            if exc.code in _AUTH_FAILED:
                raise StoreUnavailable(f"{self.endpoint} rejected the credentials ({exc.code})") from None
        except (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"{self.endpoint} unreachable ({type(exc).__name__})") from None
