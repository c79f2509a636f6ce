"""The `docroute` command: run the services, mint development tokens, migrate, and operate queues."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import click
from shared.auth import ROLES, issue_token
from shared.settings import CommonSettings, Env, SettingsError, ensure_dev_secret

from docroute import seed
from docroute.services import SERVICES, ServiceSpec, by_name
from docroute.supervisor import ChildSpec, Supervisor

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


DEV_TOKEN_HOURS = 12


def token_banner(common: CommonSettings, secret: str | None) -> list[str]:
    """What `run` and `up` print about tokens: development tokens per role, and never any in production.

    A token printed at start-up ends up in terminal scroll-back and CI logs; in production it would be an
    admin credential signed with the real secret, so production prints one line saying why there are none.
    """
    if common.is_production:
        return [
            "No development tokens: DOCROUTE_ENV=production (get tokens from your identity provider, "
            "or `docroute token` for a scripted account)."
        ]
    assert secret is not None
    lines = [
        f"DEVELOPMENT tokens (DOCROUTE_ENV={common.env}; valid {DEV_TOKEN_HOURS} hours; "
        "for local testing only, never for real accounts):"
    ]
    for role in sorted(ROLES):
        extra = {"unit": "PVHTT.DONGXOAI"} if role == "unit" else {}
        token = issue_token(
            secret, sub=f"dev-{role}", roles=[role], ttl_seconds=DEV_TOKEN_HOURS * 3600, **extra
        )
        label = f"{role} (unit PVHTT.DONGXOAI)" if extra else role
        lines.append(f"  [development] {label}:\n    {token}")
    return lines


def _print_tokens(common: CommonSettings, secret: str | None) -> None:
    for line in token_banner(common, secret):
        click.echo(line)


@click.group(help="docroute: intake, routing and archive of directives for Vietnamese public bodies.")
def main() -> None:
    pass


def _children_secret(common: CommonSettings) -> str | None:
    """The HS256 secret the services get: the configured one, else (development only) the generated one."""
    if common.auth.secret:
        return common.auth.secret
    return None if common.is_production else ensure_dev_secret(common.data_dir)


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
    secret = _children_secret(common)
    if secret is not None:
        os.environ.setdefault("DOCROUTE_JWT_SECRET", secret)
    # The seed is a development aid: a production start never loads sample data.
    samples = None if empty or common.is_production else seed.SeedFiles.find()
    for name, value in (samples.environment() if samples else {}).items():
        os.environ.setdefault(name, value)
    ports = {spec.name: base_port + i for i, spec in enumerate(SERVICES)}
    for spec, variable in zip(SERVICES, CONSOLE_API_URLS, strict=True):
        os.environ.setdefault(variable, f"http://{host}:{ports[spec.name]}")
    workers = embedded.prepare(host, ports)
    console_port = base_port - 1
    if common.is_production and not os.environ.get("DOCROUTE_CONSOLE_OIDC_CLIENT_ID"):
        # In production people sign in at the identity provider; without a client there, no console.
        click.echo(
            "Bàn làm việc (console): not started with DOCROUTE_ENV=production and no "
            "DOCROUTE_CONSOLE_OIDC_CLIENT_ID (OpenID Connect sign-in)"
        )
    else:
        workers.append(embedded.console_server(host, console_port))
        click.echo(f"Bàn làm việc (console)  http://{host}:{console_port}/")
    for spec in SERVICES:
        click.echo(f"{spec.name:8s} http://{host}:{ports[spec.name]}/docs")
    _print_tokens(common, os.environ.get("DOCROUTE_JWT_SECRET"))
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


# `docroute up` runs three workers on one host: DOCROUTE_METRICS_PORT is their base port and each worker
# serves /metrics on base + its service's offset (a Kubernetes pod runs one worker and uses the port as is).
METRICS_PORT_OFFSETS = {spec.name: index for index, spec in enumerate(SERVICES)}


def metrics_port_base(environ: Mapping[str, str]) -> int | None:
    """DOCROUTE_METRICS_PORT read as `docroute up`'s base port, or None when unset (no worker metrics)."""
    top = 65535 - max(METRICS_PORT_OFFSETS.values())
    try:
        base = Env(environ).int("DOCROUTE_METRICS_PORT", 0, min=0, max=65535)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    if base == 0:
        return None
    if base > top:
        raise click.ClickException(
            f"DOCROUTE_METRICS_PORT: docroute up gives the workers base, base+1 and base+2; "
            f"must be at most {top}"
        )
    return base


def up_children(
    chosen: Sequence[ServiceSpec], env: Mapping[str, str], *, base_port: int, bin_dir: Path
) -> list[ChildSpec]:
    """gunicorn (the API) and `python -m <svc>.worker` for each chosen service, ports by service index.

    Ports follow the service's place in SERVICES, not in the selection, so `--service archive` still serves
    archive on base_port + 2 and its worker's metrics on DOCROUTE_METRICS_PORT + 2.
    """
    metrics_base = metrics_port_base(env)
    children: list[ChildSpec] = []
    for spec in chosen:
        index = SERVICES.index(spec)
        conf = REPO_ROOT / "services" / spec.name / "gunicorn.conf.py"
        children.append(
            ChildSpec(
                name=f"{spec.name}-api",
                argv=(str(bin_dir / "gunicorn"), "-c", str(conf), f"{spec.name}.api:create_app()"),
                env={**env, "DOCROUTE_PORT": str(base_port + index)},
            )
        )
        worker_env = dict(env)
        if metrics_base is not None:
            worker_env["DOCROUTE_METRICS_PORT"] = str(metrics_base + METRICS_PORT_OFFSETS[spec.name])
        children.append(
            ChildSpec(
                name=f"{spec.name}-worker", argv=(sys.executable, "-m", f"{spec.name}.worker"), env=worker_env
            )
        )
    return children


def console_child(env: Mapping[str, str], *, base_port: int, bin_dir: Path) -> ChildSpec | None:
    """The console under gunicorn on the port before intake's, calling the three APIs `up` starts; none in
    production without an OpenID Connect client (its only sign-in there)."""
    production = env.get("DOCROUTE_ENV") == "production"
    if production and not env.get("DOCROUTE_CONSOLE_OIDC_CLIENT_ID"):
        return None
    child_env = {**env, "DOCROUTE_PORT": str(base_port - 1)}
    for index, variable in enumerate(CONSOLE_API_URLS):
        child_env.setdefault(variable, f"http://127.0.0.1:{base_port + index}")
    conf = REPO_ROOT / "services" / "console" / "gunicorn.conf.py"
    return ChildSpec(name="console", argv=(str(bin_dir / "gunicorn"), "-c", str(conf)), env=child_env)


@main.command(help="Run each service as gunicorn + worker processes against the servers named by DOCROUTE_*.")
@click.option("--service", "services", multiple=True, type=click.Choice(SERVICE_NAMES), help="Only these.")
@click.option("--no-migrate", is_flag=True, help="Skip the database migrations before starting.")
@click.option(
    "--base-port",
    default=SERVICES[0].port,
    show_default=True,
    help="Port of intake; routing and archive take the next two, the console the one before.",
)
def up(services: tuple[str, ...], no_migrate: bool, base_port: int) -> None:
    from shared.logs import configure_logging

    common = _common()
    if common.amqp_url.startswith("memory://"):
        raise click.ClickException(
            "DOCROUTE_AMQP_URL: set it to the RabbitMQ URL; separate processes cannot share memory://"
        )
    _private_state(common)
    configure_logging(common.log_level)
    env = dict(os.environ)
    secret = _children_secret(common)
    if secret is not None:
        env.setdefault("DOCROUTE_JWT_SECRET", secret)
    chosen = [by_name(name) for name in (services or SERVICE_NAMES)]
    children = up_children(chosen, env, base_port=base_port, bin_dir=Path(sys.executable).parent)
    if not no_migrate:
        for spec in chosen:
            spec.migrate(spec.settings())
            click.echo(f"{spec.name}: database migrated")
    console = (
        None if services else console_child(env, base_port=base_port, bin_dir=Path(sys.executable).parent)
    )
    if console is not None:
        from console.settings import Settings as ConsoleSettings

        # Checked (and, in development, its session key file written) once here, before gunicorn's workers
        # each build the app: two workers must not each generate a different key.
        try:
            ConsoleSettings.from_env(console.env)
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from exc
        children.append(console)
        click.echo(f"Bàn làm việc (console)  http://127.0.0.1:{base_port - 1}/ (gunicorn)")
    elif not services:
        click.echo(
            "Bàn làm việc (console): not started with DOCROUTE_ENV=production and no "
            "DOCROUTE_CONSOLE_OIDC_CLIENT_ID (OpenID Connect sign-in)"
        )
    for spec in chosen:
        port = base_port + SERVICES.index(spec)
        click.echo(f"{spec.name:8s} http://127.0.0.1:{port}/docs (gunicorn + worker)")
    _print_tokens(common, env.get("DOCROUTE_JWT_SECRET"))
    sys.exit(_supervise(children))


def _supervise(children: Sequence[ChildSpec]) -> int:
    """Keeps the children up until SIGTERM/SIGINT (exit 0) or until one keeps dying at start (exit 1)."""
    from shared.runtime import SignalFlag

    # Not a threading.Event: setting one from a signal handler can deadlock (see SignalFlag).
    stop = SignalFlag()
    stop.install()
    supervisor = Supervisor(children)
    code = supervisor.run(stop)
    if supervisor.failure:
        click.echo(f"docroute up: {supervisor.failure}; every process was stopped", err=True)
    return code


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
