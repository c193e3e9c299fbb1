"""Settings come from the environment and a bad value stops the process with its name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, parse_mysql_url

ROOT = Path(__file__).resolve().parent.parent


def test_yes_no_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe' is not a yes/no value"):
        env_bool("FLAG", False)


def test_numbers_have_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("N", "0")
    with pytest.raises(ImproperlyConfigured, match="N=0 must be at least 1"):
        env_int("N", 5, minimum=1)


def test_mysql_urls() -> None:
    url = parse_mysql_url("mysql://mig%40x:p%3Ass@127.0.0.2:3307/appliance_data")
    assert (url.user, url.password, url.host, url.port, url.database) == (
        "mig@x",
        "p:ss",
        "127.0.0.2",
        3307,
        "appliance_data",
    )
    assert url.redacted() == "mysql://mig@x@127.0.0.2:3307/appliance_data"
    with pytest.raises(ValueError, match="must start with mysql://"):
        parse_mysql_url("postgres://h/db")
    with pytest.raises(ValueError, match="must look like"):
        parse_mysql_url("mysql://host")


def start_django(**env: str | None) -> subprocess.CompletedProcess[str]:
    """Set Django up in a new process with these variables (None: not set at all)."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={name: value for name, value in environment.items() if value is not None},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_bad_value_stops_start_up_with_the_variables_name() -> None:
    result = start_django(PEER_TOKEN_TTL="soon")
    assert result.returncode != 0
    assert "PEER_TOKEN_TTL='soon' is not a whole number" in result.stderr


def test_production_needs_a_secret_key() -> None:
    result = start_django(APPLIANCE_DEMO="0", DJANGO_SECRET_KEY="")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_the_demo_is_off_unless_it_is_asked_for() -> None:
    result = start_django(APPLIANCE_DEMO=None, DJANGO_SECRET_KEY=None)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set outside the demo" in result.stderr


def test_the_demo_starts_with_its_own_key() -> None:
    assert start_django(APPLIANCE_DEMO="1", DJANGO_SECRET_KEY=None).returncode == 0


@pytest.mark.parametrize("key", ["demo-only-" + "x" * 50, "demo-only-made-up-" + "y" * 40])
def test_outside_the_demo_the_demo_key_stops_start_up(key: str) -> None:
    result = start_django(APPLIANCE_DEMO="0", DJANGO_SECRET_KEY=key)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "the demo's secret key" in result.stderr
    assert key not in result.stderr


def test_outside_the_demo_a_real_key_starts() -> None:
    key = "a-real-key-" + "z" * 50
    assert start_django(APPLIANCE_DEMO="0", DJANGO_SECRET_KEY=key).returncode == 0
