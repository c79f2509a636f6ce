"""Helpers of the deployment checks: repository paths, rendering kustomize overlays, finding manifests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
SERVICES = {"intake": 8001, "routing": 8002, "archive": 8003}
# Every image deploy/Dockerfile builds (SERVICE build argument) and its port (PORT): the three services and
# the console, which has no worker and no database.
IMAGES = {**SERVICES, "console": 8000}
DOCKERFILE = REPO / "deploy" / "Dockerfile"

Manifest = dict[str, Any]


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed here: the kustomize overlays cannot be rendered")
    return kubectl


def render(path: Path) -> list[Manifest]:
    """Renders a kustomization with `kubectl kustomize` (offline) and parses every document."""
    result = subprocess.run(
        [_kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


def one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def docroute_deployments(manifests: list[Manifest]) -> list[Manifest]:
    return [
        m
        for m in find(manifests, "Deployment")
        if m["metadata"]["labels"].get("app.kubernetes.io/part-of") == "docroute"
    ]


def generated(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    """The one ConfigMap or Secret called `name`, with or without the hash suffix kustomize appends."""
    pattern = re.compile(rf"{re.escape(name)}(-[a-z0-9]{{10}})?")
    found = [m for m in manifests if m["kind"] == kind and pattern.fullmatch(m["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]
