"""The DSN is a secret: its password never appears in errors, logs, reprs or `tocsin doctor`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import msgspec
import pytest
from pg_test_helpers import DSN, require_server
from tocsin_postgres import PostgresStorage

from tocsin.ext import Secret, StorageError, StorageUnavailable

PASSWORD = "hunter2-Sup3rSecret"


def _config(dsn: str, **options) -> PostgresStorage.Config:
    return PostgresStorage.Config(dsn=Secret(dsn), schema="t_never_created", connect_timeout=1, **options)


async def test_an_unreachable_server_is_unavailable_without_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    backend = PostgresStorage(_config(f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test"))
    with pytest.raises(StorageUnavailable) as raised:
        await backend.open()
    message = str(raised.value)
    assert "127.0.0.1:1/test" in message
    assert PASSWORD not in message
    assert PASSWORD not in caplog.text


def test_a_malformed_dsn_is_refused_without_quoting_it():
    with pytest.raises(StorageError) as raised:
        PostgresStorage(_config(f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test?sslmode=bogus&x=1 2"))
    assert PASSWORD not in str(raised.value)
    assert "not a valid PostgreSQL connection string" in str(raised.value)


def test_the_config_prints_and_encodes_the_dsn_as_secret():
    config = _config(f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test")
    assert PASSWORD not in repr(config)
    assert PASSWORD not in msgspec.json.encode(config, enc_hook=str).decode()


async def test_errors_of_an_open_store_name_the_database_without_the_password():
    require_server()
    with_password = DSN.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
    backend = PostgresStorage(_config(with_password))
    assert PASSWORD not in backend.where
    assert backend.where == "postgresql://postgres@127.0.0.1:5432/test"


def test_doctor_never_prints_the_password(tmp_path):
    (tmp_path / "tocsin.toml").write_text('[storage]\nbackend = "postgres"\ndsn = "${TOCSIN_PG_DSN}"\n')
    env = {**os.environ, "TOCSIN_PG_DSN": f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test"}
    result = subprocess.run(
        [sys.executable, "-m", "tocsin", "doctor", "--config", str(tmp_path / "tocsin.toml")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )
    output = result.stdout + result.stderr
    assert "storage: postgres" in output
    assert PASSWORD not in output
