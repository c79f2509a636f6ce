"""A small OpenID Connect provider for the tests: authorization code with PKCE (S256 only), RS256 tokens
the docroute APIs accept (issuer, audience `docroute`, `roles` and `unit` claims), a JWKS, discovery and
RP-initiated logout. It runs as a real HTTP server on a free port, so the console and the APIs reach it
exactly as they would reach Keycloak. Its sign-in page is a form listing the people it knows."""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, redirect, request
from werkzeug.serving import make_server

AUDIENCE = "docroute"


@dataclass(frozen=True)
class Account:
    sub: str
    roles: tuple[str, ...]
    unit: str | None = None


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    account: Account


@dataclass
class Provider:
    """Run with start(); `issuer` is its base URL; clients and accounts are set by the test."""

    clients: dict[str, str]  # client_id -> client secret
    accounts: dict[str, Account]
    redirect_uris: set[str] = field(default_factory=set)
    token_seconds: int = 300
    issuer: str = ""
    token_requests: list[dict[str, str]] = field(default_factory=list)
    logouts: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = uuid.uuid4().hex[:12]
        self._codes: dict[str, Grant] = {}
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # -- running --------------------------------------------------------------------------------------

    def start(self) -> Provider:
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def jwks_url(self) -> str:
        return self.issuer + "/jwks"

    # -- tokens ---------------------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    def access_token(self, account: Account, client_id: str = "test") -> str:
        """An access token for the docroute APIs, as the provider gives one to a signed-in client."""
        now = int(time.time())
        access: dict[str, Any] = {
            "iss": self.issuer,
            "sub": account.sub,
            "iat": now,
            "exp": now + self.token_seconds,
            "aud": AUDIENCE,
            "azp": client_id,
            "roles": list(account.roles),
            "jti": uuid.uuid4().hex,
        }
        if account.unit:
            access["unit"] = account.unit
        return self.sign(access)

    def _tokens(self, grant: Grant) -> dict[str, Any]:
        now = int(time.time())
        identity: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.account.sub,
            "iat": now,
            "exp": now + self.token_seconds,
            "aud": grant.client_id,
            "auth_time": now,
        }
        if grant.nonce:
            identity["nonce"] = grant.nonce
        return {
            "access_token": self.access_token(grant.account, grant.client_id),
            "id_token": self.sign(identity),
            "token_type": "Bearer",
            "expires_in": self.token_seconds,
        }

    def _jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()

        def b64(value: int) -> str:
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        key = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self._kid, "n": b64(numbers.n)}
        key["e"] = b64(numbers.e)
        return {"keys": [key]}

    # -- HTTP -----------------------------------------------------------------------------------------

    def _app(self) -> Flask:
        app = Flask("test-oidc-provider")

        def oauth_error(error: str, description: str, status: int = 400) -> Response:
            response = jsonify({"error": error, "error_description": description})
            response.status_code = status
            return response

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Response:
            return jsonify(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": self.issuer + "/authorize",
                    "token_endpoint": self.issuer + "/token",
                    "jwks_uri": self.jwks_url,
                    "end_session_endpoint": self.issuer + "/logout",
                    "response_types_supported": ["code"],
                    "grant_types_supported": ["authorization_code"],
                    "code_challenge_methods_supported": ["S256"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "subject_types_supported": ["public"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                    "scopes_supported": ["openid"],
                }
            )

        @app.get("/jwks")
        def jwks() -> Response:
            return jsonify(self._jwks())

        def check_authorize(args: Any) -> str | None:
            if args.get("response_type") != "code":
                return "response_type must be code"
            if args.get("client_id") not in self.clients:
                return "unknown client"
            if args.get("redirect_uri") not in self.redirect_uris:
                return "redirect_uri not registered"
            if "openid" not in (args.get("scope") or "").split():
                return "scope must include openid"
            if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
                return "PKCE with S256 is required"
            if not args.get("state"):
                return "state is required"
            return None

        @app.get("/authorize")
        def authorize_form() -> Response | tuple[str, int]:
            problem = check_authorize(request.args)
            if problem:
                return html.escape(problem), 400
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in request.args.items()
            )
            options = "".join(
                f'<label><input type="radio" name="account" value="{html.escape(name)}"> '
                f"{html.escape(name)}</label>"
                for name in self.accounts
            )
            return Response(
                '<!doctype html><html lang="vi"><title>Đăng nhập</title>'
                f'<form method="post" action="/authorize">{hidden}{options}'
                "<button type=submit>Đăng nhập</button></form></html>"
            )

        @app.post("/authorize")
        def authorize() -> Any:
            problem = check_authorize(request.form)
            account = self.accounts.get(request.form.get("account", ""))
            if problem or account is None:
                return html.escape(problem or "unknown account"), 400
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = Grant(
                    client_id=request.form["client_id"],
                    redirect_uri=request.form["redirect_uri"],
                    code_challenge=request.form["code_challenge"],
                    nonce=request.form.get("nonce"),
                    account=account,
                )
            query = urlencode({"code": code, "state": request.form["state"], "iss": self.issuer})
            return redirect(f"{request.form['redirect_uri']}?{query}")

        @app.post("/token")
        def token() -> Response:
            form = request.form.to_dict()
            self.token_requests.append(form)
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if request.authorization is not None:
                client_id, secret = request.authorization.username, request.authorization.password
            if client_id not in self.clients or not secrets.compare_digest(
                self.clients[client_id], secret or ""
            ):
                return oauth_error("invalid_client", "client authentication failed", 401)
            if form.get("grant_type") != "authorization_code":
                return oauth_error("unsupported_grant_type", "authorization_code only")
            with self._lock:
                grant = self._codes.pop(form.get("code", ""), None)  # a code works once
            if grant is None or grant.client_id != client_id:
                return oauth_error("invalid_grant", "unknown or used code")
            if form.get("redirect_uri") != grant.redirect_uri:
                return oauth_error("invalid_grant", "redirect_uri differs from the authorization request")
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
            if not verifier or not secrets.compare_digest(challenge.decode(), grant.code_challenge):
                return oauth_error("invalid_grant", "PKCE verification failed")
            return jsonify(self._tokens(grant))

        @app.get("/logout")
        def logout() -> Any:
            self.logouts.append(request.args.to_dict())
            after = request.args.get("post_logout_redirect_uri")
            if after:
                state = request.args.get("state")
                return redirect(after + (f"?{urlencode({'state': state})}" if state else ""))
            return "signed out"

        return app
