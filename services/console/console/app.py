"""The console's Flask app: sessions, sign-in, CSRF, Vietnamese formatting and the pages of each role."""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Flask, Response, abort, g, redirect, render_template, request, session, url_for
from shared.logs import configure_logging

from console import oidc
from console.client import Api, ApiError
from console.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

ROLE_NAMES = {
    "clerk": "Văn thư",
    "unit": "Đơn vị",
    "auditor": "Kiểm tra, kiểm toán",
    "admin": "Quản trị",
    "submitter": "Hệ thống gửi văn bản",
}
URGENCY = {"thuong": "Thường", "khan": "Khẩn", "thuong_khan": "Thượng khẩn", "hoa_toc": "Hỏa tốc"}
TASK_ROLE = {"chu_tri": "Chủ trì", "phoi_hop": "Phối hợp", "de_biet": "Để biết"}
TASK_STATUS = {
    "assigned": "Mới giao",
    "received": "Đã nhận",
    "in_progress": "Đang xử lý",
    "completed": "Hoàn thành",
    "rejected": "Từ chối",
    "cancelled": "Đã hủy",
}
DIRECTIVE_STATUS = {
    "registered": "Đã vào sổ",
    "rejected": "Đã từ chối tiếp nhận",
    "revoked": "Đã thu hồi",
    "replaced": "Đã thay thế",
}
# The three places a CSP must allow: our own pages, styles and scripts; nothing is loaded from elsewhere.
# Forms post to the console only, and (with OpenID Connect) may be redirected to the identity provider:
# Chromium applies form-action to the redirect that follows the sign-out form too.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'{provider}; base-uri 'none'"
)


def content_security_policy(settings: Settings) -> str:
    provider = ""
    if settings.oidc is not None:
        parts = urlsplit(settings.oidc.issuer)
        provider = f" {parts.scheme}://{parts.netloc}"
    return CSP.format(provider=provider)


@dataclass(frozen=True)
class Person:
    """Who is signed in, as their token says; the APIs, not the console, decide what they may do."""

    sub: str
    roles: tuple[str, ...]
    unit: str | None
    token: str

    @property
    def is_unit(self) -> bool:
        return self.unit is not None

    def has(self, *roles: str) -> bool:
        return not self.is_unit and any(role in self.roles for role in roles)

    @property
    def label(self) -> str:
        if self.unit:
            return f"Đơn vị {self.unit}"
        return ", ".join(ROLE_NAMES.get(role, role) for role in self.roles)


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT the APIs issued or accepted, read for display and navigation only."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def current_person() -> Person | None:
    token = session.get("token")
    if not token:
        return None
    claims = token_claims(token)
    expires = claims.get("exp")
    if isinstance(expires, int | float) and expires <= time.time():
        # The provider's access tokens live minutes: once one has expired, sign in again (the provider's
        # own session usually makes that a redirect and back).
        session.pop("token", None)
        return None
    roles = claims.get("roles") or []
    return Person(
        sub=str(claims.get("sub", "")),
        roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
        unit=claims.get("unit"),
        token=token,
    )


def api() -> Api:
    person = g.person
    if person is None:
        abort(401)
    return Api(g.settings, person.token)


def date_vn(value: Any) -> str:
    """dd/MM/yyyy, as Vietnamese offices write dates."""
    if value in (None, ""):
        return "—"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        # A date alone ("2026-12-05") stays a date; an instant shows its time too.
        value = parsed.date() if len(value) == 10 else parsed
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(VIETNAM)
        return value.strftime("%d/%m/%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    return str(value)


def number_vn(value: Any) -> str:
    """1.234.567 — Vietnamese groups thousands with dots."""
    try:
        return f"{int(value):,}".replace(",", ".")
    except (TypeError, ValueError):
        return str(value)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("console")
    app.config.update(
        SECRET_KEY=settings.session_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # Secure wherever people sign in at a real identity provider; Lax (not Strict) so the provider's
        # redirect back, a top-level GET from another site, carries the session with the sign-in state.
        SESSION_COOKIE_SECURE=settings.common.env == "production" or settings.oidc is not None,
        SESSION_COOKIE_NAME="docroute_console",
        MAX_CONTENT_LENGTH=60 * 1024 * 1024,
    )
    app.jinja_env.filters.update(date_vn=date_vn, number_vn=number_vn)
    app.jinja_env.globals.update(
        URGENCY=URGENCY, TASK_ROLE=TASK_ROLE, TASK_STATUS=TASK_STATUS, DIRECTIVE_STATUS=DIRECTIVE_STATUS
    )

    @app.before_request
    def _load() -> Response | None:
        g.settings = settings
        g.person = current_person()
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        if request.method == "POST":
            sent = request.form.get("csrf_token", "")
            if not hmac.compare_digest(sent, session["csrf"]):
                return Response(
                    render_template(
                        "error.html", status=400, message="Biểu mẫu đã hết hạn hoặc không hợp lệ (CSRF)."
                    ),
                    status=400,
                )
        return None

    csp = content_security_policy(settings)

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint not in ("static", "healthz", "readyz"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {"person": g.get("person"), "csrf_token": session.get("csrf", "")}

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[str, int]:
        status = exc.status if exc.status in (400, 403, 404, 409, 413, 422, 429, 503) else 502
        if exc.status == 401:
            session.pop("token", None)
            status = 401
        return render_template("error.html", status=status, message=str(exc)), status

    @app.errorhandler(401)
    def _unauthorised(_exc: Exception) -> Response:
        return redirect(url_for("auth.sign_in", next=request.path))  # type: ignore[return-value]

    @app.errorhandler(403)
    def _forbidden(_exc: Exception) -> tuple[str, int]:
        return render_template(
            "error.html", status=403, message="Tài khoản của bạn không có quyền xem trang này."
        ), 403

    @app.errorhandler(404)
    def _missing(_exc: Exception) -> tuple[str, int]:
        return render_template(
            "error.html", status=404, message="Không tìm thấy trang hoặc văn bản này."
        ), 404

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> tuple[dict[str, str], int]:
        """Ready when people can sign in: with OpenID Connect, once the provider's metadata is read."""
        provider = oidc.client()
        if provider is not None:
            try:
                provider.metadata()
            except Exception as exc:  # noqa: BLE001 - any failure means nobody can sign in yet
                return {"status": "unavailable", "detail": f"identity provider: {type(exc).__name__}"}, 503
        return {"status": "ok"}, 200

    oidc.init_app(app, settings)

    from console.pages import admin, audit, auth, clerk, unit

    for module in (auth, clerk, unit, audit, admin):
        app.register_blueprint(module.blueprint)

    @app.get("/")
    def home() -> Response:
        person: Person | None = g.person
        if person is None:
            return redirect(url_for("auth.sign_in"))  # type: ignore[return-value]
        if person.is_unit:
            return redirect(url_for("unit.inbox"))  # type: ignore[return-value]
        if person.has("clerk", "submitter"):
            return redirect(url_for("clerk.register"))  # type: ignore[return-value]
        if person.has("auditor"):
            return redirect(url_for("audit.records"))  # type: ignore[return-value]
        return redirect(url_for("admin.units"))  # type: ignore[return-value]

    configure_logging(settings.common.log_level)
    return app


def requires(*roles: str, unit: bool = False) -> Callable[[F], F]:
    """A page for people with one of `roles` (or, with `unit=True`, for unit accounts); others get 403."""
    import functools

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            person: Person | None = g.person
            if person is None:
                abort(401)
            if not ((unit and person.is_unit) or person.has(*roles)):
                abort(403)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
