"""The object store on a local filesystem: atomic checksummed writes, object lock enforced in the adapter."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from shared.objectstore.capabilities import (
    FULL_CAPABILITIES,
    LOCAL_PLAN,
    StoreCapabilities,
    WritePlan,
)
from shared.objectstore.port import (
    CHUNK_SIZE,
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

BUCKET_CONFIG = ".docroute-bucket.json"
BUCKET_LOCK = ".docroute-bucket.lock"
# How a bucket lays out its objects, fixed when the bucket is made and recorded in its config.
# - Layout 1 (buckets made before layout 2, whose config has no "layout"): data/<key> and meta/<key>.json,
#   so the folders of a key are folders on disk.
# - Layout 2: objects/<h[:2]>/<h> and <h>.json beside it. A new key creates no folder (there are 256 fan-out
#   folders, each made once) and its two files share one folder, whose entry is synced once: three fsyncs
#   per put, where layout 1 takes six for a key in a new folder. h names the files and is no checksum: the
#   128-bit BLAKE2b of the key (`printf %s KEY | b2sum -l 128`); the sidecar names the key too.
LAYOUT_KEYED = 1
LAYOUT_HASHED = 2
DATA_DIR = "data"
META_DIR = "meta"
OBJECTS_DIR = "objects"


def _now() -> datetime:
    return datetime.now(UTC)


def _fsync_dir(directory: Path) -> None:
    # A rename is durable only once its directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mkdirs_durably(directory: Path) -> None:
    """`mkdir -p` that also fsyncs the parent of every directory it creates.

    A file renamed into a brand-new directory survives a power loss only if that directory's own entry
    reached the disk too; existing directories cost nothing.
    """
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=0o700)  # the stored documents are nobody else's business on this machine
        except FileExistsError:
            continue  # another thread or process made it (and syncs it)
        _fsync_dir(new.parent)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until every byte is written (a regular file may still take fewer than asked)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _chunks_of(data: bytes | BinaryIO | VerifiedBytes) -> Iterator[bytes]:
    if isinstance(data, VerifiedBytes):
        data = data.data
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])
        return
    while True:
        chunk = data.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


class FilesystemStore:
    """Buckets are directories under `root`; each object is a read-only file plus a JSON sidecar (which also
    names its key); see LAYOUT_HASHED for where they are."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        # Guards bucket creation and pairs with the per-bucket flock (see _exclusive).
        self._lock = threading.RLock()
        # A bucket's config is written once, when the bucket is made, and never changed: read once.
        self._configs: dict[str, dict[str, Any]] = {}
        # The lock file of each bucket, opened once per process (see _exclusive).
        self._lock_files: dict[str, int] = {}
        self._lock_files_pid = os.getpid()

    # -- layout ---------------------------------------------------------------------------------------

    def _bucket_dir(self, bucket: str) -> Path:
        return self.root / validate_bucket(bucket)

    def _bucket_config(self, bucket: str) -> dict[str, Any]:
        cached = self._configs.get(bucket)
        if cached is not None:
            return cached
        config = self._bucket_dir(bucket) / BUCKET_CONFIG
        try:
            loaded: dict[str, Any] = json.loads(config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ObjectNotFound(f"no such bucket: {bucket}") from None
        self._configs[bucket] = loaded
        return loaded

    def _lock_file(self, bucket: str) -> int:
        """This process's descriptor of the bucket's lock file; call with self._lock held.

        A forked child must not share its parent's descriptor: flock belongs to the open file description,
        so parent and child would hold the lock together. After a fork the child opens its own.
        """
        if self._lock_files_pid != os.getpid():
            self._lock_files, self._lock_files_pid = {}, os.getpid()
        fd = self._lock_files.get(bucket)
        if fd is None:
            fd = os.open(
                self._bucket_dir(bucket) / BUCKET_LOCK, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
            )
            self._lock_files[bucket] = fd
        return fd

    @contextlib.contextmanager
    def _exclusive(self, bucket: str) -> Iterator[None]:
        """Serialise lock-state checks and changes on a bucket across threads and gunicorn workers.

        The threading lock excludes this process's other threads; flock on the process's own descriptor of
        the bucket's lock file excludes other processes.
        """
        with self._lock:
            fd = self._lock_file(bucket)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _paths(self, bucket: str, key: str) -> tuple[Path, Path]:
        """Where the object's bytes and its sidecar are, in the bucket's layout."""
        validate_key(key)
        base = self._bucket_dir(bucket)
        if self._bucket_config(bucket).get("layout", LAYOUT_KEYED) == LAYOUT_KEYED:
            return base / DATA_DIR / key, base / META_DIR / f"{key}.json"
        name = hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()
        folder = base / OBJECTS_DIR / name[:2]
        return folder / name, folder / f"{name}.json"

    def _read_meta(self, bucket: str, key: str) -> dict[str, Any]:
        self._bucket_config(bucket)
        data_path, meta_path = self._paths(bucket, key)
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no such object: {bucket}/{key}") from None
        if not data_path.is_file():
            raise ObjectNotFound(f"no such object: {bucket}/{key}")
        return meta

    @staticmethod
    def _stage_meta(meta_path: Path, meta: Mapping[str, Any]) -> Path:
        """Writes and fsyncs the sidecar to a temp file beside `meta_path`; the caller renames it."""
        body = json.dumps(meta, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
        _mkdirs_durably(meta_path.parent)
        fd, tmp = tempfile.mkstemp(dir=meta_path.parent, prefix=".tmp-", suffix=".json")
        try:
            try:
                _write_all(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return Path(tmp)

    def _write_meta(self, meta_path: Path, meta: Mapping[str, Any]) -> None:
        tmp = self._stage_meta(meta_path, meta)
        try:
            os.replace(tmp, meta_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(meta_path.parent)

    @staticmethod
    def _to_stored(bucket: str, key: str, meta: Mapping[str, Any]) -> StoredObject:
        raw = meta.get("retention")
        retention = (
            Retention(raw["mode"], datetime.fromisoformat(raw["retain_until"])) if raw is not None else None
        )
        return StoredObject(
            bucket=bucket,
            key=key,
            size=int(meta["size"]),
            sha256=str(meta["sha256"]),
            content_type=str(meta["content_type"]),
            version_id=meta.get("version_id"),
            metadata=dict(meta.get("metadata") or {}),
            retention=retention,
            legal_hold=bool(meta.get("legal_hold", False)),
        )

    @staticmethod
    def _locked_reason(meta: Mapping[str, Any], now: datetime) -> str | None:
        if meta.get("legal_hold"):
            return "legal hold"
        raw = meta.get("retention")
        if raw is not None and datetime.fromisoformat(raw["retain_until"]) > now:
            return f"{raw['mode']} retention until {raw['retain_until']}"
        return None

    # -- the port -------------------------------------------------------------------------------------

    def ensure_bucket(self, bucket: str, *, object_lock: bool = False) -> None:
        with self._lock:
            directory = self._bucket_dir(bucket)
            config = directory / BUCKET_CONFIG
            if config.exists():
                existing = self._bucket_config(bucket)
                if object_lock and not existing.get("object_lock"):
                    raise ObjectStoreError(f"bucket {bucket} exists without object lock")
                return
            _mkdirs_durably(directory / OBJECTS_DIR)
            self._write_meta(
                config,
                {"object_lock": object_lock, "created_at": _now().isoformat(), "layout": LAYOUT_HASHED},
            )

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
        validate_sha256(sha256)
        user_metadata = check_metadata(metadata)
        config = self._bucket_config(bucket)
        if (retention is not None or legal_hold) and not config.get("object_lock"):
            raise ObjectStoreError(f"bucket {bucket} has no object lock; retention and legal hold need it")
        data_path, meta_path = self._paths(bucket, key)
        try:
            _mkdirs_durably(data_path.parent)
            # Hash while writing to a temp file; only a verified, fsynced file is renamed into place.
            fd, tmp_name = tempfile.mkstemp(dir=data_path.parent, prefix=".tmp-")
        except (FileExistsError, NotADirectoryError) as exc:
            raise ObjectStoreError(f"{bucket}/{key}: key collides with another object's path") from exc
        tmp = Path(tmp_name)
        meta_tmp: Path | None = None
        try:
            # VerifiedBytes were hashed when they were read: their digest stands for the bytes written.
            known = data.sha256 if isinstance(data, VerifiedBytes) else ""
            digest = None if known else hashlib.sha256()
            written = 0
            try:
                # Bytes in memory go to the file in one piece; a stream is copied chunk by chunk.
                whole = data.data if isinstance(data, VerifiedBytes) else data
                pieces = [whole] if isinstance(whole, bytes | bytearray | memoryview) else _chunks_of(whole)
                for piece in pieces:
                    if digest is not None:
                        digest.update(piece)
                    _write_all(fd, piece)
                    written += len(piece)
                os.fsync(fd)
            finally:
                os.close(fd)
            actual = digest.hexdigest() if digest is not None else known
            check_received(bucket, key, size=size, sha256=sha256, received=written, digest=actual)
            os.chmod(tmp, 0o400)  # read-only, and private
            meta = {
                "key": key,
                "size": written,
                "sha256": actual,
                "content_type": content_type,
                "version_id": uuid.uuid4().hex,
                "metadata": user_metadata,
                "retention": (
                    {"mode": retention.mode, "retain_until": retention.retain_until.isoformat()}
                    if retention is not None
                    else None
                ),
                "legal_hold": legal_hold,
                "created_at": _now().isoformat(),
            }
            # The sidecar is written and fsynced before the bucket lock too: every put of every worker
            # queues on that lock, so it covers only the lock check and the two renames, never an fsync.
            meta_tmp = self._stage_meta(meta_path, meta)
            with self._exclusive(bucket):
                self._refuse_if_locked(bucket, key, config, "overwrite")
                if data_path.is_dir():
                    raise ObjectStoreError(f"{bucket}/{key}: key collides with another object's path")
                os.replace(tmp, data_path)
                os.replace(meta_tmp, meta_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            if meta_tmp is not None:
                meta_tmp.unlink(missing_ok=True)
            raise
        # Both renames are durable once their directory entries are on disk; only then does put return.
        _fsync_dir(data_path.parent)
        if meta_path.parent != data_path.parent:
            _fsync_dir(meta_path.parent)
        return self._to_stored(bucket, key, meta)

    def _refuse_if_locked(self, bucket: str, key: str, config: Mapping[str, Any], action: str) -> None:
        if not config.get("object_lock"):
            return
        try:
            current = self._read_meta(bucket, key)
        except ObjectNotFound:
            return
        reason = self._locked_reason(current, _now())
        if reason is not None:
            raise ObjectLocked(f"cannot {action} {bucket}/{key}: {reason}")

    @contextlib.contextmanager
    def open(self, bucket: str, key: str) -> Iterator[VerifiedChunks]:
        with self.open_with_info(bucket, key) as (_info, chunks):
            yield chunks

    @contextlib.contextmanager
    def open_with_info(self, bucket: str, key: str) -> Iterator[tuple[StoredObject, VerifiedChunks]]:
        meta = self._read_meta(bucket, key)
        data_path, _ = self._paths(bucket, key)
        try:
            fh = data_path.open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"no such object: {bucket}/{key}") from None
        with fh:
            # A reader that consumes everything learns about bit rot at the end instead of trusting it.
            yield (
                self._to_stored(bucket, key, meta),
                VerifiedChunks(_chunks_of(fh), bucket=bucket, key=key, expected=str(meta["sha256"])),
            )

    def read(self, bucket: str, key: str) -> bytes:
        with self.open(bucket, key) as chunks:
            return b"".join(chunks)

    def stat(self, bucket: str, key: str) -> StoredObject:
        return self._to_stored(bucket, key, self._read_meta(bucket, key))

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self._read_meta(bucket, key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, bucket: str, key: str) -> None:
        config = self._bucket_config(bucket)
        with self._exclusive(bucket):
            data_path, meta_path = self._paths(bucket, key)
            self._refuse_if_locked(bucket, key, config, "delete")
            data_path.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ListedObject]:
        base = self._bucket_dir(bucket)
        if self._bucket_config(bucket).get("layout", LAYOUT_KEYED) == LAYOUT_KEYED:
            sidecars = (base / META_DIR).rglob("*.json")
        else:
            sidecars = (base / OBJECTS_DIR).glob("*/*.json")
        found: list[ListedObject] = []
        for meta_path in sidecars:
            if meta_path.name.startswith(".tmp-"):
                continue
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except FileNotFoundError:  # deleted while we listed
                continue
            key = str(meta.get("key") or meta_path.relative_to(base / META_DIR).as_posix()[: -len(".json")])
            if not key.startswith(prefix):
                continue
            data_path, _ = self._paths(bucket, key)
            try:
                stat = data_path.stat()
            except FileNotFoundError:
                continue
            created = meta.get("created_at")
            modified = (
                datetime.fromisoformat(created) if created else datetime.fromtimestamp(stat.st_mtime, UTC)
            )
            found.append(ListedObject(key=key, size=int(meta["size"]), last_modified=modified))
        yield from sorted(found, key=lambda listed: listed.key)

    def set_retention(
        self, bucket: str, key: str, retention: Retention | None, *, bypass_governance: bool = False
    ) -> None:
        config = self._bucket_config(bucket)
        with self._exclusive(bucket):
            if not config.get("object_lock"):
                raise ObjectStoreError(f"bucket {bucket} has no object lock")
            meta = self._read_meta(bucket, key)
            raw = meta.get("retention")
            if raw is not None:
                current = Retention(raw["mode"], datetime.fromisoformat(raw["retain_until"]))
                if current.active():
                    check_retention_change(bucket, key, current, retention, bypass_governance)
            meta["retention"] = (
                {"mode": retention.mode, "retain_until": retention.retain_until.isoformat()}
                if retention is not None
                else None
            )
            self._write_meta(self._paths(bucket, key)[1], meta)

    def set_legal_hold(self, bucket: str, key: str, on: bool) -> None:
        config = self._bucket_config(bucket)
        with self._exclusive(bucket):
            if not config.get("object_lock"):
                raise ObjectStoreError(f"bucket {bucket} has no object lock")
            meta = self._read_meta(bucket, key)
            meta["legal_hold"] = bool(on)
            self._write_meta(self._paths(bucket, key)[1], meta)

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
        data_path, _ = self._paths(src_bucket, src_key)
        with data_path.open("rb") as fh:
            # put() re-hashes the bytes it writes, so a source that rotted on disk is refused here too.
            return self.put(
                dst_bucket,
                dst_key,
                fh,
                size=source.size,
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
        # The bytes would pass through this process either way: a put of what the caller holds is as cheap.
        return None

    def ping(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise StoreUnavailable(f"object store root {self.root} is not writable")
        except OSError as exc:
            raise StoreUnavailable(f"object store root {self.root}: {exc}") from None

    def capabilities(self) -> StoreCapabilities:
        # Every guarantee is kept here, in this adapter, under the bucket's file lock.
        return FULL_CAPABILITIES

    def write_plan(self, *, object_lock: bool) -> WritePlan:
        return LOCAL_PLAN
