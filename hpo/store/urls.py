"""Storage URLs: which storage a URL names, and how to print one without its password.

A storage is named by a URL, from ``--storage`` or the ``HPO_STORAGE`` environment variable:

* nothing: the embedded default, Optuna's journal file ``./hpo-journal.log``;
* a file path: a journal file at that path;
* ``postgresql://user:password@host/db`` (also ``postgres://`` and
  ``postgresql+psycopg2://``): the shared storage for workers on many machines;
* ``sqlite:///file.db``: accepted for compatibility, not recommended for parallel workers.

A password never leaves this package un-redacted: every error names the URL through
:func:`redact`, and a driver's message goes through :func:`clean`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from hpo import env
from hpo.errors import InputError

DEFAULT_PATH = "hpo-journal.log"
ENV_VAR = "HPO_STORAGE"
ALLOWED = (
    "postgresql://user:password@host/db, a journal file path such as hpo-journal.log, "
    "or sqlite:///file.db"
)


class StorageError(InputError):
    """A storage that cannot be used as given (bad URL, unreachable server); one line."""


def resolve_url(cli_value: str | None) -> str:
    """``--storage`` first, then ``$HPO_STORAGE``, then the embedded journal file."""
    return cli_value or env.raw(ENV_VAR) or DEFAULT_PATH


# A password in the query string (libpq accepts ?password=...), whatever else is around it.
_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|pass|pwd|sslpassword)=)[^&#]*")


def redact(url: str) -> str:
    """The URL with every secret replaced by ``***``, safe for logs and errors.

    The userinfo is cut at the *last* '@' before the host (a password may hold an
    unencoded '@' or '/'), and query-string passwords are masked too. Anything that does
    not parse as a URL loses everything that could be a secret rather than risk one.
    """
    if "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    rest = _QUERY_SECRET.sub(r"\1***", rest)
    if "@" in rest:
        userinfo, _, host = rest.rpartition("@")
        user = userinfo.split(":", 1)[0]
        rest = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    return f"{scheme}://{rest}"


def kind(url: str) -> str:
    """'postgresql', 'sqlite' or 'journal'; raises StorageError for anything else."""
    if "://" not in url:
        return "journal"
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgresql+psycopg2", "postgres"):
        return "postgresql"
    if scheme == "sqlite":
        return "sqlite"
    raise StorageError(
        f"storage {redact(url)!r}: unsupported scheme {scheme!r}; use {ALLOWED}"
    )


def sqlalchemy_url(url: str) -> str:
    """The URL SQLAlchemy needs: PostgreSQL always through psycopg2.

    SQLAlchemy 2 dropped the 'postgres://' alias that many hosting providers still print,
    and 2.1 maps a plain 'postgresql://' to psycopg 3, which hpo does not install.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("postgres", "postgresql", "postgresql+psycopg2"):
        return url
    return "postgresql+psycopg2://" + _encode_password(rest)


@contextlib.contextmanager
def one_off_connection(url: str, *, timeout: float) -> Iterator[Any]:
    """A connection of its own, outside any pool, for a single look at the server (is it
    up, how many slots are free); closed and its engine disposed on the way out."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(sqlalchemy_url(url), poolclass=NullPool,
                                      connect_args={"connect_timeout": timeout})
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _encode_password(rest: str) -> str:
    """Percent-encode the password of ``user:password@host/db...``: one with an unencoded
    '@' or '/' would otherwise be read as part of the host (and printed as one)."""
    from urllib.parse import quote, unquote

    address, mark, query = rest.partition("?")
    if "@" not in address:
        return rest
    userinfo, _, host = address.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if colon:
        userinfo = f"{user}:{quote(unquote(password), safe='')}"
    return f"{userinfo}@{host}{mark}{query}"


def password_of(url: str) -> str | None:
    """The password in the URL (userinfo or query string), to scrub it from messages."""
    if "://" not in url:
        return None
    rest = url.partition("://")[2]
    match = re.search(r"(?i)[?&](?:password|pass|pwd|sslpassword)=([^&#]*)", rest)
    if match and match.group(1):
        return match.group(1)
    if "@" in rest:
        userinfo = rest.rpartition("@")[0]
        if ":" in userinfo:
            return userinfo.split(":", 1)[1] or None
    return None


def clean(error: BaseException, url: str) -> str:
    """The first line of a driver error, with the password scrubbed just in case."""
    message = str(getattr(error, "orig", None) or error).strip().splitlines()
    text = message[0] if message else type(error).__name__
    with contextlib.suppress(Exception):
        password = password_of(url)
        if password:
            from urllib.parse import unquote

            for form in {password, unquote(password)}:
                text = text.replace(form, "***")
    return text
