"""The one call the client makes to the routing service: record that the unit received a task."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

# Answers that mean "the task is already recorded as received" as well as "recorded now".
_DONE = frozenset({200, 201, 204, 409})
# Answers worth asking again: the service is overloaded, restarting or timed out.
_TRANSIENT = frozenset({408, 425, 429})


class AckError(Exception):
    """The routing service did not record the receipt this time; retry later."""


class PermanentAckError(AckError):
    """The routing service refuses the receipt for good (unknown task, not this unit's, bad token)."""


class RoutingAcker:
    """`POST {routing_url}/v1/tasks/{id}/ack` with the unit's bearer token."""

    def __init__(self, routing_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base = routing_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def url_for(self, task_id: str) -> str:
        return f"{self.base}/v1/tasks/{urllib.parse.quote(task_id, safe='')}/ack"

    def ack(self, task_id: str, *, correlation_id: str | None = None) -> int:
        """Record receipt of `task_id`; return the HTTP status that meant success."""
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json, application/problem+json",
            "User-Agent": "docroute-unit",
        }
        if correlation_id:
            headers["X-Correlation-ID"] = correlation_id
        request = urllib.request.Request(self.url_for(task_id), data=b"{}", method="POST", headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            raise AckError(f"routing service unreachable: {getattr(exc, 'reason', exc)}") from exc
        if status in _DONE:
            return status
        if status >= 500 or status in _TRANSIENT:
            raise AckError(f"routing service answered {status}")
        raise PermanentAckError(f"routing service refused the ack with {status}")
