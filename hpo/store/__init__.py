"""Everything that touches storage, behind one seam.

* :mod:`~hpo.store.urls`: which storage a URL names; redaction of passwords.
* :mod:`~hpo.store.opening`: opening a storage and the study in it (creating it, checking
  its design, laying out its budget), and the cross-process lock that guards that.
* :mod:`~hpo.store.queue`: the trial queue (claim, finish, hand back, reads), chosen once
  when the study is opened: PostgreSQL's own statements (:mod:`~hpo.store.pgqueue`) or
  Optuna's public calls for any other storage.
* :mod:`~hpo.store.budget`: the study-wide budget laid out as slots; progress.
* :mod:`~hpo.store.leases`: heartbeats and the reaper of dead workers' trials.
* :mod:`~hpo.store.reconnect`: riding out a lost PostgreSQL connection.
* :mod:`~hpo.store.optuna_internals`: the only module of hpo that uses Optuna's private
  names, and the check of the database's Optuna schema version.

Importing this package is cheap: Optuna and SQLAlchemy load when a storage is opened.
"""

from hpo.store.opening import (
    StudyMismatchError,
    exclusive,
    load_stored_study,
    open_existing_storage,
    open_storage,
    open_study,
)
from hpo.store.urls import DEFAULT_PATH, ENV_VAR, StorageError, kind, redact, resolve_url

__all__ = [
    "DEFAULT_PATH",
    "ENV_VAR",
    "StorageError",
    "StudyMismatchError",
    "exclusive",
    "kind",
    "load_stored_study",
    "open_existing_storage",
    "open_storage",
    "open_study",
    "redact",
    "resolve_url",
]
