"""Settings of the closed loop: who the statuses come from, and how webhooks are delivered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from shared.settings import Env, SettingsError, ensure_dev_secret

from intake.adapters.secret_box import SecretBox, check_key, key_from_hex
from intake.domain.edxml import Organ
from intake.domain.models import AGENCY_CODE
from intake.domain.webhooks import Network, RetryPolicy, parse_networks
from intake.status import Department, UnitContact

SECRET_KEYS = "DOCROUTE_WEBHOOK_SECRET_KEYS"  # noqa: S105 - the variable's name
UNITS_FILE = "DOCROUTE_STATUS_UNITS_FILE"
DEV_KEY_FILE = "webhook-secret-key"
_CONTACT_FIELDS = ("staff", "mobile", "email")

DAY = 24 * 3600


@dataclass(frozen=True)
class ClosedLoopSettings:
    organ_id: str | None = None
    organ_name: str | None = None
    desk: str = "Văn thư"
    contact_phone: str | None = None
    contact_email: str | None = None
    webhook_allow_networks: tuple[Network, ...] = ()
    webhook_timeout: float = 10.0
    webhook_max_response_bytes: int = 64 * 1024
    webhook_retry_first: float = 5.0
    webhook_retry_max: float = 3600.0
    webhook_give_up_after: float = float(DAY)
    webhook_poll_interval: float = 1.0
    webhook_batch: int = 20
    production: bool = field(default=False)
    # Fernet keys for the webhook secrets at rest: the first encrypts, all decrypt (rotation).
    webhook_secret_keys: tuple[str, ...] = field(default=(), repr=False)
    # Each recipient unit's name and contact, for the StaffInfo of 04, 05 and 06 (by unit code).
    unit_contacts: Mapping[str, UnitContact] = field(default_factory=dict)

    def department(self, organisation: str) -> Department:
        return Department(
            organ=Organ(organ_id=self.organ_id or organisation, name=self.organ_name or organisation),
            desk=self.desk,
            mobile=self.contact_phone,
            email=self.contact_email,
            units=self.unit_contacts,
        )

    @property
    def secret_box(self) -> SecretBox:
        if not self.webhook_secret_keys:
            raise SettingsError(SECRET_KEYS, "is required: the key that encrypts webhook secrets at rest")
        return SecretBox(self.webhook_secret_keys)

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            first_delay=timedelta(seconds=self.webhook_retry_first),
            max_delay=timedelta(seconds=self.webhook_retry_max),
            give_up_after=timedelta(seconds=self.webhook_give_up_after),
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None, *, production: bool, data_dir: Path | str | None = None
    ) -> ClosedLoopSettings:
        env = Env(environ)
        organ_id = env.str("DOCROUTE_INTAKE_ORGAN_ID")
        if organ_id is not None and not AGENCY_CODE.match(organ_id):
            raise SettingsError("DOCROUTE_INTAKE_ORGAN_ID", "must be an agency identifier like 000.00.12.H10")
        try:
            networks = parse_networks((env.str("DOCROUTE_WEBHOOK_ALLOW_NETWORKS") or "").split(","))
        except ValueError as exc:
            raise SettingsError(
                "DOCROUTE_WEBHOOK_ALLOW_NETWORKS", f"must be CIDRs separated by commas: {exc}"
            ) from None
        give_up = env.float("DOCROUTE_WEBHOOK_RETRY_FOR_SECONDS", float(DAY), min=1.0, max=30.0 * DAY)
        if production and give_up < DAY:
            raise SettingsError("DOCROUTE_WEBHOOK_RETRY_FOR_SECONDS", "must be at least 86400 in production")
        first = env.float("DOCROUTE_WEBHOOK_RETRY_FIRST_SECONDS", 5.0, min=0.05, max=3600.0)
        keys = _secret_keys(env, production=production, data_dir=data_dir)
        return cls(
            webhook_secret_keys=keys,
            unit_contacts=_unit_contacts(env.str(UNITS_FILE)),
            organ_id=organ_id,
            organ_name=env.str("DOCROUTE_INTAKE_ORGAN_NAME"),
            desk=env.str("DOCROUTE_STATUS_DESK", "Văn thư") or "Văn thư",
            contact_phone=env.str("DOCROUTE_STATUS_CONTACT_PHONE"),
            contact_email=env.str("DOCROUTE_STATUS_CONTACT_EMAIL"),
            webhook_allow_networks=networks,
            webhook_timeout=env.float("DOCROUTE_WEBHOOK_TIMEOUT", 10.0, min=0.1, max=120.0),
            webhook_max_response_bytes=64 * 1024,
            webhook_retry_first=first,
            webhook_retry_max=env.float("DOCROUTE_WEBHOOK_RETRY_MAX_SECONDS", 3600.0, min=first, max=DAY),
            webhook_give_up_after=give_up,
            webhook_poll_interval=env.float("DOCROUTE_WEBHOOK_POLL_SECONDS", 1.0, min=0.05, max=60.0),
            production=production,
        )


def _secret_keys(env: Env, *, production: bool, data_dir: Path | str | None) -> tuple[str, ...]:
    """DOCROUTE_WEBHOOK_SECRET_KEYS, or in development a key kept in the data folder (made once)."""
    raw = env.str(SECRET_KEYS)
    if raw is None:
        if production:
            raise SettingsError(SECRET_KEYS, "is required in production (Fernet keys, comma-separated)")
        if data_dir is None:
            return ()
        return (key_from_hex(ensure_dev_secret(data_dir, name=DEV_KEY_FILE, variable=SECRET_KEYS)),)
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not keys:
        raise SettingsError(SECRET_KEYS, "holds no key")
    for position, key in enumerate(keys):
        try:
            check_key(key)
        except ValueError:
            raise SettingsError(
                SECRET_KEYS,
                f"key {position + 1} is not a Fernet key (url-safe base64 of 32 bytes; make one with "
                "`python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'`)",
            ) from None
    return keys


def _unit_contacts(path: str | None) -> dict[str, UnitContact]:
    """DOCROUTE_STATUS_UNITS_FILE: `units: [{code, name, staff?, mobile?, email?}]` (YAML or JSON)."""
    if path is None:
        return {}
    try:
        doc: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(UNITS_FILE, f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(UNITS_FILE, f"{path} is not YAML: {exc}") from None
    items = doc.get("units") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise SettingsError(UNITS_FILE, f"{path} must hold a `units` list")
    contacts: dict[str, UnitContact] = {}
    for index, item in enumerate(items):
        where = f"{path}: units[{index}]"
        if not isinstance(item, dict):
            raise SettingsError(UNITS_FILE, f"{where} must be a mapping")
        code, name = item.get("code"), item.get("name")
        if not isinstance(code, str) or not code or not isinstance(name, str) or not name.strip():
            raise SettingsError(UNITS_FILE, f"{where} needs a code and a name")
        extra = {key: item.get(key) for key in _CONTACT_FIELDS}
        if any(value is not None and not isinstance(value, str) for value in extra.values()):
            raise SettingsError(UNITS_FILE, f"{where}: staff, mobile and email are text")
        unknown = sorted(set(item) - {"code", "name", *_CONTACT_FIELDS})
        if unknown:
            raise SettingsError(UNITS_FILE, f"{where}: unknown field {unknown[0]}")
        contacts[code] = UnitContact(name=" ".join(name.split()), **extra)
    return contacts
