"""Intake's upload caps agree with the ingress body limit, the pod's memory limit and its /tmp size."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from deploy_support import OVERLAYS, Manifest, generated, one
from intake.settings import Settings, upload_budget

Render = Callable[[str], list[Manifest]]
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def quantity(text: str) -> int:
    match = re.fullmatch(r"(\d+)([kmgKMG]i?)?", str(text))
    assert match, text
    return int(match[1]) * _UNITS[match[2] or ""]


def intake_settings(manifests: list[Manifest], tmp_path) -> tuple[Settings, int, int]:
    common = generated(manifests, "ConfigMap", "docroute-common")["data"]
    own = generated(manifests, "ConfigMap", "intake-config")["data"]
    environ = {"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_SECRET": "x" * 40}
    environ.update({k: v for k, v in own.items() if k.startswith("DOCROUTE_INTAKE_")})
    settings = Settings.from_env(environ)
    return settings, int(common["DOCROUTE_WEB_WORKERS"]), int(common["DOCROUTE_WEB_THREADS"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_ingress_body_limit_is_intakes_request_cap(rendered: Render, overlay: str, tmp_path) -> None:
    manifests = rendered(overlay)
    settings, _, _ = intake_settings(manifests, tmp_path)
    ingress = one(manifests, "Ingress", "docroute")
    limit = quantity(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"])
    # Equal to the MiB: a larger ingress limit lets bodies through that intake refuses after reading them,
    # a smaller one refuses requests intake accepts.
    assert settings.max_request_bytes <= limit < settings.max_request_bytes + 1024**2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_intake_pods_have_the_memory_and_tmp_their_uploads_need(
    rendered: Render, overlay: str, tmp_path
) -> None:
    manifests = rendered(overlay)
    settings, workers, threads = intake_settings(manifests, tmp_path)
    budget = upload_budget(settings, workers=workers, threads=threads)
    pod = one(manifests, "Deployment", "intake-api")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    memory = quantity(container["resources"]["limits"]["memory"])
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert budget.memory_bytes <= memory, (budget.memory_bytes / 1024**2, memory / 1024**2)
    assert budget.spool_bytes <= quantity(tmp["emptyDir"]["sizeLimit"])
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_budget_grows_with_the_slots_and_the_file_limit(tmp_path) -> None:
    one_slot = Settings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_SECRET": "x" * 40})
    two_slots = Settings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_JWT_SECRET": "x" * 40,
            "DOCROUTE_INTAKE_MAX_LARGE_UPLOADS": "2",
        }
    )
    a = upload_budget(one_slot, workers=2, threads=4)
    b = upload_budget(two_slots, workers=2, threads=4)
    assert b.memory_bytes > a.memory_bytes and b.spool_bytes > a.spool_bytes
    assert a.memory_bytes < 512 * 1024**2
