"""/readyz shows what the archive's object store can do and how its writes keep their guarantees there; a
store that cannot keep them makes the archive not ready."""

from __future__ import annotations

import dataclasses

from archive.api import create_app
from archive.deps import ArchiveDeps
from shared.objectstore import FULL_CAPABILITIES, StoreLacksCapability


def test_readyz_shows_the_store_s_capabilities_and_write_plan(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    store = response.get_json()["checks"]["object_store"]
    assert store["status"] == "ok"
    assert store["capabilities"] == FULL_CAPABILITIES.as_dict()
    assert store["write_plan"] == {"integrity": "local", "single_version": "local", "lock": "local"}


class LackingStore:
    """The filesystem store, but answering as a store that cannot keep a lock guarantee would."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def write_plan(self, *, object_lock: bool):
        raise StoreLacksCapability("object store ignores object-lock headers on PutObject")


def test_a_store_that_cannot_keep_the_guarantees_makes_the_archive_not_ready(
    app_settings, engine, vault, verifier
):
    lacking = dataclasses.replace(vault, store=LackingStore(vault.store))
    app = create_app(app_settings, ArchiveDeps(engine=engine, vault=lacking, verifier=verifier))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["object_store"] == "failed: StoreLacksCapability"
