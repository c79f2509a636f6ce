"""A private single-host Ceph cluster with a RADOS Gateway (S3) for tests and benchmarks: start, use, remove.

One monitor, one OSD keeping its data in memory (memstore), one radosgw on a loopback port, no manager and no
authentication between the daemons (the S3 user's keys are still checked by the gateway). Everything lives
in one temporary folder; `stop()` kills the daemons and removes it. Ceph's Debian packages provide the
binaries (ceph-mon, ceph-osd, radosgw); `missing_binaries()` says which are absent so callers can skip.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
START_TIMEOUT = 60.0


def missing_binaries() -> list[str]:
    """The Ceph programs this starter needs that are not on PATH (empty when it can run)."""
    return [name for name in BINARIES if shutil.which(name) is None]


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it when the process that started it dies, so a
    killed test run or benchmark leaves no Ceph daemon behind (PR_SET_PDEATHSIG = 1)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RgwServer:
    """What a client needs to reach the running gateway."""

    endpoint: str  # host:port, as the minio client takes it
    access_key: str
    secret_key: str
    region: str
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"


@dataclass
class _Daemon:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def _config(root: Path, fsid: str, mon_port: int, rgw_port: int) -> str:
    # Why the lines: auth none spares keyrings, and the crc modes are what auth none needs on the v2
    # protocol; size 1 and chooseleaf 0 let one OSD hold every placement group; a short paxos interval, one
    # placement group per pool and one-second report ticks make the gateway's start-up pool creation take a
    # fraction of a second; a short objecter tick stops a gateway that looked before the OSD was up from
    # waiting five seconds for its next look; low debug levels keep the logs quiet.
    return f"""[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms mon cluster mode = crc
ms cluster mode = crc
ms mon service mode = crc
ms service mode = crc
keyring = /dev/null
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
pid file = {root}/run/$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
paxos propose interval = 0.01
paxos min wait = 0.001
mon tick interval = 1
osd mon report interval = 1
osd beacon report interval = 1
objecter tick interval = 0.2
auth allow insecure global id reclaim = false
mon data avail warn = 1
mon osd report timeout = 60
osd heartbeat interval = 5
debug ms = 0
debug mon = 0
debug osd = 0
debug paxos = 0
debug rgw = 0
debug monc = 0
[mon.a]
mon data = {root}/mon
[osd.0]
osd data = {root}/osd
osd objectstore = memstore
memstore device bytes = 2147483648
osd op num shards = 1
osd op num threads per shard = 2
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
rgw thread pool size = 32
rgw enable usage log = false
"""


@dataclass
class RgwCluster:
    """Starts the cluster on `start()` (or `with`), stops and removes everything on `stop()`."""

    access_key: str = "docroute-test"
    secret_key: str = "docroute-test-secret"
    region: str = "us-east-1"
    parent_dir: Path | None = None
    root: Path | None = None
    startup_seconds: float | None = None
    _daemons: list[_Daemon] = field(default_factory=list)
    _server: RgwServer | None = None

    def __enter__(self) -> RgwServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def conf(self) -> Path:
        assert self.root is not None, "the cluster is not started"
        return self.root / "ceph.conf"

    @property
    def pids(self) -> list[int]:
        return [d.process.pid for d in self._daemons]

    def start(self) -> RgwServer:
        if self._server is not None:
            return self._server
        missing = missing_binaries()
        if missing:
            raise RuntimeError(f"Ceph is not installed here (missing {', '.join(missing)})")
        started = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="docroute-rgw-", dir=self.parent_dir))
        try:
            self._start_in(self.root)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        assert self._server is not None
        return self._server

    def _start_in(self, root: Path) -> None:
        for sub in ("mon", "osd", "run", "log", "rgw"):
            (root / sub).mkdir()
        fsid = str(uuid.uuid4())
        mon_port, rgw_port = _free_port(), _free_port()
        self.conf.write_text(_config(root, fsid, mon_port, rgw_port), encoding="utf-8")
        monmap = root / "monmap"
        self._run(
            "monmaptool", "--create", "--fsid", fsid, "--addv", "a", f"[v2:127.0.0.1:{mon_port}]", str(monmap)
        )
        self._run("ceph-mon", "-c", str(self.conf), "--mkfs", "-i", "a", "--monmap", str(monmap))
        self._spawn("mon.a", "ceph-mon", "-f", "-c", str(self.conf), "-i", "a")
        osd_uuid = str(uuid.uuid4())
        osd_id = self._run("ceph", "-c", str(self.conf), "--connect-timeout", "30", "osd", "new", osd_uuid)
        self._run("ceph-osd", "-c", str(self.conf), "-i", osd_id.strip(), "--mkfs", "--osd-uuid", osd_uuid)
        self._spawn("osd.0", "ceph-osd", "-f", "-c", str(self.conf), "-i", osd_id.strip())
        self._spawn("client.rgw", "radosgw", "-f", "-c", str(self.conf), "-n", "client.rgw")
        endpoint = f"127.0.0.1:{rgw_port}"
        self._wait_for_gateway(endpoint)
        user = self._run(
            "radosgw-admin",
            "-c",
            str(self.conf),
            "-n",
            "client.rgw",
            "user",
            "create",
            "--uid",
            "docroute",
            "--display-name",
            "docroute tests",
            "--access-key",
            self.access_key,
            "--secret",
            self.secret_key,
        )
        keys = json.loads(user)["keys"]
        if not any(k["access_key"] == self.access_key for k in keys):
            raise RuntimeError(f"radosgw-admin did not create the S3 key: {user}")
        self._server = RgwServer(endpoint, self.access_key, self.secret_key, self.region, root)

    def _run(self, *argv: str) -> str:
        done = subprocess.run(argv, capture_output=True, timeout=START_TIMEOUT, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {output[-2000:]}")
        return done.stdout.decode()

    def _spawn(self, name: str, *argv: str) -> None:
        assert self.root is not None
        log = self.root / "log" / f"{name}.out"
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._daemons.append(_Daemon(name, process, log))

    def _wait_for_gateway(self, endpoint: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for daemon in self._daemons:
                if daemon.process.poll() is not None:
                    raise RuntimeError(
                        f"{daemon.name} exited ({daemon.process.returncode}): {self._tail(daemon)}"
                    )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"http://{endpoint}/", timeout=1) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"radosgw did not answer on {endpoint} within {START_TIMEOUT:.0f}s")

    @staticmethod
    def _tail(daemon: _Daemon) -> str:
        with contextlib.suppress(OSError):
            return daemon.log.read_text(errors="replace")[-2000:]
        return "(no output)"

    def memory_bytes(self) -> int:
        """The daemons' resident memory together (Linux /proc), for the reports."""
        total = 0
        for daemon in self._daemons:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{daemon.process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def stop(self) -> None:
        """Kills the daemons and removes the folder; safe to call twice.

        SIGKILL straight away: the data is thrown away, and a graceful stop takes seconds (the OSD writes
        its memstore out, the gateway waits for the monitor) for nothing."""
        for daemon in self._daemons:
            if daemon.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(daemon.process.pid, signal.SIGKILL)
        for daemon in self._daemons:
            daemon.process.wait(timeout=10)
        self._daemons.clear()
        self._server = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
