"""Closed-loop settings: read from DOCROUTE_* at start-up, refused with the variable's name when wrong."""

from __future__ import annotations

import ipaddress

import pytest
from intake.settings import Settings
from shared.settings import SettingsError

BASE = {"DOCROUTE_JWT_SECRET": "x" * 40, "DOCROUTE_DATA_DIR": "/tmp/closed-loop-settings"}


def test_defaults_retry_for_a_day_and_name_the_department_by_its_organisation() -> None:
    loop = Settings.from_env(BASE).closed_loop
    assert loop.webhook_give_up_after == 86400
    assert loop.retry_policy.max_delay.total_seconds() == 3600
    department = loop.department("STTTT")
    assert department.organ.organ_id == "STTTT" and department.desk == "Văn thư"


def test_values_are_read() -> None:
    loop = Settings.from_env(
        BASE
        | {
            "DOCROUTE_INTAKE_ORGAN_ID": "000.00.12.H10",
            "DOCROUTE_INTAKE_ORGAN_NAME": "Sở Thông tin và Truyền thông",
            "DOCROUTE_STATUS_CONTACT_EMAIL": "vanthu@stttt.gov.vn",
            "DOCROUTE_WEBHOOK_ALLOW_NETWORKS": "10.20.0.0/16, fd00::/8",
            "DOCROUTE_WEBHOOK_RETRY_FOR_SECONDS": "60",
        }
    ).closed_loop
    assert loop.department("STTTT").organ.name == "Sở Thông tin và Truyền thông"
    assert loop.department("STTTT").staff().email == "vanthu@stttt.gov.vn"
    assert loop.webhook_allow_networks == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert loop.webhook_give_up_after == 60


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCROUTE_INTAKE_ORGAN_ID", "so tttt"),
        ("DOCROUTE_WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/33"),
        ("DOCROUTE_WEBHOOK_TIMEOUT", "0"),
    ],
)
def test_bad_values_name_their_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(BASE | {name: value})


def test_production_retries_for_at_least_a_day() -> None:
    from intake.closed_loop_settings import ClosedLoopSettings

    short = {"DOCROUTE_WEBHOOK_RETRY_FOR_SECONDS": "3600"}
    with pytest.raises(SettingsError, match="DOCROUTE_WEBHOOK_RETRY_FOR_SECONDS"):
        ClosedLoopSettings.from_env(short, production=True)
    assert ClosedLoopSettings.from_env(short, production=False).webhook_give_up_after == 3600
