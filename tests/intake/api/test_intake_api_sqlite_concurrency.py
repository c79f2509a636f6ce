"""The embedded database (SQLite, WAL) also hands out gapless arrival numbers to concurrent requests."""

from __future__ import annotations

import json
import threading

from intake_testing import IntakeApp, sample


def test_concurrent_requests_on_sqlite_get_distinct_gapless_numbers(intake: IntakeApp) -> None:
    numbers: list[int] = []
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def submit(thread: int) -> None:
        client = intake.app.test_client()
        start.wait()
        for i in range(6):
            body = {**sample("1393-CVT-CL"), "number": f"{thread * 10 + i + 1}/CVT-CL"}
            response = client.post(
                "/v1/directives",
                data=json.dumps(body, ensure_ascii=False),
                content_type="application/json",
                headers=intake.auth("clerk"),
            )
            with lock:
                statuses.append(response.status_code)
                if response.status_code == 201:
                    numbers.append(response.get_json()["arrival_number"])

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [201] * 24
    assert sorted(numbers) == list(range(1, 25))
