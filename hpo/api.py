"""The Python API, for notebooks and scripts: ``hpo.run`` and ``hpo.load``.

```python
import hpo

results = hpo.run("studies/digits_optimizer.py", workers=2)   # as `hpo run` does
results.values            # per scientific value: its best trial, config and value
results.verdict().text    # the playbook's verdict, noise included
results.report("report")  # report.html, as `hpo report` writes it

later = hpo.load("studies/digits_optimizer.py")               # a stored study, to analyze
later.to_pandas()         # one row per trial (roles, config, metrics, provenance)
later.study.trials_dataframe()                                # Optuna's own view
```

A study file runs exactly as ``hpo run`` runs it: supervised worker processes that each load
the file. A :class:`~hpo.Study` made in the caller's own code (a notebook cell) runs in this
process with ``workers=1``, and in forked copies of it with more: nothing needs a file then
(but a forked process cannot use CUDA once this one has: give a GPU study a file).
Heavy libraries load when a function is called: ``import hpo`` stays quick.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import HpoError, InputError

if TYPE_CHECKING:
    import optuna
    import pandas
    from optuna.trial import FrozenTrial

    from hpo.analysis.verdict import Verdict
    from hpo.study import Study
    from hpo.tally import Counts

CHECKPOINT_ENV = "HPO_CHECKPOINT_DIR"  # hpo.env declares it
PROCS_ENV = "HPO_PROCS_PER_TRIAL"


class WorkersFailed(HpoError):
    """``hpo.run``'s workers ended before the budget was done (their errors were logged)."""


@dataclass(frozen=True)
class ValueResult:
    """One scientific value's outcome.

    Attributes:
        value: The scientific hyperparameters' values, e.g. ``{"optimizer": "adam"}``.
        label: The same as text, ``"optimizer=adam"``.
        best_trial: Its best complete design trial (never a seed re-run), or None.
        best_value: That trial's value of the study's metric, or None.
        config: That trial's whole config: its nuisance and scientific values and the fixed
            ones, what to train the final model with; None without a complete trial.
        counts: Its design slots by state (``complete``, ``pruned``, ``fail``, ``running``...).
    """

    value: dict[str, Any]
    label: str
    best_trial: FrozenTrial | None
    best_value: float | None
    config: dict[str, Any] | None
    counts: Counts


class StudyResults:
    """A stored study with its definition: what ``hpo.run`` returns and ``hpo.load`` opens.

    Attributes:
        definition: The [`Study`][hpo.Study] definition.
        study: The Optuna study in storage (``study.trials_dataframe()`` and every Optuna
            tool work on it).
        budget: The budget of design trials this view counts.
        finished: Whether every design slot of the budget has finished.
    """

    def __init__(self, definition: Study, study: optuna.Study, *, budget: int | None = None,
                 study_file: str = "<study file>"):
        self.definition = definition
        self.study = study
        self.budget = definition.budget if budget is None else budget
        self._study_file = study_file

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial in storage, in number order: design trials, retried attempts, seed
        re-runs."""
        return self.study.get_trials(deepcopy=False)

    @property
    def finished(self) -> bool:
        from hpo.tally import slots_done, tally

        return slots_done(tally(self.definition, self.trials), self.budget) >= self.budget

    @property
    def values(self) -> list[ValueResult]:
        """Each scientific value's outcome, best first (values without a result last)."""
        from hpo.tally import tally

        sign = 1.0 if self.definition.direction == "minimize" else -1.0
        out = []
        for v in tally(self.definition, self.trials):
            best = v.best
            config = ({**best.params, **self.definition.space.fixed} if best is not None
                      else None)
            out.append(ValueResult(dict(v.value), v.label, best,
                                   best.value if best is not None else None, config, v.counts))
        return sorted(out, key=lambda r: (r.best_value is None,
                                          sign * r.best_value if r.best_value is not None else 0))

    @property
    def best(self) -> ValueResult | None:
        """The scientific value with the best single trial (not a verdict: see
        [`verdict`][hpo.StudyResults.verdict]), or None before any trial completed."""
        ranked = self.values
        return ranked[0] if ranked and ranked[0].best_value is not None else None

    def verdict(self) -> Verdict:
        """Which scientific value wins, by how much, and whether that beats the noise; a
        winner is named only once seed re-runs (``hpo seeds``) measured the noise."""
        from hpo.analysis.results import collect
        from hpo.analysis.verdict import verdict

        return verdict(collect(self.definition, self.study), study_file=self._study_file)

    def report(self, out: str | Path = "hpo-report", *, dashboard: bool = False) -> Path:
        """Write the playbook's report (``report.html``, ``summary.md``) into ``out``.

        Args:
            out: The folder to write into.
            dashboard: Also publish the summary and plots to optuna-dashboard (as
                ``hpo report`` does); this writes to the storage.

        Returns:
            The path of ``report.html``.
        """
        from hpo.analysis import dashboard as publish
        from hpo.analysis.analyze import analyze
        from hpo.analysis.plots import all_figures
        from hpo.analysis.report import summary_markdown, write_report

        analysis = analyze(self.definition, self.study, study_file=self._study_file)
        figures = all_figures(analysis)
        path = write_report(analysis, out, figures)
        if dashboard:
            publish.publish(self.study, summary_markdown(analysis), figures)
        return path

    def to_pandas(self) -> pandas.DataFrame:
        """One row per trial, as ``hpo export`` writes it: ``scientific.*``, ``nuisance.*``,
        ``fixed.*`` and ``metric.*`` columns, state, timing, ``attr.*`` (provenance, errors).
        """
        import pandas

        from hpo.analysis.export import trial_rows

        return pandas.DataFrame(trial_rows(self.definition, self.study))

    def summary(self) -> str:
        """The per-value table ``hpo run`` prints."""
        from hpo.analysis.summary import summary_table

        return summary_table(self.definition, self.study)

    def __repr__(self) -> str:
        return self.summary()


def run(study_or_file: Study | str | os.PathLike[str], *, workers: int = 1,
        trials: int | None = None, storage: str | None = None,
        procs_per_trial: int | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None) -> StudyResults:
    """Run a study until its budget is done, as ``hpo run`` does; return its results.

    Running it again continues where it stopped: finished trials stay, and a trial that was
    interrupted is retried from its checkpoint.

    Args:
        study_or_file: A study file's path, or a [`Study`][hpo.Study].
        workers: Worker processes on this machine (a Study object with ``workers=1`` runs in
            this process).
        trials: The budget of finished trials; default: the study's.
        storage: A journal file path or a database URL; default ``$HPO_STORAGE``, else
            ``./hpo-journal.log``.
        procs_per_trial: Processes per trial (``--procs-per-trial``); default
            ``$HPO_PROCS_PER_TRIAL``, else 1.
        checkpoint_dir: The trials' checkpoint folder; default ``$HPO_CHECKPOINT_DIR``, else
            ``./hpo-checkpoints``.

    Returns:
        The [`StudyResults`][hpo.StudyResults].

    Raises:
        HpoError: Bad input (a one-line message), or :class:`WorkersFailed` when the
            workers gave up before the budget was done.
    """
    from hpo.context import check_checkpoint_root
    from hpo.study import Study

    _positive("workers", workers)
    if trials is not None:
        _positive("trials", trials)
    if procs_per_trial is not None:
        _positive("procs_per_trial", procs_per_trial)
    definition, path = _definition(study_or_file)
    url = _url(storage)
    budget = trials or definition.budget
    folder = {CHECKPOINT_ENV: str(Path(checkpoint_dir).resolve())} if checkpoint_dir else {}
    procs = {PROCS_ENV: str(procs_per_trial)} if procs_per_trial is not None else {}
    with _environment({**folder, **procs}):
        check_checkpoint_root()
        if path is not None:
            done = _fleet(definition, path, url, budget, workers)
        else:
            assert isinstance(definition, Study)
            done = _in_process(definition, url, budget, workers)
    results = load(definition, storage=url)
    results = StudyResults(definition, results.study, budget=budget,
                           study_file=str(path) if path else "<study file>")
    if not done:
        raise WorkersFailed(f"the workers gave up before the budget was done "
                            f"({sum(c.counts.finished for c in results.values)} of {budget} "
                            "trials finished); their errors are in the log above")
    return results


def load(study_or_file: Study | str | os.PathLike[str], storage: str | None = None,
         ) -> StudyResults:
    """Open a study that ran (or runs) in storage, for analysis; nothing is written.

    Args:
        study_or_file: A study file's path, or a [`Study`][hpo.Study].
        storage: Where it ran; default ``$HPO_STORAGE``, else ``./hpo-journal.log``.

    Returns:
        The [`StudyResults`][hpo.StudyResults].

    Raises:
        StorageError: No study of that name in the storage (the message lists those there).
        StudyMismatchError: The stored study was made from another design.
    """
    from hpo.store import load_stored_study

    definition, path = _definition(study_or_file)
    return StudyResults(definition, load_stored_study(definition, _url(storage)),
                        study_file=str(path) if path else "<study file>")


# --- running ----------------------------------------------------------------------------------


def _fleet(definition: Study, path: Path, url: str, budget: int, workers: int) -> bool:
    """``hpo run``'s way: supervised ``hpo worker`` processes that load the file."""
    import optuna

    from hpo.fleet import Fleet, seats
    from hpo.store import open_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    members = seats(None, workers)  # they inherit this environment, procs per trial included
    study, _ = open_study(definition, url, budget=budget)
    return Fleet(path, url, budget, members).run(study)


def _in_process(definition: Study, url: str, budget: int, workers: int) -> bool:
    """A Study object: this process works (``workers=1``), or forked copies of it."""
    import multiprocessing

    from hpo.worker import WorkerStopped, run_worker

    if workers == 1:
        try:
            run_worker(definition, url, budget=budget)
        except WorkerStopped:
            raise KeyboardInterrupt("hpo.run stopped; its trial went back to the queue; "
                                    "run it again to continue") from None
        return True
    forking = multiprocessing.get_context("fork")
    children = [forking.Process(target=_forked_worker, args=(definition, url, budget),
                                name=f"hpo-worker-{i}") for i in range(workers)]
    for child in children:
        child.start()
    try:
        for child in children:
            child.join()
    except KeyboardInterrupt:
        for child in children:
            child.terminate()  # SIGTERM: each hands its trial back
        for child in children:
            child.join(30)
        raise
    return all(child.exitcode == 0 for child in children)


def _forked_worker(definition: Study, url: str, budget: int) -> None:
    import logging

    from hpo.worker import WorkerStopped, run_worker

    logging.basicConfig(level=logging.WARNING, format="hpo: %(message)s")
    try:
        run_worker(definition, url, budget=budget)
    except WorkerStopped:
        os._exit(130)


# --- helpers ----------------------------------------------------------------------------------


def _definition(study_or_file: Any) -> tuple[Study, Path | None]:
    from hpo.study import Study
    from hpo.study_file import load_study_file

    if isinstance(study_or_file, Study):
        return study_or_file, None
    if isinstance(study_or_file, (str, os.PathLike)):
        path = Path(study_or_file)
        return load_study_file(path), path
    raise InputError(f"expected a Study or a study file's path, got "
                     f"{type(study_or_file).__name__} {study_or_file!r}")


def _url(storage: str | None) -> str:
    from hpo.store.urls import resolve_url

    return resolve_url(storage)


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"hpo.run({name}={value!r}): {name} must be a positive integer")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for the workers (and this process) while the study runs."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
