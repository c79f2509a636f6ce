"""The archive worker's consumers pause on a database or object-store outage: they probe both."""

import threading

import pytest
from archive.deps import ArchiveDeps
from archive.worker import ConsumerWorker, build_worker, probes
from shared.objectstore import StoreUnavailable


def test_the_consumers_probe_the_database_and_the_object_store(app_settings, engine, vault, verifier):
    deps = ArchiveDeps(engine=engine, vault=vault, verifier=verifier)
    worker = build_worker(app_settings, deps)
    consumers = [part.consumer for part in worker.parts if isinstance(part, ConsumerWorker)]
    assert consumers
    for consumer in consumers:
        for dependency in ("database", "object_store"):
            assert consumer.probes.has_probe(dependency)
            assert consumer.probes.answers(dependency, threading.Event())


def test_the_object_store_probe_fails_while_the_store_is_unavailable(engine, vault, verifier, monkeypatch):
    deps = ArchiveDeps(engine=engine, vault=vault, verifier=verifier)

    def unreachable() -> None:
        raise StoreUnavailable("127.0.0.1:9000 unreachable (MaxRetryError)")

    monkeypatch.setattr(vault.store, "ping", unreachable)
    with pytest.raises(StoreUnavailable):
        probes(deps)["object_store"]()
