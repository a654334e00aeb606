"""Sampler cost at scale: time per suggestion of hpo's samplers and Optuna's, by study size.

Every sampler gets its own study in the *same* storage, prefilled with the same N finished
(COMPLETE) trials of the digits-optimizer space (2 optimizers; learning rate, momentum or
beta1, weight decay), each tagged with its ``slot`` as hpo's budget lays them out. Then, one
after another, each sampler suggests new trials: ``study.ask()`` followed by hpo's own
``build_config`` (the worker's path: scientific value first, then that value's nuisance
hyperparameters), and ``study.tell``. The time per suggestion is ask + build_config, the
median over the timed trials, after one untimed warm-up trial; the samplers take turns, one
trial each per round, so load from elsewhere on the machine falls on all of them alike.

* ``hpo explore``: ``PlaybookSampler(phase="explore")``, scrambled Halton point of the slot;
* ``hpo exploit``: ``PlaybookSampler(phase="exploit")``, multivariate TPE fitted to the
  trial's own scientific value (half the study here);
* ``optuna tpe``: ``TPESampler()`` with its defaults, on the joint space;
* ``optuna random``: ``RandomSampler()``, the floor: what storage and Optuna's trial
  bookkeeping cost with no modelling at all.

Storages: the embedded journal file (hpo's default, in a temporary folder) and Optuna's
in-memory storage. Goal: the explore sampler's cost is flat in study size.

    python bench/sampler_cost.py            # 100, 1,000 and 10,000 trials, a few minutes
    python bench/sampler_cost.py --quick    # 50 and 500 trials, seconds
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's hpo

from hpo import Study, load_study_file
from hpo.attrs import SLOT as SLOT_ATTR
from hpo.sampling import PlaybookSampler
from hpo.worker import build_config

ROOT = Path(__file__).resolve().parent.parent

# The demo study's scientific and nuisance hyperparameters: the space users actually run.
DIGITS_SPACE = {n: hp for n, hp in
                load_study_file(ROOT / "studies" / "digits_optimizer.py")
                .space.hyperparameters.items()
                if hp.role != "fixed"}
DEFINITION = Study(
    name="sampler-cost", goal="How much does a suggestion cost?", metric="val_error",
    space=DIGITS_SPACE,
    objective=lambda config, ctx: 0.0,
)
SAMPLERS: dict[str, Callable[[], optuna.samplers.BaseSampler]] = {
    "hpo explore": lambda: PlaybookSampler(DEFINITION.space, phase="explore", seed=0),
    "hpo exploit": lambda: PlaybookSampler(DEFINITION.space, phase="exploit", seed=0),
    "optuna tpe": lambda: optuna.samplers.TPESampler(seed=0),
    "optuna random": lambda: optuna.samplers.RandomSampler(seed=0),
}


def finished_trials(count: int) -> list[optuna.trial.FrozenTrial]:
    """``count`` COMPLETE trials on the explore design, with slots and made-up errors."""
    design = PlaybookSampler(DEFINITION.space, seed=0)
    values = np.random.default_rng(0).uniform(0.02, 0.5, size=count)
    trials = []
    for slot in range(count):
        params = design.explore_params(slot)
        trials.append(create_trial(
            state=TrialState.COMPLETE, value=float(values[slot]), params=params,
            distributions={n: DEFINITION.space.hyperparameters[n].distribution.to_optuna()
                           for n in params},
            user_attrs={SLOT_ATTR: slot}))
    return trials


def seconds_per_suggestion(studies: dict[str, optuna.Study], timed: int) -> dict[str, float]:
    """Median seconds per suggestion for each study, timed in turn, one trial each per round.

    Round-robin, so a burst of load from elsewhere on the machine hits every sampler alike.
    """
    times: dict[str, list[float]] = {name: [] for name in studies}
    for round_ in range(timed + 1):
        for name, study in studies.items():
            started = time.perf_counter()
            trial = study.ask()
            build_config(DEFINITION, trial)
            elapsed = time.perf_counter() - started
            study.tell(trial, 0.3)
            if round_:  # the first round warms caches (Halton engines, the journal's replay)
                times[name].append(elapsed)
    return {name: statistics.median(t) for name, t in times.items()}


def journal(folder: str) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(Path(folder) / "journal.log")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000],
                        help="finished trials in the study before timing")
    parser.add_argument("--timed", type=int, default=20, help="suggestions timed per cell")
    parser.add_argument("--quick", action="store_true", help="50 and 500 trials, 5 timed")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.timed = [50, 500], 5
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    started = time.monotonic()
    print(f"sampler cost benchmark: median ms per suggestion (ask + build_config) over "
          f"{args.timed} trials, digits-optimizer space, optuna {optuna.__version__}, "
          f"python {sys.version.split()[0]}")
    ms: dict[tuple[str, str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"journal": journal(tmp), "in-memory": None}
        for size in args.sizes:
            prefill = finished_trials(size)
            for store, storage in stores.items():
                studies = {}
                for name, make in SAMPLERS.items():
                    # A fresh in-memory storage per study; the journal holds all of them.
                    target = storage if storage is not None else optuna.storages.InMemoryStorage()
                    studies[name] = optuna.create_study(study_name=f"{name}-{size}",
                                                        storage=target, sampler=make())
                    studies[name].add_trials(prefill)
                for name, seconds in seconds_per_suggestion(studies, args.timed).items():
                    ms[(store, name, size)] = 1000 * seconds
            print(f"  {size} trials done ({time.monotonic() - started:.0f}s)", file=sys.stderr,
                  flush=True)

    names = list(SAMPLERS)
    first, last = args.sizes[0], args.sizes[-1]
    for store in ("journal", "in-memory"):
        print()
        print(f"{store} storage, ms per suggestion")
        print(f"{'finished trials':>15}  " + "  ".join(f"{n:>13}" for n in names)
              + f"  {'explore/random':>14}")
        for size in args.sizes:
            row = [ms[(store, n, size)] for n in names]
            ratio = ms[(store, "hpo explore", size)] / ms[(store, "optuna random", size)]
            print(f"{size:>15}  " + "  ".join(f"{v:>13.2f}" for v in row) + f"  {ratio:>13.2f}x")
        growth = "  ".join(f"{n} {ms[(store, n, last)] / ms[(store, n, first)]:.2f}x"
                           for n in names)
        print(f"growth from {first} to {last} trials: {growth}")
    print()
    print(f"total time {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
