"""The routing worker's consumers pause on a database outage: they are given a probe of their database."""

import threading

from routing.worker import build_worker
from routing_testkit import build_routing_app
from test_routing_worker_memory import worker_settings


def test_every_consumer_probes_the_routing_database(tmp_path):
    app = build_routing_app(tmp_path)
    worker = build_worker(worker_settings(tmp_path, app))
    try:
        assert worker.consumers
        for consumer in worker.consumers:
            assert consumer.probes.has_probe("database")
            assert consumer.probes.answers("database", threading.Event())
    finally:
        worker.publisher.close()
        worker.queues.close()
        worker.engine.dispose()
