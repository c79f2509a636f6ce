"""Production sign-in, for real: the console against a test OpenID Connect provider (tests/docroute/
oidc_provider.py) whose RS256 tokens the embedded APIs are configured to accept (JWKS, issuer, audience).

A person follows every redirect — console, provider's sign-in form, callback — as a browser would; the
console's pages then load with the provider's access token, so the APIs accepted it. A forged state, a
replayed callback and a code carried into another session (its PKCE verifier does not match) are all
refused; sign-out ends the session at the console and at the provider."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from embedded_runner import Embedded, free_base_port, wait_for
from oidc_provider import Account, Provider

pytestmark = pytest.mark.e2e

CLIENT_ID = "docroute-console"
CLIENT_SECRET = "test-client-secret-of-the-console-0123456789"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    started = Provider(
        clients={CLIENT_ID: CLIENT_SECRET},
        accounts={
            "van-thu": Account("van-thu", ("clerk",)),
            "don-vi": Account("don-vi-bptv", ("unit",), "BPTV"),
            "khach": Account("khach", ()),
        },
    ).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Embedded]:
    runner = Embedded(tmp_path_factory.mktemp("console-oidc"), free_base_port(), "--empty")
    runner.env.update(
        {
            # The APIs accept the provider's tokens, as production's overlay configures them.
            "DOCROUTE_JWT_ALGORITHM": "RS256",
            "DOCROUTE_JWT_JWKS_URL": provider.jwks_url,
            "DOCROUTE_JWT_ISSUER": provider.issuer,
            "DOCROUTE_JWT_AUDIENCE": "docroute",
            # ... and the console signs people in there.
            "DOCROUTE_CONSOLE_OIDC_CLIENT_ID": CLIENT_ID,
            "DOCROUTE_CONSOLE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "DOCROUTE_CONSOLE_PUBLIC_URL": runner.console,
        }
    )
    provider.redirect_uris.add(runner.console + "/dang-nhap/oidc")
    runner.start()
    # The unit the test's unit account belongs to, created with an admin token of the provider (which
    # routing accepts like any other of its tokens).
    admin = provider.access_token(Account("quan-tri", ("admin",)))
    created = requests.put(
        runner.url(1) + "/v1/units/BPTV",
        json={"name": "Báo Bình Phước — Phát thanh Truyền hình"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    yield runner
    runner.stop()


class Visitor:
    """A browser, by hand: redirects followed one by one, cookies kept. The console's cookie is Secure;
    like a browser on 127.0.0.1 (a secure context), this one sends it over plain HTTP to the test hosts
    (requests' own cookie handling would not), and to nothing but the console."""

    def __init__(self, console: str) -> None:
        self.console = console
        self.cookies: dict[str, str] = {}
        self.set_cookies: list[str] = []

    def _send(self, method: str, url: str, data: dict[str, str] | None = None) -> requests.Response:
        headers = {}
        if url.startswith(self.console) and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = requests.request(
            method, url, data=data, headers=headers, allow_redirects=False, timeout=30
        )
        for header in response.raw.headers.getlist("Set-Cookie"):
            self.set_cookies.append(header)
            name, _, value = header.split(";", 1)[0].partition("=")
            if value and "expires=thu, 01 jan 1970" not in header.lower():
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response

    def get(self, url: str) -> requests.Response:
        return self._send("GET", url)

    def post(self, url: str, data: dict[str, str]) -> requests.Response:
        return self._send("POST", url, data)

    def follow(self, response: requests.Response) -> requests.Response:
        while response.is_redirect:
            response = self.get(requests.compat.urljoin(response.url, response.headers["Location"]))
        return response

    def to_provider(self, suite: Embedded, path: str = "/so-den") -> requests.Response:
        """Opens a console page signed out and follows the redirects up to the provider's sign-in form."""
        response = self.get(suite.console + path)
        assert response.status_code == 302 and "/dang-nhap" in response.headers["Location"]
        response = self.get(requests.compat.urljoin(suite.console, response.headers["Location"]))
        assert response.status_code == 302
        return response

    def sign_in_at_provider(self, authorize: requests.Response, account: str) -> str:
        """Picks `account` on the provider's form; the callback URL the provider sends the browser to."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize.headers["Location"]).query).items()}
        form = self.get(authorize.headers["Location"])
        assert form.status_code == 200
        issuer = "{0.scheme}://{0.netloc}".format(urlsplit(authorize.headers["Location"]))
        back = self.post(issuer + "/authorize", {**query, "account": account})
        assert back.status_code == 302
        return back.headers["Location"]


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def test_a_clerk_signs_in_at_the_provider_with_pkce_and_signs_out(
    suite: Embedded, provider: Provider
) -> None:
    visitor = Visitor(suite.console)
    authorize = visitor.to_provider(suite)
    request = _query(authorize.headers["Location"])
    assert authorize.headers["Location"].startswith(provider.issuer + "/authorize?")
    assert request["client_id"] == CLIENT_ID and request["response_type"] == "code"
    assert request["redirect_uri"] == suite.console + "/dang-nhap/oidc"
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) == 43
    assert request["state"] and request["nonce"]
    # The session cookie that carries the state and the PKCE verifier across the round trip.
    cookies = [c for c in visitor.set_cookies if c.startswith("docroute_console=")]
    assert cookies
    for cookie in cookies:
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "samesite=lax"} <= flags, cookie

    callback = visitor.sign_in_at_provider(authorize, "van-thu")
    assert callback.startswith(suite.console + "/dang-nhap/oidc?")

    # A callback with a state this session never issued is refused, and signs nobody in.
    forged = visitor.get(suite.console + "/dang-nhap/oidc?" + f"code={_query(callback)['code']}&state=forged")
    assert forged.status_code == 400 and "Đăng nhập không thành công" in forged.text
    assert visitor.get(suite.console + "/so-den").status_code == 302

    landed = visitor.get(callback)
    assert landed.status_code == 302 and landed.headers["Location"] == "/so-den"
    # The code was exchanged with the verifier whose S256 hash the authorization request carried.
    exchange = provider.token_requests[-1]
    digest = hashlib.sha256(exchange["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == request["code_challenge"]
    assert exchange["redirect_uri"] == request["redirect_uri"]

    # The register loads: intake accepted the provider's access token. Roles decide the pages.
    register = visitor.follow(visitor.get(suite.console + "/so-den"))
    assert register.status_code == 200, register.text[-500:]
    assert "Văn thư" in register.text and "Vào sổ văn bản" in register.text
    assert "Hộp việc" not in register.text
    assert visitor.get(suite.console + "/hop-viec").status_code == 403

    # The same callback a second time: its state was used up.
    assert visitor.get(callback).status_code == 400

    # Signed in, the session cookie holds the access token and stays well inside a browser's 4 KiB.
    assert all(len(c.split(";", 1)[0]) < 3000 for c in visitor.set_cookies), "session cookie too large"

    # Sign-out: the console's session ends, then the provider's (RP-initiated logout, naming the client).
    out = visitor.post(suite.console + "/dang-xuat", {"csrf_token": _csrf(register.text)})
    assert out.status_code == 302 and out.headers["Location"].startswith(provider.issuer + "/logout?")
    logout = _query(out.headers["Location"])
    assert logout["client_id"] == CLIENT_ID
    assert logout["post_logout_redirect_uri"] == suite.console + "/da-dang-xuat"
    done = visitor.follow(out)
    assert done.status_code == 200 and "Bạn đã đăng xuất" in done.text
    assert provider.logouts[-1]["client_id"] == CLIENT_ID
    again = visitor.get(suite.console + "/so-den")
    assert again.status_code == 302 and "/dang-nhap" in again.headers["Location"]


def test_a_code_carried_into_another_session_fails_its_pkce_check(
    suite: Embedded, provider: Provider
) -> None:
    victim, attacker = Visitor(suite.console), Visitor(suite.console)
    victim_state = _query(victim.to_provider(suite).headers["Location"])["state"]
    # The attacker signs in as themself and hands their code to the victim's browser, under the state the
    # victim's session holds: the console spends the victim's verifier on it, and the provider refuses.
    attacker_callback = attacker.sign_in_at_provider(attacker.to_provider(suite), "van-thu")
    code = _query(attacker_callback)["code"]
    refused = victim.get(suite.console + f"/dang-nhap/oidc?code={code}&state={victim_state}")
    assert refused.status_code == 400
    assert provider.token_requests[-1]["code"] == code
    assert victim.get(suite.console + "/so-den").status_code == 302


def test_a_unit_account_gets_its_inbox_only_and_an_account_without_roles_gets_nothing(
    suite: Embedded, provider: Provider
) -> None:
    unit = Visitor(suite.console)
    landed = unit.get(unit.sign_in_at_provider(unit.to_provider(suite, "/"), "don-vi"))
    inbox = unit.follow(landed)
    assert inbox.status_code == 200 and urlsplit(inbox.url).path == "/hop-viec"
    assert "Đơn vị BPTV" in inbox.text and "Sổ văn bản đến" not in inbox.text
    assert unit.get(suite.console + "/so-den").status_code == 403

    nobody = Visitor(suite.console)
    refused = nobody.get(nobody.sign_in_at_provider(nobody.to_provider(suite), "khach"))
    assert refused.status_code == 403 and "chưa được giao vai trò" in refused.text
    assert nobody.get(suite.console + "/so-den").status_code == 302


def test_with_a_provider_the_development_identities_are_gone(suite: Embedded) -> None:
    visitor = Visitor(suite.console)
    response = visitor.post(suite.console + "/dang-nhap", {"identity": "van-thu"})
    # No form of development identities to post to (and no CSRF token to post with): nothing signs in.
    assert response.status_code in (400, 404)
    assert visitor.get(suite.console + "/so-den").status_code == 302
    ready = requests.get(suite.console + "/readyz", timeout=10)
    assert ready.status_code == 200


def test_when_the_access_token_expires_the_person_signs_in_again(suite: Embedded, provider: Provider) -> None:
    provider.token_seconds = 3
    try:
        visitor = Visitor(suite.console)
        visitor.get(visitor.sign_in_at_provider(visitor.to_provider(suite), "van-thu"))
        assert visitor.get(suite.console + "/so-den").status_code == 200
        expired = wait_for(lambda: (r := visitor.get(suite.console + "/so-den")).status_code == 302 and r, 15)
        assert "/dang-nhap" in expired.headers["Location"]
    finally:
        provider.token_seconds = 300


def test_in_chromium_a_clerk_signs_in_at_the_provider_and_out_again(
    suite: Embedded, provider: Provider, browser: Any
) -> None:
    """The same round trip in a real browser: its cookie rules (Secure on 127.0.0.1, SameSite=Lax across
    the provider's redirect back) and the console's CSP (form-action and the redirect after sign-out)."""
    context = browser.new_context(locale="vi-VN")
    page = context.new_page()
    try:
        page.goto(suite.console + "/so-den")
        assert page.url.startswith(provider.issuer + "/authorize?")
        page.check("input[value=van-thu]")
        with page.expect_navigation(url=re.compile(re.escape(suite.console) + "/so-den$"), wait_until="load"):
            page.click("button[type=submit]")
        assert page.get_by_role("heading", name="Sổ đăng ký văn bản đến").is_visible()
        cookie = next(c for c in context.cookies() if c["name"] == "docroute_console")
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Lax"

        with page.expect_navigation(
            url=re.compile(re.escape(suite.console) + r"/da-dang-xuat(\?.*)?$"), wait_until="load"
        ):
            page.get_by_role("button", name="Đăng xuất").click()
        assert page.get_by_role("heading", name="Bạn đã đăng xuất").is_visible()
        assert provider.logouts[-1]["client_id"] == CLIENT_ID
        page.goto(suite.console + "/so-den")
        assert page.url.startswith(provider.issuer + "/authorize?"), "signed out means signed out"
    finally:
        context.close()
