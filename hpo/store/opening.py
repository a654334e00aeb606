"""Opening a storage, and the study in it: the one place that decides what storage it is.

* the journal file (the embedded default) needs no server or schema, and optuna-dashboard
  opens it directly. Several workers on one machine append under a short file lock, and
  each reads only the entries it has not seen. SQLite also completed every trial in our
  measurement, but each write waits for a lock on the whole database: 4-8x fewer trials/s
  than the journal at 3-16 workers, and worse as workers are added (``bench/storage.py``).
* PostgreSQL is the shared storage for workers on many machines, with connection health
  checks, reconnection (:mod:`hpo.store.reconnect`) and the one-statement trial queue
  (:mod:`hpo.store.pgqueue`).

:func:`open_study` creates or loads the Optuna study for a definition, refuses a changed
design under an old name, lays out the budget, and returns it with its trial queue.
"""

from __future__ import annotations

import contextlib
import fcntl
import random
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from hpo import attrs, env
from hpo.errors import InfrastructureError
from hpo.store.urls import (
    ALLOWED,
    ENV_VAR,
    StorageError,
    clean,
    kind,
    redact,
    sqlalchemy_url,
)

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

    from hpo.store.queue import TrialQueue
    from hpo.study import Study

class StudyMismatchError(StorageError):
    """A stored study under this name was created from a different design."""


def open_storage(url: str, *, create: bool = True) -> BaseStorage:
    """An Optuna storage for the URL; an unusable URL raises StorageError with one line.

    ``create=False`` is for read-only commands: a journal file that does not exist is an
    error rather than a new empty file, and a database gets no table or index: one without
    Optuna's tables holds no study (StorageError "no hpo study here", exit 2).
    """
    storage_kind = kind(url)
    if storage_kind == "journal":
        if not create and not Path(url).is_file():
            raise StorageError(f"storage {url!r} does not exist; give the journal file the "
                               f"workers wrote (--storage or ${ENV_VAR})")
        return _open_journal(url)
    if storage_kind == "sqlite":
        return _open_rdb(url, lambda: _sqlite(url, read_only=not create), patient=create)
    # A worker waits for a database that is not up yet; a read-only command says so at once.
    return _open_rdb(url, lambda: _postgresql(url, read_only=not create), patient=create)


class StorageUnavailable(InfrastructureError):
    """The storage is right but cannot be reached now (exit 1): waited HPO_DB_PATIENCE."""


def _open_rdb(url: str, make: Callable[[], BaseStorage], *, patient: bool) -> BaseStorage:
    """Open, riding out a database that is not up yet (``patient``); only bad input is
    exit 2."""
    import sqlalchemy.exc

    from hpo.store.reconnect import is_connection_loss, retry_while_unreachable

    try:
        if not patient:
            return make()
        return retry_while_unreachable(make, what=f"the connection to {redact(url)}")
    except StorageError:
        raise  # already one line that says what is wrong (no hpo study here)
    except sqlalchemy.exc.SQLAlchemyError as e:
        message = clean(e, url)
        if _out_of_connections(e):
            raise StorageUnavailable(
                f"storage {redact(url)}: the server has no connection slots left ({message});"
                " lower the number of workers, raise max_connections, or put PgBouncer in"
                " front (each worker holds one connection, the supervisor one)") from None
        if is_connection_loss(e):
            raise StorageUnavailable(
                f"cannot reach storage {redact(url)}: {message}; "
                + (f"waited {env.db_patience():.0f}s (HPO_DB_PATIENCE); " if patient else "")
                + "start the database or check the network, then run the same command "
                "again") from None
        raise StorageError(
            f"cannot open storage {redact(url)}: {message}; "
            f"check the host, database and credentials (allowed: {ALLOWED})") from None
    except (ImportError, ValueError) as e:
        raise StorageError(
            f"cannot open storage {redact(url)}: {clean(e, url)}; "
            f"check the URL (allowed: {ALLOWED})") from None


def _out_of_connections(error: BaseException) -> bool:
    code = getattr(getattr(error, "orig", None), "pgcode", None)
    text = str(getattr(error, "orig", error)).lower()
    return code in ("53300", "53400") or "too many clients" in text \
        or "remaining connection slots are reserved" in text


def _sqlite(url: str, *, read_only: bool) -> BaseStorage:
    from optuna.storages import RDBStorage

    if read_only:
        _require_tables(url, "sqlite")
    return RDBStorage(url, skip_table_creation=read_only)


def _postgresql(url: str, *, read_only: bool) -> BaseStorage:
    import optuna
    import sqlalchemy.exc

    from hpo.store.optuna_internals import check_schema
    from hpo.store.reconnect import ReconnectingRDBStorage

    if read_only:
        _require_tables(url, "postgresql")
    # No lock around table creation: the first workers to start on an empty database may
    # collide creating the same tables (optuna#1092, #4621); the loser finds them made and
    # tries again. A lock would serialize every worker's start-up, and a session lock does
    # not survive PgBouncer's transaction pooling.
    for attempt in range(8):
        try:
            with warnings.catch_warnings():
                # Heartbeats are "experimental" in Optuna 5; we rely on them knowingly.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = ReconnectingRDBStorage(
                    sqlalchemy_url(url),
                    # One connection per process, shared by its threads (the trial loop,
                    # heartbeats, the reaper): a fleet needs about as many connections as it
                    # has processes. The one overflow lets two threads' statements overlap;
                    # no transaction of hpo's waits for a second connection, so behind
                    # PgBouncer a pool smaller than the fleet cannot deadlock.
                    # pre_ping replaces a connection the server dropped (restart, timeout).
                    engine_kwargs={"pool_pre_ping": True, "pool_size": 1, "max_overflow": 1,
                                   "pool_timeout": 120,
                                   "connect_args": {"connect_timeout": 10}},
                    heartbeat_interval=env.heartbeat_interval(),
                    grace_period=env.heartbeat_grace(),
                    skip_table_creation=read_only,
                    # Optuna's own schema check holds a transaction open while it opens a
                    # second connection (seen: 16 workers through 4 PgBouncer server
                    # connections, each holding one and waiting for another, for good).
                    # check_schema below checks the same on one connection.
                    skip_compatibility_check=True,
                )
                check_schema(storage, redact(url))
                if not read_only:
                    storage.ensure_hpo_schema()
                return storage
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if read_only or attempt == 7:
                raise
            time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
    raise AssertionError("unreachable")


def _require_tables(url: str, storage_kind: str) -> None:
    """For read-only commands: a database without Optuna's tables holds no study. Asked
    before Optuna opens it, which would create them (or, told not to, fail obscurely)."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(
        url if storage_kind == "sqlite" else sqlalchemy_url(url), poolclass=NullPool,
        **({} if storage_kind == "sqlite" else {"connect_args": {"connect_timeout": 10}}))
    try:
        has = sqlalchemy.inspect(engine).has_table("studies")
    finally:
        engine.dispose()
    if not has:
        raise StorageError(f"no hpo study here: {redact(url)} holds no Optuna tables (an empty "
                           f"database); give the --storage the study ran with (or set "
                           f"${ENV_VAR}), or start a study there with hpo run")


def _open_journal(path: str) -> BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    target = Path(path)
    if target.is_dir():
        raise StorageError(f"storage {path!r} is a directory; give a file path such as "
                           f"{path}/hpo-journal.log")
    if not target.parent.is_dir():
        raise StorageError(
            f"storage {path!r}: directory {str(target.parent)!r} does not exist; create it first"
        )
    if target.is_file() and target.read_bytes()[:16] == b"SQLite format 3\x00":
        raise StorageError(f"storage {path!r} is an SQLite file; use sqlite:///{path}")
    return JournalStorage(JournalFileBackend(str(target)))


def open_existing_storage(url: str) -> BaseStorage:
    """The storage at ``url`` for a read-only command; a file that does not exist is an
    error, never created."""
    if kind(url) == "journal" and not Path(url).is_file():
        raise StorageError(
            f"storage {url!r}: no such journal file; give the --storage the study ran with "
            f"(or set {ENV_VAR})"
        )
    if kind(url) == "sqlite" and not Path(url.split(":///", 1)[-1]).is_file():
        raise StorageError(
            f"storage {url!r}: no such SQLite file; give the --storage the study ran with"
        )
    return open_storage(url, create=False)


@contextlib.contextmanager
def exclusive(url: str, name: str) -> Iterator[None]:
    """Hold a lock, across the processes of this machine, for the study called ``name``
    in a journal or SQLite file.

    Opening a study, checking its search space and laying out its budget must happen once
    even when many workers start at the same moment; this is the lock that makes it so.
    (On PostgreSQL the database itself guards them: see :func:`open_study`.)
    """
    storage_kind = kind(url)
    if storage_kind == "postgresql":
        raise ValueError("PostgreSQL needs no lock of hpo's: the database guards the layout")
    path = url if storage_kind == "journal" else url.split(":///", 1)[-1]
    # flock on a file of our own, next to the storage: Optuna's journal uses its own lock
    # for appends, and we hold this one across several of them.
    with open(f"{path}.hpo-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_study(definition: Study, url: str, *,
               budget: int | None = None) -> tuple[optuna.Study, TrialQueue]:
    """Create or load the Optuna study for a definition, lay out its budget, and return it
    with its trial queue.

    A stored study of the same name must have the same search space (fingerprint) and
    direction: results gathered under one design are never silently mixed with another's.
    Everything happens under one cross-process lock, so workers may all start at once.
    """
    import optuna

    from hpo.sampling import PlaybookSampler
    from hpo.store.queue import queue_for

    recorded = definition.user_attrs()  # all of it known before anything is written
    storage = open_storage(url)
    sampler = PlaybookSampler(definition.space, phase=definition.phase, seed=definition.seed)
    pruner = definition.pruner or optuna.pruners.NopPruner()

    def load() -> optuna.Study | None:
        try:
            return optuna.load_study(
                study_name=definition.name, storage=storage, sampler=sampler, pruner=pruner
            )
        except KeyError:
            return None

    def create() -> optuna.Study:
        try:
            return optuna.create_study(
                study_name=definition.name, storage=storage, sampler=sampler, pruner=pruner,
                direction=cast(Literal["minimize", "maximize"], definition.direction))
        except optuna.exceptions.DuplicatedStudyError:  # another worker was first
            study = load()
            assert study is not None
            return study

    def ready(study: optuna.Study) -> TrialQueue:
        stored = study.user_attrs
        if attrs.STUDY_FINGERPRINT not in stored:
            # New (or its creator died before this was written): the design goes in first,
            # the identity of its checkpoints last. Every writer writes the same values.
            with warnings.catch_warnings():  # "experimental" since Optuna 3.2; still is
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([definition.metric])  # the dashboard's, not "Objective 0"
            for key, value in recorded.items():
                study.set_user_attr(key, value)
            stored = study.user_attrs
        check_same_design(definition, study, redact(url))
        if attrs.STUDY_UID not in stored:
            study.set_user_attr(attrs.STUDY_UID, uuid.uuid4().hex)
        queue = queue_for(study)
        sampler.read_trials = queue.value_trials
        if attrs.STUDY_UNTIL_DECIDED not in stored:  # else its controller lays it out
            queue.lay_out(definition.budget if budget is None else budget)
        refuse_foreign(queue, definition)
        return queue

    study = load()
    if kind(url) == "postgresql":
        # No cross-process lock: the database guards creation (a unique study name), the
        # design's attributes (the same values from every writer) and the layout (the
        # slots' primary key), so workers join in parallel, also through PgBouncer.
        study = study or create()
        return study, ready(study)
    if study is not None:
        # Read the whole study before taking the lock: Optuna's cache then reads only what
        # changed inside it, and workers joining a large study do not queue up behind each
        # other's full read.
        study.get_trials(deepcopy=False)
    with exclusive(url, definition.name):
        study = study or load() or create()
        return study, ready(study)


def refuse_foreign(queue: TrialQueue, definition: Study) -> None:
    """Fail WAITING trials that are not the design's (enqueued by hand with
    ``study.enqueue_trial``, or by another client), saying why on the trial: hpo runs only
    its design's slots, and one of them would take a slot of the wrong value."""
    import logging

    from optuna.trial import TrialState

    for trial in queue.foreign_waiting():
        value = {n: trial.params[n] for n in definition.space.scientific if n in trial.params}
        named = ", ".join(f"{k}={v!r}" for k, v in value.items()) or "no scientific value"
        reason = (f"trial #{trial.number} ({named}) was enqueued outside hpo's design; hpo "
                  "runs only the design's slots: grow the design with --trials, or re-run a "
                  "trial with other seeds with hpo seeds")
        storage = queue.storage
        trial_id = queue.trial_id(trial)
        storage.set_trial_user_attr(trial_id, attrs.ERROR, reason)
        if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            logging.getLogger("hpo.store").warning("hpo: %s", reason)


def load_stored_study(definition: Study, url: str) -> optuna.Study:
    """The Optuna study for a definition, which must exist with the same design (for the
    commands that read results: nothing is created)."""
    import optuna

    storage = open_existing_storage(url)
    try:
        study = optuna.load_study(study_name=definition.name, storage=storage,
                                  sampler=optuna.samplers.RandomSampler())
    except KeyError:
        names = sorted(optuna.get_all_study_names(storage))
        raise StorageError(
            f"study {definition.name!r} is not in {redact(url)}"
            f"{' (it holds: ' + ', '.join(names) + ')' if names else ' (it holds no study)'}; "
            f"run it first: hpo run <study file> --storage ..."
        ) from None
    # Results gathered under another design are not this study's results.
    check_same_design(definition, study, redact(url))
    return study


def check_same_design(definition: Study, study: optuna.Study, where: str) -> None:
    """Raise StudyMismatchError if the stored study was made from another design, naming
    what changed (:meth:`hpo.study.Study.changes_from`)."""
    changes = definition.changes_from(study.user_attrs)
    if changes is None:
        raise StudyMismatchError(
            f"study {definition.name!r} in {where} records no hpo design (made by another "
            f"tool, or left half-made by a failed start); delete it (hpo delete <study file> "
            f"--yes) or bump the study's name, e.g. name={_bumped(definition.name)!r}")
    stored_direction = study.direction.name.lower()
    if stored_direction != definition.direction:
        changes.append(f"a different direction ({stored_direction} in storage, "
                       f"{definition.direction} now)")
    if not changes:
        return
    raise StudyMismatchError(
        f"study {definition.name!r} in {where} was created with {' and '.join(changes)}; "
        f"results from two designs must not mix: bump the study's name or version, "
        f"e.g. name={_bumped(definition.name)!r}"
    )


def _bumped(name: str) -> str:
    import re

    match = re.fullmatch(r"(.*?)(\d+)", name)
    return f"{match.group(1)}{int(match.group(2)) + 1}" if match else f"{name}-v2"
