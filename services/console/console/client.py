"""Calls to the public APIs with the signed-in person's own token: the console sees what the APIs allow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from console.settings import Settings


@dataclass
class ApiError(Exception):
    """An API answered with an error; `problem` is its RFC 9457 body (or what could be read of it)."""

    status: int
    problem: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or f"HTTP {self.status}")

    @property
    def field_errors(self) -> dict[str, list[str]]:
        """Validation messages by field, as the APIs send them (`errors: {field: [messages]}`)."""
        errors = self.problem.get("errors")
        if not isinstance(errors, Mapping):
            return {}
        return {str(k): [str(m) for m in v] if isinstance(v, list) else [str(v)] for k, v in errors.items()}


@dataclass(frozen=True)
class Download:
    content: bytes
    content_type: str
    filename: str | None


class Api:
    """One person's view of intake, routing and archive."""

    def __init__(self, settings: Settings, token: str) -> None:
        self._settings = settings
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._bases = {
            "intake": settings.intake_url,
            "routing": settings.routing_url,
            "archive": settings.archive_url,
        }

    def _url(self, service: str, path: str) -> str:
        return self._bases[service] + path

    def _send(self, method: str, service: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(
                method, self._url(service, path), timeout=self._settings.api_timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ApiError(503, {"title": f"{service} không phản hồi", "detail": type(exc).__name__}) from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason}
            raise ApiError(response.status_code, problem if isinstance(problem, dict) else {})
        return response

    def get(self, service: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        return self._send("GET", service, path, params=clean).json()

    def post(
        self,
        service: str,
        path: str,
        *,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Sequence[tuple[str, tuple[str, bytes, str]]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        response = self._send("POST", service, path, json=json, data=data, files=files, headers=headers)
        return response.json() if response.content else None

    def send_body(self, method: str, service: str, path: str, *, body: bytes, content_type: str) -> Any:
        """A request whose body is a document of its own (a YAML rules or units file)."""
        response = self._send(method, service, path, data=body, headers={"Content-Type": content_type})
        return response.json() if response.content else None

    def delete(self, service: str, path: str) -> None:
        self._send("DELETE", service, path)

    def download(self, service: str, path: str) -> Download:
        response = self._send("GET", service, path)
        disposition = response.headers.get("Content-Disposition", "")
        name = None
        if "filename*=UTF-8''" in disposition:
            from urllib.parse import unquote

            name = unquote(disposition.split("filename*=UTF-8''", 1)[1].split(";", 1)[0])
        return Download(
            response.content, response.headers.get("Content-Type", "application/octet-stream"), name
        )
