"""Compute to a good model: training steps each strategy spends before it reaches a target.

The study is the digits optimizer study (``studies/digits_optimizer.py``): scientific
``optimizer`` (SGD with momentum or Adam), nuisance ``learning_rate`` (log 1e-4..1),
``momentum`` / ``beta1`` (0.8..0.99, one per optimizer) and ``weight_decay`` (log 1e-6..1e-2);
a 64-128-10 MLP on scikit-learn's bundled digits (1,197 training and 600 validation images,
one fixed split), batch 64, constant learning rate, ``MAX_STEPS`` steps, validation error
every ``EVAL_EVERY`` steps; a trial's value is its best validation error (the retrospective
best checkpoint). Training is a small plain-PyTorch loop on in-memory tensors, one thread, so
that hundreds of trials fit in minutes on 2 CPU cores; it is not ``hpo.train``.

The target: a reference run of ``REFERENCE_TRIALS`` random configurations (its own seeds),
target = the error its top 5% reached (its 5th-percentile value). Every strategy then runs
trials one at a time, in one process, until a trial's value is at or below the target; its
cost is the training steps of every trial up to and including that one (a pruned trial counts
the steps it ran), and the wall time of the same. A run that does not get there within
``MAX_TRIALS`` trials is reported as its spend so far, marked ``>``.

* ``random search``: Optuna's RandomSampler over the joint space, every trial trained to the
  end: the baseline every ratio is against;
* ``random search + ASHA``: the same with the pruner below: what pruning alone buys;
* ``hpo explore``: hpo's explore design (balanced, paired scrambled Halton), no pruner: it
  separates the design's effect from the pruner's;
* ``hpo explore + ASHA``: the same design with the Study's ``pruner=`` set to Optuna's
  SuccessiveHalvingPruner (min resource ``EVAL_EVERY`` steps, reduction factor 3), which the
  Study applies within each optimizer (``hpo.PerValuePruner``: a trial competes only with
  trials of its own optimizer);
* ``hpo exploit + ASHA``: ``phase="exploit"``: the first 10 trials of each optimizer come from
  the explore design, then TPE within each optimizer; same pruner;
* ``optuna tpe + hyperband``: the peer a user would pick: Optuna's TPESampler over the joint
  space with its HyperbandPruner (min resource ``EVAL_EVERY``, max resource the full run,
  reduction factor 3), comparing every trial with every other;
* ``hpo exploit + hyperband``: hpo's exploit phase with ``hpo.HyperbandPruner``, the same
  settings, per optimizer.

Each strategy runs with ``--seeds`` sampler seeds (different scrambles / random streams and
training seeds). The hpo strategies use hpo's own sampler, ``build_config`` and the Study's
pruner on an in-memory Optuna study: the worker's path without the storage and processes.

    python bench/efficiency.py            # 5 seeds, about 10 minutes on 2 cores
    python bench/efficiency.py --quick    # 1 seed, few trials, shortened training, seconds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's hpo

import hpo
from hpo import Study, load_study_file
from hpo.design import np_seed
from hpo.sampling import PlaybookSampler
from hpo.worker import build_config

ROOT = Path(__file__).resolve().parent.parent

MAX_STEPS = 600
EVAL_EVERY = 100
BATCH = 64
REFERENCE_TRIALS = 100
TARGET_QUANTILE = 0.05
MAX_TRIALS = 80


# The demo study's scientific and nuisance hyperparameters (its fixed values are this
# benchmark's own, above): the space users actually run.
DIGITS_SPACE = {n: hp for n, hp in
                load_study_file(ROOT / "studies" / "digits_optimizer.py")
                .space.hyperparameters.items()
                if hp.role != "fixed"}


def definition(phase: str, seed: int, pruner: optuna.pruners.BasePruner | None) -> Study:
    return Study(
        name="digits-efficiency", goal="Does Adam beat SGD with momentum on digits?",
        metric="val_error", direction="minimize",
        space=DIGITS_SPACE,
        objective=lambda config, ctx: 0.0, phase=phase, seed=seed, pruner=pruner,
        trials_per_value=MAX_TRIALS // 2,
    )


# --- training ---------------------------------------------------------------------------------


class Digits:
    """The digits data as tensors, one fixed split."""

    def __init__(self) -> None:
        import torch
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        order = np.random.default_rng(0).permutation(len(y))
        x = torch.tensor(x[order] / 16.0, dtype=torch.float32)
        y = torch.tensor(y[order], dtype=torch.long)
        self.train_x, self.train_y = x[600:], y[600:]
        self.val_x, self.val_y = x[:600], y[:600]


@dataclass
class Run:
    value: float  # best validation error seen
    steps: int  # steps trained (fewer than max_steps when pruned)
    seconds: float
    pruned: bool


def train(config: dict, seed: int, data: Digits, max_steps: int,
          report: Callable[[int, float], bool] | None = None) -> Run:
    """Train one configuration; ``report(step, val_error)`` returns True to stop (pruned)."""
    import torch

    started = time.perf_counter()
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    if config["optimizer"] == "sgd_momentum":
        opt = torch.optim.SGD(net.parameters(), lr=config["learning_rate"],
                              momentum=config["momentum"], weight_decay=config["weight_decay"])
    else:
        opt = torch.optim.Adam(net.parameters(), lr=config["learning_rate"],
                               betas=(config["beta1"], 0.999), weight_decay=config["weight_decay"])
    generator = torch.Generator().manual_seed(seed)
    n = len(data.train_y)
    best = 1.0
    for step in range(1, max_steps + 1):
        index = torch.randint(n, (BATCH,), generator=generator)
        loss = torch.nn.functional.cross_entropy(net(data.train_x[index]), data.train_y[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % EVAL_EVERY == 0 or step == max_steps:
            with torch.no_grad():
                error = (net(data.val_x).argmax(1) != data.val_y).float().mean().item()
            diverged = not torch.isfinite(loss).item()
            best = min(best, 1.0 if diverged else error)
            if diverged:
                return Run(best, step, time.perf_counter() - started, False)
            if report is not None and report(step, best):
                return Run(best, step, time.perf_counter() - started, True)
    return Run(best, max_steps, time.perf_counter() - started, False)


# --- strategies -----------------------------------------------------------------------------


@dataclass
class Outcome:
    steps: int
    seconds: float
    trials: int
    reached: bool


def search(study: optuna.Study, configure: Callable[[optuna.Trial], dict], prune: bool,
           data: Digits, target: float, seed: int, max_steps: int, max_trials: int) -> Outcome:
    """Run trials one at a time until one reaches the target; what it cost."""
    steps, seconds = 0, 0.0
    for number in range(max_trials):
        trial = study.ask()
        config = configure(trial)

        def report(step: int, value: float, trial: optuna.Trial = trial) -> bool:
            trial.report(value, step)
            return prune and trial.should_prune()

        run = train(config, np_seed(seed, number), data, max_steps, report)
        steps += run.steps
        seconds += run.seconds
        if run.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, run.value)
        if not run.pruned and run.value <= target:
            return Outcome(steps, seconds, number + 1, True)
    return Outcome(steps, seconds, max_trials, False)


def joint_space(trial: optuna.Trial) -> dict:
    config = {"optimizer": trial.suggest_categorical("optimizer", ["sgd_momentum", "adam"]),
              "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1.0, log=True)}
    if config["optimizer"] == "sgd_momentum":
        config["momentum"] = trial.suggest_float("momentum", 0.8, 0.99)
    else:
        config["beta1"] = trial.suggest_float("beta1", 0.8, 0.99)
    config["weight_decay"] = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    return config


def asha() -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=EVAL_EVERY, reduction_factor=3)


def hyperband(max_steps: int, fair: bool) -> optuna.pruners.BasePruner:
    kind = hpo.HyperbandPruner if fair else optuna.pruners.HyperbandPruner
    return kind(min_resource=EVAL_EVERY, max_resource=max_steps, reduction_factor=3)


def strategies(seed: int, max_steps: int) -> dict[str, tuple[optuna.Study, Callable, bool]]:
    """Name -> (in-memory study, configure(trial) -> config, prune?)."""
    out = {"random search": (optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=seed)), joint_space, False),
           "random search + ASHA": (optuna.create_study(
               sampler=optuna.samplers.RandomSampler(seed=seed), pruner=asha()), joint_space, True),
           "optuna tpe + hyperband": (optuna.create_study(
               sampler=optuna.samplers.TPESampler(seed=seed),
               pruner=hyperband(max_steps, fair=False)), joint_space, True)}
    for name, phase, pruner in (("hpo explore", "explore", None),
                                ("hpo explore + ASHA", "explore", asha()),
                                ("hpo exploit + ASHA", "exploit", asha()),
                                ("hpo exploit + hyperband", "exploit",
                                 hyperband(max_steps, fair=True))):
        study_def = definition(phase, seed, pruner)
        study = optuna.create_study(
            sampler=PlaybookSampler(study_def.space, phase=phase, seed=seed),
            pruner=study_def.pruner or optuna.pruners.NopPruner())
        out[name] = (study, lambda trial, d=study_def: dict(build_config(d, trial)),
                     pruner is not None)
    return out


def reference_target(data: Digits, trials: int, max_steps: int) -> tuple[float, float]:
    """(target, best): the TARGET_QUANTILE value of ``trials`` random configurations."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=10_000))
    values = []
    for number in range(trials):
        trial = study.ask()
        run = train(joint_space(trial), np_seed(10_000, number), data, max_steps)
        study.tell(trial, run.value)
        values.append(run.value)
    return float(np.quantile(values, TARGET_QUANTILE)), min(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 200 training steps, 8 reference and at most 6 trials")
    args = parser.parse_args()
    max_steps, reference, max_trials = MAX_STEPS, REFERENCE_TRIALS, MAX_TRIALS
    if args.quick:
        args.seeds, max_steps, reference, max_trials = 1, 200, 8, 6
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    import torch

    torch.set_num_threads(1)
    started = time.monotonic()
    data = Digits()
    target, best = reference_target(data, reference, max_steps)
    print(f"efficiency benchmark: digits MLP, {max_steps} steps per trial, batch {BATCH}; "
          f"target val error {target:.4f} = top {TARGET_QUANTILE:.0%} of {reference} random "
          f"trials (best {best:.4f}); {args.seeds} seeds, at most {max_trials} trials each; "
          f"torch {torch.__version__}, 1 thread")
    print(f"  reference run {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)

    outcomes: dict[str, list[Outcome]] = {}
    for seed in range(args.seeds):
        for name, (study, configure, prune) in strategies(seed, max_steps).items():
            outcome = search(study, configure, prune, data, target, seed, max_steps, max_trials)
            outcomes.setdefault(name, []).append(outcome)
            print(f"  seed {seed} {name:20} {outcome.trials:4} trials {outcome.steps:7} steps "
                  f"{outcome.seconds:6.1f}s{'' if outcome.reached else ' (not reached)'}",
                  file=sys.stderr, flush=True)

    baseline = statistics.median(o.steps for o in outcomes["random search"])
    baseline_mean = statistics.fmean(o.steps for o in outcomes["random search"])
    print()
    print(f"{'strategy':23} {'reached':>7} {'median steps':>12} {'min-max steps':>17} "
          f"{'median trials':>13} {'median wall s':>13} {'random/this':>11} "
          f"{'mean steps':>10} {'random/this':>11}")
    for name, runs in outcomes.items():
        steps = statistics.median(o.steps for o in runs)
        mean = statistics.fmean(o.steps for o in runs)
        low = min(o.steps for o in runs)
        high = max(o.steps for o in runs)
        capped = "" if all(o.reached for o in runs) else ">"
        spread = f"{low}-{capped}{high}"
        print(f"{name:23} {sum(o.reached for o in runs):>4}/{len(runs):<2} {steps:>12.0f} "
              f"{spread:>17} {statistics.median(o.trials for o in runs):>13.0f} "
              f"{statistics.median(o.seconds for o in runs):>13.1f} {baseline / steps:>10.2f}x "
              f"{mean:>10.0f} {baseline_mean / mean:>10.2f}x")
    best_name = max((n for n in outcomes if n.startswith("hpo")),
                    key=lambda n: baseline / statistics.median(o.steps for o in outcomes[n]))
    ratio = baseline / statistics.median(o.steps for o in outcomes[best_name])
    print(f"goal >= 3x less compute than random search without pruning (medians): best hpo "
          f"strategy {best_name} {ratio:.2f}x -> {'met' if ratio >= 3 else 'NOT met'}")
    peer = statistics.median(o.steps for o in outcomes["optuna tpe + hyperband"])
    pruned = {n: statistics.median(o.steps for o in outcomes[n])
              for n in ("hpo exploit + ASHA", "hpo exploit + hyperband")}
    best_pruned = min(pruned, key=pruned.__getitem__)
    print(f"goal hpo exploit + pruning reaches the target with no more compute than optuna tpe "
          f"+ hyperband (medians): {best_pruned} {pruned[best_pruned]:.0f} steps vs "
          f"{peer:.0f} ({peer / pruned[best_pruned]:.2f}x) -> "
          f"{'met' if pruned[best_pruned] <= peer else 'NOT met'}")
    print(f"total time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
