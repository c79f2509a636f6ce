"""The images of deploy/Dockerfile, one per SERVICE build argument: checked statically (no Docker engine
here); their builder stage replayed with uv."""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from deploy_support import DOCKERFILE, IMAGES, REPO, SERVICES, Manifest, one
from dockerfile_model import ReplayError, Stage, parse, replay_builder


def _stages(svc: str) -> list[Stage]:
    return parse(DOCKERFILE, {"SERVICE": svc, "PORT": str(IMAGES[svc])})


def _deployment(svc: str) -> str:
    """The Deployment that serves HTTP from this image."""
    return "console" if svc == "console" else f"{svc}-api"


def _final(svc: str) -> Stage:
    return _stages(svc)[-1]


def _builder(svc: str) -> Stage:
    (builder,) = [s for s in _stages(svc) if s.name == "builder"]
    return builder


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        for pattern in patterns
        for prefix in prefixes
    )


@pytest.mark.parametrize("svc", IMAGES)
def test_image_builds_on_python_311_slim(svc: str) -> None:
    stages = _stages(svc)
    python_stages = [s for s in stages if not s.image.startswith("ghcr.io/astral-sh/uv:")]
    assert python_stages[-1] is stages[-1], "the runtime stage is a Python image"
    for stage in python_stages:
        assert stage.image.startswith("python:3.11-slim"), stage.image
    uv_images = {s.image for s in stages} - {s.image for s in python_stages}
    assert all(image.split(":")[1][0].isdigit() for image in uv_images), "uv is pinned to a version"


@pytest.mark.parametrize("svc", IMAGES)
def test_image_runs_as_a_numeric_non_root_user(svc: str) -> None:
    users = _final(svc).all("USER")
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0
    assert not gid or (gid.isdigit() and int(gid) > 0)


@pytest.mark.parametrize("svc", IMAGES)
def test_image_fetches_nothing_from_urls(svc: str) -> None:
    for stage in _stages(svc):
        for instruction in stage.instructions:
            if instruction.keyword == "ADD":
                assert "://" not in instruction.args, f"ADD of a URL: {instruction.args}"
            if instruction.keyword == "RUN":
                assert "curl" not in instruction.args and "wget" not in instruction.args


@pytest.mark.parametrize("svc", IMAGES)
def test_dependencies_come_from_the_lock_file(svc: str) -> None:
    builder = _builder(svc)
    copied = {token for args in builder.all("COPY") for token in shlex.split(args)}
    assert "uv.lock" in copied
    syncs = [args for args in builder.all("RUN") if "uv sync" in args]
    assert syncs
    for args in syncs:
        assert "--frozen" in args and "--no-dev" in args and f"--package docroute-{svc}" in args
    runtime_copies = _final(svc).all("COPY")
    assert any(args.startswith("--from=builder") and "/app/.venv" in args for args in runtime_copies)


@pytest.mark.parametrize("svc", IMAGES)
def test_image_serves_gunicorn_on_the_service_port(svc: str) -> None:
    final = _final(svc)
    assert final.all("EXPOSE") == [str(IMAGES[svc])]
    (cmd,) = final.all("CMD")
    assert cmd == '["gunicorn", "--config", "/app/gunicorn.conf.py"]'
    assert f"services/{svc}/gunicorn.conf.py /app/gunicorn.conf.py" in final.all("COPY")
    # The configuration names the app (no app on the command line) and the port the image exposes.
    conf = (REPO / "services" / svc / "gunicorn.conf.py").read_text(encoding="utf-8")
    module = "console.app" if svc == "console" else f"{svc}.api"
    assert f'wsgi_app = "{module}:create_app()"' in conf
    assert f"default_port={IMAGES[svc]}" in conf
    (env,) = [args for args in final.all("ENV") if "DOCROUTE_PORT" in args]
    assert f"DOCROUTE_PORT={IMAGES[svc]}" in env.split()


def test_one_dockerfile_builds_every_image() -> None:
    assert sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("services/*/Dockerfile")) == []
    assert {
        path.name for path in (REPO / "services").iterdir() if (path / "pyproject.toml").is_file()
    } == set(IMAGES)
    labels = {svc: _final(svc).all("LABEL")[0] for svc in IMAGES}
    for svc, label in labels.items():
        assert f'org.opencontainers.image.title="docroute-{svc}"' in label


@pytest.mark.parametrize(
    "args", [{}, {"SERVICE": "intake", "PORT": "8002"}, {"SERVICE": "unit", "PORT": "8001"}]
)
def test_a_missing_or_mismatched_service_stops_the_build(args: dict[str, str], tmp_path: Path) -> None:
    (builder,) = [s for s in parse(DOCKERFILE, args) if s.name == "builder"]
    with pytest.raises(ReplayError, match="SERVICE/PORT must be"):
        replay_builder(builder, REPO, tmp_path, _python311())


@pytest.mark.parametrize("svc", IMAGES)
def test_image_health_is_checked_by_healthcheck_or_probes(
    svc: str, rendered: Callable[[str], list[Manifest]]
) -> None:
    if _final(svc).all("HEALTHCHECK"):
        return
    container = one(rendered("base"), "Deployment", _deployment(svc))["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("svc", IMAGES)
def test_everything_the_dockerfile_copies_is_in_the_build_context(svc: str) -> None:
    patterns = _dockerignore()
    assert {".git", ".venv", "var"} <= set(patterns)
    for stage in _stages(svc):
        for args in stage.all("COPY"):
            tokens = [t for t in shlex.split(args) if not t.startswith("--")]
            if args.startswith("--from"):
                continue
            for source in tokens[:-1]:
                assert (REPO / source).exists(), f"COPY {source}: missing"
                assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = _dockerignore()
    for path in (
        ".venv/bin/python",
        "var/intake.db",
        "services/intake/intake/__pycache__/x.pyc",
        ".git/HEAD",
    ):
        assert _ignored(path, patterns), path
    assert not _ignored("services/intake/intake/api/__init__.py", patterns)


def _python311() -> str:
    base = getattr(sys, "_base_executable", sys.executable)
    return os.path.realpath(base)


@pytest.mark.parametrize("svc", IMAGES)
def test_builder_stage_installs_one_service_and_its_migration_command(
    svc: str, tmp_path: Path, rendered: Callable[[str], list[Manifest]]
) -> None:
    if shutil.which("uv") is None:
        pytest.skip("uv is not installed: the builder stage cannot be replayed")
    replay_builder(_builder(svc), REPO, tmp_path, _python311())
    venv = tmp_path / "app" / ".venv"
    python = venv / "bin" / "python"
    assert (venv / "bin" / "gunicorn").exists()
    others = sorted(set(IMAGES) - {svc})
    modules = ["app"] if svc == "console" else ["api", "worker"]
    probe = (
        "import importlib.util as u, sys\n"
        f"assert all(u.find_spec({svc!r} + '.' + m) for m in {modules!r}), 'service modules'\n"
        f"assert not any(u.find_spec(o) for o in {others!r}), 'another service in the image'\n"
        "assert not u.find_spec('pytest'), 'a dev dependency in the image'\n"
    )
    subprocess.run([str(python), "-c", probe], check=True, cwd=tmp_path, timeout=60)
    if svc not in SERVICES:
        # The console keeps no database: nothing to migrate, and its Deployment has no init container.
        spec = one(rendered("base"), "Deployment", _deployment(svc))["spec"]["template"]["spec"]
        assert not spec.get("initContainers")
        return

    # The init container's command, exactly as the manifests give it, against a scratch SQLite database.
    spec = one(rendered("base"), "Deployment", f"{svc}-api")["spec"]["template"]["spec"]
    command = spec["initContainers"][0]["command"]
    database = tmp_path / f"{svc}.db"
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "DOCROUTE_DATA_DIR": str(tmp_path / "data"),
        f"DOCROUTE_{svc.upper()}_DATABASE_URL": f"sqlite:///{database}",
        "DOCROUTE_JWT_SECRET": "x" * 40,
    }
    result = subprocess.run(
        [str(venv / "bin" / command[0]), *command[1:]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(command)} failed in the {svc} image:\n{result.stderr[-3000:]}"
    with sqlite3.connect(database) as conn:
        # Each service may name its own Alembic version table (alembic_version or alembic_version_<svc>).
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'alembic_version%'")
        ]
        assert tables, "the migration command created no Alembic version table"
        (version,) = conn.execute(f"SELECT version_num FROM {tables[0]}").fetchone()
    assert version
