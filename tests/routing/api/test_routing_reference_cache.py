"""A routing worker keeps units and rules in memory and reads them again only after a write to either,
on SQLite (triggers per row) and on PostgreSQL (triggers per statement)."""

import pytest
import sqlalchemy as sa
from routing import dispatch, progress
from routing.adapters import tables as t
from routing.adapters.reference import reference_revision
from routing_testkit import build_routing_app, registered_event


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
    ]
)
def app(request, tmp_path):
    db_url = request.getfixturevalue("pg_database_factory")() if request.param == "postgresql" else None
    rapp = build_routing_app(tmp_path, db_url)
    rapp.load_samples()
    yield rapp
    rapp.deps.engine.dispose()


def revision(app) -> int:
    with app.deps.engine.connect() as conn:
        return reference_revision(conn)


def route(app, cache, name="1393-CVT-CL.json"):
    event = registered_event(name)
    dispatch.route_directive(event, engine=app.deps.engine, calendar=app.deps.calendar, reference=cache)
    return progress.directive_progress(event.payload["directive_id"], engine=app.deps.engine)


def test_every_write_to_units_or_rules_moves_the_reference_revision(app):
    clerk = app.auth("clerk")
    before = revision(app)
    assert before > 0  # the sample import and the rules did
    r = app.client.put("/v1/units/XA-MOI", json={"name": "UBND xã Mới", "groups": ["cap-xa"]}, headers=clerk)
    assert r.status_code in (200, 201), r.get_json()
    after_put = revision(app)
    assert after_put > before
    assert app.client.delete("/v1/units/XA-MOI", headers=clerk).status_code == 200
    after_delete = revision(app)
    assert after_delete > after_put
    with app.deps.engine.begin() as conn:  # by hand, as an operator might
        conn.execute(sa.update(t.units).where(t.units.c.code == "XA-MOI").values(name="UBND xã Mới (sửa)"))
    assert revision(app) > after_delete
    unchanged = revision(app)
    with app.deps.engine.begin() as conn:
        conn.execute(sa.update(t.units).where(t.units.c.code == "XA-MOI").values(name="x"))
        conn.rollback()
    assert revision(app) == unchanged  # a write that did not commit moves nothing


def test_a_worker_reads_units_and_rules_once_until_either_changes(app):
    cache, other_process = dispatch.reference_cache(), dispatch.reference_cache()
    first = route(app, cache)
    assert len(first["tasks"]) == 24
    for _ in range(3):
        assert len(route(app, cache)["tasks"]) == 24
    assert cache.loads == 1
    # A unit the directive reaches is deactivated through the API (another process, as in production).
    gone = first["tasks"][0]["unit"]
    assert app.client.delete(f"/v1/units/{gone}", headers=app.auth("clerk")).status_code == 200
    after_unit = route(app, cache)
    assert cache.loads == 2
    assert gone not in {task["unit"] for task in after_unit["tasks"]} and len(after_unit["tasks"]) == 23
    # New rules: no rule matches any more, so the next directive gets no task.
    r = app.client.put("/v1/rules", json={"version": 1, "rules": []}, headers=app.auth("clerk"))
    assert r.status_code in (200, 201), r.get_json()
    assert route(app, cache)["tasks"] == [] and cache.loads == 3
    assert route(app, other_process)["tasks"] == [] and other_process.loads == 1
