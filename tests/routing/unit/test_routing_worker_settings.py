"""How many directive consumers the routing worker runs for each database."""

from routing.settings import Settings


def settings(**overrides):
    base = Settings.from_env({"DOCROUTE_DATA_DIR": "/tmp/unused"})
    return Settings(**{**base.__dict__, **overrides})


def test_two_consumers_on_postgresql_one_on_sqlite_which_has_a_single_writer():
    assert settings().consumers_for("postgresql") == 4
    assert settings().consumers_for("sqlite") == 1


def test_an_explicit_consumer_count_wins():
    assert settings(consumers=3).consumers_for("sqlite") == 3
