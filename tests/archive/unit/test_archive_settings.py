"""Archive settings: lock mode defaults per environment, one-line errors naming the variable."""

from __future__ import annotations

import pytest
from archive.settings import PACKAGED_RETENTION, Settings
from shared.settings import SettingsError

BASE = {"DOCROUTE_JWT_SECRET": "s" * 40}


def test_development_defaults(tmp_path):
    settings = Settings.from_env({**BASE, "DOCROUTE_DATA_DIR": str(tmp_path)})
    assert settings.lock_mode == "GOVERNANCE"
    assert settings.database_url == f"sqlite:///{tmp_path / 'archive.db'}"
    assert settings.retention_classes == PACKAGED_RETENTION
    assert settings.trust_store is None
    assert (settings.fixity_period_seconds, settings.audit_checkpoint_seconds) == (86400, 3600)


def test_production_defaults_to_compliance(tmp_path):
    settings = Settings.from_env({**BASE, "DOCROUTE_ENV": "production", "DOCROUTE_DATA_DIR": str(tmp_path)})
    assert settings.lock_mode == "COMPLIANCE"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCROUTE_LOCK_MODE", "FOREVER"),
        ("DOCROUTE_TRUST_STORE", "/nonexistent/trust.pem"),
        ("DOCROUTE_RETENTION_CLASSES", "/nonexistent/retention.yaml"),
        ("DOCROUTE_FIXITY_PERIOD_SECONDS", "0"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, name, value):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({**BASE, "DOCROUTE_DATA_DIR": str(tmp_path), name: value})
    assert str(err.value).startswith(f"{name}:") and "\n" not in str(err.value)
