"""Update and replacement on PostgreSQL and S3: the revision, its files and its event in one transaction,
concurrent updates of one revision make one revision, and a replacement links both directives."""

from __future__ import annotations

import base64
import json
import threading

import pytest
import sqlalchemy as sa
from edxml_packets import official_packet
from intake.adapters.tables import outbox
from intake_testing import IntakeApp, minimal_pdf, sample

pytestmark = pytest.mark.integration


def kinds(intake: IntakeApp) -> list[str]:
    with intake.deps.engine.connect() as conn:
        bodies = conn.execute(sa.select(outbox.c.body).order_by(outbox.c.id)).scalars().all()
    return [json.loads(bytes(body))["type"] for body in bodies]


def test_an_update_with_a_file_and_a_replacement_on_postgresql(pg_intake: IntakeApp) -> None:
    created = pg_intake.client.post(
        "/v1/edxml", data=official_packet(), content_type="application/xml", headers=pg_intake.auth("clerk")
    )
    assert created.status_code == 201, created.get_json()
    directive = created.get_json()
    assert directive["revision"] == 1
    extra = minimal_pdf("bổ sung")
    updated = pg_intake.client.patch(
        directive["url"],
        json={
            "due_date": "2021-05-10",
            "attachments": [
                {
                    "filename": "bổ sung.pdf",
                    "content_type": "application/pdf",
                    "content_base64": base64.b64encode(extra).decode(),
                }
            ],
        },
        headers=pg_intake.auth("clerk"),
    )
    assert updated.status_code == 200, updated.get_json()
    body = updated.get_json()
    assert body["revision"] == 2 and body["due_date"] == "2021-05-10"
    assert pg_intake.client.get(body["attachments"][-1]["url"], headers=pg_intake.auth("clerk")).data == extra

    replacement = sample("1393-CVT-CL")
    replacement.update(number="1460/CVT-CL", issued_date="2021-04-15")
    replacement["attachments"] = [
        {
            "filename": "1460.pdf",
            "content_type": "application/pdf",
            "content_base64": base64.b64encode(minimal_pdf("1460")).decode(),
        }
    ]
    replaced = pg_intake.client.post(
        f"/v1/directives/{directive['id']}:replace", json=replacement, headers=pg_intake.auth("clerk")
    )
    assert replaced.status_code == 201, replaced.get_json()
    new = replaced.get_json()
    assert new["replaces"]["id"] == directive["id"]
    old = pg_intake.client.get(directive["url"], headers=pg_intake.auth("clerk")).get_json()
    assert old["status"] == "replaced" and old["replaced_by"]["id"] == new["id"] and old["revision"] == 2
    assert kinds(pg_intake).count("intake.directive_updated") == 1
    assert kinds(pg_intake)[-2:] == ["intake.directive_registered", "intake.directive_replaced"]


def test_concurrent_updates_of_one_revision_make_one_revision_each_or_a_conflict(
    pg_intake: IntakeApp,
) -> None:
    created = pg_intake.client.post(
        "/v1/edxml", data=official_packet(), content_type="application/xml", headers=pg_intake.auth("clerk")
    )
    directive = created.get_json()
    answers: list[int] = []
    barrier = threading.Barrier(6)

    def update(day: int) -> None:
        client = pg_intake.app.test_client()
        barrier.wait()
        response = client.patch(
            directive["url"], json={"due_date": f"2021-05-{day:02d}"}, headers=pg_intake.auth("clerk")
        )
        answers.append(response.status_code)

    threads = [threading.Thread(target=update, args=(day,)) for day in range(10, 16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(answers) <= {200, 409} and 200 in answers
    revisions = pg_intake.client.get(
        f"{directive['url']}/revisions", headers=pg_intake.auth("clerk")
    ).get_json()
    # Every revision is one successful update, numbered without a gap, each with its own event.
    assert [item["revision"] for item in revisions["items"]] == list(range(1, answers.count(200) + 2))
    assert kinds(pg_intake).count("intake.directive_updated") == answers.count(200)
