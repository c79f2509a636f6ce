"""The README stays true: it names every setting the code reads and every route the services serve."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = [ROOT / "shared", ROOT / "services", ROOT / "docroute", ROOT / "clients"]
# Read by the code, but internal plumbing rather than configuration.
INTERNAL = {"DOCROUTE_PROMETHEUS_DIR_CREATED", "DOCROUTE_UNIT_"}


def _settings_read_by_code() -> set[str]:
    names: set[str] = set()
    for folder in SOURCES:
        for path in folder.rglob("*.py"):
            names.update(re.findall(r"DOCROUTE_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
    # Per-service database URLs are built from the service name (shared.settings.database_url).
    names.update(f"DOCROUTE_{svc}_DATABASE_URL" for svc in ("INTAKE", "ROUTING", "ARCHIVE"))
    return names - INTERNAL


def test_every_setting_the_code_reads_is_documented() -> None:
    missing = sorted(name for name in _settings_read_by_code() if f"`{name}`" not in README)
    assert missing == []


def test_the_readme_documents_no_setting_that_nothing_reads() -> None:
    documented = set(re.findall(r"`(DOCROUTE_[A-Z0-9_]+)`", README))
    assert sorted(documented - _settings_read_by_code()) == []


def _readme_routes() -> set[str]:
    routes: set[str] = set()
    for raw in re.findall(r"/v1/[A-Za-z0-9_{}/:.\[\]-]+", README):
        path = re.sub(r"\{[^}]+\}", "{}", raw.rstrip("."))
        if "[" in path:  # `/v1/rules/versions[/{v}]` names both forms
            routes.add(re.sub(r"\[.*?\]", "", path))
            path = path.replace("[", "").replace("]", "")
        routes.add(path)
    return routes


@pytest.mark.parametrize("service", ["intake", "routing", "archive"])
def test_every_route_is_documented(service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCROUTE_DATA_DIR", str(tmp_path))
    settings = importlib.import_module(f"{service}.settings").Settings.from_env()
    app = importlib.import_module(f"{service}.api").create_app(settings)
    served = {re.sub(r"<[^>]+>", "{}", rule.rule) for rule in app.url_map.iter_rules()}
    missing = sorted(p for p in served if p.startswith("/v1/") and p not in _readme_routes())
    assert missing == []
