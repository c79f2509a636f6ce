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


def test_production_needs_the_webhook_secret_keys_and_each_must_be_a_fernet_key() -> None:
    from intake.closed_loop_settings import ClosedLoopSettings

    with pytest.raises(SettingsError, match="DOCROUTE_WEBHOOK_SECRET_KEYS"):
        ClosedLoopSettings.from_env({}, production=True)
    with pytest.raises(SettingsError, match=r"DOCROUTE_WEBHOOK_SECRET_KEYS.*key 2"):
        ClosedLoopSettings.from_env(
            {"DOCROUTE_WEBHOOK_SECRET_KEYS": "x7bNHcM1QylCbcpOTMBxYR0AUlZJr3hswVe3d5G5zAo=,whsec_nope"},
            production=True,
        )
    two = "x7bNHcM1QylCbcpOTMBxYR0AUlZJr3hswVe3d5G5zAo=, 2tE2dTTm0uTzcdOq0cJRIkbmsRRy8mTrJ0PZmRrKJoM="
    loop = ClosedLoopSettings.from_env({"DOCROUTE_WEBHOOK_SECRET_KEYS": two}, production=True)
    assert len(loop.webhook_secret_keys) == 2
    assert "x7bN" not in repr(loop)  # keys stay out of logs that print the settings
    box = loop.secret_box
    assert box.open(box.seal("whsec_abc")) == "whsec_abc"


def test_development_keeps_one_key_in_the_data_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = Settings.from_env(BASE | {"DOCROUTE_DATA_DIR": str(tmp_path)}).closed_loop
    again = Settings.from_env(BASE | {"DOCROUTE_DATA_DIR": str(tmp_path)}).closed_loop
    assert first.webhook_secret_keys == again.webhook_secret_keys and len(first.webhook_secret_keys) == 1
    assert (tmp_path / "webhook-secret-key").stat().st_mode & 0o077 == 0


def test_the_units_file_gives_each_units_name_and_contact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "units.yaml"
    path.write_text(
        "units:\n  - {code: SYT, name: 'Sở  Y tế', mobile: '0271 3870 001'}\n  - {code: BPTV, name: Đài}\n",
        encoding="utf-8",
    )
    loop = Settings.from_env(BASE | {"DOCROUTE_STATUS_UNITS_FILE": str(path)}).closed_loop
    syt = loop.unit_contacts["SYT"]
    assert (syt.name, syt.mobile, syt.email) == ("Sở Y tế", "0271 3870 001", None)
    staff = loop.department("STTTT").unit_staff(["SYT"])
    assert (staff.department, staff.mobile) == ("Sở Y tế", "0271 3870 001")
    unknown = loop.department("STTTT").unit_staff(["KHAC"])
    assert unknown.department == "KHAC"


@pytest.mark.parametrize(
    "text",
    [
        "units: {SYT: x}\n",
        "units:\n  - {code: SYT}\n",
        "units:\n  - {code: SYT, name: x, phone: 1}\n",
        "[: x",
    ],
    ids=["not-a-list", "no-name", "unknown-field", "not-yaml"],
)
def test_a_bad_units_file_names_its_variable(tmp_path, text: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "units.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match="DOCROUTE_STATUS_UNITS_FILE"):
        Settings.from_env(BASE | {"DOCROUTE_STATUS_UNITS_FILE": str(path)})
    with pytest.raises(SettingsError, match="DOCROUTE_STATUS_UNITS_FILE"):
        Settings.from_env(BASE | {"DOCROUTE_STATUS_UNITS_FILE": str(tmp_path / "missing.yaml")})
