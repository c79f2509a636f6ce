"""Env readers and CommonSettings: defaults, one-line errors naming the variable, the dev JWT secret."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from shared.settings import CommonSettings, Env, SettingsError, database_url, ensure_dev_secret


def one_line_naming(exc: pytest.ExceptionInfo[SettingsError], name: str) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{name}: ")
    return message


def test_defaults_when_nothing_is_set(tmp_path):
    settings = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path)})
    assert settings.env == "development"
    assert settings.amqp_url == "memory://"
    assert settings.log_level == "INFO"
    assert settings.publish_confirm_timeout == 5.0
    assert settings.consumer_delivery_limit == 5
    assert settings.object_store.endpoint is None
    assert settings.object_store.staging_bucket == "docroute-staging"
    assert settings.object_store.archive_bucket == "docroute-archive"
    assert settings.auth.algorithm == "HS256"


def test_settings_are_frozen(tmp_path):
    settings = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path)})
    with pytest.raises(AttributeError):
        settings.env = "production"  # type: ignore[misc]


def test_values_are_read_from_the_environment(tmp_path):
    settings = CommonSettings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/docroute",
            "DOCROUTE_DELIVERY_LIMIT": "7",
            "DOCROUTE_PUBLISH_CONFIRM_TIMEOUT": "2.5",
            "DOCROUTE_S3_ENDPOINT": "minio:9000",
            "DOCROUTE_S3_ACCESS_KEY": "ak",
            "DOCROUTE_S3_SECRET_KEY": "sk",
            "DOCROUTE_S3_SECURE": "yes",
            "DOCROUTE_JWT_SECRET": "x" * 40,
            "DOCROUTE_JWT_AUDIENCE": "docroute",
        }
    )
    assert settings.amqp_url.endswith("/docroute")
    assert settings.consumer_delivery_limit == 7
    assert settings.publish_confirm_timeout == 2.5
    assert settings.object_store.endpoint == "minio:9000"
    assert settings.object_store.secure is True
    assert settings.auth.secret == "x" * 40
    assert settings.auth.audience == "docroute"
    assert "x" * 40 not in repr(settings)


def test_empty_value_means_the_default(tmp_path):
    settings = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_DELIVERY_LIMIT": "  "})
    assert settings.consumer_delivery_limit == 5


def test_bad_integer_names_the_variable(tmp_path):
    with pytest.raises(SettingsError) as exc:
        CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_DELIVERY_LIMIT": "many"})
    assert "'many'" in one_line_naming(exc, "DOCROUTE_DELIVERY_LIMIT")


def test_out_of_range_integer_names_the_variable():
    with pytest.raises(SettingsError) as exc:
        Env({"N": "0"}).int("N", 5, min=1)
    one_line_naming(exc, "N")


def test_bad_choice_names_the_variable_and_the_choices():
    with pytest.raises(SettingsError) as exc:
        CommonSettings.from_env({"DOCROUTE_ENV": "staging"})
    message = one_line_naming(exc, "DOCROUTE_ENV")
    assert "development" in message and "production" in message


def test_bad_amqp_url_names_the_variable(tmp_path):
    with pytest.raises(SettingsError) as exc:
        CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_AMQP_URL": "redis://x"})
    assert str(exc.value) == "DOCROUTE_AMQP_URL: must be an amqp://, amqps:// or memory:// URL"


def test_missing_required_names_the_variable():
    with pytest.raises(SettingsError) as exc:
        Env({}).required("DOCROUTE_ROUTING_URL")
    one_line_naming(exc, "DOCROUTE_ROUTING_URL")


def test_s3_endpoint_without_credentials_names_the_missing_key(tmp_path):
    with pytest.raises(SettingsError) as exc:
        CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_S3_ENDPOINT": "minio:9000"})
    one_line_naming(exc, "DOCROUTE_S3_ACCESS_KEY")


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("On", True), ("no", False), ("FALSE", False)])
def test_bool_reader(raw, expected):
    assert Env({"B": raw}).bool("B", not expected) is expected


def test_bad_bool_names_the_variable():
    with pytest.raises(SettingsError) as exc:
        Env({"DOCROUTE_S3_SECURE": "maybe"}).bool("DOCROUTE_S3_SECURE", False)
    one_line_naming(exc, "DOCROUTE_S3_SECURE")


def test_bad_float_names_the_variable():
    with pytest.raises(SettingsError) as exc:
        Env({"F": "nan"}).float("F", 1.0)
    one_line_naming(exc, "F")


def test_multiline_value_still_gives_a_one_line_error():
    with pytest.raises(SettingsError) as exc:
        Env({"N": "1\n2"}).int("N", 1)
    one_line_naming(exc, "N")


def test_development_secret_is_created_once_private_and_reused(tmp_path):
    first = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path)})
    secret_file = tmp_path / "jwt-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(first.auth.secret or "") == 64
    second = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path)})
    assert second.auth.secret == first.auth.secret
    assert ensure_dev_secret(tmp_path) == first.auth.secret
    assert [p.name for p in tmp_path.iterdir()] == ["jwt-secret"]


def test_production_hs256_without_secret_is_an_error(tmp_path):
    env = {**PRODUCTION, "DOCROUTE_DATA_DIR": str(tmp_path)}
    del env["DOCROUTE_JWT_SECRET"]
    with pytest.raises(SettingsError) as exc:
        CommonSettings.from_env(env)
    one_line_naming(exc, "DOCROUTE_JWT_SECRET")
    assert not (tmp_path / "jwt-secret").exists()


def test_rs256_needs_a_jwks_url(tmp_path):
    with pytest.raises(SettingsError) as exc:
        CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_ALGORITHM": "RS256"})
    one_line_naming(exc, "DOCROUTE_JWT_JWKS_URL")
    settings = CommonSettings.from_env(
        {
            "DOCROUTE_DATA_DIR": str(tmp_path),
            "DOCROUTE_JWT_ALGORITHM": "RS256",
            "DOCROUTE_JWT_JWKS_URL": "https://sso.example/realms/docroute/protocol/openid-connect/certs",
        }
    )
    assert settings.auth.secret is None


def test_database_url_defaults_to_sqlite_under_the_data_dir(tmp_path: Path):
    assert database_url("intake", data_dir=tmp_path, environ={}) == f"sqlite:///{tmp_path}/intake.db"
    url = database_url(
        "routing", data_dir=tmp_path, environ={"DOCROUTE_ROUTING_DATABASE_URL": "postgresql://pg/routing"}
    )
    assert url == "postgresql+psycopg://pg/routing"
    with pytest.raises(SettingsError) as exc:
        database_url("archive", data_dir=tmp_path, environ={"DOCROUTE_ARCHIVE_DATABASE_URL": "mysql://x"})
    one_line_naming(exc, "DOCROUTE_ARCHIVE_DATABASE_URL")


def test_concurrent_first_runs_agree_on_one_secret(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        secrets = set(pool.map(lambda _: ensure_dev_secret(tmp_path / "fresh"), range(16)))
    assert len(secrets) == 1
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["jwt-secret"]


# ---------------------------------------------------------------- finding 18: weak production settings

STRONG_SECRET = "3f9c1b7e5a2d4c6f8b0e1a3c5d7f9b2e4a6c8d0f1b3e5a7c9d2f4b6e8a0c1d3f"
PRODUCTION = {
    "DOCROUTE_ENV": "production",
    "DOCROUTE_JWT_SECRET": STRONG_SECRET,
    "DOCROUTE_AMQP_URL": "amqps://svc-intake:pw@mq.example:5671/docroute",
    "DOCROUTE_S3_ENDPOINT": "minio.example:9000",
    "DOCROUTE_S3_ACCESS_KEY": "intake",
    "DOCROUTE_S3_SECRET_KEY": "intake-secret",
    "DOCROUTE_INTAKE_DATABASE_URL": "postgresql://intake@pg/intake",
}
RS256 = {
    "DOCROUTE_JWT_ALGORITHM": "RS256",
    "DOCROUTE_JWT_JWKS_URL": "https://sso.example/realms/docroute/protocol/openid-connect/certs",
    "DOCROUTE_JWT_ISSUER": "https://sso.example/realms/docroute",
    "DOCROUTE_JWT_AUDIENCE": "docroute",
}


def test_a_complete_production_configuration_is_accepted(tmp_path):
    settings = CommonSettings.from_env({**PRODUCTION, "DOCROUTE_DATA_DIR": str(tmp_path)})
    assert settings.is_production and settings.auth.secret == STRONG_SECRET
    env = {**PRODUCTION, **RS256, "DOCROUTE_DATA_DIR": str(tmp_path)}
    del env["DOCROUTE_JWT_SECRET"]
    assert CommonSettings.from_env(env).auth.issuer == "https://sso.example/realms/docroute"
    assert database_url("intake", data_dir=tmp_path, environ=PRODUCTION).startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"DOCROUTE_JWT_SECRET": "a" * 32}, "DOCROUTE_JWT_SECRET"),
        ({"DOCROUTE_JWT_SECRET": "a" * 200}, "DOCROUTE_JWT_SECRET"),
        ({"DOCROUTE_JWT_SECRET": "abcdabcdabcdabcdabcdabcdabcdabcd"}, "DOCROUTE_JWT_SECRET"),
        ({"DOCROUTE_JWT_SECRET": "short-but-random-9f8e"}, "DOCROUTE_JWT_SECRET"),
        ({"DOCROUTE_AMQP_URL": "memory://"}, "DOCROUTE_AMQP_URL"),
        ({"DOCROUTE_AMQP_URL": ""}, "DOCROUTE_AMQP_URL"),
        ({"DOCROUTE_S3_ENDPOINT": ""}, "DOCROUTE_S3_ENDPOINT"),
        ({**RS256, "DOCROUTE_JWT_JWKS_URL": "http://sso.example/certs"}, "DOCROUTE_JWT_JWKS_URL"),
        ({**RS256, "DOCROUTE_JWT_ISSUER": ""}, "DOCROUTE_JWT_ISSUER"),
        ({**RS256, "DOCROUTE_JWT_AUDIENCE": ""}, "DOCROUTE_JWT_AUDIENCE"),
    ],
)
def test_production_refuses_weak_settings_naming_the_variable(tmp_path, change, variable):
    env = {**PRODUCTION, "DOCROUTE_DATA_DIR": str(tmp_path), **change}
    with pytest.raises(SettingsError) as exc:
        CommonSettings.from_env(env)
    one_line_naming(exc, variable)
    # The same values are fine for development (the embedded defaults exist for it).
    CommonSettings.from_env({**env, "DOCROUTE_ENV": "development"})


@pytest.mark.parametrize("url", [None, "sqlite:////var/lib/docroute/intake.db"])
def test_production_refuses_sqlite(tmp_path, url):
    env = {**PRODUCTION}
    env.pop("DOCROUTE_INTAKE_DATABASE_URL")
    if url is not None:
        env["DOCROUTE_INTAKE_DATABASE_URL"] = url
    with pytest.raises(SettingsError) as exc:
        database_url("intake", data_dir=tmp_path, environ=env)
    assert "SQLite" in one_line_naming(exc, "DOCROUTE_INTAKE_DATABASE_URL")


def test_max_token_lifetime_is_a_setting(tmp_path):
    settings = CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path)})
    assert settings.auth.max_lifetime == 30 * 24 * 3600
    env = {"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_MAX_LIFETIME": "3600"}
    settings = CommonSettings.from_env(env)
    assert settings.auth.max_lifetime == 3600
    with pytest.raises(SettingsError) as exc:
        CommonSettings.from_env({"DOCROUTE_DATA_DIR": str(tmp_path), "DOCROUTE_JWT_MAX_LIFETIME": "forever"})
    one_line_naming(exc, "DOCROUTE_JWT_MAX_LIFETIME")
