"""The one module of hpo that uses Optuna's private names.

hpo extends Optuna through its public API wherever it can. Where it cannot (the storage
behind a study, a trial's id in the database, TPE's read of a study, the rows of Optuna's
tables), the private name is used here and only here, so an Optuna upgrade that renames
one breaks one module, and :func:`check_schema` says at open time when the database's
tables are not the ones hpo's SQL was written for.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from optuna import distributions
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage


# Optuna's schema revisions (alembic) whose tables hpo's raw SQL (hpo.store.pgqueue) reads
# and writes. A database migrated to another revision is refused: the statements would
# write rows Optuna no longer reads the same way.
SUPPORTED_SCHEMAS = ("v3.2.0.a",)


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes through (``Study.ask`` uses the same handle)."""
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    return study._study_id


def trial_id_of(trial: optuna.trial.FrozenTrial | optuna.Trial) -> int:
    """A trial's id in storage (its number counts within the study; the id is global)."""
    return trial._trial_id


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDBStorage behind Optuna's caching wrapper, or None for other storages."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def stale_trial_ids(storage: BaseStorage, study_id: int) -> list[int]:
    """RUNNING trials whose heartbeat is older than the storage's grace period."""
    return list(storage._get_stale_trial_ids(study_id))  # type: ignore[attr-defined]


def heartbeat_interval(storage: BaseStorage) -> int | None:
    """Seconds between heartbeats, or None where the storage keeps none (journal)."""
    from optuna.storages._heartbeat import BaseHeartbeat

    return storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None


def trials_of(study: optuna.Study, states: Any = None) -> list[FrozenTrial]:
    """Every trial of the study, not copied (through Optuna's cache, incrementally)."""
    return study._get_trials(deepcopy=False, states=states, use_cache=False)


def check_schema(storage: RDBStorage, where: str) -> None:
    """Refuse a database whose Optuna schema is not one hpo's SQL was written for."""
    from hpo.store.urls import StorageError

    version = storage.get_current_version()
    if version not in SUPPORTED_SCHEMAS:
        raise StorageError(
            f"storage {where}: Optuna schema {version!r}, but this hpo's queue SQL was "
            f"written for {', '.join(SUPPORTED_SCHEMAS)}; install the optuna version the "
            f"database was made with, or upgrade hpo")


# A whole trial in one row, as FrozenTrial needs it (see frozen_trial); {t} is the alias
# of a row with the trials table's columns. The attributes come as one JSON object of their
# stored values (each value_json is itself JSON), so a trial's attributes are parsed in one
# go rather than one value at a time: most of the cost of reading a study is parsing.
TRIAL_COLUMNS = """
    {t}.trial_id, {t}.number, {t}.state, {t}.datetime_start, {t}.datetime_complete,
    (SELECT json_agg(json_build_array(v.objective, v.value, v.value_type))
     FROM trial_values v WHERE v.trial_id = {t}.trial_id),
    (SELECT json_agg(json_build_array(p.param_name, p.param_value, p.distribution_json)
                     ORDER BY p.param_id)
     FROM trial_params p WHERE p.trial_id = {t}.trial_id),
    (SELECT '{{' || string_agg(CAST(to_json(a.key) AS text) || ':' || a.value_json, ',') || '}}'
     FROM trial_user_attributes a WHERE a.trial_id = {t}.trial_id),
    (SELECT '{{' || string_agg(CAST(to_json(s.key) AS text) || ':' || s.value_json, ',') || '}}'
     FROM trial_system_attributes s WHERE s.trial_id = {t}.trial_id),
    (SELECT json_agg(json_build_array(i.step, i.intermediate_value, i.intermediate_value_type))
     FROM trial_intermediate_values i WHERE i.trial_id = {t}.trial_id)
"""


def frozen_trials(rows: Iterable[Any]) -> list[FrozenTrial]:
    """FrozenTrials from rows of TRIAL_COLUMNS. A study's trials share a few distributions:
    each distinct one is parsed once (parsing is most of the cost of building a trial)."""
    parsed: dict[str, distributions.BaseDistribution] = {}

    def parse(text: str) -> distributions.BaseDistribution:
        found = parsed.get(text)
        if found is None:
            found = parsed[text] = distributions.json_to_distribution(text)
        return found

    return [frozen_trial(row, parse) for row in rows]


def frozen_trial(row: Any, parse: Callable[[str], distributions.BaseDistribution] =
                 distributions.json_to_distribution) -> FrozenTrial:
    """A FrozenTrial from a row of TRIAL_COLUMNS, as Optuna's RDBStorage would build it."""
    from optuna.storages._rdb import models

    trial_id, number, state, started, completed, values, params, user_attrs, system_attrs, \
        steps = row
    value_type = models.TrialValueModel.TrialValueType
    step_type = models.TrialIntermediateValueModel.TrialIntermediateValueType
    dists = {name: parse(d) for name, _, d in params or []}
    return FrozenTrial(
        number=number, state=TrialState[state], value=None,
        values=[models.TrialValueModel.stored_repr_to_value(v, value_type[kind])
                for _, v, kind in sorted(values)] if values else None,
        datetime_start=started, datetime_complete=completed,
        params={name: dists[name].to_external_repr(v) for name, v, _ in params or []},
        distributions=dists,
        user_attrs=json.loads(user_attrs) if user_attrs else {},
        system_attrs=json.loads(system_attrs) if system_attrs else {},
        intermediate_values={
            step: models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                v, step_type[kind])
            for step, v, kind in steps or []},
        trial_id=trial_id,
    )


class ScientificSlice:
    """A read-only view of a study holding only the trials of one scientific value.

    TPE reads trials through ``study._get_trials``; handing it this view fits its model to one
    scientific value's trials, which is what "nuisance optimized separately per value" means.
    """

    def __init__(self, study: optuna.Study, belongs: Callable[[FrozenTrial], bool],
                 stored: Callable[[Any], list[FrozenTrial] | None]):
        self._study = study
        self._belongs = belongs  # is a trial one of this value's
        self._stored = stored    # this value's trials in these states, read by hpo; or None

    def _get_trials(self, deepcopy: bool = True, states: Any = None,
                    use_cache: bool = False) -> list:
        mine = None if states is None else self._stored(states)
        if mine is None:
            trials = self._study._get_trials(deepcopy=False, states=states, use_cache=use_cache)
            mine = [t for t in trials if self._belongs(t)]
        mine = [t for t in mine if states is None or t.state in states]
        return copy.deepcopy(mine) if deepcopy else mine

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list:
        return self._get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
