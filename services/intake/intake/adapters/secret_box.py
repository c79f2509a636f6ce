"""Webhook signing secrets at rest: encrypted with Fernet (AES-128-CBC + HMAC-SHA256, authenticated).

The keys come from DOCROUTE_WEBHOOK_SECRET_KEYS (comma-separated Fernet keys, the first encrypts, every
one decrypts), so a key is rotated by putting a new one first, letting `reseal_all` re-encrypt every row
(the intake worker does at start), then dropping the old one. A stored secret is `fernet:` + the token; a
row written before encryption (`whsec_…` in clear, before migration 0005) still reads, and is re-encrypted
by the next `reseal_all`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import Connection, Engine

from intake.adapters.tables import webhook_subscriptions
from intake.domain.webhooks import SECRET_PREFIX

SEALED_PREFIX = "fernet:"


class SecretUnreadable(Exception):
    """A stored secret none of the keys opens (a key was dropped too early): the row says which."""


def key_from_hex(secret_hex: str) -> str:
    """A Fernet key from 32 bytes given as hex (the development secret file's form)."""
    raw = bytes.fromhex(secret_hex)
    if len(raw) != 32:
        raise ValueError("a webhook secret key is 32 bytes")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def check_key(key: str) -> str:
    """The key if it is a Fernet key (url-safe base64 of 32 bytes); ValueError otherwise."""
    Fernet(key.encode("ascii"))
    return key


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._current = Fernet(keys[0].encode("ascii"))
        self._all = MultiFernet([Fernet(key.encode("ascii")) for key in keys])

    def __repr__(self) -> str:
        return "SecretBox(***)"

    def seal(self, secret: str) -> str:
        return SEALED_PREFIX + self._current.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        if stored.startswith(SECRET_PREFIX):
            return stored  # written before secrets were encrypted (migration 0005 seals these)
        if not stored.startswith(SEALED_PREFIX):
            raise SecretUnreadable("not a sealed webhook secret")
        try:
            return self._all.decrypt(stored[len(SEALED_PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretUnreadable("no configured key opens this webhook secret") from None

    def is_current(self, stored: str) -> bool:
        """True when the stored secret is sealed with the first key (nothing to re-encrypt)."""
        if not stored.startswith(SEALED_PREFIX):
            return False
        try:
            self._current.decrypt(stored[len(SEALED_PREFIX) :].encode("ascii"))
        except InvalidToken:
            return False
        return True


def reseal(conn: Connection, box: SecretBox) -> int:
    """Re-encrypts, under the first key, every stored secret that is in clear or under an older key;
    answers how many (inside the caller's transaction)."""
    rows = conn.execute(sa.select(webhook_subscriptions.c.id, webhook_subscriptions.c.secret)).all()
    changed = 0
    for row in rows:
        if box.is_current(row.secret):
            continue
        conn.execute(
            sa.update(webhook_subscriptions)
            .where(webhook_subscriptions.c.id == row.id, webhook_subscriptions.c.secret == row.secret)
            .values(secret=box.seal(box.open(row.secret)))
        )
        changed += 1
    return changed


def reseal_all(engine: Engine, box: SecretBox) -> int:
    with engine.begin() as conn:
        return reseal(conn, box)
