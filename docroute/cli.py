"""The `docroute` command: run the services, mint development tokens, migrate, and operate queues."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
from shared.auth import ROLES, issue_token
from shared.settings import CommonSettings, SettingsError, ensure_dev_secret

from docroute import seed
from docroute.services import SERVICES, by_name

SERVICE_NAMES = [spec.name for spec in SERVICES]
# Where the console calls each service's API, in the order of SERVICES.
CONSOLE_API_URLS = (
    "DOCROUTE_CONSOLE_INTAKE_URL",
    "DOCROUTE_CONSOLE_ROUTING_URL",
    "DOCROUTE_CONSOLE_ARCHIVE_URL",
)
REPO_ROOT = Path(__file__).resolve().parents[1]


def _common() -> CommonSettings:
    try:
        return CommonSettings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _private_state(common: CommonSettings) -> None:
    """Keep what this process and its children create private: files 0600, folders 0700.

    The data folder holds the development secret, the SQLite databases and the stored documents; none of it
    is for the other accounts of the machine. An existing data folder is closed too.
    """
    os.umask(0o077)
    common.data_dir.mkdir(parents=True, exist_ok=True)
    common.data_dir.chmod(0o700)


def _dev_secret(common: CommonSettings) -> str:
    if common.auth.secret:
        return common.auth.secret
    return ensure_dev_secret(common.data_dir)


def _print_tokens(secret: str) -> None:
    click.echo("Development tokens (valid 12 hours):")
    for role in sorted(ROLES):
        extra = {"unit": "PVHTT.DONGXOAI"} if role == "unit" else {}
        token = issue_token(secret, sub=f"dev-{role}", roles=[role], ttl_seconds=12 * 3600, **extra)
        label = f"{role} (unit PVHTT.DONGXOAI)" if extra else role
        click.echo(f"  {label}:\n    {token}")


@click.group(help="docroute: intake, routing and archive of directives for Vietnamese public bodies.")
def main() -> None:
    pass


@main.command(help="Run intake, routing and archive with their workers in one process (embedded defaults).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the three APIs listen on.")
@click.option(
    "--base-port",
    default=SERVICES[0].port,
    show_default=True,
    help="Port of intake; routing and archive take the next two, the console the one before.",
)
@click.option(
    "--empty",
    is_flag=True,
    envvar="DOCROUTE_EMPTY",
    help="Start with no sample units, rules or directives (by default a new data folder gets the seed's).",
)
def run(host: str, base_port: int, empty: bool) -> None:
    from shared.logs import configure_logging

    from docroute import embedded

    common = _common()
    _private_state(common)
    configure_logging(common.log_level)
    os.environ.setdefault("DOCROUTE_JWT_SECRET", _dev_secret(common))
    samples = None if empty else seed.SeedFiles.find()
    for name, value in (samples.environment() if samples else {}).items():
        os.environ.setdefault(name, value)
    ports = {spec.name: base_port + i for i, spec in enumerate(SERVICES)}
    for spec, variable in zip(SERVICES, CONSOLE_API_URLS, strict=True):
        os.environ.setdefault(variable, f"http://{host}:{ports[spec.name]}")
    workers = embedded.prepare(host, ports)
    console_port = base_port - 1
    workers.append(embedded.console_server(host, console_port))
    click.echo(f"Bàn làm việc (console)  http://{host}:{console_port}/")
    for spec in SERVICES:
        click.echo(f"{spec.name:8s} http://{host}:{ports[spec.name]}/docs")
    _print_tokens(os.environ["DOCROUTE_JWT_SECRET"])
    click.echo("Press Ctrl+C to stop.")
    from shared.runtime import run_all

    stop = threading.Event()
    if samples is not None:
        urls = {name: f"http://{host}:{port}" for name, port in ports.items()}
        threading.Thread(
            target=_seed_directives, args=(samples, urls, stop), name="seed", daemon=True
        ).start()
    run_all(workers, stop)


def _seed_directives(samples: seed.SeedFiles, urls: dict[str, str], stop: threading.Event) -> None:
    """Registers the seed's directives once the APIs answer, and says what routing made of them."""
    token = issue_token(os.environ["DOCROUTE_JWT_SECRET"], sub="seed", roles=["clerk", "auditor"])
    try:
        seeded = seed.register_samples(samples, intake=urls["intake"], routing=urls["routing"], token=token)
    except (RuntimeError, OSError) as exc:
        if not stop.is_set():
            click.echo(f"seed: not loaded: {exc}", err=True)
        return
    if seeded:
        click.echo("Registered the seed's directives (dates moved to today) and routed them:")
        for item in seeded:
            click.echo(f"  {seed.describe(item)}")


@main.command(help="Run each service as gunicorn + worker processes against the servers named by DOCROUTE_*.")
@click.option("--service", "services", multiple=True, type=click.Choice(SERVICE_NAMES), help="Only these.")
@click.option("--no-migrate", is_flag=True, help="Skip the database migrations before starting.")
@click.option(
    "--base-port",
    default=SERVICES[0].port,
    show_default=True,
    help="Port of intake; routing and archive take the next two.",
)
def up(services: tuple[str, ...], no_migrate: bool, base_port: int) -> None:
    common = _common()
    if common.amqp_url.startswith("memory://"):
        raise click.ClickException(
            "DOCROUTE_AMQP_URL: set it to the RabbitMQ URL; separate processes cannot share memory://"
        )
    _private_state(common)
    env = dict(os.environ)
    env.setdefault("DOCROUTE_JWT_SECRET", _dev_secret(common))
    chosen = [by_name(name) for name in (services or SERVICE_NAMES)]
    if not no_migrate:
        for spec in chosen:
            spec.migrate(spec.settings())
            click.echo(f"{spec.name}: database migrated")
    bin_dir = Path(sys.executable).parent
    procs: list[subprocess.Popen[bytes]] = []
    for spec in chosen:
        port = base_port + SERVICES.index(spec)
        web_env = {**env, "DOCROUTE_PORT": str(port)}
        conf = REPO_ROOT / "services" / spec.name / "gunicorn.conf.py"
        procs.append(
            subprocess.Popen(  # noqa: S603 - our own executables, arguments from a fixed list
                [str(bin_dir / "gunicorn"), "-c", str(conf), f"{spec.name}.api:create_app()"], env=web_env
            )
        )
        worker_cmd = [sys.executable, "-m", f"{spec.name}.worker"]
        procs.append(subprocess.Popen(worker_cmd, env=env))  # noqa: S603 - fixed module name
        click.echo(f"{spec.name:8s} http://127.0.0.1:{port}/docs (gunicorn + worker)")
    _print_tokens(env["DOCROUTE_JWT_SECRET"])
    _supervise(procs)


def _supervise(procs: list[subprocess.Popen[bytes]]) -> None:
    """Waits until a child exits or we are told to stop, then stops every child."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    exit_code = 0
    while not stopping.is_set():
        for proc in procs:
            if proc.poll() is not None:
                click.echo(f"process {proc.args!r} exited with {proc.returncode}; stopping", err=True)
                exit_code = proc.returncode or 1
                stopping.set()
                break
        stopping.wait(0.5)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 20
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    sys.exit(exit_code)


@main.command(help="Print a bearer token signed HS256 with DOCROUTE_JWT_SECRET (or the development secret).")
@click.option("--role", "roles", required=True, multiple=True, type=click.Choice(sorted(ROLES)))
@click.option("--unit", default=None, help="The unit code, for unit accounts.")
@click.option("--sub", default=None, help="The subject (user or system name).")
@click.option("--ttl", default=3600, show_default=True, help="Lifetime in seconds.")
def token(roles: tuple[str, ...], unit: str | None, sub: str | None, ttl: int) -> None:
    if "unit" in roles and not unit:
        raise click.UsageError("--unit is required with --role unit")
    common = _common()
    if not 0 < ttl <= common.auth.max_lifetime:
        # The services refuse a token living longer than DOCROUTE_JWT_MAX_LIFETIME: do not mint one.
        raise click.UsageError(f"--ttl must be 1..{common.auth.max_lifetime} s (DOCROUTE_JWT_MAX_LIFETIME)")
    secret = _dev_secret(common)
    subject = sub or f"cli-{roles[0]}"
    click.echo(issue_token(secret, sub=subject, roles=list(roles), unit=unit, ttl_seconds=ttl))


@main.command(help="Apply the Alembic migrations of one or every service.")
@click.option("--service", "services", multiple=True, type=click.Choice(SERVICE_NAMES))
def migrate(services: tuple[str, ...]) -> None:
    for name in services or SERVICE_NAMES:
        spec = by_name(name)
        spec.migrate(spec.settings())
        click.echo(f"{name}: database at head")


@main.group(help="Inspect and replay dead-letter queues.")
def dlq() -> None:
    pass


@dlq.command("list", help="Show the messages waiting in QUEUE's dead-letter queue (QUEUE or QUEUE.dlq).")
@click.argument("queue")
@click.option("--limit", default=20, show_default=True)
def dlq_list(queue: str, limit: int) -> None:
    from shared.messaging import list_dlq

    messages = list_dlq(_common().amqp_url, _dlq_name(queue), limit)
    for message in messages:
        click.echo(message)
    click.echo(f"{len(messages)} message(s) shown from {_dlq_name(queue)}", err=True)


@dlq.command("replay", help="Put messages from QUEUE's dead-letter queue back where they came from.")
@click.argument("queue")
@click.option("--limit", default=100, show_default=True)
def dlq_replay(queue: str, limit: int) -> None:
    from shared.messaging import replay_dlq

    count = replay_dlq(_common().amqp_url, _dlq_name(queue), limit)
    click.echo(f"replayed {count} message(s) from {_dlq_name(queue)}")


def _dlq_name(queue: str) -> str:
    return queue if queue.endswith(".dlq") else f"{queue}.dlq"


def _mount_service_commands() -> None:
    """Attaches the commands each installed service contributes (rules check, audit verify, export).

    A service image holds one service only, so a service that is not installed contributes nothing.
    """
    for name in ("routing", "archive"):
        if importlib.util.find_spec(name) is None:
            continue
        for command in importlib.import_module(f"{name}.cli").commands():
            main.add_command(command)


_mount_service_commands()

if __name__ == "__main__":
    main()
