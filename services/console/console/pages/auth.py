"""Signing in and out. In development a person picks one of the development identities (as `make run`
prints tokens); the token the console then holds is what the APIs check on every call."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from shared.auth import issue_token
from shared.settings import ensure_dev_secret
from werkzeug.wrappers import Response

from console.client import Api, ApiError

blueprint = Blueprint("auth", __name__)

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


@blueprint.get("/dang-nhap")
def sign_in() -> str:
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
    csrf = session.get("csrf")
    session.clear()
    session["token"] = token
    if csrf:
        session["csrf"] = csrf
    return redirect(_safe_next(request.form.get("next")))


@blueprint.post("/dang-xuat")
def sign_out() -> Response:
    session.clear()
    return redirect(url_for("auth.sign_in"))
