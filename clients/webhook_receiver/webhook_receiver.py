"""A small webhook receiver for integrators: verifies docroute's signed status deliveries (stdlib only).

Run it beside an e-office system to see both ends working:

    DOCROUTE_WEBHOOK_SECRET=whsec_... python webhook_receiver.py --port 8099

It answers 204 to a delivery whose signature is valid and recent, 401 otherwise, and ignores a
`webhook-id` it already handled (docroute sends at least once: a retry after a lost answer repeats the id).
Copy `verify()` into your own code; the rest is a demonstration.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_SECONDS = 5 * 60
MAX_BODY = 1024 * 1024


class InvalidSignature(Exception):
    """The delivery is not signed with this secret, or its timestamp is too far from now."""


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Checks a delivery the Standard Webhooks way; answers its webhook-id or raises InvalidSignature.

    The signed content is `webhook-id.webhook-timestamp.body`; the key is the base64 after `whsec_`;
    `webhook-signature` holds one or more space-separated `v1,<base64 HMAC-SHA256>`.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not stamp or not signatures:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not a number") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        # An old delivery replayed by someone who captured it is refused.
        raise InvalidSignature("webhook-timestamp is too far from now")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures.split()):
        raise InvalidSignature("no signature matches")
    return message_id


@dataclass
class Received:
    """What the demonstration receiver kept: each distinct delivery once, in arrival order."""

    deliveries: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    duplicates: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_handler(
    secret: str, received: Received, answer: list[int] | None = None
) -> type[BaseHTTPRequestHandler]:
    """A request handler verifying each POST; `answer[0]`, when given, overrides the status (for outages)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413)
                return
            body = self.rfile.read(length)
            if answer and answer[0] != 204:
                self._reply(answer[0])
                return
            try:
                message_id = verify(secret, dict(self.headers.items()), body)
            except InvalidSignature as exc:
                with received.lock:
                    received.refused += 1
                self._reply(401, str(exc))
                return
            with received.lock:
                if message_id in received.seen:
                    received.duplicates += 1
                else:
                    received.seen.add(message_id)
                    content_type = self.headers.get("Content-Type", "")
                    item: dict[str, Any] = {"webhook_id": message_id, "content_type": content_type}
                    if content_type.startswith("application/json"):
                        item["json"] = json.loads(body)
                    else:
                        item["xml"] = body.decode("utf-8")
                    received.deliveries.append(item)
            self._reply(204)

        def _reply(self, status: int, text: str = "") -> None:
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify and print docroute's status webhooks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    secret = os.environ.get("DOCROUTE_WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        print("set DOCROUTE_WEBHOOK_SECRET to the whsec_… secret the subscription answered", file=sys.stderr)
        return 2
    received = Received()

    class Printing(make_handler(secret, received)):  # type: ignore[misc]
        def do_POST(self) -> None:
            before = len(received.deliveries)
            super().do_POST()
            if len(received.deliveries) > before:
                item = received.deliveries[-1]
                data = item.get("json", {}).get("data", {})
                print(
                    item["webhook_id"],
                    data.get("directive_id"),
                    data.get("status_code"),
                    data.get("description"),
                )

    server = ThreadingHTTPServer((args.host, args.port), Printing)
    print(f"listening on http://{args.host}:{args.port}/", file=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
