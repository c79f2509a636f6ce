"""Long-polls hold a web thread each: they are capped per unit and per process, beyond which 429."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from routing import dispatch
from routing.api.pollgate import PollGate
from routing.settings import Settings
from routing_testkit import registered_event
from shared.settings import SettingsError

from tests.support.polling import wait_for


@pytest.fixture
def loaded(rapp):
    rapp.load_samples()
    return rapp


def long_poll(rapp, unit, wait):
    # Each thread has its own client, as each gunicorn thread has its own request.
    client = rapp.app.test_client()
    return client.post(
        f"/v1/units/{unit}/tasks:poll", json={"wait_seconds": wait}, headers=rapp.auth("unit", unit)
    )


def test_long_polls_beyond_the_caps_are_refused_with_retry_after(loaded):
    gate = loaded.deps.poll_gate = PollGate(per_process=2, per_unit=1)
    with ThreadPoolExecutor(max_workers=2) as pool:
        syt = pool.submit(long_poll, loaded, "SYT", 25)
        wait_for(lambda: gate.waiting() == {"SYT": 1})
        again = long_poll(loaded, "SYT", 25)
        assert again.status_code == 429 and again.headers["Retry-After"] == "2"
        assert again.mimetype == "application/problem+json"
        assert again.get_json()["type"].endswith("too-many-long-polls")
        assert "unit SYT" in again.get_json()["detail"]
        cttdt = pool.submit(long_poll, loaded, "CTTDT", 25)
        wait_for(lambda: gate.waiting() == {"SYT": 1, "CTTDT": 1})
        full = long_poll(loaded, "BPTV", 25)
        assert full.status_code == 429 and "process" in full.get_json()["detail"]
        # A poll that does not wait, and every other request, go through while both places are held.
        assert long_poll(loaded, "BPTV", 0).status_code == 200
        assert loaded.client.get("/healthz").status_code == 200
        assert loaded.client.get("/v1/units/SYT/tasks", headers=loaded.auth("unit", "SYT")).status_code == 200
        assert not syt.done() and not cttdt.done()
        # Tasks arrive: the waiting polls take them and give their places back.
        event = registered_event("120-KH-BCD.json")
        dispatch.route_directive(event, engine=loaded.deps.engine, calendar=loaded.deps.calendar)
        loaded.relay()
        for future, unit in ((syt, "SYT"), (cttdt, "CTTDT")):
            r = future.result(timeout=60)
            assert r.status_code == 200 and [t["unit"] for t in r.get_json()["items"]] == [unit]
    assert gate.waiting() == {}
    assert long_poll(loaded, "BPTV", 0.05).status_code == 200


def test_poll_caps_are_settings_that_leave_threads_free():
    base = {"DOCROUTE_JWT_SECRET": "x" * 40}
    defaults = Settings.from_env(base)
    assert (defaults.web_threads, defaults.poll_max_per_process, defaults.poll_max_per_unit) == (16, 8, 2)
    custom = Settings.from_env(
        base
        | {
            "DOCROUTE_WEB_THREADS": "6",
            "DOCROUTE_POLL_MAX_PER_PROCESS": "5",
            "DOCROUTE_POLL_MAX_PER_UNIT": "1",
        }
    )
    assert (custom.poll_max_per_process, custom.poll_max_per_unit) == (5, 1)
    with pytest.raises(SettingsError, match=r"^DOCROUTE_POLL_MAX_PER_PROCESS"):
        Settings.from_env(base | {"DOCROUTE_WEB_THREADS": "4", "DOCROUTE_POLL_MAX_PER_PROCESS": "4"})
