"""Fixtures for the deployment checks: the kustomize overlays, rendered once per test session."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from deploy_support import K8S, Manifest, render

_rendered: dict[str, list[Manifest]] = {}


@pytest.fixture(scope="session")
def rendered() -> Callable[[str], list[Manifest]]:
    """rendered("dev") -> the dev overlay's manifests ("base" for the base alone)."""

    def get(overlay: str) -> list[Manifest]:
        if overlay not in _rendered:
            path = K8S / "base" if overlay == "base" else K8S / "overlays" / overlay
            _rendered[overlay] = render(path)
        return _rendered[overlay]

    return get
