"""kombu's in-process memory:// transport, safe for the embedded suite's many threads.

`docroute run` runs every service's API and worker as threads of one process on memory://. kombu's memory
channel keeps one queue table for the whole process and, on close, walks it (to no effect: it only asks
each queue whether it is empty); a thread declaring a queue at that moment makes the walk fail with
"dictionary changed size during iteration" — seen as a worker dying while another declared its topology.
This transport's channels close without the walk. Importing shared.messaging makes it the one memory://
names (kombu's TRANSPORT_ALIASES, the documented way to name a transport class).
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES, memory, virtual


class Channel(memory.Channel):
    """kombu's memory channel (the same process-wide queues and broker state) without the walk on close."""

    def close(self) -> None:
        virtual.Channel.close(self)  # type: ignore[no-untyped-call]


class Transport(memory.Transport):
    Channel = Channel


def install() -> None:
    """memory:// URLs use this module's Transport from now on (idempotent)."""
    TRANSPORT_ALIASES["memory"] = f"{__name__}:Transport"
