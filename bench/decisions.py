"""Decision quality: how often does each tuning strategy name the right scientific value?

Synthetic tuning problems with known answers, repeated hundreds of times with no storage and
no processes, so every strategy can be scored against the truth.

The problems (fixed before any strategy was run on them; judge them yourself)
-----------------------------------------------------------------------------
The metric is a validation error (lower is better). Every training run adds seed noise to the
configuration's true error, std ``NOISE_STD`` = 0.002 (a run-to-run std typical of a few hundred
validation examples). Every run also has a training curve (for the pruners): ten evaluations,
at 10%, 20%, ... 100% of training, falling from 0.9 (chance) towards the run's final value as
``exp(-t / tau)`` of the fraction of training done, rescaled so the tenth evaluation is the final
value; ``tau`` is a property of the scientific value (some values start slow). A run that
diverges stops at its second evaluation (20% of the compute) and counts as infeasible.

**two optimizers** (as before this benchmark grew; it mirrors ``studies/digits_optimizer.py``):
``sgd_momentum`` or ``adam``; nuisance ``learning_rate`` (log-uniform 1e-4..1), ``momentum``
(SGD only) or ``beta1`` (Adam only), both uniform 0.8..0.99, and ``weight_decay`` (log-uniform
1e-6..1e-2).

* SGD with momentum: a bowl in the *effective* learning rate ``lr / (1 - momentum)`` (the two
  trade off along a ridge, as they do in practice), best at 1.0; 0.015 error per squared
  decade away from it; diverges above 10 ** 0.8. Floor 0.022. Slow start: tau 0.35.
* Adam: a bowl in ``lr``, best at 2e-3, 0.015 per squared decade; a mild beta1 term
  ``0.05 * (beta1 - 0.9) ** 2``; diverges above 0.05. Floor 0.030 (main) or 0.023 (null).
  Fast start: tau 0.1.
* Weight decay: ``0.002`` per squared decade from its own optimum, 1e-4 for SGD, 1e-5 for Adam.
* Seed noise independent between runs.

Main: tuned SGD beats tuned Adam by 0.008 (4 noise std), yet at the shared default learning
rate 1e-3 (Adam's default; momentum and beta1 0.9, weight decay 1e-4) Adam looks far better:
the answer a fixed default gives is wrong. Null: the floors differ by 0.001 (half a noise std),
so naming any winner is a false winner.

**three optimizers** (values of unequal tuning difficulty, an optimum near a range edge, a
divergence region, paired seed noise): ``adagrad``, ``sgd_momentum`` or ``adam``.

* Adagrad: two nuisance hyperparameters, ``learning_rate`` and ``weight_decay``. A wide bowl,
  0.01 per squared decade of ``lr``, best at ``lr = 0.5``: 92.5% of the way up the log range,
  inside its top tenth, where hpo's boundary check fires. Never diverges in range. tau 0.15.
* SGD with momentum: three, ``learning_rate``, ``momentum``, ``weight_decay``; as in *two
  optimizers* (the effective-learning-rate ridge, best at 1.0, 0.015 per squared decade),
  diverging above an effective learning rate of 10 ** 0.8, right next to its optimum. Slow
  start, tau 0.35.
* Adam: four, ``learning_rate``, ``beta1``, ``beta2`` (uniform 0.9..0.9999) and
  ``weight_decay``. A narrow bowl, 0.04 per squared decade of ``lr`` around 2e-3, diverging
  above 0.05; ``0.05 * (beta1 - 0.9) ** 2``; ``0.01`` per squared decade of ``1 - beta2`` away
  from 1e-3 (beta2 = 0.999). tau 0.1.
* Weight decay as in *two optimizers*: optimum 1e-4 for Adagrad and SGD, 1e-5 for Adam.
* Seed noise partly shared, as real pairs are (the k-th trial of every value runs with the same
  seed): half its variance is common to the k-th trials of all three values, half is the run's
  own. Seed re-runs get new seeds, so their noise is independent.

Main: Adagrad (floor 0.022) beats SGD with momentum (0.028) by 3 noise std and Adam (0.030) by
4: the winner is the value whose optimum sits near the edge of the range. Null: all three
floors 0.022.

**outliers** (seed noise with a bad seed now and then): *two optimizers* again, main and null,
but each run (design trials and seed re-runs alike), with probability 0.05, is a bad seed: its
error is raised by a further uniform 0.01..0.03 (5 to 15 noise std).

Strategies
----------
At a fixed budget of B trials per scientific value (B = 4, 8, 16, 32):

* ``hpo (explore + seeds + verdict)``: the explore design, ``PlaybookSampler(space,
  seed=rep).explore_params(slot)`` for slots 0..B*V-1 (balanced, paired scrambled Halton), then
  ``hpo seeds --top 1 --repeats 5`` (each value's best trial re-run with 5 new seeds) and hpo's
  own verdict (``hpo.analysis.verdict`` on in-memory Optuna trials): a winner only when it beats
  every other value by more than the seed-noise margin plus that value's search uncertainty.
* ``hpo unpaired``: the same, but each scientific value gets its own independently scrambled
  Halton sequence (a different sampler seed per value).
* ``hpo + fair hyperband``: the same design with ``hpo.HyperbandPruner(min_resource=1,
  max_resource=10, reduction_factor=3)``: a trial is compared only with trials of its own
  scientific value. Seed re-runs are never pruned.
* ``hpo + optuna hyperband``: the same, with Optuna's ``HyperbandPruner`` (same settings)
  comparing every trial with every other, across scientific values: what a ``pruner=`` did
  before hpo had its own.
* ``optuna random`` / ``optuna qmc`` / ``optuna tpe``: one plain Optuna study over the joint
  space (optimizer as a categorical, conditional nuisance hyperparameters), ``B * V`` trials
  with Optuna's RandomSampler, QMCSampler or default TPESampler; the verdict is the value whose
  best single trial is lowest (a value with no trial means no verdict).
* ``optuna tpe + hyperband``: the peer a user would pick, TPESampler with Optuna's
  HyperbandPruner (the settings above), best single trial.
* ``naive default``: every nuisance hyperparameter at the default above, B seeds per value;
  the value with the lower mean wins.

The hpo strategies spend 5 extra evaluations per value on re-runs. The ``+5`` rows give the
Optuna strategies the same total evaluations (B + 5 per value) so the comparison is fair both
ways.

And with no fixed budget:

* ``hpo --until-decided`` (and ``+ fair hyperband``): ``hpo.decide``'s rounds, as
  ``hpo run --until-decided --max-trials 32*V`` runs them: 4 trials per value, seed re-runs of
  each contender's best, the verdict; then more trials only for the values still in contention
  whose tuning has not converged (doubling them), more re-runs when only the noise stands in
  the way, until decided or 32 design trials per value are spent.

Columns: % correct (names the true winner), % wrong (names another value), % none (no winner
named) in the main scenarios; % false winner (any winner named) in the null ones; the mean
design trials and evaluations (design trials + re-runs) per value, and the mean compute per
value in full training runs (a pruned run counts the fraction of training it ran).

    python bench/decisions.py            # 200 repetitions per cell
    python bench/decisions.py --quick    # 10 repetitions, budgets 4 and 16
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's hpo

import hpo
from hpo import Study, choice, log_uniform, nuisance, scientific, uniform
from hpo.analysis.results import RERUN_ATTR, collect
from hpo.analysis.verdict import verdict
from hpo.attrs import SEED as SEED_ATTR
from hpo.attrs import SLOT as SLOT_ATTR
from hpo.decide import next_action, start_state
from hpo.sampling import PlaybookSampler

NOISE_STD = 0.002
RERUNS = 5  # hpo seeds --top 1 --repeats 5
STEPS = 10  # evaluations per run (the pruners' steps)
DIVERGE_AT = 2  # a diverging run stops at its second evaluation
START = 0.9  # chance error, where every curve starts
UNTIL = "until decided"
MAX_PER_VALUE = 32  # --until-decided's cap: the largest fixed budget


# --- the problems (see the module docstring) -----------------------------------------------


def _bowl(x: float, best: float, per_decade: float) -> float:
    return per_decade * (x - best) ** 2


def two_optimizers(config: dict, floors: dict[str, float]) -> float | None:
    """True error, or None where the run diverges."""
    lr, wd = config["learning_rate"], config["weight_decay"]
    if config["optimizer"] == "sgd_momentum":
        effective = math.log10(lr / (1.0 - config["momentum"]))
        if effective > 0.8:
            return None
        return (floors["sgd_momentum"] + _bowl(effective, 0.0, 0.015)
                + _bowl(math.log10(wd), -4, 0.002))
    if lr > 0.05:
        return None
    return (floors["adam"] + _bowl(math.log10(lr), math.log10(2e-3), 0.015)
            + 0.05 * (config["beta1"] - 0.9) ** 2 + _bowl(math.log10(wd), -5, 0.002))


def three_optimizers(config: dict, floors: dict[str, float]) -> float | None:
    lr, wd = config["learning_rate"], config["weight_decay"]
    optimizer = config["optimizer"]
    if optimizer == "adagrad":
        return (floors["adagrad"] + _bowl(math.log10(lr), math.log10(0.5), 0.01)
                + _bowl(math.log10(wd), -4, 0.002))
    if optimizer == "sgd_momentum":
        return two_optimizers(config, floors)
    if lr > 0.05:
        return None
    return (floors["adam"] + _bowl(math.log10(lr), math.log10(2e-3), 0.04)
            + 0.05 * (config["beta1"] - 0.9) ** 2
            + _bowl(math.log10(1 - config["beta2"]), -3, 0.01) + _bowl(math.log10(wd), -5, 0.002))


LR, WD = log_uniform(1e-4, 1.0), log_uniform(1e-6, 1e-2)


@dataclass(frozen=True)
class Problem:
    name: str
    values: tuple[str, ...]
    conditional: dict[str, tuple[dict, tuple[str, ...]]]  # name -> (distribution, values)
    error: Callable[[dict, dict[str, float]], float | None]
    tau: dict[str, float]
    shared: float = 0.0  # fraction of the noise variance shared by the k-th trials
    outliers: float = 0.0  # chance that a run is a bad seed
    definition: Study = field(init=False)

    def __post_init__(self) -> None:
        space = {"optimizer": scientific(choice(*self.values)),
                 "learning_rate": nuisance(LR), "weight_decay": nuisance(WD)}
        for name, (dist, values) in self.conditional.items():
            space[name] = nuisance(dist, when={"optimizer": list(values)})
        object.__setattr__(self, "definition", Study(
            name=f"decisions-{self.name}", goal="Which optimizer is better once each is tuned?",
            metric="val_error", direction="minimize", space=space,
            objective=lambda config, ctx: 0.0, trials_per_value=1))

    def distributions(self, config: dict) -> dict:
        space = self.definition.space.hyperparameters
        return {n: space[n].distribution.to_optuna() for n in config}

    def optuna_config(self, trial: optuna.Trial) -> dict:
        """The joint space as a plain Optuna objective suggests it."""
        config = {"optimizer": trial.suggest_categorical("optimizer", self.values),
                  "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)}
        for name, (dist, values) in self.conditional.items():
            if config["optimizer"] in values:
                config[name] = trial.suggest_float(name, dist.low, dist.high)
        config["weight_decay"] = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        return config

    def default(self, value: str) -> dict:
        config = {"optimizer": value, "learning_rate": 1e-3, "weight_decay": 1e-4}
        for name, (_, values) in self.conditional.items():
            if value in values:
                config[name] = DEFAULTS[name]
        return config


DEFAULTS = {"momentum": 0.9, "beta1": 0.9, "beta2": 0.999}
TWO = Problem("two optimizers", ("sgd_momentum", "adam"),
              {"momentum": (uniform(0.8, 0.99), ("sgd_momentum",)),
               "beta1": (uniform(0.8, 0.99), ("adam",))},
              two_optimizers, {"sgd_momentum": 0.35, "adam": 0.1})
THREE = Problem("three optimizers", ("adagrad", "sgd_momentum", "adam"),
                {"momentum": (uniform(0.8, 0.99), ("sgd_momentum",)),
                 "beta1": (uniform(0.8, 0.99), ("adam",)),
                 "beta2": (uniform(0.9, 0.9999), ("adam",))},
                three_optimizers, {"adagrad": 0.15, "sgd_momentum": 0.35, "adam": 0.1},
                shared=0.5)
OUTLIERS = Problem("outliers", TWO.values, TWO.conditional, two_optimizers, TWO.tau,
                   outliers=0.05)


@dataclass(frozen=True)
class Scenario:
    problem: Problem
    kind: str  # "main" or "null"
    floors: dict[str, float]  # best achievable error per value
    winner: str | None  # the true winner; None: naming any winner is a false winner

    @property
    def name(self) -> str:
        return f"{self.problem.name}: {self.kind}"


SCENARIOS = (
    Scenario(TWO, "main", {"sgd_momentum": 0.022, "adam": 0.030}, "sgd_momentum"),
    Scenario(TWO, "null", {"sgd_momentum": 0.022, "adam": 0.023}, None),
    Scenario(THREE, "main", {"adagrad": 0.022, "sgd_momentum": 0.028, "adam": 0.030},
             "adagrad"),
    Scenario(THREE, "null", {"adagrad": 0.022, "sgd_momentum": 0.022, "adam": 0.022}, None),
    Scenario(OUTLIERS, "main", {"sgd_momentum": 0.022, "adam": 0.030}, "sgd_momentum"),
    Scenario(OUTLIERS, "null", {"sgd_momentum": 0.022, "adam": 0.023}, None),
)


# --- one training run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    value: float | None  # the final validation error; None: diverged (infeasible)
    curve: tuple[float, ...]  # the evaluations it reported (fewer when it diverged)


class World:
    """One repetition's randomness: the seed noise of every run, reproducibly."""

    def __init__(self, scenario: Scenario, rng: np.random.Generator):
        self.scenario, self.rng = scenario, rng
        self.shared: dict[int, float] = {}

    def noise(self, pair: int | None) -> float:
        p = self.scenario.problem
        own = self.rng.normal(0.0, NOISE_STD)
        if pair is not None and p.shared:  # the k-th trials of every value share a seed
            common = self.shared.setdefault(pair, float(self.rng.normal(0.0, NOISE_STD)))
            own = math.sqrt(p.shared) * common + math.sqrt(1 - p.shared) * own
        if p.outliers and self.rng.random() < p.outliers:
            own += self.rng.uniform(0.01, 0.03)  # a bad seed
        return float(own)

    def run(self, config: dict, pair: int | None = None) -> Run:
        true = self.scenario.problem.error(config, self.scenario.floors)
        noise = self.noise(pair)
        if true is None:
            return Run(None, (START,) * DIVERGE_AT)
        final = true + noise
        tau = self.scenario.problem.tau[config["optimizer"]]
        scale = (START - true) / (1 - math.exp(-1 / tau))
        curve = tuple(final + scale * (math.exp(-t / (STEPS * tau)) - math.exp(-1 / tau))
                      for t in range(1, STEPS + 1))
        return Run(final, curve)


@dataclass
class Outcome:
    named: str | None
    trials: float  # design trials per value
    evals: float  # design trials + re-runs per value
    compute: float  # full training runs' worth per value


# --- hpo -------------------------------------------------------------------------------------


def _label(value: str) -> str:
    return f"optimizer={value}"


class HpoRun:
    """An in-memory study that hpo's sampler, pruners, verdict and controller work on, its
    trials run the way one worker runs them (slot by slot, reporting every evaluation)."""

    def __init__(self, problem: Problem, world: World, sampler: Callable[[int], dict],
                 pruner: optuna.pruners.BasePruner | None):
        self.problem, self.world, self.sampler = problem, world, sampler
        # RandomSampler: every point is fixed (enqueued), so no sampler's time is spent.
        self.study = optuna.create_study(direction="minimize", pruner=pruner,
                                         sampler=optuna.samplers.RandomSampler(seed=0))
        self.pruning = pruner is not None
        self.compute = 0.0
        self.reruns = 0

    def run_slots(self, slots: list[int]) -> None:
        values = len(self.problem.values)
        for slot in slots:
            config = self.sampler(slot)
            run = self.world.run(config, pair=slot // values)
            attrs = {SLOT_ATTR: slot, SEED_ATTR: slot // values}
            if not self.pruning:
                self.compute += len(run.curve) / STEPS
                self._add(config, run.value, attrs, intermediate=None)
                continue
            self.study.enqueue_trial(config, user_attrs=attrs)
            trial = self.study.ask(self.problem.distributions(config))
            for step, value in enumerate(run.curve, start=1):
                trial.report(value, step)
                if trial.should_prune():
                    self.compute += step / STEPS
                    self.study.tell(trial, state=TrialState.PRUNED)
                    break
            else:
                self.compute += len(run.curve) / STEPS
                if run.value is None:
                    self.study.tell(trial, state=TrialState.FAIL)
                else:
                    self.study.tell(trial, run.value)

    def rerun(self, reruns: list) -> None:
        slot_of = {t.number: t.user_attrs[SLOT_ATTR] for t in self.study.get_trials(
            deepcopy=False)}
        for r in reruns:
            run = self.world.run(r.params)  # a new seed: noise of its own
            self.compute += 1.0
            self.reruns += 1
            self._add(r.params, run.value, {SLOT_ATTR: slot_of[r.of], SEED_ATTR: r.seed,
                                            RERUN_ATTR: r.of})

    def _add(self, config: dict, value: float | None, attrs: dict, intermediate=None) -> None:
        self.study.add_trial(create_trial(
            state=TrialState.COMPLETE if value is not None else TrialState.FAIL, value=value,
            params=config, distributions=self.problem.distributions(config), user_attrs=attrs,
            intermediate_values=intermediate))

    def design_trials(self) -> int:
        return sum(1 for t in self.study.get_trials(deepcopy=False)
                   if RERUN_ATTR not in t.user_attrs)


def _sampler(problem: Problem, rep: int, paired: bool) -> Callable[[int], dict]:
    space = problem.definition.space
    values = len(problem.values)
    if paired:
        one = PlaybookSampler(space, seed=rep)
        return one.explore_params
    # A differently scrambled Halton sequence for each value: no shared nuisance draws.
    each = [PlaybookSampler(space, seed=rep * values + 1 + v) for v in range(values)]
    return lambda slot: each[slot % values].explore_params(slot)


def _top_reruns(h: HpoRun, definition: Study) -> None:
    from hpo.analysis.seeds import plan_seed_reruns

    h.rerun(plan_seed_reruns(definition, h.study, top=1, repeats=RERUNS))


def run_hpo(rep: int, budgets: list[int], scenario: Scenario, rng: np.random.Generator, *,
            paired: bool = True, pruner: Callable[[], optuna.pruners.BasePruner] | None = None,
            fair: bool = True) -> dict:
    """The fixed-budget hpo strategies: each budget's study is the first B*V slots of one
    sequential run (what a study of B trials per value would have run), then re-runs."""
    problem = scenario.problem
    values = len(problem.values)
    definition = problem.definition
    if pruner is not None and fair:
        definition = Study(name=definition.name, goal=definition.goal, metric="val_error",
                           space=definition.space, objective=definition.objective,
                           trials_per_value=1, pruner=pruner())
    full = HpoRun(problem, World(scenario, rng), _sampler(problem, rep, paired),
                  None if pruner is None else definition.pruner if fair else pruner())
    full.run_slots(list(range(max(budgets) * values)))
    design = sorted(full.study.get_trials(deepcopy=False), key=lambda t: t.number)
    costs = _costs(design, values)
    out = {}
    for b in budgets:
        h = HpoRun(problem, full.world, full.sampler, None)
        h.study.add_trials(design[: b * values])
        _top_reruns(h, definition)
        named = verdict(collect(definition, h.study)).winner
        out[b] = Outcome(_value_of(named), b, b + h.reruns / values,
                         (sum(costs[: b * values]) + h.reruns) / values)
    return out


def _costs(trials: list, values: int) -> list[float]:
    """Each design trial's compute, in full runs: the evaluations it reported / STEPS."""
    out = []
    for t in trials:
        if t.state == TrialState.COMPLETE:
            out.append(1.0)
        elif t.state == TrialState.PRUNED or t.intermediate_values:
            out.append(max(t.intermediate_values, default=DIVERGE_AT) / STEPS)
        else:
            out.append(DIVERGE_AT / STEPS)  # diverged: stopped at its second evaluation
    return out


def _value_of(label: str | None) -> str | None:
    return label.split("=", 1)[1] if label else None


def run_until_decided(rep: int, scenario: Scenario, rng: np.random.Generator, *,
                      pruner: Callable[[], optuna.pruners.BasePruner] | None = None) -> Outcome:
    """hpo.decide's rounds, its actions carried out in memory instead of by workers."""
    problem = scenario.problem
    values = len(problem.values)
    definition = problem.definition
    if pruner is not None:
        definition = Study(name=definition.name, goal=definition.goal, metric="val_error",
                           space=definition.space, objective=definition.objective,
                           trials_per_value=1, pruner=pruner())
    h = HpoRun(problem, World(scenario, rng), _sampler(problem, rep, True), definition.pruner)
    state = start_state(definition, h.study, MAX_PER_VALUE * values)
    while True:
        action = next_action(definition, h.study, state)
        state = action.state
        if action.kind == "trials":
            h.run_slots(list(action.slots))
        elif action.kind == "reruns":
            h.rerun(list(action.reruns))
        else:
            design = h.design_trials()
            return Outcome(_value_of(state.winner), design / values,
                           (design + h.reruns) / values, h.compute / values)


# --- the Optuna baselines and the naive habit -------------------------------------------------


def best_single_trial(trials: list[tuple[dict, float]], values: tuple[str, ...]) -> str | None:
    """The plain-Optuna habit: the value whose best trial is lowest."""
    best: dict[str, float] = {}
    for config, value in trials:
        group = config["optimizer"]
        best[group] = min(value, best.get(group, math.inf))
    if len(best) < len(values):
        return None  # a value never sampled (or never feasible): nothing to compare
    return min(best, key=best.__getitem__)


def optuna_joint(sampler: Callable[[int], optuna.samplers.BaseSampler],
                 pruner: Callable[[], optuna.pruners.BasePruner] | None = None) -> Callable:
    def run(rep: int, budgets: list[int], scenario: Scenario, rng: np.random.Generator,
            extra: int = 0) -> dict:
        problem = scenario.problem
        world = World(scenario, rng)
        values = len(problem.values)
        done: list[tuple[dict, float | None, float]] = []  # config, value, compute

        def objective(trial: optuna.Trial) -> float:
            config = problem.optuna_config(trial)
            run = world.run(config)
            for step, value in enumerate(run.curve, start=1):
                if pruner is not None:
                    trial.report(value, step)
                    if trial.should_prune():
                        done.append((config, None, step / STEPS))
                        raise optuna.TrialPruned()
            done.append((config, run.value, len(run.curve) / STEPS))
            return math.nan if run.value is None else run.value  # nan: Optuna's FAIL

        study = optuna.create_study(direction="minimize", sampler=sampler(rep),
                                    pruner=pruner() if pruner else None)
        study.optimize(objective, n_trials=(max(budgets) + extra) * values)
        out = {}
        for b in budgets:
            # A sequential study's first n trials are exactly what a study of n would run.
            first = done[: (b + extra) * values]
            finished = [(c, v) for c, v, _ in first if v is not None]
            out[b] = Outcome(best_single_trial(finished, problem.values), b + extra, b + extra,
                             sum(cost for _, _, cost in first) / values)
        return out

    return run


def run_naive(rep: int, budgets: list[int], scenario: Scenario,
              rng: np.random.Generator) -> dict:
    world = World(scenario, rng)
    problem = scenario.problem
    runs = {v: [world.run(problem.default(v), pair=k).value for k in range(max(budgets))]
            for v in problem.values}
    out = {}
    for b in budgets:
        means = {v: float(np.mean([x if x is not None else START for x in runs[v][:b]]))
                 for v in problem.values}
        out[b] = Outcome(min(means, key=means.__getitem__), b, b, b)
    return out


def hyperband_optuna() -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=STEPS, reduction_factor=3)


def hyperband_hpo() -> optuna.pruners.BasePruner:
    return hpo.HyperbandPruner(min_resource=1, max_resource=STEPS, reduction_factor=3)


HPO = "hpo (explore + seeds + verdict)"
HPO_PRUNED = "hpo + fair hyperband"
UNTIL_HPO = "hpo --until-decided"
UNTIL_PRUNED = "hpo --until-decided + fair hyperband"
FIXED: dict[str, Callable] = {
    HPO: lambda *a: run_hpo(*a),
    "hpo unpaired": lambda *a: run_hpo(*a, paired=False),
    HPO_PRUNED: lambda *a: run_hpo(*a, pruner=hyperband_hpo),
    "hpo + optuna hyperband": lambda *a: run_hpo(*a, pruner=hyperband_optuna, fair=False),
    "optuna random": optuna_joint(lambda rep: optuna.samplers.RandomSampler(seed=rep)),
    "optuna qmc": optuna_joint(lambda rep: optuna.samplers.QMCSampler(seed=rep)),
    "optuna tpe": optuna_joint(lambda rep: optuna.samplers.TPESampler(seed=rep)),
    "optuna tpe + hyperband": optuna_joint(lambda rep: optuna.samplers.TPESampler(seed=rep),
                                           hyperband_optuna),
    "naive default": run_naive,
}
for _name in ("optuna random", "optuna qmc", "optuna tpe"):
    FIXED[f"{_name} +{RERUNS}"] = (lambda run: lambda *a: run(*a, extra=RERUNS))(FIXED[_name])
UNTIL_DECIDED: dict[str, Callable] = {
    UNTIL_HPO: lambda rep, scenario, rng: run_until_decided(rep, scenario, rng),
    UNTIL_PRUNED: lambda rep, scenario, rng: run_until_decided(rep, scenario, rng,
                                                               pruner=hyperband_hpo),
}
HPO_STRATEGIES = (HPO, HPO_PRUNED, UNTIL_HPO, UNTIL_PRUNED)  # the goals are about these


# --- running and printing ---------------------------------------------------------------------


def evaluate(reps: int, budgets: list[int], strategies: list[str], jobs: int = 1) -> dict:
    """{(scenario name, strategy): {budget or UNTIL: [Outcome per repetition]}}; the cells
    run in ``jobs`` processes (each cell's noise streams are its own, so the result does not
    depend on how many)."""
    cells = [(s_index, name) for s_index in range(len(SCENARIOS)) for name in strategies]
    work = partial(_cell, reps, budgets)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            done = list(pool.map(work, cells))
    else:
        done = [work(c) for c in cells]
    return {(SCENARIOS[s_index].name, name): cell
            for (s_index, name), cell in zip(cells, done, strict=True)}


def _cell(reps: int, budgets: list[int], which: tuple[int, str]) -> dict:
    s_index, name = which
    _quiet()
    scenario, names = SCENARIOS[s_index], list(FIXED) + list(UNTIL_DECIDED)
    started = time.monotonic()
    cell: dict = {}
    for rep in range(reps):
        # Its own noise stream per (scenario, strategy, repetition): reproducible.
        rng = np.random.default_rng([rep, names.index(name), s_index])
        if name in UNTIL_DECIDED:
            cell.setdefault(UNTIL, []).append(UNTIL_DECIDED[name](rep, scenario, rng))
        else:
            for b, outcome in FIXED[name](rep, budgets, scenario, rng).items():
                cell.setdefault(b, []).append(outcome)
    print(f"  {scenario.name:22} {name:38} {time.monotonic() - started:7.1f}s",
          file=sys.stderr, flush=True)
    return cell


def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*QMCSampler.*|.*balance properties.*")


def percent(outcomes: list[Outcome], predicate: Callable[[str | None], bool]) -> float:
    return 100.0 * sum(1 for o in outcomes if predicate(o.named)) / len(outcomes)


@dataclass(frozen=True)
class Cell:
    correct: float
    wrong: float
    none: float
    trials: float
    evals: float
    compute: float


def cell(outcomes: list[Outcome], truth: str | None) -> Cell:
    if truth is None:  # null: any winner named is false
        named = percent(outcomes, lambda n: n is not None)
        return Cell(math.nan, named, 100 - named, *_means(outcomes))
    return Cell(percent(outcomes, lambda n: n == truth),
                percent(outcomes, lambda n: n is not None and n != truth),
                percent(outcomes, lambda n: n is None), *_means(outcomes))


def _means(outcomes: list[Outcome]) -> tuple[float, float, float]:
    return (statistics.fmean(o.trials for o in outcomes),
            statistics.fmean(o.evals for o in outcomes),
            statistics.fmean(o.compute for o in outcomes))


def table(outcomes: dict, budgets: list, strategies: list[str], problem: Problem) -> list[str]:
    main = next(s for s in SCENARIOS if s.problem is problem and s.kind == "main")
    null = next(s for s in SCENARIOS if s.problem is problem and s.kind == "null")
    lines = [f"{problem.name} (main: {_label(main.winner or '')} wins; null: no winner)",
             f"{'strategy':38} {'trials/value':>12} {'evals/value':>11} {'compute/value':>13} "
             f"{'correct':>8} {'wrong':>6} {'none':>6} {'false winner (null)':>20} "
             f"{'null evals/value':>16}"]
    for b in budgets:
        for name in strategies:
            if (b == UNTIL) != (name in UNTIL_DECIDED):
                continue
            m = cell(outcomes[(main.name, name)][b], main.winner)
            n = cell(outcomes[(null.name, name)][b], None)
            trials = f"{b}" if b != UNTIL else f"{m.trials:.1f}"
            lines.append(f"{name:38} {trials:>12} {m.evals:>11.1f} {m.compute:>13.1f} "
                         f"{m.correct:7.1f}% {m.wrong:5.1f}% {m.none:5.1f}% {n.wrong:19.1f}% "
                         f"{n.evals:>16.1f}")
        lines.append("")
    return lines


def goals(outcomes: dict, budgets: list, strategies: list[str]) -> list[str]:
    lines = []
    keys = [*budgets, UNTIL]
    # 1. wrong <= 1% and false <= 5%, every hpo strategy, every scenario, every budget.
    worst_wrong, worst_false = (0.0, ""), (0.0, "")
    for s in SCENARIOS:
        for name in (n for n in HPO_STRATEGIES if n in strategies):
            for b in keys:
                if b not in outcomes[(s.name, name)]:
                    continue
                c = cell(outcomes[(s.name, name)][b], s.winner)
                where = f"{name}, {s.name}, {b}"
                if s.winner is not None and c.wrong > worst_wrong[0]:
                    worst_wrong = (c.wrong, where)
                if s.winner is None and c.wrong > worst_false[0]:
                    worst_false = (c.wrong, where)
    lines.append(f"goal wrong winner <= 1% (hpo, every scenario and budget): worst "
                 f"{worst_wrong[0]:.1f}% ({worst_wrong[1] or '-'}) -> "
                 f"{'met' if worst_wrong[0] <= 1 else 'NOT met'}")
    lines.append(f"goal false winner <= 5% (hpo, every null scenario and budget): worst "
                 f"{worst_false[0]:.1f}% ({worst_false[1] or '-'}) -> "
                 f"{'met' if worst_false[0] <= 5 else 'NOT met'}")
    # 2. --until-decided: >= 95% correct in every main scenario, mean cost <= the fixed 32.
    if UNTIL_HPO in strategies:
        fixed_cost = MAX_PER_VALUE + RERUNS  # evaluations per value of hpo at 32 trials/value
        parts, ok = [], True
        for s in (s for s in SCENARIOS if s.kind == "main"):
            c = cell(outcomes[(s.name, UNTIL_HPO)][UNTIL], s.winner)
            ok &= c.correct >= 95 and c.evals <= fixed_cost
            parts.append(f"{s.problem.name} {c.correct:.1f}% at {c.evals:.1f} evals/value")
        lines.append(f"goal --until-decided >= 95% correct in every main scenario at <= "
                     f"{fixed_cost} evals/value (the fixed 32's): {'; '.join(parts)} -> "
                     f"{'met' if ok else 'NOT met'}")
    # 3. fair pruning: the same decision quality at >= 2x less compute than without.
    pairs = [(HPO, HPO_PRUNED, b) for b in budgets] + [(UNTIL_HPO, UNTIL_PRUNED, UNTIL)]
    parts, ok = [], True
    for plain, pruned, b in pairs:
        if plain not in strategies or pruned not in strategies:
            continue
        ratios, drops = [], []
        for s in SCENARIOS:
            a, p = (cell(outcomes[(s.name, n)][b], s.winner) for n in (plain, pruned))
            ratios.append(a.compute / p.compute)
            if s.winner is not None:
                drops.append(a.correct - p.correct)
        worst_ratio, worst_drop = min(ratios), max(drops)
        # "The same quality": % correct within 2.5 points (about the sampling error of a
        # proportion near 95% at 200 repetitions is 1.5).
        ok &= worst_ratio >= 2 and worst_drop <= 2.5
        parts.append(f"{b}: compute {worst_ratio:.2f}x less at worst, correct {worst_drop:+.1f} "
                     "points lower at worst")
    if parts:
        lines.append("goal fair pruning: the same % correct (within 2.5 points) at >= 2x less "
                     f"compute, every scenario: {'; '.join(parts)} -> {'met' if ok else 'NOT met'}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="repetitions per cell")
    parser.add_argument("--budgets", type=int, nargs="+", default=[4, 8, 16, 32],
                        help="trials per scientific value")
    parser.add_argument("--strategies", nargs="+", metavar="NAME",
                        help="only these (default: all)")
    parser.add_argument("--quick", action="store_true", help="4 repetitions, budgets 4 and 16")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="processes (default: one per CPU)")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.budgets = 4, [4, 16]
    strategies = args.strategies or [*FIXED, *UNTIL_DECIDED]
    unknown = [s for s in strategies if s not in FIXED and s not in UNTIL_DECIDED]
    if unknown:
        parser.error(f"unknown strategies {unknown}; known: {[*FIXED, *UNTIL_DECIDED]}")
    _quiet()
    started = time.monotonic()
    print(f"decision benchmark, {datetime.date.today().isoformat()}, {platform.node()} "
          f"({platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}), "
          f"python {platform.python_version()}, optuna {optuna.__version__}: "
          f"{args.reps} repetitions per cell, seed noise std {NOISE_STD}, {RERUNS} seed re-runs "
          f"per value for hpo, --until-decided capped at {MAX_PER_VALUE} trials per value")
    outcomes = evaluate(args.reps, args.budgets, strategies, max(1, args.jobs))
    print()
    for problem in (TWO, THREE, OUTLIERS):
        for line in table(outcomes, [*args.budgets, UNTIL], strategies, problem):
            print(line)
    for line in goals(outcomes, args.budgets, strategies):
        print(line)
    print(f"total time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
