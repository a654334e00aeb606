"""A database password never appears in what hpo prints, whatever form the URL takes."""

from __future__ import annotations

import pytest
from conftest import hpo_cli

from hpo.store.urls import clean, password_of, redact, sqlalchemy_url

SECRET = "S3cret"
URLS = [
    f"postgresql+psycopg2://alice:{SECRET}@db.example/hpo",
    f"postgresql://alice:{SECRET}@db.example:5432/hpo?sslmode=require",
    f"postgres://alice@db.example/hpo?password={SECRET}",
    f"postgresql://alice@db.example/hpo?sslmode=require&password={SECRET}&x=1",
    f"postgresql://alice:pa@{SECRET}/x@db.example/hpo",       # unencoded '@' and '/'
    f"postgresql://alice:{SECRET}/@db.example/hpo",
    f"postgresql://alice:{SECRET}@",                          # unparseable
]


@pytest.mark.parametrize("url", URLS)
def test_redact_hides_the_password(url):
    assert SECRET not in redact(url)
    assert "alice" in redact(url) or "db.example" in redact(url)


@pytest.mark.parametrize("url", URLS[:6])
def test_a_driver_message_that_quotes_the_password_is_scrubbed(url):
    assert password_of(url) and SECRET in password_of(url)
    assert SECRET not in clean(RuntimeError(f"auth failed for {password_of(url)}"), url)


def test_plain_postgresql_urls_use_psycopg2():
    assert sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert sqlalchemy_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert sqlalchemy_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"


@pytest.mark.parametrize("url", [
    f"postgresql://postgres@127.0.0.1:1/hpo?password={SECRET}",
    f"postgresql://postgres:pa@{SECRET}/x@127.0.0.1:1/hpo",
])
def test_the_cli_never_prints_the_password(tmp_path, study_file, url):
    result = hpo_cli("run", study_file(), env={"HPO_STORAGE": url, "HPO_DB_PATIENCE": "1"},
                     cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # unreachable: a runtime failure, not input
    assert SECRET not in result.stdout + result.stderr
    assert "127.0.0.1" in result.stderr
