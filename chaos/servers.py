"""Private servers for fault runs: a RabbitMQ node, a PostgreSQL cluster and moto's S3 server, each on its
own free ports and temp folder, each stoppable, killable and restartable (never the machine's shared ones)."""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_BIN = Path(os.environ.get("DOCROUTE_CHAOS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
POSTGRES_BIN = Path(os.environ.get("DOCROUTE_CHAOS_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
ROOT = Path(__file__).resolve().parents[1]
MOTO_SERVER = ROOT / ".venv" / "bin" / "moto_server"


class ServerError(RuntimeError):
    """A private server did not start, stop or answer as asked."""


def free_port(low: int = 0, high: int = 0) -> int:
    """A loopback TCP port nobody listens on now (any port, or one in [low, high) when given)."""
    candidates = [0] if not low else list(range(low, high))
    if low:
        secrets.SystemRandom().shuffle(candidates)
    for candidate in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise ServerError(f"no free port in [{low}, {high})")


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts a TCP connection on host:port."""
    with socket.socket() as s:
        s.settimeout(1.0)
        try:
            s.connect((host, port))
        except OSError:
            return False
        return True


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Polls `check` until it is true; ServerError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ServerError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# ------------------------------------------------------------------------------------------ RabbitMQ


@dataclass
class RabbitNode:
    """A RabbitMQ node of our own: its node name, AMQP and distribution ports, data and logs under `workdir`.

    The machine's node `rabbit@localhost` on 5672 is never addressed: the node reads our own config and env
    files (not /etc/rabbitmq), and every rabbitmqctl call names our node with `-n` and uses our own Erlang
    cookie (HOME is our folder) and CLI distribution ports.
    """

    workdir: Path
    name: str = field(default_factory=lambda: f"chaos-{secrets.token_hex(4)}@localhost")
    amqp_port: int = field(default_factory=free_port)
    # Distribution port below 55000 so that the CLI's range (port + 10000 … + 10010) stays valid.
    dist_port: int = field(default_factory=lambda: free_port(20000, 30000))
    cookie: str = field(default_factory=lambda: secrets.token_hex(16).upper())
    # More rabbitmq.conf lines (a cluster's partition handling and net tick).
    extra_config: str = ""
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def log(self) -> Path:
        return self.workdir / "node.log"

    def env(self) -> dict[str, str]:
        """The environment of the node and of rabbitmqctl for it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            {
                "HOME": str(self.workdir),
                "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),
                "RABBITMQ_CONFIG_FILE": str(self.workdir / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.workdir / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.amqp_port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CTL_DIST_PORT_MIN": str(self.dist_port + 10000),
                "RABBITMQ_CTL_DIST_PORT_MAX": str(self.dist_port + 10010),
                "RABBITMQ_MNESIA_BASE": str(self.workdir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.workdir / "log"),
                "RABBITMQ_PID_FILE": str(self.workdir / "node.pid"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                "ERL_EPMD_ADDRESS": "127.0.0.1",
            }
        )
        return env

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "rabbitmq-env.conf").write_text("# this node's settings come from the environment\n")
        (self.workdir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n"
            "log.console = false\n"
            "log.file.level = info\n"
            # The fault runs fill a single node fast; the default 50 MB free-disk alarm would block them on a
            # small VM disk without being part of any fault.
            "disk_free_limit.absolute = 10MB\n"
            # Queue counts (rabbitmqctl list_queues) are statistics: refresh them every second, not every 5.
            "collect_statistics_interval = 1000\n" + self.extra_config
        )
        (self.workdir / "advanced.config").write_text("[].\n")
        (self.workdir / "enabled_plugins").write_text("[].\n")
        cookie = self.workdir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)

    def start(self, timeout: float = 120.0) -> None:
        """Starts the node as our child (its own process group) and waits until it takes AMQP connections."""
        if self.running():
            return
        # Our readiness check is an AMQP handshake on our port: another server there would pass it.
        if port_answers(self.amqp_port):
            raise ServerError(f"port {self.amqp_port} is taken: RabbitMQ node {self.name} not started")
        self._prepare()
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - RabbitMQ's own start script, fixed arguments
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                cwd=self.workdir,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = self._proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise ServerError(
                    f"RabbitMQ node {self.name} exited with {proc.returncode}:\n{tail(self.log)}"
                )
            return port_answers(self.amqp_port) and self._amqp_handshake()

        wait_for(ready, timeout=timeout, what=f"RabbitMQ node {self.name} on {self.amqp_port}", interval=0.3)

    def _amqp_handshake(self) -> bool:
        import pika

        try:
            params = pika.URLParameters(self.amqp_url)
            params.socket_timeout = 3
            params.blocked_connection_timeout = 3
            conn = pika.BlockingConnection(params)
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False
        with contextlib.suppress(Exception):
            conn.close()
        return True

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        """A clean shutdown (SIGTERM: the node closes its connections and queues), SIGKILL if it overstays."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)
        # Helper processes (erl_child_setup, inet_gethost) die with the node; sweep the group anyway.
        _signal_group(proc, signal.SIGKILL)
        wait_for(lambda: not port_answers(self.amqp_port), timeout=15, what="the AMQP port to close")

    def pause(self) -> None:
        """SIGSTOP to the node's whole process group: to its peers it looks cut off by a partition."""
        if self._proc is not None and self._proc.poll() is None:
            _signal_group(self._proc, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after pause()."""
        if self._proc is not None and self._proc.poll() is None:
            _signal_group(self._proc, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL to the node's whole process group: a crash, not a shutdown."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=15)

    def restart(self, timeout: float = 120.0) -> None:
        self.stop()
        self.start(timeout=timeout)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """`rabbitmqctl -n <this node> ARGS` with this node's cookie; its output (ServerError if it fails)."""
        try:
            result = subprocess.run(  # noqa: S603 - RabbitMQ's own CLI, arguments from the caller
                [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, "-q", *args],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"rabbitmqctl {' '.join(args)} on {self.name} timed out") from exc
        if result.returncode != 0:
            raise ServerError(f"rabbitmqctl {' '.join(args)} on {self.name}: {result.stdout}{result.stderr}")
        return result.stdout

    def join(self, seed: RabbitNode) -> None:
        """Makes this running node a member of `seed`'s cluster (both made with the same `cookie`)."""
        if self.cookie != seed.cookie:
            raise ServerError(
                f"{self.name} and {seed.name} have different Erlang cookies: they cannot cluster"
            )
        self.ctl("stop_app")
        self.ctl("reset")
        self.ctl("join_cluster", seed.name, timeout=120)
        self.ctl("start_app", timeout=120)

    def cluster_nodes(self) -> list[str]:
        """The running nodes of this node's cluster, as this node sees them."""
        import json

        status = json.loads(self.ctl("cluster_status", "--formatter", "json"))
        return sorted(str(node) for node in status.get("running_nodes", []))

    def queue_leaders(self, vhost: str = "/") -> dict[str, str]:
        """{queue: node name of its leader} for the quorum queues of `vhost`."""
        out: dict[str, str] = {}
        listing = self.ctl("list_queues", "-p", vhost, "--no-table-headers", "name", "leader")
        for line in listing.splitlines():
            name, _, lead = line.partition("\t")
            if name and lead.strip():
                out[name] = lead.strip()
        return out

    def queue_messages(self, vhost: str = "/") -> dict[str, int]:
        """{queue: messages} in `vhost`, ready and unacknowledged together (a passive declare counts only the
        ready ones, and a consumer's prefetch hides the rest)."""
        out: dict[str, int] = {}
        listing = self.ctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages")
        for line in listing.splitlines():
            name, _, count = line.rpartition("\t")
            if name and count.strip().isdigit():
                out[name] = int(count)
        return out

    def close(self) -> None:
        """Stops the node (kill if it will not stop) and removes its folder."""
        with contextlib.suppress(ServerError, subprocess.TimeoutExpired):
            self.stop(timeout=30)
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


#: rabbitmq.conf for the nodes of a private cluster: a node cut off from the others (here: SIGSTOPped) is
#: declared down after the net tick (10 s, not 60, so that a run can pause one for longer), and when it comes
#: back the partition heals without an operator (autoheal: the losing side restarts and rejoins). Measured
#: here on RabbitMQ 3.10: with pause_minority a node resumed after a pause past the net tick never noticed
#: that it had been in a minority and stayed partitioned (each side running alone for 60 s and more);
#: with autoheal the cluster was whole again 6 s after the resume.
CLUSTER_CONFIG = "net_ticktime = 10\ncluster_partition_handling = autoheal\n"
NET_TICKTIME = 10.0


def start_node(workdir: Path, cookie: str, *, extra_config: str = "", attempts: int = 3) -> RabbitNode:
    """A started private node. Its ports are picked free but not reserved, so another process on the machine
    may take one before the node binds it: then a new node, on new ports, tries again."""
    for attempt in range(1, attempts + 1):
        node = RabbitNode(workdir / f"try{attempt}", cookie=cookie, extra_config=extra_config)
        try:
            node.start()
            return node
        except ServerError:
            node.close()
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def start_cluster(workdir: Path, size: int = 3, *, extra_config: str = CLUSTER_CONFIG) -> list[RabbitNode]:
    """`size` private nodes (own names, AMQP and distribution ports, data folders), one Erlang cookie, joined
    into one cluster; the caller closes them (close_cluster)."""
    cookie = secrets.token_hex(16).upper()
    nodes: list[RabbitNode] = []
    try:
        for i in range(size):
            nodes.append(start_node(workdir / f"node{i}", cookie, extra_config=extra_config))
        first = nodes[0]
        for node in nodes[1:]:
            node.join(first)
        expected = sorted(n.name for n in nodes)
        wait_for(lambda: first.cluster_nodes() == expected, timeout=60, what=f"{size} nodes in the cluster")
    except BaseException:
        close_cluster(nodes)
        raise
    return nodes


def close_cluster(nodes: list[RabbitNode]) -> None:
    for node in reversed(nodes):
        node.resume()
        try:
            node.close()
        except ServerError:
            node.kill()


# ---------------------------------------------------------------------------------------- PostgreSQL


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its binaries as the `postgres` account."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PgCluster:
    """A PostgreSQL cluster of our own (initdb, a free port, trust auth, no fsync) in `home`.

    `home` is `workdir` itself, except as root: PostgreSQL then runs as the `postgres` account, which must
    reach its folder, and a folder under pytest's temp root loses that as soon as another pytest session
    starts (pytest resets its root to 0700). As root the cluster lives in a folder of its own under the
    system temp folder, removed by `close()`.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    # Enough for three services' gunicorn pools, three workers and the checks; 100 runs short in kill tests.
    max_connections: int = 300
    home: Path = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.home = self.workdir
            return
        self.home = Path(tempfile.mkdtemp(prefix="docroute-chaos-pg-", dir=tempfile.gettempdir()))
        self.home.chmod(0o711)
        account = pwd.getpwnam("postgres")
        os.chown(self.home, account.pw_uid, account.pw_gid)
        # Where to look for it from the run's own folder.
        with contextlib.suppress(OSError):
            (self.workdir / "cluster").symlink_to(self.home)

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def log(self) -> Path:
        return self.home / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120.0) -> str:
        result = subprocess.run(  # noqa: S603 - PostgreSQL's own binaries, fixed arguments
            [*_as_postgres_user(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )
        if result.returncode != 0:
            raise ServerError(f"{' '.join(args[:2])}: {result.stdout}{result.stderr}\n{tail(self.log)}")
        return result.stdout

    def init(self) -> None:
        """initdb (once) with trust authentication and UTF-8."""
        if (self.datadir / "PG_VERSION").exists():
            return
        self._run(
            str(POSTGRES_BIN / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )

    def start(self, timeout: float = 60.0) -> None:
        """Starts the cluster (initdb first when new) and waits until it accepts connections."""
        self.init()
        if self.running():
            return
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.home} "
            f"-c max_connections={self.max_connections} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )
        self._run(
            str(POSTGRES_BIN / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
            timeout=timeout + 10,
        )

    def running(self) -> bool:
        return (self.datadir / "postmaster.pid").exists() and port_answers(self.port)

    def stop(self, mode: str = "fast") -> None:
        """Stops the cluster: `fast` ends every session at once (what clients see of a database outage)."""
        if not (self.datadir / "postmaster.pid").exists():
            return
        self._run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (UTF-8); its SQLAlchemy URL."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0"))
        finally:
            engine.dispose()
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(ServerError, subprocess.TimeoutExpired):
            self.stop(mode="immediate")
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- S3


@dataclass
class MotoS3:
    """moto's S3-protocol server as a child process (its own GIL, not the driver's) on a free port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    access_key: str = "chaos"
    secret_key: str = "chaos-secret"  # noqa: S105 - moto accepts any key; this one only names the test
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "moto.log"
        with log.open("ab") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - moto's server entry point, fixed arguments
                [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = self._proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise ServerError(f"moto_server exited with {proc.returncode}:\n{tail(log)}")
            return port_answers(self.port)

        wait_for(ready, timeout=timeout, what="moto's S3 server")

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def environ(self, endpoint: str | None = None) -> Mapping[str, str]:
        """The DOCROUTE_S3_* settings that point a service at this server (or at `endpoint`, a proxy)."""
        return {
            "DOCROUTE_S3_ENDPOINT": endpoint or self.endpoint,
            "DOCROUTE_S3_ACCESS_KEY": self.access_key,
            "DOCROUTE_S3_SECRET_KEY": self.secret_key,
            "DOCROUTE_S3_SECURE": "false",
            "DOCROUTE_S3_REGION": "us-east-1",
        }
