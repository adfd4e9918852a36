"""Settings validation: refused values fail at construction, with a message naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from issuer.settings import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("ISSUER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env file is read


def test_defaults_are_valid() -> None:
    s = settings()
    assert s.url == "http://127.0.0.1:8000"
    assert s.access_token_ttl == 900
    assert s.key_rotation_interval == 0
    assert s.is_sqlite
    assert s.effective_database_url == f"sqlite:///{Path('.issuer-data') / 'issuer.sqlite3'}"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://issuer.example.com",
        "issuer.example.com",
        "https://",
        "https://issuer.example.com/?tenant=1",
        "https://issuer.example.com/#frag",
        "",
        "javascript:alert(1)",
    ],
)
def test_bad_issuer_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="ISSUER_URL"):
        settings(url=url)


def test_bad_issuer_url_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISSUER_URL", "ftp://issuer.example.com")
    with pytest.raises(ValidationError, match="ISSUER_URL"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://issuer.example.com/", "https://issuer.example.com"),
        ("https://issuer.example.com/tenant-a/", "https://issuer.example.com/tenant-a"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_issuer_url_loses_its_trailing_slash(url: str, expected: str) -> None:
    s = settings(url=url)
    assert s.url == expected
    assert s.endpoint("/oauth2/token") == expected + "/oauth2/token"


def test_rotation_interval_shorter_than_max_age_plus_skew_is_refused() -> None:
    with pytest.raises(ValidationError, match="ISSUER_KEY_ROTATION_INTERVAL"):
        settings(key_rotation_interval=359, jwks_max_age=300, clock_skew=60)
    with pytest.raises(ValidationError, match="ISSUER_KEY_ROTATION_INTERVAL"):
        settings(key_rotation_interval=1)


def test_rotation_interval_of_at_least_max_age_plus_skew_is_accepted() -> None:
    assert settings(key_rotation_interval=360, jwks_max_age=300, clock_skew=60).key_rotation_interval == 360
    assert settings(key_rotation_interval=86400).key_rotation_interval == 86400
    # 0 means rotation only on request
    assert settings(key_rotation_interval=0, jwks_max_age=86400).key_rotation_interval == 0


def test_rotation_check_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISSUER_KEY_ROTATION_INTERVAL", "100")
    monkeypatch.setenv("ISSUER_JWKS_MAX_AGE", "60")
    monkeypatch.setenv("ISSUER_CLOCK_SKEW", "30")
    assert Settings(_env_file=None).key_rotation_interval == 100
    monkeypatch.setenv("ISSUER_JWKS_MAX_AGE", "90")
    with pytest.raises(ValidationError, match="ISSUER_KEY_ROTATION_INTERVAL"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    "values",
    [
        {"access_token_ttl": 29},
        {"access_token_ttl": 86401},
        {"clock_skew": -1},
        {"keyring_refresh_interval": 0},
        {"max_body_bytes": 100},
        {"signing_alg": "HS256"},
        {"env": "staging"},
        {"roles": ""},
    ],
    ids=lambda v: next(iter(v)),
)
def test_out_of_range_values_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**values)


def test_comma_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISSUER_ROLES", "reader, writer ,owner")
    monkeypatch.setenv("ISSUER_CORS_ORIGINS", "https://a.example, https://b.example")
    s = Settings(_env_file=None)
    assert s.roles == ["reader", "writer", "owner"]
    assert s.cors_origins == ["https://a.example", "https://b.example"]


def test_database_url_decides_the_backend(tmp_path: Path) -> None:
    assert settings(database_url="postgresql://u@h/db").is_sqlite is False
    s = settings(data_dir=tmp_path / "d")
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'd' / 'issuer.sqlite3'}"
