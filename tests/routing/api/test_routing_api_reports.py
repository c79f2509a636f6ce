"""A unit's report file: its name and media type are cleaned before the ledger, events or store see them."""

import io
import json
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from routing import dispatch
from routing.adapters import tables as t
from routing_testkit import registered_event


@pytest.fixture
def loaded(rapp):
    rapp.load_samples()
    return rapp


def report(rapp, task_id, unit, filename, content_type):
    """Posts a multipart body built by hand, the name percent-encoded (RFC 5987 `filename*`): so a client
    gets CR/LF, quotes and backslashes into the name the server decodes."""
    boundary = "docroute-test-boundary"
    encoded = quote(filename, safe="")
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="status"\r\n\r\ncompleted\r\n'
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"report\"; filename*=UTF-8''{encoded}\r\n"
        f"Content-Type: {content_type}\r\n\r\n%PDF-1.4 report\r\n--{boundary}--\r\n"
    ).encode()
    return rapp.client.post(
        f"/v1/tasks/{task_id}/status",
        data=io.BytesIO(body),
        headers=rapp.auth("unit", unit) | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\báo'cáo\"\r\nX-Injected: 1.pdf", "báo_cáo_X-Injected_ 1.pdf"),
        ("a\tb`c|d?.pdf", "ab_c_d_.pdf"),
        ("Báo cáo kết quả.pdf", "Báo cáo kết quả.pdf"),
        ("...", "report"),
    ],
    ids=["traversal", "backslash-quote-cr", "reserved", "vietnamese-kept", "nothing-left"],
)
def test_report_filenames_are_cleaned_in_the_ledger_and_the_event(loaded, given, stored):
    event = registered_event("171-CV-BTGTU.json")
    dispatch.route_directive(event, engine=loaded.deps.engine, calendar=loaded.deps.calendar)
    loaded.relay()
    unit = loaded.auth("unit", "BPTV")
    task = loaded.client.post("/v1/units/BPTV/tasks:poll", json={}, headers=unit).get_json()["items"][0]
    loaded.client.post(f"/v1/tasks/{task['id']}/ack", headers=unit)
    r = report(loaded, task["id"], "BPTV", given, content_type="text/html; charset=utf-8")
    assert r.status_code == 200, r.get_json()
    kept = r.get_json()["history"][-1]["report"]
    assert kept["filename"] == stored
    # A media type with parameters is not a bare type/subtype: stored as opaque bytes, served as such.
    assert kept["content_type"] in {"text/html", "application/octet-stream"}
    with loaded.deps.engine.connect() as conn:
        bodies = conn.execute(sa.select(t.outbox.c.body)).scalars().all()
    [changed] = [
        e for e in (json.loads(bytes(b)) for b in bodies) if e["type"] == "routing.task_status_changed"
    ]
    assert changed["payload"]["report"]["filename"] == stored
