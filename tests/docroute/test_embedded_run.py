"""`docroute run` (what `make run` starts): three services in one process, state kept on restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from embedded_runner import ROOT, Embedded, free_base_port, wait_for

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

pytestmark = pytest.mark.e2e


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    runner = Embedded(tmp_path, free_base_port(), "--empty")
    runner.start()
    yield runner
    runner.stop()


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Embedded]:
    runner = Embedded(tmp_path, free_base_port())
    runner.start()
    yield runner
    runner.stop()


def test_make_run_on_a_new_data_folder_routes_the_seed_and_archives_its_signed_pdfs(seeded: Embedded) -> None:
    summary = wait_for(
        lambda: "số đến 3" in (text := seeded.output.read_text(encoding="utf-8")) and text, timeout=60
    )
    # The seed dispatch: 24 units lead the i-Speed letter, 24 lead the food-safety plan with the health
    # department coordinating, 13 lead the press guidance.
    assert "120/KH-BCĐ → 25 tasks (24 chu_tri, 1 phoi_hop)" in summary
    assert "1393/CVT-CL → 24 tasks (24 chu_tri)" in summary
    assert "171-CV/BTGTU → 13 tasks (13 chu_tri)" in summary

    clerk = seeded.token("clerk")
    register = requests.get(seeded.url(0) + "/v1/directives", headers=clerk, timeout=5).json()
    assert register["total"] == 3
    auditor = seeded.token("auditor")
    records = wait_for(
        lambda: (
            (body := requests.get(seeded.url(2) + "/v1/records", headers=auditor, timeout=5).json())["total"]
            == 3
            and body["items"]
        )
    )
    # The sample PDFs are signed by the demo CA that the embedded archive trusts.
    assert [record["signature_status"] for record in records] == ["valid"] * 3
    signatures = [record["signature_report"]["signatures"][0] for record in records]
    assert all(signature["trusted"] and signature["intact"] for signature in signatures), signatures

    seeded.stop()
    seeded.start()
    # A restart adds nothing: the seed only fills an empty register.
    again = requests.get(seeded.url(0) + "/v1/directives", headers=clerk, timeout=5).json()
    assert again["total"] == 3


def test_make_run_serves_all_three_and_routes_a_directive_and_keeps_state(embedded: Embedded) -> None:
    startup = embedded.output.read_text(encoding="utf-8")
    for index in range(3):
        assert embedded.url(index) in startup
    assert "clerk" in startup and "auditor" in startup  # a development token for each role is printed

    admin = embedded.token("admin")
    units = (ROOT / "samples" / "units.yaml").read_bytes()
    rules = (ROOT / "samples" / "rules.yaml").read_bytes()
    yaml_headers = {**admin, "Content-Type": "application/yaml"}
    assert requests.post(embedded.url(1) + "/v1/units:import", data=units, headers=yaml_headers).ok
    assert requests.put(embedded.url(1) + "/v1/rules", data=rules, headers=yaml_headers).ok

    metadata = json.loads((ROOT / "samples" / "directives" / "1393-CVT-CL.json").read_text(encoding="utf-8"))
    created = requests.post(
        embedded.url(0) + "/v1/directives",
        headers=embedded.token("clerk"),
        files={
            "metadata": (None, json.dumps(metadata, ensure_ascii=False).encode(), "application/json"),
            "files": ("Công văn 1393.pdf", PDF, "application/pdf"),
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    directive = created.json()
    assert directive["arrival_number"] == 1

    # The event crosses kombu's in-process transport to routing, which derives the i-Speed tasks.
    clerk = embedded.token("clerk")
    progress_url = f"{embedded.url(1)}/v1/directives/{directive['id']}/progress"

    def routed() -> dict | None:  # type: ignore[type-arg]
        response = requests.get(progress_url, headers=clerk, timeout=5)
        return response.json() if response.ok and response.json().get("tasks") else None

    progress = wait_for(routed)
    assert len(progress["tasks"]) == 24  # every unit in bao-chi, ttdt and phong-vhtt

    # And archive copies the signed attachment into its WORM store.
    auditor = embedded.token("auditor")
    records = wait_for(
        lambda: requests.get(
            f"{embedded.url(2)}/v1/records", params={"directive": directive["id"]}, headers=auditor, timeout=5
        ).json()["items"]
    )
    assert records[0]["sha256"] == directive["attachments"][0]["sha256"]

    embedded.stop()
    embedded.start()
    again = requests.get(f"{embedded.url(0)}/v1/directives/{directive['id']}", headers=clerk, timeout=5)
    assert again.status_code == 200
    assert again.json()["subject"] == metadata["subject"]
    metadata["number"] = "1394/CVT-CL"
    second = requests.post(embedded.url(0) + "/v1/directives", json=metadata, headers=clerk, timeout=10)
    assert second.status_code == 201, second.text
    assert second.json()["arrival_number"] == 2
