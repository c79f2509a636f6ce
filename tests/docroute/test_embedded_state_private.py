"""`docroute run` keeps its state private: databases, objects, the secret 0600/0400, folders 0700."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import requests
from embedded_runner import ROOT, Embedded, free_base_port
from test_embedded_run import PDF

pytestmark = pytest.mark.e2e


def test_embedded_state_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    runner = Embedded(data_dir, free_base_port())
    data_dir.mkdir(mode=0o755)  # an existing folder someone made world-readable is closed as well
    runner.start()
    try:
        metadata = json.loads((ROOT / "samples" / "directives" / "1393-CVT-CL.json").read_text("utf-8"))
        created = requests.post(
            runner.url(0) + "/v1/directives",
            headers=runner.token("clerk"),
            files={
                "metadata": (None, json.dumps(metadata, ensure_ascii=False).encode(), "application/json"),
                "files": ("cv.pdf", PDF, "application/pdf"),
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
    finally:
        runner.stop()
    entries = [p for p in data_dir.rglob("*") if p.name != "run.log"]  # the test's own log file
    kinds = {p.suffix for p in entries if p.is_file()}
    assert ".db" in kinds and any("objects" in p.parts for p in entries)  # databases and stored objects
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    opened = [
        f"{p.relative_to(data_dir)} {stat.S_IMODE(p.stat().st_mode):o}"
        for p in entries
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    ]
    assert opened == []
