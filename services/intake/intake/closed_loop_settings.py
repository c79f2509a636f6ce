"""Settings of the closed loop: who the statuses come from, and how webhooks are delivered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from shared.settings import Env, SettingsError

from intake.domain.edxml import Organ
from intake.domain.models import AGENCY_CODE
from intake.domain.webhooks import Network, RetryPolicy, parse_networks
from intake.status import Department

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

    def department(self, organisation: str) -> Department:
        return Department(
            organ=Organ(organ_id=self.organ_id or organisation, name=self.organ_name or organisation),
            desk=self.desk,
            mobile=self.contact_phone,
            email=self.contact_email,
        )

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            first_delay=timedelta(seconds=self.webhook_retry_first),
            max_delay=timedelta(seconds=self.webhook_retry_max),
            give_up_after=timedelta(seconds=self.webhook_give_up_after),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None, *, production: bool) -> ClosedLoopSettings:
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
        return cls(
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
