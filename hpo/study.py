"""The Study definition: the experiment's design, validated before anything touches storage.

A study states the experiment's design: the question (goal), the metric and its direction,
the roles of every hyperparameter, the budget and the phase. It is validated completely when
it is constructed, so a worker never opens storage for a study that cannot run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from hpo import attrs
from hpo.design import SAMPLER_SETTINGS
from hpo.space import Space, SpaceError

if TYPE_CHECKING:
    import optuna

    from hpo.context import Config, Context

PHASES = ("explore", "exploit")
DIRECTIONS = ("minimize", "maximize")


class Study:
    """One experiment: a question, a metric, a space of roles, a budget and a phase.

    A study file defines one ``Study`` at module level; ``hpo run``, ``hpo workers`` and the
    analysis commands load it from there. The whole definition is checked when it is
    constructed, before anything touches storage.

    Example:
        ```python
        study = Study(
            name="digits-optimizer-v1",
            goal="Does Adam beat SGD with momentum on this MLP at 1,500 steps?",
            metric="val_error", direction="minimize",
            space={
                "optimizer": scientific(choice("sgd_momentum", "adam")),
                "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
                "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd_momentum"}),
                "batch_size": fixed(64),
            },
            objective=train, trials_per_value=12, phase="explore", seed=0,
        )
        ```

    Args:
        name: Identifies the study in storage, together with a fingerprint of its design
            (everything that decides which point and seed each slot gets: the space, the
            scientific values and their order, the seed, the phase and its sampler's
            settings) and its direction. A stored study of this name with another design or
            direction is refused when a worker opens it
            ([`StudyMismatchError`][hpo.StudyMismatchError], naming what changed): bump the
            name (``digits-optimizer-v2``) for a new design.
        goal: The question the study answers, in words; stored on the study and shown by
            optuna-dashboard and ``hpo report``.
        metric: The name of the value the objective returns, e.g. ``"val_error"``.
        direction: ``"minimize"`` or ``"maximize"``.
        space: Every hyperparameter's name and role: a dict (or a sequence of
            ``(name, role)`` pairs) of [`scientific`][hpo.scientific],
            [`nuisance`][hpo.nuisance] and [`fixed`][hpo.fixed]. Names must be Python
            identifiers.
        objective: ``objective(config, ctx) -> float``, called once per trial with the
            trial's [`Config`][hpo.Config] and [`Context`][hpo.Context]. It returns the
            metric; NaN or infinity marks the trial as diverged (failed, counted as
            infeasible).
        trials_per_value: The budget: each scientific value (each combination of values)
            gets this many trials, so the study's total is ``trials_per_value`` times the
            number of scientific values, unless ``--trials N`` sets the total.
        phase: ``"explore"``: nuisance hyperparameters from a paired quasi-random design
            (scrambled Halton), non-adaptive and reproducible, for insight. ``"exploit"``:
            Bayesian optimization (TPE) inside each scientific value once it has 10 finished
            trials (quasi-random points until then), for the best model after exploration.
        seed: Seeds the quasi-random sequence and the trials' seeds; the k-th trial of every
            scientific value gets the same nuisance point and the same ``ctx.seed``. Another
            seed gives another design, to measure study-to-study variance.
        pruner: A pruner that [`Context.report`][hpo.Context.report] consults; None: no
            pruning. It compares a trial only with trials of its own scientific value:
            [`hpo.MedianPruner`][hpo.MedianPruner],
            [`hpo.SuccessiveHalvingPruner`][hpo.SuccessiveHalvingPruner],
            [`hpo.HyperbandPruner`][hpo.HyperbandPruner], or any Optuna pruner, which is
            wrapped in [`hpo.PerValuePruner`][hpo.PerValuePruner] to the same effect.
        trial_timeout: Seconds a trial may run; a trial past it is stopped and recorded as
            failed with kind ``timeout`` (not infeasible), and ``hpo retry`` can queue it
            again. ``--trial-timeout`` on ``hpo run``/``workers``/``worker`` wins over it.
            None: no limit. Not part of the design's identity.

    Raises:
        SpaceError: If any argument breaks a rule (an empty name or goal, an unknown
            direction or phase, a non-positive budget, an objective that is not callable,
            any mistake in the space); the message is one line that names the field and the
            value and says what is allowed.

    Attributes:
        name: As given.
        goal: As given.
        metric: As given.
        direction: As given.
        space: The validated space.
        objective: As given.
        trials_per_value: As given.
        phase: As given.
        seed: As given.
        pruner: As given.
        trial_timeout: As given.
    """

    def __init__(
        self,
        *,
        name: str,
        goal: str,
        metric: str,
        direction: str = "minimize",
        space: Mapping[str, Any] | Iterable[tuple[str, Any]],
        objective: Callable[[Config, Context], float],
        trials_per_value: int = 16,
        phase: str = "explore",
        seed: int = 0,
        pruner: optuna.pruners.BasePruner | None = None,
        trial_timeout: float | None = None,
    ):
        _require(isinstance(name, str) and name.strip() != "", "name", name,
                 "a non-empty string such as 'digits-optimizer-v1'")
        _require(isinstance(goal, str) and goal.strip() != "", "goal", goal,
                 "the question the study answers, in words")
        _require(isinstance(metric, str) and metric.strip() != "", "metric", metric,
                 "the name of the value the objective returns, e.g. 'val_error'")
        _require(direction in DIRECTIONS, "direction", direction, " or ".join(DIRECTIONS))
        _require(phase in PHASES, "phase", phase,
                 "'explore' (quasi-random, for insight) or "
                 "'exploit' (Bayesian, for the best model)")
        _require(isinstance(trials_per_value, int) and not isinstance(trials_per_value, bool)
                 and trials_per_value >= 1, "trials_per_value", trials_per_value,
                 "a positive integer")
        _require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
                 "a non-negative integer")
        _require(callable(objective), "objective", objective,
                 "a function objective(config, ctx) -> float")
        _require(trial_timeout is None or (
            isinstance(trial_timeout, (int, float)) and not isinstance(trial_timeout, bool)
            and math.isfinite(trial_timeout) and trial_timeout > 0), "trial_timeout",
            trial_timeout, "a number of seconds > 0, or None for no limit")
        if pruner is not None:
            import optuna

            _require(isinstance(pruner, optuna.pruners.BasePruner), "pruner", pruner,
                     "an Optuna pruner such as optuna.pruners.MedianPruner() or None")
        self.name = name
        self.goal = goal
        self.metric = metric
        self.direction = direction
        self.space = space if isinstance(space, Space) else Space(space)
        self.objective = objective
        self.trials_per_value = trials_per_value
        self.phase = phase
        self.seed = seed
        if pruner is not None:
            from hpo.pruners import UnfairPruner, per_value

            try:
                pruner = per_value(pruner, self.space)  # fair: within each scientific value
            except UnfairPruner as e:
                raise SpaceError(f"Study pruner: {e}") from None
        self.pruner = pruner
        self.trial_timeout = None if trial_timeout is None else float(trial_timeout)
        # Everything written to storage is checked now, so a worker never writes half a
        # study (the space's fixed values are checked where they are defined; this is the
        # last word on what goes into storage).
        try:
            json.dumps(self.user_attrs(), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise SpaceError(f"Study {name!r}: its design cannot be recorded in storage as "
                             f"JSON ({e}); give plain values (str, int, float, bool, None, "
                             "lists, dicts)") from None

    @property
    def budget(self) -> int:
        """The study's own total budget: trials per scientific value times the values."""
        return self.trials_per_value * len(self.space.scientific_values())

    def user_attrs(self) -> dict[str, Any]:
        """What optuna-dashboard shows on the study page: the design, recorded with results."""
        return {
            attrs.STUDY_GOAL: self.goal,
            attrs.STUDY_METRIC: self.metric,
            attrs.STUDY_PHASE: self.phase,
            attrs.STUDY_SEED: self.seed,
            attrs.STUDY_TRIALS_PER_VALUE: self.trials_per_value,
            attrs.STUDY_ROLES: {n: hp.role for n, hp in self.space.hyperparameters.items()},
            attrs.STUDY_FIXED: self.space.fixed,
            attrs.STUDY_SPACE: self.space.describe(),
            attrs.STUDY_DESIGN: self.design(),
            attrs.STUDY_DESIGN_FINGERPRINT: self.fingerprint(),
            # Last: a stored study that has it has all of the above (hpo.store.opening).
            attrs.STUDY_FINGERPRINT: self.space.fingerprint(),
        }

    # --- identity: what makes two definitions the same design --------------------------

    def design(self) -> dict[str, Any]:
        """Everything that decides which point and seed each slot gets, JSON-ready.

        The budget is not in it (``--trials`` may grow a study), nor the goal, the pruner or
        the time limit: they change which trials finish, not what a slot is. Order matters
        where the design depends on it: slot ``s`` runs the ``s % V``-th scientific value.
        """
        return {
            "space": [[name, entry] for name, entry in self.space.describe().items()],
            "scientific_values": [[[k, v] for k, v in value.items()]
                                  for value in self.space.scientific_values()],
            "seed": self.seed,
            "phase": self.phase,
            "sampler": SAMPLER_SETTINGS[self.phase],
        }

    def fingerprint(self) -> str:
        """A short hash of :meth:`design`: a changed design must not reuse an old name."""
        text = json.dumps(self.design(), sort_keys=True, separators=(",", ":"), default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def changes_from(self, stored: Mapping[str, Any]) -> list[str] | None:
        """How this design differs from a stored study's (its user attributes), each as a
        phrase ("a different seed (0 in storage, 1 now)"); [] when it is the same design;
        None when the stored study records no design at all (not made by hpo, or left
        half-made).

        Studies stored before the design fingerprint existed recorded the space's
        fingerprint, seed and phase; those are compared instead.
        """
        if attrs.STUDY_DESIGN_FINGERPRINT in stored:
            if stored[attrs.STUDY_DESIGN_FINGERPRINT] == self.fingerprint():
                return []
            old = stored.get(attrs.STUDY_DESIGN)
            # As storage gives it back (a tuple comes back a list), or all would differ.
            new = json.loads(json.dumps(self.design(), default=repr))
            changes = _design_changes(old, new) if isinstance(old, dict) else []
            return changes or [f"a different design (fingerprint "
                               f"{stored[attrs.STUDY_DESIGN_FINGERPRINT]} in storage, "
                               f"{self.fingerprint()} now)"]
        if attrs.STUDY_FINGERPRINT not in stored:
            return None
        changes = []
        if stored[attrs.STUDY_FINGERPRINT] != self.space.fingerprint():
            old_space = stored.get(attrs.STUDY_SPACE)
            changes += _space_changes(list(old_space.items()) if isinstance(old_space, dict)
                                      else [], list(self.space.describe().items())) or [
                f"a different search space (fingerprint {stored[attrs.STUDY_FINGERPRINT]} in "
                f"storage, {self.space.fingerprint()} now)"]
        for key, now in ((attrs.STUDY_SEED, self.seed), (attrs.STUDY_PHASE, self.phase)):
            if key in stored and stored[key] != now:
                changes.append(f"a different {key} ({stored[key]!r} in storage, {now!r} now)")
        return changes

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, phase={self.phase!r}, budget={self.budget})"


def _design_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two :meth:`Study.design` records, in words."""
    changes = _space_changes([tuple(p) for p in old.get("space", [])],
                             [tuple(p) for p in new["space"]])
    if not changes and old.get("scientific_values") != new["scientific_values"]:
        changes.append(f"the scientific values in another order "
                       f"({_values_text(old.get('scientific_values'))} in storage, "
                       f"{_values_text(new['scientific_values'])} now)")
    for key in ("seed", "phase"):
        if old.get(key) != new[key]:
            changes.append(f"a different {key} ({old.get(key)!r} in storage, {new[key]!r} now)")
    if old.get("phase") == new["phase"] and old.get("sampler") != new["sampler"]:
        changes.append(f"different sampler settings ({old.get('sampler')} in storage, "
                       f"{new['sampler']} now: this hpo samples differently)")
    return changes


def _space_changes(old: list[tuple[str, Any]], new: list[tuple[str, Any]]) -> list[str]:
    """The hyperparameters added, removed or changed, as one phrase (or none)."""
    before, after = dict(old), dict(new)
    parts = [f"{n} added" for n in after if n not in before]
    parts += [f"{n} removed" for n in before if n not in after]
    parts += [f"{n}: {_entry_text(before[n])} in storage, {_entry_text(after[n])} now"
              for n in after if n in before and before[n] != after[n]]
    return [f"a different search space ({'; '.join(parts)})"] if parts else []


def _entry_text(entry: Any) -> str:
    if not isinstance(entry, dict):
        return repr(entry)
    what = entry.get("distribution", f"{entry.get('value')!r}")
    when = f" when {entry['when']}" if entry.get("when") else ""
    return f"{entry.get('role')}({what}){when}"


def _values_text(values: Any) -> str:
    if not isinstance(values, list):
        return "?"
    return "[" + ", ".join(", ".join(f"{k}={v}" for k, v in value) or "()"
                           for value in values) + "]"


def _require(ok: bool, field: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SpaceError(f"Study {field}: got {value!r}; expected {allowed}")
