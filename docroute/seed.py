"""The first five minutes: what `docroute run` loads into an empty system, so it routes at once.

On a fresh data folder routing starts with the sample units and rules (through its own first-start files,
DOCROUTE_UNITS_FILE / DOCROUTE_RULES_FILE), the archive trusts the demo CA that signed the sample PDFs,
and, once the APIs answer, the seed's three directives are registered through intake's public API with
their signed PDFs, as a clerk would. Their dates are moved to today (due dates by the same number of days)
so their deadlines lie ahead, as live traffic's do; everything else is the sample as issued.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass(frozen=True)
class SeedFiles:
    """The sample files the embedded run starts from; absent in an installed package (no samples/)."""

    units: Path
    rules: Path
    demo_ca: Path
    directives: tuple[Path, ...]

    @classmethod
    def find(cls, samples: Path = SAMPLES) -> SeedFiles | None:
        found = cls(
            units=samples / "units.yaml",
            rules=samples / "rules.yaml",
            demo_ca=samples / "pdfs" / "demo-ca.pem",
            directives=tuple(sorted((samples / "directives").glob("*.json"))),
        )
        needed = [found.units, found.rules, found.demo_ca, *found.pdfs()]
        return found if found.directives and all(path.is_file() for path in needed) else None

    def pdfs(self) -> list[Path]:
        return [path.parent.parent / "pdfs" / f"{path.stem}.pdf" for path in self.directives]

    def environment(self) -> dict[str, str]:
        """Settings that make routing load the samples on first start and the archive trust the demo CA."""
        return {
            "DOCROUTE_UNITS_FILE": str(self.units),
            "DOCROUTE_RULES_FILE": str(self.rules),
            "DOCROUTE_TRUST_STORE": str(self.demo_ca),
        }


def as_issued_on(metadata: Mapping[str, Any], today: dt.date) -> dict[str, Any]:
    """The sample as if issued `today`: its due date, when it has one, moves by the same number of days."""
    out: dict[str, Any] = json.loads(json.dumps(metadata))
    shift = today - dt.date.fromisoformat(out["issued_date"])
    out["issued_date"] = today.isoformat()
    if out.get("due_date"):
        out["due_date"] = (dt.date.fromisoformat(out["due_date"]) + shift).isoformat()
    return out


@dataclass(frozen=True)
class Seeded:
    """One registered sample and what routing made of it."""

    number: str
    arrival_number: int
    directive_id: str
    tasks_by_role: Mapping[str, int]


class Api:
    """A minimal JSON client for the local APIs (stdlib only: `make run` installs no HTTP client)."""

    def __init__(self, token: str, timeout: float = 10.0) -> None:
        self._token = token
        self._timeout = timeout

    def call(self, method: str, url: str, body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (local http URLs)
        request.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _answers(api: Api, url: str) -> bool:
    try:
        return api.call("GET", url)[0] < 500
    except OSError:
        return False


def register_samples(
    files: SeedFiles,
    *,
    intake: str,
    routing: str,
    token: str,
    today: dt.date | None = None,
    timeout: float = 60.0,
) -> list[Seeded]:
    """Registers the sample directives when intake's register is empty and waits for routing's tasks.

    Returns nothing when the register already holds directives (a restart, or someone's own data): the seed
    never adds to a system that is in use.
    """
    api = Api(token)
    if not wait_until(lambda: _answers(api, f"{intake}/v1/directives?per_page=1"), timeout=timeout):
        raise RuntimeError(f"intake at {intake} did not answer within {timeout:.0f} s")
    status, page = api.call("GET", f"{intake}/v1/directives?per_page=1")
    if status != 200 or page["total"]:
        return []
    # The department's calendar day, not the server's: +07:00 is the next day from 17:00 UTC.
    issued = today or dt.datetime.now(VIETNAM).date()
    seeded: list[Seeded] = []
    for path, pdf in zip(files.directives, files.pdfs(), strict=True):
        metadata = as_issued_on(json.loads(path.read_text(encoding="utf-8")), issued)
        metadata["attachments"] = [
            {
                "filename": pdf.name,
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(pdf.read_bytes()).decode("ascii"),
            }
        ]
        status, created = api.call("POST", f"{intake}/v1/directives", metadata)
        if status != 201:
            raise RuntimeError(f"registering {path.name} answered {status}: {created}")
        progress = _wait_for_tasks(api, f"{routing}/v1/directives/{created['id']}/progress", timeout)
        if progress is None:
            raise RuntimeError(f"routing made no tasks for {metadata['number']} within {timeout:.0f} s")
        by_role: dict[str, int] = {}
        for task in progress["tasks"]:
            by_role[task["role"]] = by_role.get(task["role"], 0) + 1
        seeded.append(Seeded(metadata["number"], created["arrival_number"], created["id"], by_role))
    return seeded


def _wait_for_tasks(api: Api, progress_url: str, timeout: float) -> dict[str, Any] | None:
    """The directive's progress once routing has made its tasks; None if it has not within `timeout`."""
    found: dict[str, Any] = {}

    def routed() -> bool:
        status, body = api.call("GET", progress_url)
        if status == 200 and body["tasks"]:
            found.update(body)
            return True
        return False

    return found if wait_until(routed, timeout=timeout) else None


def describe(seeded: Seeded) -> str:
    roles = ", ".join(f"{count} {role}" for role, count in sorted(seeded.tasks_by_role.items()))
    total = sum(seeded.tasks_by_role.values())
    return f"số đến {seeded.arrival_number}: {seeded.number} → {total} tasks ({roles})"
