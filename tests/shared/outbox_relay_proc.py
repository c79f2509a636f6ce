"""A stand-alone outbox relay process for the crash tests: `python outbox_relay_proc.py DB AMQP [DELAY]`.

DELAY (seconds per message) is slept after the broker confirmed a batch and before the relay marks it, so a
test can SIGKILL the process in the worst window: published, confirmed, not yet recorded.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Sequence

import sqlalchemy as sa
from shared.db import make_engine
from shared.messaging import BatchResult, OutgoingMessage, Publisher
from shared.outbox import OutboxRelay, outbox_table


class SlowPublisher(Publisher):
    def __init__(self, url: str, delay: float) -> None:
        super().__init__(url, confirm_timeout=2.0, retries=2)
        self.delay = delay

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> BatchResult:
        result = super().publish_batch(messages)
        time.sleep(self.delay * len(messages))
        return result


def main() -> None:
    db_url, amqp_url = sys.argv[1], sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    engine = make_engine(db_url)
    table = outbox_table(sa.MetaData())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    relay = OutboxRelay(engine, table, SlowPublisher(amqp_url, delay), batch_size=50, idle_sleep=0.05)
    print("relay started", flush=True)
    relay.run(stop)


if __name__ == "__main__":
    main()
