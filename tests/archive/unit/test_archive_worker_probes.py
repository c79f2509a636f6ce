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


def test_the_worker_wakes_its_relay_after_each_handled_event(
    app_settings, engine, vault, verifier, monkeypatch
):
    """A handler that returned has committed its outbox rows: the relay is woken to send them now."""
    from archive import archiving, messages
    from archive.worker import subscriptions
    from shared.envelope import Envelope
    from shared.outbox import OutboxRelay

    deps = ArchiveDeps(engine=engine, vault=vault, verifier=verifier)
    handled: list[str] = []

    def handle(envelope: Envelope, **_: object) -> list[str]:
        if envelope.payload.get("fail"):
            raise RuntimeError("the handler failed")
        handled.append(envelope.id)
        return []

    monkeypatch.setattr(archiving, "handle_directive_registered", handle)
    woken: list[str] = []
    subs = subscriptions(deps, committed=lambda: woken.append(handled[-1] if handled else "?"))
    queue = messages.consumer_queue(*messages.DIRECTIVE_REGISTERED)
    (registered,) = [s for s in subs if s.queue == queue]
    ok = Envelope.new("intake.directive_registered", {"directive_id": "d1"}, producer="intake")
    registered.handler(ok)
    assert woken == [ok.id]  # after the handler, not before
    with pytest.raises(RuntimeError):
        registered.handler(Envelope.new("intake.directive_registered", {"fail": True}, producer="intake"))
    assert woken == [ok.id]  # a failed handler committed nothing: no wake-up

    # The worker wires its own relay's wake-up into every consumer.
    worker = build_worker(app_settings, deps)
    (relay,) = [part.relay for part in worker.parts if isinstance(getattr(part, "relay", None), OutboxRelay)]
    consumer = next(part.consumer for part in worker.parts if isinstance(part, ConsumerWorker))
    wired = next(s for s in consumer.subscriptions if s.queue == queue)
    assert not relay._woken.is_set()
    wired.handler(ok)
    assert relay._woken.is_set()
