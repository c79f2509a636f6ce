"""Production sign-in: OpenID Connect authorization code with PKCE (S256), through Authlib's Flask client.

The provider is the one whose tokens the APIs accept (DOCROUTE_JWT_ISSUER, keys at DOCROUTE_JWT_JWKS_URL).
Authlib keeps the state, the nonce and the PKCE verifier in the (signed) session between the redirect and
the callback, refuses a callback whose state it did not issue, and checks the ID token's signature, issuer,
audience and nonce. The access token the console then holds is checked exactly as the APIs check it
(shared.auth.TokenVerifier), and its `roles` and `unit` claims decide which pages exist."""

from __future__ import annotations

from typing import Any, cast

from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app
from shared.auth import Principal, TokenVerifier

from console.settings import Settings

_EXTENSION = "docroute_oidc"


class OidcClient:
    def __init__(self, app: Flask, settings: Settings) -> None:
        oidc = settings.oidc
        assert oidc is not None
        oauth = OAuth(app)
        self._client: Any = oauth.register(
            "idp",
            client_id=oidc.client_id,
            client_secret=oidc.client_secret,
            server_metadata_url=oidc.metadata_url,
            client_kwargs={
                "scope": "openid",
                "code_challenge_method": "S256",
                # A confidential client authenticates at the token endpoint; a public one relies on PKCE.
                "token_endpoint_auth_method": "client_secret_basic" if oidc.client_secret else "none",
                "timeout": 10,
            },
        )
        self.settings = oidc
        self.verifier = TokenVerifier(settings.common.auth)

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once, then cached by Authlib)."""
        return cast(dict[str, Any], self._client.load_server_metadata())

    def redirect_to_provider(self) -> Any:
        return self._client.authorize_redirect(self.settings.redirect_uri)

    def finish(self) -> tuple[dict[str, Any], Principal]:
        """The callback: state checked, code exchanged with the PKCE verifier, ID token and access token
        verified. Raises authlib's OAuthError or shared.auth.Unauthorized."""
        token: dict[str, Any] = self._client.authorize_access_token()
        principal = self.verifier.verify(str(token["access_token"]))
        return token, principal

    def end_session_url(self, after: str) -> str | None:
        """The provider's RP-initiated logout URL (naming this client), when it has one."""
        if "end_session_endpoint" not in self.metadata():
            return None
        result = self._client.create_logout_url(
            post_logout_redirect_uri=after, client_id=self.settings.client_id
        )
        return cast(str, result["url"])


def init_app(app: Flask, settings: Settings) -> None:
    if settings.oidc is not None:
        app.extensions[_EXTENSION] = OidcClient(app, settings)


def client() -> OidcClient | None:
    found = current_app.extensions.get(_EXTENSION)
    return found if isinstance(found, OidcClient) else None
