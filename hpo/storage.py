"""Where studies live: the embedded default, PostgreSQL, and the lock that guards planning.

A storage is named by a URL, from ``--storage`` or the ``HPO_STORAGE`` environment variable:

* nothing: the embedded default, Optuna's journal file ``./hpo-journal.log``. It needs no
  server or schema, and optuna-dashboard opens it directly (``optuna-dashboard
  hpo-journal.log``). Several workers on one machine append under a short file lock, and
  each reads only the entries it has not seen. SQLite also completed every trial in our
  measurement, but each write waits for a lock on the whole database: 4-8x fewer trials/s
  than the journal at 3-16 workers, and worse as workers are added (``bench/storage.py``).
* a file path: a journal file at that path.
* ``postgresql+psycopg2://user:password@host/db``: the shared storage for workers on many
  machines, with connection health checks.
* ``sqlite:///file.db``: accepted for compatibility, not recommended for parallel workers.

A password never leaves this module un-redacted: every error names the URL through
:func:`redact`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

DEFAULT_PATH = "hpo-journal.log"
ENV_VAR = "HPO_STORAGE"
ALLOWED = (
    "postgresql+psycopg2://user:password@host/db, a journal file path such as hpo-journal.log, "
    "or sqlite:///file.db"
)
# Any constant works; it only has to differ from other applications' advisory locks.
_SCHEMA_LOCK_KEY = 0x6870_6F00


class StorageError(RuntimeError):
    """A storage that cannot be used as given (bad URL, unreachable server); one line."""


def resolve_url(cli_value: str | None) -> str:
    """``--storage`` first, then ``$HPO_STORAGE``, then the embedded journal file."""
    return cli_value or os.environ.get(ENV_VAR) or DEFAULT_PATH


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``, safe for logs and errors."""
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Unparseable: cut everything between '://' and the last '@' rather than guess.
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url


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


def _sqlalchemy_url(url: str) -> str:
    # SQLAlchemy 2 dropped the 'postgres://' alias that many hosting providers still print.
    return "postgresql+psycopg2://" + url.split("://", 1)[1] if url.startswith("postgres://") else url


def _clean(error: BaseException, url: str) -> str:
    """The first line of a driver error, with the password scrubbed just in case."""
    message = str(getattr(error, "orig", None) or error).strip().splitlines()
    text = message[0] if message else type(error).__name__
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):
        password = make_url(_sqlalchemy_url(url)).password
        if password:
            text = text.replace(str(password), "***")
    return text


def open_storage(url: str, *, create: bool = True) -> BaseStorage:
    """An Optuna storage for the URL; an unusable URL raises StorageError with one line.

    ``create=False`` is for read-only commands: a journal file that does not exist is an
    error rather than a new empty file.
    """
    storage_kind = kind(url)
    if storage_kind == "journal":
        if not create and not Path(url).is_file():
            raise StorageError(f"storage {url!r} does not exist; give the journal file the "
                               f"workers wrote (--storage or ${ENV_VAR})")
        return _open_journal(url)
    import optuna
    import sqlalchemy.exc
    from optuna.storages import RDBStorage

    from hpo.reconnect import ReconnectingRDBStorage

    try:
        if storage_kind == "sqlite":
            return RDBStorage(url)
        with _schema_lock(url, storage_kind), warnings.catch_warnings():
            # Heartbeats are "experimental" in Optuna 5; we rely on them knowingly.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = ReconnectingRDBStorage(
                _sqlalchemy_url(url),
                # pre_ping replaces connections the server dropped (restart, idle timeout).
                engine_kwargs={"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}},
                heartbeat_interval=_env_int("HPO_HEARTBEAT_INTERVAL", 10),
                grace_period=_env_int("HPO_HEARTBEAT_GRACE", 60),
            )
            storage.ensure_queue_index()
            return storage
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as e:
        raise StorageError(
            f"cannot open storage {redact(url)}: {_clean(e, url)}; "
            f"check the host, database and credentials (allowed: {ALLOWED})"
        ) from None


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise StorageError(f"${name}={text!r}: expected a positive number of seconds")
    return int(text)


def _open_journal(path: str) -> BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    target = Path(path)
    if target.is_dir():
        raise StorageError(f"storage {path!r} is a directory; give a file path such as {path}/hpo-journal.log")
    if not target.parent.is_dir():
        raise StorageError(
            f"storage {path!r}: directory {str(target.parent)!r} does not exist; create it first"
        )
    if target.is_file() and target.read_bytes()[:16] == b"SQLite format 3\x00":
        raise StorageError(f"storage {path!r} is an SQLite file; use sqlite:///{path}")
    return JournalStorage(JournalFileBackend(str(target)))


@contextlib.contextmanager
def _schema_lock(url: str, storage_kind: str) -> Iterator[None]:
    """Serialize Optuna's table creation: workers starting at once on an empty PostgreSQL
    database otherwise race on CREATE TABLE and crash (optuna#1092, #4621)."""
    if storage_kind != "postgresql":
        yield
        return
    with _pg_advisory_lock(url, _SCHEMA_LOCK_KEY):
        yield


@contextlib.contextmanager
def _pg_advisory_lock(url: str, key: int) -> Iterator[None]:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(
        _sqlalchemy_url(url), poolclass=NullPool, connect_args={"connect_timeout": 10}
    )
    try:
        with engine.connect() as conn:
            # Session-level: released on unlock, or by the server if this process dies.
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


@contextlib.contextmanager
def exclusive(url: str, name: str) -> Iterator[None]:
    """Hold a lock, across processes and machines, for the study called ``name``.

    Opening a study, checking its search space and laying out its budget must happen once
    even when many workers start at the same moment; this is the lock that makes it so.
    """
    storage_kind = kind(url)
    if storage_kind == "postgresql":
        digest = hashlib.sha256(f"hpo-study:{name}".encode()).digest()
        with _pg_advisory_lock(url, int.from_bytes(digest[:8], "big", signed=True)):
            yield
        return
    path = url if storage_kind == "journal" else url.split(":///", 1)[-1]
    # flock on a file of our own, next to the storage: Optuna's journal uses its own lock
    # for appends, and we hold this one across several of them.
    with open(f"{path}.hpo-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
