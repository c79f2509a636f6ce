"""Signing in and out. In production (and wherever DOCROUTE_CONSOLE_OIDC_CLIENT_ID is set) at the identity
provider, OpenID Connect authorization code + PKCE (console.oidc); in development without a provider a
person picks one of the development identities (as `make run` prints tokens). Either way the token the
console then holds is what the APIs check on every call."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from authlib.integrations.base_client import OAuthError
from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from shared.auth import Unauthorized, issue_token
from shared.settings import ensure_dev_secret
from werkzeug.wrappers import Response

from console import oidc
from console.client import Api, ApiError

blueprint = Blueprint("auth", __name__)
log = logging.getLogger(__name__)

IDENTITIES = (
    ("van-thu", ("clerk",), "Văn thư — đăng ký và theo dõi văn bản đến"),
    ("kiem-toan", ("auditor",), "Kiểm tra, kiểm toán — chỉ xem lưu trữ và nhật ký"),
    ("quan-tri", ("admin",), "Quản trị — đơn vị và quy tắc phân công"),
)
SESSION_SECONDS = 8 * 3600


def _secret() -> str:
    common = g.settings.common
    return common.auth.secret or ensure_dev_secret(common.data_dir)


def _units() -> list[dict[str, Any]]:
    """Active units, read with a short-lived admin token so the sign-in page can offer them."""
    token = issue_token(_secret(), sub="console-sign-in", roles=["admin"], ttl_seconds=60)
    try:
        page = Api(g.settings, token).get("routing", "/v1/units", {"active": "true", "per_page": 100})
    except ApiError:
        return []
    return list(page.get("items", []))


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else url_for("home")


def _start_session(token: str, **extra: Any) -> None:
    """A fresh session for the person just signed in, with a new CSRF token: nothing carries over."""
    session.clear()
    session["token"] = token
    session["csrf"] = secrets.token_urlsafe(32)
    session.update(extra)


@blueprint.get("/dang-nhap")
def sign_in() -> Any:
    provider = oidc.client()
    if provider is not None:
        session["next"] = _safe_next(request.args.get("next"))
        return provider.redirect_to_provider()
    if not g.settings.dev_sign_in:
        abort(404)
    return render_template(
        "sign_in.html", identities=IDENTITIES, units=_units(), next=request.args.get("next", "")
    )


@blueprint.post("/dang-nhap")
def sign_in_post() -> Response:
    if not g.settings.dev_sign_in:
        abort(404)
    choice = request.form.get("identity", "")
    unit = request.form.get("unit", "").strip()
    if choice == "unit":
        if not unit:
            abort(400)
        token = issue_token(
            _secret(), sub=f"don-vi-{unit.lower()}", roles=["unit"], unit=unit, ttl_seconds=SESSION_SECONDS
        )
    else:
        found = next((item for item in IDENTITIES if item[0] == choice), None)
        if found is None:
            abort(400)
        token = issue_token(_secret(), sub=found[0], roles=list(found[1]), ttl_seconds=SESSION_SECONDS)
    _start_session(token)
    return redirect(_safe_next(request.form.get("next")))


def _refused(message: str) -> tuple[str, int]:
    return render_template("error.html", status=400, message=message, sign_in_again=True), 400


@blueprint.get("/dang-nhap/oidc")
def oidc_callback() -> Any:
    """Where the identity provider sends the browser back with a code (or an error)."""
    provider = oidc.client()
    if provider is None:
        abort(404)
    try:
        token, principal = provider.finish()
    except OAuthError as exc:
        # A state the console did not issue (or already used), an error from the provider, a code the
        # provider would not exchange (a PKCE verifier that does not match), a bad ID token.
        log.warning("OpenID Connect sign-in refused: %s", exc)
        return _refused(f"Đăng nhập không thành công ({exc.error or 'oidc'}). Xin đăng nhập lại.")
    except Unauthorized as exc:
        log.warning("OpenID Connect access token refused: %s", exc)
        return _refused("Nhà cung cấp định danh trả về một mã truy cập mà hệ thống không chấp nhận.")
    if not principal.roles:
        return render_template(
            "error.html", status=403, message="Tài khoản của bạn chưa được giao vai trò nào trong docroute."
        ), 403
    target = _safe_next(session.get("next"))
    # Only the access token is kept: the session is a cookie (4 KiB at most), and the provider's sign-out
    # is asked for by client_id rather than with the ID token as a hint.
    _start_session(str(token["access_token"]))
    return redirect(target)


@blueprint.post("/dang-xuat")
def sign_out() -> Response:
    session.clear()
    provider = oidc.client()
    if provider is not None:
        # Sign out at the provider too, or its session would sign the person straight back in.
        after = provider.settings.public_url + url_for("auth.signed_out")
        try:
            url = provider.end_session_url(after)
        except Exception:  # the console session is gone either way
            log.warning("could not reach the identity provider to sign out there", exc_info=True)
            url = None
        return redirect(url or url_for("auth.signed_out"))
    return redirect(url_for("auth.sign_in"))


@blueprint.get("/da-dang-xuat")
def signed_out() -> str:
    return render_template("signed_out.html")
