"""The manifests and the code agree on configuration: every DOCROUTE_* variable the code reads is set (or
knowingly left to its default), and the manifests and images set none that nothing reads.

Both sides are computed when the test runs: the code side by scanning the Python sources of shared/,
services/ and docroute/ for string literals naming a DOCROUTE_ variable, the manifest side by rendering
each overlay and collecting what reaches the services' containers (env, and the keys of the ConfigMaps,
Secrets and ExternalSecrets they load with envFrom)."""

from __future__ import annotations

import ast
import base64
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from deploy_support import DOCKERFILE, IMAGES, OVERLAYS, REPO, SERVICES, Manifest, docroute_deployments, find
from dockerfile_model import parse

SOURCE_ROOTS = ("shared", "services", "docroute")
NAME = re.compile(r"DOCROUTE_[A-Z0-9_]*[A-Z0-9]")
TEMPLATE = re.compile(r"DOCROUTE_[A-Z0-9_{}]*[A-Z0-9}]")

# Read by the code but deliberately not set by any overlay: the code default is right in a cluster.
# Every entry says why; an entry the code no longer reads fails the stale-entry test below.
DEFAULTED: dict[str, str] = {
    "DOCROUTE_BIND": "gunicorn's default 0.0.0.0:$DOCROUTE_PORT is what a pod needs",
    "DOCROUTE_WEB_GRACEFUL_TIMEOUT": "35 s default; terminationGracePeriodSeconds (45 s) is sized from it",
    "DOCROUTE_WEB_CONTROL_SOCKET": "gunicorn's control socket stays off; nothing in a pod uses gunicornc",
    "DOCROUTE_PROMETHEUS_DIR_CREATED": "not configuration: a marker gunicorn_conf sets for its own children",
    "DOCROUTE_HOLIDAYS_FILE": "the packaged holiday calendar; mount a file and set it to override",
    "DOCROUTE_RETENTION_CLASSES": "the packaged retention schedule; mount a file and set it to override",
    "DOCROUTE_RULES_FILE": "rules live in the routing database, managed through its API; no seed file",
    "DOCROUTE_UNITS_FILE": "units live in the routing database, managed through its API; no seed file",
    "DOCROUTE_ARCHIVE_CONSUMERS": "one file in flight per worker; the overlays scale with worker replicas",
    "DOCROUTE_EMPTY": "read by `docroute run` only, the embedded development suite; no pod runs it",
    "DOCROUTE_EDXML_REQUIRE_SIGNATURE": "unsigned packets are recorded and taken until the senders all sign",
    "DOCROUTE_OUTBOX_RETENTION_SECONDS": "published outbox rows kept 7 days: only for inspection",
    "DOCROUTE_INBOX_RETENTION_SECONDS": "14-day dedup window: above any outage or dead-letter replay",
    "DOCROUTE_PRUNE_INTERVAL_SECONDS": "hourly pruning rounds in each worker",
    "DOCROUTE_JWT_MAX_LIFETIME": "30 days bounds the HS256 unit tokens; OIDC tokens live minutes anyway",
    "DOCROUTE_STAGING_ORPHAN_SECONDS": "1 hour: far longer than an upload request may run (web timeout 60 s)",
    # Telling senders (closed loop): who the department is and how it answers, set per installation.
    "DOCROUTE_INTAKE_ORGAN_ID": "the department's agency code, set per installation",
    "DOCROUTE_INTAKE_ORGAN_NAME": "the department's name in status packets, set per installation",
    "DOCROUTE_STATUS_DESK": "the desk named in status packets; the default (Văn thư) fits most departments",
    "DOCROUTE_STATUS_CONTACT_PHONE": "optional contact in status packets, set per installation",
    "DOCROUTE_STATUS_CONTACT_EMAIL": "optional contact in status packets, set per installation",
    "DOCROUTE_WEBHOOK_ALLOW_NETWORKS": "no inside address is a webhook target unless allowed",
    "DOCROUTE_WEBHOOK_TIMEOUT": "the default bounds each delivery attempt",
    "DOCROUTE_WEBHOOK_RETRY_FIRST_SECONDS": "the default backoff schedule",
    "DOCROUTE_WEBHOOK_RETRY_MAX_SECONDS": "the default backoff schedule",
    "DOCROUTE_WEBHOOK_RETRY_FOR_SECONDS": "24 h of retries by default, as the issue asks",
    "DOCROUTE_WEBHOOK_POLL_SECONDS": "the default delivery poll",
    "DOCROUTE_STATUS_UNITS_FILE": "units are named by code in statuses until a contacts file is mounted",
}

# Read by the code, but meaningless for one overlay's choices.
NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "dev": {
        "DOCROUTE_JWT_JWKS_URL": "dev signs HS256 with DOCROUTE_JWT_SECRET; no JWKS",
        "DOCROUTE_JWT_ISSUER": "tokens minted by `docroute token` in dev carry no issuer",
        "DOCROUTE_JWT_AUDIENCE": "tokens minted by `docroute token` in dev carry no audience",
        "DOCROUTE_TRUST_STORE": "dev trusts no signing CA: signatures checked for integrity only",
        "DOCROUTE_CONSOLE_OIDC_CLIENT_ID": "dev signs in with the development identities; no provider",
        "DOCROUTE_CONSOLE_OIDC_CLIENT_SECRET": "dev signs in with the development identities; no provider",
        "DOCROUTE_CONSOLE_PUBLIC_URL": "only the OIDC redirect URI is made from it; dev has no provider",
    },
    "production": {
        "DOCROUTE_JWT_SECRET": "production verifies RS256 against the OIDC provider's JWKS; no shared secret",
    },
}


def _names_in(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if NAME.fullmatch(node.value):
                found.add(node.value)
        elif isinstance(node, ast.JoinedStr):
            # f"DOCROUTE_{svc.upper()}_DATABASE_URL": the one per-service pattern; expand for each service.
            template = "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
            if template.count("{}") == 1 and TEMPLATE.fullmatch(template):
                found.update(template.replace("{}", svc.upper()) for svc in SERVICES)
    return found


def read_by_code(roots: Iterable[Path]) -> dict[str, set[Path]]:
    """DOCROUTE_* names appearing as string literals in the Python files under `roots`, and where."""
    where: dict[str, set[Path]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if ".venv" in path.parts or "__pycache__" in path.parts:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            except SyntaxError:
                # A file another engineer is half-way through writing; the linters will complain about it.
                continue
            for name in _names_in(tree):
                where.setdefault(name, set()).add(path.relative_to(REPO))
    return where


def set_by_manifests(manifests: list[Manifest]) -> set[str]:
    """DOCROUTE_* variables that reach the docroute containers of one rendered overlay."""
    configmaps = {m["metadata"]["name"]: set(m.get("data", {})) for m in find(manifests, "ConfigMap")}
    secrets = {
        m["metadata"]["name"]: set(m.get("data", {})) | set(m.get("stringData", {}))
        for m in find(manifests, "Secret")
    }
    for external in find(manifests, "ExternalSecret"):
        spec = external["spec"]
        template = spec["target"].get("template", {}).get("data")
        keys = set(template) if template else {d["secretKey"] for d in spec.get("data", [])}
        secrets[spec["target"].get("name", external["metadata"]["name"])] = keys
    names: set[str] = set()
    for deployment in docroute_deployments(manifests):
        spec = deployment["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            names.update(e["name"] for e in container.get("env", []))
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    names.update(configmaps[source["configMapRef"]["name"]])
                elif source["secretRef"]["name"] in secrets:
                    names.update(secrets[source["secretRef"]["name"]])
                else:
                    assert source["secretRef"].get("optional"), (
                        f"missing Secret {source['secretRef']['name']}"
                    )
    return {n for n in names if n.startswith("DOCROUTE_")}


def set_by_images() -> dict[str, set[str]]:
    """DOCROUTE_* defaults baked into each service image by its Dockerfile's ENV lines."""
    images = {}
    for svc, port in IMAGES.items():
        stages = parse(DOCKERFILE, {"SERVICE": svc, "PORT": str(port)})
        env_lines = [args for stage in stages for args in stage.all("ENV")]
        images[svc] = {m for line in env_lines for m in re.findall(r"(DOCROUTE_[A-Z0-9_]+)=", line)}
    return images


@pytest.fixture(scope="module")
def code_reads() -> dict[str, set[Path]]:
    return read_by_code(REPO / root for root in SOURCE_ROOTS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_the_code_reads_is_set_or_knowingly_defaulted(
    rendered: Callable[[str], list[Manifest]], code_reads: dict[str, set[Path]], overlay: str
) -> None:
    provided = set_by_manifests(rendered(overlay)) | set(DEFAULTED) | set(NOT_APPLICABLE[overlay])
    missing = {name: sorted(map(str, paths)) for name, paths in code_reads.items() if name not in provided}
    assert not missing, (
        f"read by the code but neither set in the {overlay} overlay nor listed in DEFAULTED: {missing}"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_set_no_variable_that_nothing_reads(
    rendered: Callable[[str], list[Manifest]], code_reads: dict[str, set[Path]], overlay: str
) -> None:
    unread = set_by_manifests(rendered(overlay)) - set(code_reads)
    assert not unread, f"the {overlay} overlay sets variables no code reads: {sorted(unread)}"


def test_images_set_no_variable_that_nothing_reads(code_reads: dict[str, set[Path]]) -> None:
    for svc, names in set_by_images().items():
        assert names, f"the {svc} image should carry its port and bind address"
        assert not names - set(code_reads), f"deploy/Dockerfile ({svc}) sets unread {names - set(code_reads)}"


def test_allow_lists_name_only_variables_still_read(code_reads: dict[str, set[Path]]) -> None:
    listed = set(DEFAULTED) | {name for names in NOT_APPLICABLE.values() for name in names}
    assert not listed - set(code_reads), f"stale allow-list entries: {sorted(listed - set(code_reads))}"
    assert all(reason.strip() for reason in DEFAULTED.values())


def test_scanner_finds_literals_and_per_service_templates(tmp_path: Path) -> None:
    (tmp_path / "settings.py").write_text(
        "import os\n"
        "def load(env, svc):\n"
        '    """Reads DOCROUTE_IN_A_DOCSTRING."""\n'
        '    url = env.str(f"DOCROUTE_{svc.upper()}_DATABASE_URL")\n'
        '    prefix = "DOCROUTE_"\n'
        '    return url, os.environ.get("DOCROUTE_AMQP_URL"), env.int("DOCROUTE_WEB_WORKERS", 2)\n',
        encoding="utf-8",
    )
    (tmp_path / "broken.py").write_text("def (:\n", encoding="utf-8")
    found = set(_names_in(ast.parse((tmp_path / "settings.py").read_text(encoding="utf-8"))))
    assert found == {
        "DOCROUTE_AMQP_URL",
        "DOCROUTE_WEB_WORKERS",
        "DOCROUTE_INTAKE_DATABASE_URL",
        "DOCROUTE_ROUTING_DATABASE_URL",
        "DOCROUTE_ARCHIVE_DATABASE_URL",
    }


def test_secret_keys_count_as_set(rendered: Callable[[str], list[Manifest]]) -> None:
    manifests = rendered("dev")
    names = set_by_manifests(manifests)
    assert {"DOCROUTE_JWT_SECRET", "DOCROUTE_AMQP_URL", "DOCROUTE_INTAKE_DATABASE_URL"} <= names
    jwt = next(s for s in find(manifests, "Secret") if s["metadata"]["name"].startswith("docroute-jwt"))
    assert base64.b64decode(jwt["data"]["DOCROUTE_JWT_SECRET"])
