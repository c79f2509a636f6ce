"""The directives a fault run sends: the sample directives in turn, each with a new number, issued today,
with one or two PDFs signed by a throwaway CA (the bench's PDF and signing helpers, not a third copy)."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench.payloads import Signer, dated, make_signer, numbered, pdf_of_size, sample_directives, sign_pdf
from chaos.client import Submission

# Serial numbers far from anything the samples carry, so every directive of a run is new to intake.
SERIAL_START = 7_000_000
PDF_BYTES = 20 * 1024


class Workload:
    """Makes submissions on demand (thread-safe); remembers which sample each one came from."""

    def __init__(self, signer: Signer | None = None) -> None:
        self.signer = signer or make_signer()
        # Issued today (UTC, never ahead of the Hà Nội date intake numbers by): the tasks are not overdue.
        today = datetime.now(UTC).date()
        self.samples = [dated(sample, today) for sample in sample_directives()]
        self._serials = itertools.count(SERIAL_START)
        self._lock = threading.Lock()
        self.expected_tasks: list[int] = []

    def write_trust_store(self, path: Path) -> Path:
        path.write_bytes(self.signer.ca_pem)
        return path

    def learn_expected_tasks(self, routing_url: str, headers: dict[str, str]) -> list[int]:
        """How many tasks each sample must make, from routing's own rules:evaluate."""
        counts = []
        for sample in self.samples:
            answer = requests.post(
                f"{routing_url}/v1/rules:evaluate",
                data=json.dumps(sample, ensure_ascii=False).encode("utf-8"),
                headers={**headers, "Content-Type": "application/json"},
                timeout=30,
            )
            answer.raise_for_status()
            counts.append(len(answer.json()["tasks"]))
        self.expected_tasks = counts
        return counts

    def next(self) -> Submission:
        with self._lock:
            serial = next(self._serials)
        sample = serial % len(self.samples)
        metadata: dict[str, Any] = numbered(self.samples[sample], serial)
        metadata["external_id"] = f"chaos-{serial}"
        # Every fourth directive carries two files: "one record per file" must hold per file.
        count = 2 if serial % 4 == 3 else 1
        files = tuple(
            (
                f"văn-bản-{serial}-{index + 1}.pdf",
                sign_pdf(pdf_of_size(PDF_BYTES, text=f"chaos {serial} {index}"), self.signer),
            )
            for index in range(count)
        )
        return Submission(serial=serial, sample=sample, metadata=metadata, files=files)

    def batch(self, count: int) -> Iterator[Submission]:
        for _ in range(count):
            yield self.next()
