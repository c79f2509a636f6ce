"""The careful client of a fault run: registers directives with an Idempotency-Key, retries connection
errors, 5xx and 429 (honouring Retry-After) until a deadline, and records everything it saw."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.payloads import multipart

# How long one directive may keep retrying: longer than the longest outage a run injects (60 s) plus the
# time the stack needs to take its backlog.
DEFAULT_DEADLINE = 240.0
MAX_PAUSE = 10.0
FIRST_PAUSE = 0.2


@dataclass(frozen=True)
class Submission:
    """One directive to register: its metadata and files, under one Idempotency-Key for every attempt."""

    serial: int
    sample: int
    metadata: dict[str, Any]
    files: tuple[tuple[str, bytes], ...]
    key: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Outcome:
    """What became of one submission: the 201's body (or the last failure) and the attempts it took."""

    submission: Submission
    started: float
    finished: float = 0.0
    attempts: int = 0
    directive_id: str | None = None
    body: dict[str, Any] | None = None
    seen: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.directive_id is not None

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def retry_after(response: requests.Response, fallback: float) -> float:
    """Seconds the server asked us to wait (Retry-After in seconds), capped; `fallback` when absent."""
    value = response.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), MAX_PAUSE)
    except ValueError:
        return fallback


class CarefulClient:
    """POST /v1/directives as an e-office system should: same key on every retry, bounded patience."""

    def __init__(
        self, base_url: Callable[[], str], token: str, *, deadline: float = DEFAULT_DEADLINE
    ) -> None:
        self._base_url = base_url
        self._token = token
        self._deadline = deadline
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def register(self, submission: Submission) -> Outcome:
        outcome = Outcome(submission=submission, started=time.monotonic())
        pause = FIRST_PAUSE
        give_up = outcome.started + self._deadline
        body, content_type = multipart(
            {"metadata": json.dumps(submission.metadata, ensure_ascii=False)},
            [("files", name, "application/pdf", data) for name, data in submission.files],
        )
        while True:
            outcome.attempts += 1
            wait = pause
            try:
                response = self._session().post(
                    f"{self._base_url()}/v1/directives",
                    headers={
                        "Authorization": f"Bearer {self._token}",
                        "Idempotency-Key": submission.key,
                        "Content-Type": content_type,
                    },
                    data=body,
                    timeout=30,
                )
            except requests.RequestException as exc:
                outcome.seen[_error_name(exc)] += 1
                # A dead connection in the pool must not be reused for the next attempt.
                self._local.session = None
            else:
                outcome.seen[str(response.status_code)] += 1
                if response.status_code in (200, 201):
                    outcome.body = response.json()
                    outcome.directive_id = str(outcome.body["id"])
                    break
                if response.status_code == 429 or response.status_code >= 500:
                    wait = retry_after(response, pause)
                else:
                    outcome.error = f"{response.status_code}: {response.text[:300]}"
                    break
            if time.monotonic() + wait > give_up:
                outcome.error = f"gave up after {outcome.attempts} attempts: {dict(outcome.seen)}"
                break
            time.sleep(wait)
            pause = min(pause * 2, MAX_PAUSE)
        outcome.finished = time.monotonic()
        return outcome


def _error_name(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "connection error"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    return type(exc).__name__


class Load:
    """Sends submissions from a few threads at a steady pace in the background; outcomes collect here."""

    def __init__(self, client: CarefulClient, *, senders: int = 4) -> None:
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="chaos-client")
        self._lock = threading.Lock()
        self._futures: list[Any] = []
        self.outcomes: list[Outcome] = []

    def submit(self, submissions: Iterable[Submission], *, rate: float) -> None:
        """Queues `submissions`, released at `rate` per second from now (does not wait for them)."""
        start = time.monotonic()
        for index, submission in enumerate(submissions):
            due = start + index / rate
            self._futures.append(self._pool.submit(self._send_at, due, submission))

    def _send_at(self, due: float, submission: Submission) -> None:
        time.sleep(max(due - time.monotonic(), 0.0))
        outcome = self._client.register(submission)
        with self._lock:
            self.outcomes.append(outcome)

    def wait(self) -> list[Outcome]:
        """Waits for everything submitted so far; the outcomes gathered since the last wait."""
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()
        with self._lock:
            done, self.outcomes = self.outcomes, []
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
