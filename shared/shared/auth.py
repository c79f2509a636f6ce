"""Bearer-JWT authentication: token verification (HS256, RS256 via JWKS), token issue, Flask role checks."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import jwt
from flask import g, has_request_context, request

from shared.problems import Problem
from shared.settings import AuthSettings

__all__ = [
    "ROLES",
    "AuthSettings",
    "Principal",
    "TokenVerifier",
    "Unauthorized",
    "Verifier",
    "bearer_token",
    "current_principal",
    "forbidden",
    "issue_token",
    "require_roles",
    "unauthorized",
]

ROLES = frozenset({"submitter", "clerk", "unit", "auditor", "admin"})
# Clock skew tolerated between the token issuer and us.
LEEWAY_SECONDS = 30
_PRINCIPAL_KEY = "docroute_principal"

F = TypeVar("F", bound=Callable[..., Any])


class Unauthorized(Exception):
    """The request carries no token, or a token we cannot accept; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token subject, the docroute roles it holds, and its unit for unit accounts."""

    sub: str
    roles: frozenset[str]
    unit: str | None = None

    def has_any(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)


class Verifier(Protocol):
    """Anything that turns a bearer token into a Principal or raises Unauthorized."""

    def verify(self, token: str) -> Principal: ...


class TokenVerifier:
    """Verifies docroute JWTs: signature, expiry, and issuer/audience when configured."""

    # A token verified once is remembered (bounded, and never past its expiry or a minute): the clients of a
    # busy service send the same token request after request, and decoding plus the signature check is
    # a tenth of a small request's CPU. A minute also bounds how long a rotated-out key keeps working.
    CACHE_ENTRIES = 4096
    CACHE_SECONDS = 60.0

    def __init__(self, settings: AuthSettings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._jwks: jwt.PyJWKClient | None = None
        if settings.algorithm == "HS256":
            if not settings.secret:
                raise ValueError("HS256 verification needs a secret")
        elif settings.algorithm == "RS256":
            if not settings.jwks_url:
                raise ValueError("RS256 verification needs a JWKS URL")
            # Keys are fetched lazily on the first token and cached, so building the app needs no network.
            self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300, timeout=5)
        else:
            raise ValueError(f"unsupported JWT algorithm {settings.algorithm!r}")

    def verify(self, token: str) -> Principal:
        now = self._clock()
        with self._lock:
            remembered = self._verified.get(token)
            if remembered is not None:
                principal, good_until = remembered
                if now < good_until:
                    self._verified.move_to_end(token)
                    return principal
                del self._verified[token]
        principal, expires = self._decode(token)
        with self._lock:
            self._verified[token] = (principal, min(expires + LEEWAY_SECONDS, now + self.CACHE_SECONDS))
            while len(self._verified) > self.CACHE_ENTRIES:
                self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        """Full verification; the principal and the token's `exp`."""
        settings = self._settings
        try:
            key: Any
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            else:
                key = settings.secret
            claims = jwt.decode(
                token,
                key,
                algorithms=[settings.algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": settings.audience is not None,
                    "verify_iss": settings.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.PyJWKClientError as exc:
            raise Unauthorized(f"signing key not available: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        expires = check_times(claims, now=self._clock(), max_lifetime=settings.max_lifetime)
        return principal_from_claims(claims), expires


_TIME_CLAIMS = ("exp", "iat", "nbf")


def check_times(claims: dict[str, Any], *, now: float, max_lifetime: int) -> float:
    """The token's `exp`, after refusing non-numeric time claims and lifetimes beyond `max_lifetime`.

    PyJWT turns a string `exp` into a number and puts no upper bound on it; a token that lives for ever
    is a leaked credential that cannot be revoked, so the lifetime is bounded here.
    """
    for name in _TIME_CLAIMS:
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Unauthorized(f"invalid token: {name} must be a number (seconds since the epoch)")
    expires = float(claims["exp"])
    issued = claims.get("iat")
    if issued is not None and expires - float(issued) > max_lifetime:
        raise Unauthorized(f"invalid token: exp - iat exceeds the maximum lifetime of {max_lifetime} s")
    if expires - now > max_lifetime + LEEWAY_SECONDS:
        raise Unauthorized(f"invalid token: exp is more than {max_lifetime} s away")
    return expires


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Build the Principal from verified claims; roles outside ROLES are ignored (an IdP adds its own)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("invalid token: sub must be a non-empty string")
    raw_roles = claims.get("roles", [])
    # A string is refused, not split: "clerk admin" read as two roles is a privilege nobody granted.
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
        raise Unauthorized("invalid token: roles must be a list of strings")
    roles = frozenset(raw_roles) & ROLES
    unit = claims.get("unit")
    if unit is not None and (not isinstance(unit, str) or not unit):
        raise Unauthorized("invalid token: unit must be a non-empty string")
    if "unit" in roles and unit is None:
        raise Unauthorized("invalid token: a unit account needs a unit claim")
    return Principal(sub=sub, roles=roles, unit=unit)


def issue_token(
    secret: str | bytes | Any,
    *,
    sub: str,
    roles: Iterable[str],
    unit: str | None = None,
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    algorithm: str = "HS256",
    key_id: str | None = None,
    now: float | None = None,
) -> str:
    """Sign a docroute token (HS256 with a shared secret; RS256 when given a private key)."""
    role_list = sorted(set(roles))
    unknown = set(role_list) - ROLES
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(sorted(unknown))}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": sub,
        "roles": role_list,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if unit is not None:
        claims["unit"] = unit
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    headers = {"kid": key_id} if key_id else None
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def unauthorized(detail: str) -> Problem:
    """The 401 problem, with the challenge RFC 6750 asks for."""
    return Problem(
        401,
        "Unauthorized",
        detail,
        type="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="docroute"'},
    )


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail, type="forbidden")


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header value; Unauthorized otherwise."""
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticate_request(verifier: Verifier) -> Principal:
    """Verify the current request's bearer token and remember the Principal for the request."""
    try:
        principal = verifier.verify(bearer_token(request.headers.get("Authorization")))
    except Unauthorized as exc:
        raise unauthorized(str(exc)) from None
    setattr(g, _PRINCIPAL_KEY, principal)
    return principal


def current_principal() -> Principal:
    """The authenticated caller of the current request (401 problem when there is none)."""
    principal = getattr(g, _PRINCIPAL_KEY, None) if has_request_context() else None
    if principal is None:
        raise unauthorized("missing bearer token")
    return cast(Principal, principal)


def require_roles(*roles: str) -> Callable[[F], F]:
    """View decorator: the caller must hold at least one of `roles` (admin is a role like any other).

    Place it directly under `@blp.route(...)` so the role check runs before request parsing.
    """
    unknown = set(roles) - ROLES
    if not roles or unknown:
        raise ValueError(f"require_roles needs known roles, got {roles!r}")
    accepted = frozenset(roles)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal.roles.isdisjoint(accepted):
                raise forbidden(f"this action needs one of the roles: {', '.join(sorted(accepted))}")
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
