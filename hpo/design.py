"""The study's design, as a pure function of the slot: what every trial is before it runs.

Every trial has a *slot*, its position in the design: the ``slot`` attribute that the
layout gives each trial (kept by retries and seed re-runs, so they keep their place), else
its storage-assigned trial number. From the slot alone, with no read-then-write counter
that two workers could race on:

* scientific value = ``values[slot % V]``, so after n slots the counts per value differ by
  at most one, whatever the number of workers;
* pair index       = ``k = slot // V``: this is the k-th trial of its scientific value;
* nuisance point   = point k of a scrambled Halton sequence seeded by the study: the k-th
  trial of *every* scientific value gets the same k-th point (a paired design), mapped onto
  that value's own nuisance hyperparameters. Distinct slots give distinct points, so no
  point repeats within a scientific value;
* seed             = derived from the study's seed and k: pairs share a seed as they share
  a point.

The sampler (explore points, exploit's per-value TPE), the layout, ``hpo status`` and the
analysis all read the design from here, so they cannot disagree about it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo import attrs

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from hpo.space import Space


# How the sampler turns slots into points in each phase (hpo.sampling reads these). They are
# part of the design's identity (hpo.study): a change here must refuse an old study under
# its name rather than give its remaining slots points from another design.
SAMPLER_SETTINGS: dict[str, dict[str, Any]] = {
    "explore": {"points": "scrambled Halton, paired across scientific values", "version": 1},
    "exploit": {"points": "TPE per scientific value", "multivariate": True,
                "n_startup_trials": 10, "version": 1},
}


def slot_of(trial: FrozenTrial) -> int:
    """The trial's position in the design: its laid-out slot, else its trial number."""
    return int(trial.user_attrs.get(attrs.SLOT, trial.number))


def is_seed_rerun(trial: FrozenTrial) -> bool:
    """A seed re-run (``hpo seeds``): an extra evaluation of a slot, not a design trial."""
    return attrs.SEED_RERUN_OF in trial.user_attrs


class Design:
    """The design of one space and seed: slot -> scientific value, pair, point, seed."""

    def __init__(self, space: Space, seed: int = 0):
        self.space = space
        self.seed = seed
        self.values = space.scientific_values()
        # Coordinates of the quasi-random point, per scientific value: the nuisance names
        # every value shares come first, then the value's own (conditional) ones, so the
        # k-th trials of SGD and Adam get the same learning rate, and SGD's momentum the
        # same draw as Adam's beta1. Sorted, so reordering a study file's lines does not
        # move the points.
        shared = sorted(n for n, hp in space.hyperparameters.items()
                        if hp.role == "nuisance" and not hp.when)
        self.coordinates = [
            shared + sorted(n for n in space.active_nuisance(v) if n not in shared)
            for v in self.values
        ]
        self.dims = max(len(c) for c in self.coordinates)

    def group_index(self, slot: int) -> int:
        """Which scientific value (its index in ``values``) the slot belongs to."""
        return slot % len(self.values)

    def scientific_value(self, slot: int) -> dict[str, Any]:
        return self.values[self.group_index(slot)]

    def pair_index(self, slot: int) -> int:
        """k: this trial is the k-th of its scientific value."""
        return slot // len(self.values)

    def nuisance_point(self, k: int) -> tuple[float, ...]:
        """The k-th point of the study's scrambled Halton sequence, in [0, 1)^D."""
        return _halton_point(self.dims, self.seed, k) if self.dims else ()

    def nuisance_points(self, ks: Iterable[int]) -> dict[int, tuple[float, ...]]:
        """Points k for many k at once, the same numbers as :meth:`nuisance_point` gives one
        by one: one vectorized draw per run of consecutive k. Point by point costs about a
        millisecond each, which makes laying out a 100,000-slot budget take minutes."""
        wanted = sorted(set(ks))
        if not self.dims:
            return dict.fromkeys(wanted, ())
        points: dict[int, tuple[float, ...]] = {}
        start = 0
        for i in range(1, len(wanted) + 1):
            if i == len(wanted) or wanted[i] != wanted[i - 1] + 1:
                first, count = wanted[start], i - start
                draw = _halton(self.dims, self.seed).fast_forward(first).random(count)
                points.update(zip(range(first, first + count), map(tuple, draw.tolist()),
                                  strict=True))
                start = i
        return points

    def explore_params(self, slot: int,
                       point: tuple[float, ...] | None = None) -> dict[str, Any]:
        """Every active hyperparameter's value for a slot in the explore design (``point``:
        its nuisance point, if already drawn with :meth:`nuisance_points`)."""
        group = self.group_index(slot)
        value = self.values[group]
        active = self.space.active_nuisance(value)
        if point is None:
            point = self.nuisance_point(self.pair_index(slot))
        # A value with fewer nuisance names uses a prefix of the point.
        named = dict(zip(self.coordinates[group], point, strict=False))
        return {**value, **{n: active[n].from_unit(u) for n, u in named.items()}}

    def explore_params_many(self, slots: Sequence[int]) -> list[dict[str, Any]]:
        """:meth:`explore_params` for many slots, their points drawn together."""
        points = self.nuisance_points(self.pair_index(s) for s in slots)
        return [self.explore_params(s, points[self.pair_index(s)]) for s in slots]

    def distributions(self, slot: int) -> dict[str, BaseDistribution]:
        """The Optuna distributions of the hyperparameters active in the slot's value."""
        value = self.scientific_value(slot)
        active = self.space.active_nuisance(value)
        return {n: self.space.distribution(n).to_optuna() for n in self.space.hyperparameters
                if n in value or n in active}

    def trial_seed(self, slot: int) -> int:
        """The k-th trial of every scientific value shares a seed, as it shares a point."""
        return np_seed(self.seed, self.pair_index(slot))


@functools.lru_cache(maxsize=4096)
def _halton_point(dims: int, seed: int, k: int) -> tuple[float, ...]:
    # The playbook's reference: "a shifted, scrambled Halton sequence". fast_forward is O(1)
    # for Halton, so the cost of a point does not grow with the study.
    return tuple(float(x) for x in _halton(dims, seed).fast_forward(k).random(1)[0])


def _halton(dims: int, seed: int) -> Any:
    # Built once per process: scrambling draws the permutations, which costs milliseconds.
    engine = _engines.get((dims, seed))
    if engine is None:
        from scipy.stats import qmc

        engine = _engines[(dims, seed)] = qmc.Halton(d=dims, scramble=True, seed=seed)
    return engine.reset()


_engines: dict[tuple[int, int], Any] = {}


def np_seed(*parts: int) -> int:
    """A 31-bit seed derived from integers, stable across processes and machines."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] & 0x7FFF_FFFF)
