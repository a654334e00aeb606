"""Seed re-runs: the best trials again, same hyperparameters, new seeds.

The playbook ("Determining whether to adopt a training pipeline change"): re-run the best
trial several times with different seeds to measure run-to-run variance; a difference between
scientific values smaller than that variance is not a difference. ``hpo seeds`` enqueues the
re-runs as WAITING trials, which workers take like any other; each carries

* ``slot``: the original trial's slot, so it belongs to the same scientific value and the
  budget's bookkeeping sees it as a retry of a slot, never as a new one;
* ``seed``: a new seed, which the worker uses instead of deriving one from the slot;
* ``seed_rerun_of``: the original trial's number, so the analysis keeps re-runs out of the
  design's counts and uses them only for variance.

Asking for ``--repeats 5`` twice does not make ten: each best trial is topped up to five.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo.analysis.results import RERUN_ATTR, collect
from hpo.attrs import SLOT as SLOT_ATTR
from hpo.design import np_seed, slot_of
from hpo.errors import InputError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo.study import Study

# Mixed into every re-run seed so it never equals a design seed, np_seed(study seed, k).
_RERUN_STREAM = 0x5EED


class NothingToRerun(InputError):
    """The study has no complete trial yet; the message says so in one line."""


@dataclass(frozen=True)
class Rerun:
    of: int  # the original trial's number
    group: str
    seed: int
    params: dict
    slot: int = -1  # the original trial's slot, which the re-run keeps


def plan_seed_reruns(definition: Study, study: optuna.Study, *, top: int = 1,
                     repeats: int = 5) -> list[Rerun]:
    """The re-runs still missing for the ``top`` best trials of every scientific value."""
    results = collect(definition, study)
    originals = [(g, t) for g in results.groups for t in results.ranked(g.trials)[:top]]
    if not originals:
        raise NothingToRerun(
            f"study {definition.name!r} has no complete trial to re-run yet; "
            "run it first (hpo run), then ask for seed re-runs"
        )
    existing: dict[int, list[FrozenTrial]] = {}
    for t in results.reruns:
        existing.setdefault(t.user_attrs[RERUN_ATTR], []).append(t)
    planned = []
    for group, trial in originals:
        done = existing.get(trial.number, [])
        used = {t.user_attrs.get("seed") for t in done} | {trial.user_attrs.get("seed")}
        missing, i = repeats - len(done), 0
        while missing > 0:
            seed = np_seed(definition.seed, _RERUN_STREAM, trial.number, i)
            i += 1
            if seed not in used:
                used.add(seed)
                planned.append(Rerun(trial.number, group.label, seed, dict(trial.params),
                                     slot_of(trial)))
                missing -= 1
    return planned


def enqueue_seed_reruns(definition: Study, study: optuna.Study, *, top: int = 1,
                        repeats: int = 5) -> list[Rerun]:
    """Enqueue the missing re-runs (see :func:`plan_seed_reruns`); returns what was added."""
    planned = plan_seed_reruns(definition, study, top=top, repeats=repeats)
    enqueue(study, planned)
    return planned


def enqueue(study: optuna.Study, reruns: list[Rerun]) -> None:
    """Enqueue planned re-runs as WAITING trials, each in its original trial's slot."""
    for rerun in reruns:
        study.enqueue_trial(rerun.params, user_attrs={
            SLOT_ATTR: rerun.slot, "seed": rerun.seed, RERUN_ATTR: rerun.of,
        })
