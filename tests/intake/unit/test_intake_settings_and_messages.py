"""Intake settings from the environment, and the strictness of the emitted event's wire schema."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from intake.domain.models import Directive, StoredAttachment, new_metadata
from intake.messages import (
    DirectiveRegisteredWire,
    directive_registered_envelope,
    directive_registered_event,
    directive_registered_payload,
)
from intake.settings import Settings
from shared.settings import SettingsError


def test_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'intake.db'}"
    assert settings.max_upload_bytes == 50 * 1024 * 1024
    assert settings.organisation == "STTTT"
    assert settings.staging_bucket == "docroute-staging"


def test_overrides(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_INTAKE_DATABASE_URL": "postgresql://u@db/intake",
            "DOCROUTE_INTAKE_MAX_UPLOAD_BYTES": "1024",
            "DOCROUTE_ORGANISATION": "SNV-BP",
            "DOCROUTE_STAGING_BUCKET": "my-staging",
        }
    )
    assert settings.database_url == "postgresql+psycopg://u@db/intake"
    assert (settings.max_upload_bytes, settings.organisation, settings.staging_bucket) == (
        1024,
        "SNV-BP",
        "my-staging",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DOCROUTE_INTAKE_MAX_UPLOAD_BYTES", "lots"),
        ("DOCROUTE_INTAKE_MAX_UPLOAD_BYTES", "0"),
        ("DOCROUTE_ORGANISATION", "bad code!"),
        ("DOCROUTE_INTAKE_DATABASE_URL", "mysql://x"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), name: value})
    assert str(caught.value).startswith(f"{name}:")
    assert "\n" not in str(caught.value)


def directive() -> Directive:
    meta = new_metadata(
        issuer_name="Ban Tuyên giáo Tỉnh ủy Bình Phước",
        number="171-CV/BTGTU",
        issued_date=date(2021, 4, 9),
        subject="V/v hưởng ứng Giải báo chí",
    )
    return Directive(
        id="d-1",
        organisation="STTTT",
        arrival_number=7,
        arrival_date=date(2026, 1, 2),
        received_at=datetime(2026, 1, 2, 1, 0, tzinfo=UTC),
        metadata=meta,
        attachments=(
            StoredAttachment("a-1", "cv.pdf", "application/pdf", 10, "0" * 64, "b", "directives/d-1/x"),
        ),
    )


def test_the_payload_follows_the_design_and_the_envelope_keeps_vietnamese(monkeypatch) -> None:
    payload = directive_registered_payload(directive())
    assert set(payload) == {
        "directive_id",
        "arrival_number",
        "arrival_date",
        "received_at",
        "metadata",
        "attachments",
    }
    assert payload["metadata"]["code_number"] == "171"
    assert payload["metadata"]["document_type"] == "Công văn"
    envelope = directive_registered_envelope(directive())
    assert envelope.routing_key == "intake.directive_registered.v1"
    assert "Tuyên giáo".encode() in envelope.to_bytes()


def test_the_wire_schema_refuses_unknown_and_missing_fields() -> None:
    payload = directive_registered_payload(directive())
    assert DirectiveRegisteredWire().validate({**payload, "extra": 1}) != {}
    assert "arrival_number" in DirectiveRegisteredWire().validate(
        {k: v for k, v in payload.items() if k != "arrival_number"}
    )


def test_the_event_is_checked_before_numbering_and_only_the_number_is_set_after() -> None:
    provisional = dataclasses.replace(directive(), arrival_number=0)
    make = directive_registered_event(provisional)
    numbered = dataclasses.replace(provisional, arrival_number=41)
    envelope = make(numbered)
    assert envelope.payload == directive_registered_payload(numbered)
    assert envelope.payload["arrival_number"] == 41
    assert envelope.routing_key == directive_registered_envelope(numbered).routing_key
    with pytest.raises(ValueError, match="not the numbered form"):
        make(dataclasses.replace(numbered, id="d-2"))
    with pytest.raises(ValueError, match="not the numbered form"):
        make(provisional)  # a number the database never gives


def test_a_payload_that_breaks_the_wire_schema_fails_before_any_number_is_taken() -> None:
    broken = dataclasses.replace(
        directive(),
        attachments=(StoredAttachment("a-1", "cv.pdf", "application/pdf", -1, "0" * 64, "b", "k"),),
    )
    with pytest.raises(ValueError, match="breaks its wire schema"):
        directive_registered_event(broken)
