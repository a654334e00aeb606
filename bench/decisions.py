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
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's hpo

from hpo import Study, choice, log_uniform, nuisance, scientific, uniform
from hpo.analysis.results import RERUN_ATTR, collect
from hpo.analysis.verdict import verdict
from hpo.attrs import SLOT as SLOT_ATTR
from hpo.sampling import PlaybookSampler

ROOT = Path(__file__).resolve().parent.parent

VALUES = ("sgd_momentum", "adam")
NOISE_STD = 0.002
RERUNS = 5  # hpo seeds --top 1 --repeats 5
DEFAULTS = {"learning_rate": 1e-3, "momentum": 0.9, "beta1": 0.9, "weight_decay": 1e-4}
DIVERGED = 0.9

SPACE = {
    "optimizer": scientific(choice(*VALUES)),
    "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
    "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd_momentum"}),
    "beta1": nuisance(uniform(0.8, 0.99), when={"optimizer": "adam"}),
    "weight_decay": nuisance(log_uniform(1e-6, 1e-2)),
}
DISTRIBUTIONS = {
    "optimizer": CategoricalDistribution(VALUES),
    "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
    "momentum": FloatDistribution(0.8, 0.99),
    "beta1": FloatDistribution(0.8, 0.99),
    "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
}


@dataclass(frozen=True)
class Scenario:
    name: str
    floors: dict[str, float]  # best achievable error per optimizer
    winner: str | None  # the true winner, None when the gap is inside the noise


SCENARIOS = (
    Scenario("main", {"sgd_momentum": 0.022, "adam": 0.030}, "sgd_momentum"),
    Scenario("null", {"sgd_momentum": 0.022, "adam": 0.023}, None),
)


def true_error(config: dict, floors: dict[str, float]) -> float:
    """The noise-free validation error of a configuration (see the module docstring)."""
    lr, wd = config["learning_rate"], config["weight_decay"]
    if config["optimizer"] == "sgd_momentum":
        effective = math.log10(lr / (1.0 - config["momentum"]))
        if effective > 0.8:
            return DIVERGED
        return (floors["sgd_momentum"] + 0.015 * effective ** 2
                + 0.002 * (math.log10(wd) + 4) ** 2)
    if lr > 0.05:
        return DIVERGED
    return (floors["adam"] + 0.015 * (math.log10(lr) - math.log10(2e-3)) ** 2
            + 0.05 * (config["beta1"] - 0.9) ** 2 + 0.002 * (math.log10(wd) + 5) ** 2)


def observed(config: dict, floors: dict[str, float], rng: np.random.Generator) -> float:
    """One training run: the true error plus seed noise."""
    return true_error(config, floors) + rng.normal(0.0, NOISE_STD)


# --- verdicts ---------------------------------------------------------------------------------

DEFINITION = Study(name="decisions", goal="Which optimizer is better once both are tuned?",
                   metric="val_error", direction="minimize", space=SPACE,
                   objective=lambda config, ctx: 0.0, trials_per_value=1)
LABELS = {f"optimizer={v}": v for v in VALUES}


def hpo_verdict(design: list[tuple[dict, float]], scenario: Scenario,
                rng: np.random.Generator) -> str | None:
    """hpo's own verdict on in-memory trials: design trials, then 5 seed re-runs per value."""
    study = optuna.create_study(direction="minimize")
    trials = [create_trial(state=TrialState.COMPLETE, value=value, params=config,
                           distributions={n: DISTRIBUTIONS[n] for n in config},
                           user_attrs={SLOT_ATTR: slot})
              for slot, (config, value) in enumerate(design)]
    study.add_trials(trials)
    best = {}
    for number, (config, value) in enumerate(design):
        group = config["optimizer"]
        if group not in best or value < best[group][1]:
            best[group] = (number, value, config)
    reruns = [create_trial(state=TrialState.COMPLETE, value=observed(config, scenario.floors, rng),
                           params=config, distributions={n: DISTRIBUTIONS[n] for n in config},
                           user_attrs={SLOT_ATTR: number, RERUN_ATTR: number})
              for number, _, config in best.values() for _ in range(RERUNS)]
    study.add_trials(reruns)
    winner = verdict(collect(DEFINITION, study)).winner
    return LABELS[winner] if winner else None


def best_single_trial(trials: list[tuple[dict, float]]) -> str | None:
    """The plain-Optuna habit: the value whose best trial is lowest."""
    best: dict[str, float] = {}
    for config, value in trials:
        group = config["optimizer"]
        best[group] = min(value, best.get(group, math.inf))
    if len(best) < len(VALUES):
        return None  # a value never sampled: nothing to compare
    return min(best, key=best.__getitem__)


# --- strategies: each returns {budget per value: named winner or None} ------------------------


def run_hpo(rep: int, budgets: list[int], scenario: Scenario, rng: np.random.Generator,
            paired: bool) -> dict[int, str | None]:
    space = DEFINITION.space
    if paired:
        samplers = [PlaybookSampler(space, seed=rep)] * len(VALUES)
    else:
        # A differently scrambled Halton sequence for each value: no shared nuisance draws.
        samplers = [PlaybookSampler(space, seed=rep * len(VALUES) + 1 + v)
                    for v in range(len(VALUES))]
    design = []
    for slot in range(max(budgets) * len(VALUES)):
        config = samplers[slot % len(VALUES)].explore_params(slot)
        design.append((config, observed(config, scenario.floors, rng)))
    return {b: hpo_verdict(design[: b * len(VALUES)], scenario, rng) for b in budgets}


def optuna_joint(sampler: Callable[[int], optuna.samplers.BaseSampler]) -> Callable:
    def run(rep: int, budgets: list[int], scenario: Scenario, rng: np.random.Generator,
            extra: int = 0) -> dict[int, str | None]:
        trials: list[tuple[dict, float]] = []

        def objective(trial: optuna.Trial) -> float:
            config = {"optimizer": trial.suggest_categorical("optimizer", VALUES),
                      "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)}
            if config["optimizer"] == "sgd_momentum":
                config["momentum"] = trial.suggest_float("momentum", 0.8, 0.99)
            else:
                config["beta1"] = trial.suggest_float("beta1", 0.8, 0.99)
            config["weight_decay"] = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
            value = observed(config, scenario.floors, rng)
            trials.append((config, value))
            return value

        study = optuna.create_study(direction="minimize", sampler=sampler(rep))
        study.optimize(objective, n_trials=(max(budgets) + extra) * len(VALUES))
        # A sequential study's first n trials are exactly what a study of n trials would run.
        return {b: best_single_trial(trials[: (b + extra) * len(VALUES)]) for b in budgets}

    return run


def run_naive(rep: int, budgets: list[int], scenario: Scenario,
              rng: np.random.Generator) -> dict[int, str | None]:
    runs = {v: [observed({"optimizer": v, **DEFAULTS}, scenario.floors, rng)
                for _ in range(max(budgets))] for v in VALUES}
    return {b: min(VALUES, key=lambda v: float(np.mean(runs[v][:b]))) for b in budgets}


STRATEGIES: dict[str, Callable] = {
    "hpo (explore + seeds + verdict)": lambda *a: run_hpo(*a, paired=True),
    "hpo unpaired": lambda *a: run_hpo(*a, paired=False),
    "optuna random": optuna_joint(lambda rep: optuna.samplers.RandomSampler(seed=rep)),
    "optuna qmc": optuna_joint(lambda rep: optuna.samplers.QMCSampler(seed=rep)),
    "optuna tpe": optuna_joint(lambda rep: optuna.samplers.TPESampler(seed=rep)),
    "naive default": run_naive,
}
# The same Optuna strategies with hpo's re-run evaluations added to their budget.
def with_reruns_budget(run: Callable) -> Callable:
    return lambda *a: run(*a, extra=RERUNS)


EQUAL_EVALS = {f"{name} +{RERUNS}": with_reruns_budget(STRATEGIES[name])
               for name in ("optuna random", "optuna qmc", "optuna tpe")}


def evaluate(reps: int, budgets: list[int]) -> dict[tuple[str, str], dict[int, list]]:
    """{(scenario, strategy): {budget: [named winner per repetition]}}."""
    outcomes: dict[tuple[str, str], dict[int, list]] = {}
    for scenario in SCENARIOS:
        for s_index, (name, run) in enumerate({**STRATEGIES, **EQUAL_EVALS}.items()):
            started = time.monotonic()
            cell: dict[int, list] = {b: [] for b in budgets}
            for rep in range(reps):
                # Its own noise stream per (scenario, strategy, repetition): reproducible.
                rng = np.random.default_rng([rep, s_index, SCENARIOS.index(scenario)])
                for b, named in run(rep, budgets, scenario, rng).items():
                    cell[b].append(named)
            outcomes[(scenario.name, name)] = cell
            print(f"  {scenario.name:4} {name:32} {time.monotonic() - started:6.1f}s",
                  file=sys.stderr, flush=True)
    return outcomes


def percent(named: list, predicate: Callable[[str | None], bool]) -> float:
    return 100.0 * sum(1 for n in named if predicate(n)) / len(named)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="repetitions per cell")
    parser.add_argument("--budgets", type=int, nargs="+", default=[4, 8, 16, 32],
                        help="trials per scientific value")
    parser.add_argument("--quick", action="store_true", help="10 repetitions, budgets 4 and 16")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.budgets = 10, [4, 16]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*QMCSampler.*|.*balance properties.*")

    started = time.monotonic()
    print(f"decision benchmark: {args.reps} repetitions per cell, 2 optimizers, true gap "
          f"0.008 (main) / 0.001 (null), seed noise std {NOISE_STD}, {RERUNS} seed re-runs "
          f"per value for hpo, optuna {optuna.__version__}")
    outcomes = evaluate(args.reps, args.budgets)
    truth = next(s.winner for s in SCENARIOS if s.name == "main")

    print()
    print(f"{'strategy':34} {'trials/value':>12} {'evals/value':>11} {'correct':>8} "
          f"{'wrong':>6} {'none':>6} {'false winner (null)':>20}")
    for b in args.budgets:
        for name in {**STRATEGIES, **EQUAL_EVALS}:
            main_named = outcomes[("main", name)][b]
            null_named = outcomes[("null", name)][b]
            hpo_like = name.startswith("hpo")
            evals = b + RERUNS if hpo_like or name in EQUAL_EVALS else b
            print(f"{name:34} {b:>12} {evals:>11} "
                  f"{percent(main_named, lambda n: n == truth):7.1f}% "
                  f"{percent(main_named, lambda n: n is not None and n != truth):5.1f}% "
                  f"{percent(main_named, lambda n: n is None):5.1f}% "
                  f"{percent(null_named, lambda n: n is not None):19.1f}%")
        print()

    hpo = "hpo (explore + seeds + verdict)"
    correct = {(name, b): percent(outcomes[("main", name)][b], lambda n: n == truth)
               for name in {**STRATEGIES, **EQUAL_EVALS} for b in args.budgets}
    at16 = correct.get((hpo, 16))
    if at16 is not None:
        print(f"goal hpo >= 95% correct at 16 trials/value: {at16:.1f}% "
              f"-> {'met' if at16 >= 95 else 'NOT met'}")
    behind = [(name, b, correct[(name, b)] - correct[(hpo, b)])
              for (name, b) in correct if name != hpo and correct[(name, b)] > correct[(hpo, b)]]
    worst = ", ".join(f"{n} at {b} (+{d:.1f} points)" for n, b, d in behind) or "none"
    print(f"goal hpo never less often correct than another strategy: "
          f"{'met' if not behind else 'NOT met'}; ahead of hpo: {worst}")
    # Abstaining is counted as not correct above; this asks the other question: how often
    # does a strategy name the *wrong* optimizer, which a verdict may never do more often.
    wrong = {(name, b): percent(outcomes[("main", name)][b], lambda n: n is not None and n != truth)
             for (name, b) in correct}
    worse = [(name, b, wrong[(hpo, b)] - wrong[(name, b)])
             for (name, b) in wrong if name != hpo and wrong[(name, b)] < wrong[(hpo, b)]]
    fewer = ", ".join(f"{n} at {b} (-{d:.1f} points)" for n, b, d in worse) or "none"
    print(f"(for reference) hpo never names the wrong winner more often than another strategy: "
          f"{'yes' if not worse else 'no'}; fewer wrong winners than hpo: {fewer}")
    false_max = max(percent(outcomes[("null", hpo)][b], lambda n: n is not None)
                    for b in args.budgets)
    print(f"goal hpo false winners < 5%: worst budget {false_max:.1f}% "
          f"-> {'met' if false_max < 5 else 'NOT met'}")
    print(f"total time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
