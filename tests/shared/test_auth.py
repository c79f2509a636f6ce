"""Token verification (HS256 and RS256/JWKS), token issue, and the Principal built from the claims."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from shared.auth import (
    LEEWAY_SECONDS,
    ROLES,
    Principal,
    TokenVerifier,
    Unauthorized,
    bearer_token,
    issue_token,
    require_roles,
)
from shared.settings import AuthSettings

SECRET = "a-development-secret-of-enough-length"


def verifier(**kwargs) -> TokenVerifier:
    return TokenVerifier(AuthSettings(algorithm="HS256", secret=SECRET, **kwargs))


def test_valid_token_yields_the_principal():
    token = issue_token(SECRET, sub="văn-thư-01", roles=["clerk", "auditor"])
    assert verifier().verify(token) == Principal(
        sub="văn-thư-01", roles=frozenset({"clerk", "auditor"}), unit=None
    )


def test_unit_claim_is_carried_for_unit_accounts():
    token = issue_token(SECRET, sub="so-tai-chinh", roles=["unit"], unit="STC")
    principal = verifier().verify(token)
    assert principal.unit == "STC"
    assert principal.roles == frozenset({"unit"})


def test_unit_role_without_unit_claim_is_refused():
    token = jwt.encode(
        {"sub": "x", "roles": ["unit"], "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"
    )
    with pytest.raises(Unauthorized, match="unit claim"):
        verifier().verify(token)


def test_expired_token_is_refused():
    token = issue_token(SECRET, sub="u", roles=["clerk"], ttl_seconds=60, now=time.time() - 3600)
    with pytest.raises(Unauthorized, match="expired"):
        verifier().verify(token)


def test_token_signed_with_another_secret_is_refused():
    token = issue_token("another-secret-that-is-long-enough!!", sub="u", roles=["clerk"])
    with pytest.raises(Unauthorized, match="invalid token"):
        verifier().verify(token)


def test_token_without_exp_is_refused():
    token = jwt.encode({"sub": "u", "roles": ["clerk"]}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        verifier().verify(token)


def test_alg_none_token_is_refused():
    token = jwt.encode({"sub": "u", "roles": ["admin"], "exp": int(time.time()) + 60}, None, algorithm="none")
    with pytest.raises(Unauthorized):
        verifier().verify(token)


def test_unknown_roles_are_dropped():
    token = jwt.encode(
        {"sub": "u", "roles": ["clerk", "offline_access"], "exp": int(time.time()) + 60},
        SECRET,
        algorithm="HS256",
    )
    assert verifier().verify(token).roles == frozenset({"clerk"})


def test_audience_and_issuer_are_checked_when_configured():
    strict = verifier(issuer="https://sso.gov.vn", audience="docroute")
    good = issue_token(SECRET, sub="u", roles=["clerk"], issuer="https://sso.gov.vn", audience="docroute")
    assert strict.verify(good).sub == "u"
    wrong_aud = issue_token(SECRET, sub="u", roles=["clerk"], issuer="https://sso.gov.vn", audience="other")
    with pytest.raises(Unauthorized):
        strict.verify(wrong_aud)
    wrong_iss = issue_token(SECRET, sub="u", roles=["clerk"], issuer="https://evil", audience="docroute")
    with pytest.raises(Unauthorized):
        strict.verify(wrong_iss)


def test_issue_token_refuses_unknown_roles():
    with pytest.raises(ValueError):
        issue_token(SECRET, sub="u", roles=["superuser"])


def test_roles_are_exactly_the_documented_five():
    assert frozenset({"submitter", "clerk", "unit", "auditor", "admin"}) == ROLES


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_malformed_authorization_header_is_refused(header):
    with pytest.raises(Unauthorized):
        bearer_token(header)


def test_bearer_scheme_is_case_insensitive():
    assert bearer_token("bearer abc.def.ghi") == "abc.def.ghi"


def test_require_roles_refuses_unknown_role_names():
    with pytest.raises(ValueError):
        require_roles("superuser")


class _JwksHandler(BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def jwks_server():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    handler = type("H", (_JwksHandler,), {"body": json.dumps({"keys": [jwk]}).encode()})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield key, f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()
    server.server_close()


def test_rs256_token_is_verified_against_the_jwks(jwks_server):
    key, url = jwks_server
    rs = TokenVerifier(AuthSettings(algorithm="RS256", jwks_url=url, audience="docroute"))
    token = issue_token(
        key, sub="keycloak-user", roles=["auditor"], audience="docroute", algorithm="RS256", key_id="k1"
    )
    assert rs.verify(token) == Principal(sub="keycloak-user", roles=frozenset({"auditor"}), unit=None)

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = issue_token(other, sub="x", roles=["admin"], audience="docroute", algorithm="RS256", key_id="k1")
    with pytest.raises(Unauthorized):
        rs.verify(forged)
    hs = issue_token(SECRET, sub="x", roles=["admin"], audience="docroute")
    with pytest.raises(Unauthorized):
        rs.verify(hs)


def test_a_verified_token_is_remembered_until_it_expires(monkeypatch):
    cached = verifier()
    # Valid for about one more second: exp lies in the past, within the leeway.
    token = issue_token(SECRET, sub="u", roles=["clerk"], ttl_seconds=1, now=time.time() - LEEWAY_SECONDS)
    decodes: list[str] = []
    original = jwt.decode

    def counting(*args, **kwargs):
        decodes.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    assert cached.verify(token) == cached.verify(token) == cached.verify(token)
    assert len(decodes) == 1
    # Past exp + leeway the remembered answer is gone and the full check refuses the token.
    time.sleep(1.2)
    with pytest.raises(Unauthorized, match="expired"):
        cached.verify(token)
    assert len(decodes) == 2


def test_a_refused_token_is_never_remembered_and_the_memory_is_bounded(monkeypatch):
    cached = verifier()
    bad = issue_token("another-secret-that-is-long-enough!!", sub="u", roles=["clerk"])
    for _ in range(2):
        with pytest.raises(Unauthorized):
            cached.verify(bad)
    monkeypatch.setattr(TokenVerifier, "CACHE_ENTRIES", 3)
    tokens = [issue_token(SECRET, sub=f"u{i}", roles=["clerk"]) for i in range(5)]
    for token in tokens:
        cached.verify(token)
    assert list(cached._verified) == tokens[2:]


# ---------------------------------------------------------------- finding 18: claims a verifier must refuse


def signed(claims: dict) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_roles_given_as_a_string_are_refused_not_split():
    token = signed({"sub": "u", "roles": "clerk admin", "exp": int(time.time()) + 60})
    with pytest.raises(Unauthorized, match="roles must be a list"):
        verifier().verify(token)


def test_a_token_living_for_ever_is_refused():
    now = int(time.time())
    # 999999999999 seconds after the epoch is in the year 33658.
    with pytest.raises(Unauthorized, match="maximum lifetime"):
        verifier().verify(signed({"sub": "u", "roles": ["clerk"], "iat": now, "exp": 999_999_999_999}))
    with pytest.raises(Unauthorized, match="more than"):
        verifier().verify(signed({"sub": "u", "roles": ["clerk"], "exp": 999_999_999_999}))


def test_the_maximum_lifetime_is_configurable_and_inclusive():
    short = verifier(max_lifetime=600)
    assert short.verify(issue_token(SECRET, sub="u", roles=["clerk"], ttl_seconds=600)).sub == "u"
    with pytest.raises(Unauthorized, match="maximum lifetime"):
        short.verify(issue_token(SECRET, sub="u", roles=["clerk"], ttl_seconds=601))
    # Thirty days is the default: a unit client's token file lasts a month.
    assert verifier().verify(issue_token(SECRET, sub="u", roles=["clerk"], ttl_seconds=30 * 86400)).sub == "u"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_time_claims_must_be_numbers(claim):
    now = int(time.time())
    claims = {"sub": "u", "roles": ["clerk"], "iat": now, "nbf": now, "exp": now + 60}
    claims[claim] = str(claims[claim])
    with pytest.raises(Unauthorized, match=f"{claim} must be a number"):
        verifier().verify(signed(claims))
    claims[claim] = True
    with pytest.raises(Unauthorized):
        verifier().verify(signed(claims))
