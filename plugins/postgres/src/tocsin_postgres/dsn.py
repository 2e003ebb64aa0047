"""A DSN without its password: what messages, logs and `tocsin doctor` show of where the database is.

The DSN is a `Secret` in config, revealed only to open connections. Anything tocsin says about the
database names it by `display(dsn)` (`postgresql://user@host:port/dbname`), and driver messages pass
through `scrub` first, in case a driver ever repeats the password back.
"""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from tocsin.ext import Secret, StorageError


def parts(dsn: Secret) -> dict[str, str]:
    """The DSN's parameters; StorageError (without the DSN in it) when it cannot be read."""
    try:
        return {key: str(value) for key, value in conninfo_to_dict(dsn.reveal()).items() if value is not None}
    except Exception:  # the driver's message would quote the DSN, password included
        raise StorageError("storage dsn is not a valid PostgreSQL connection string (postgresql://user@host/db "
                           "or 'host=... dbname=...')") from None


def display(dsn: Secret) -> str:
    """`postgresql://user@host:port/dbname`, never the password."""
    found = parts(dsn)
    user = found.get("user", "")
    host = found.get("host", "localhost")
    port = found.get("port", "5432")
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{found.get('dbname', user)}"


def scrub(message: str, dsn: Secret) -> str:
    """A driver message with the DSN's password (and the DSN itself) taken out."""
    secret = parts(dsn).get("password")
    for value in (dsn.reveal(), secret):
        if value:
            message = message.replace(value, "<secret>")
    return message
