"""``hpo run --until-decided`` end to end: real workers, rounds laid out with gaps, seed
re-runs scheduled by the controller, and the stop with its reason."""

from __future__ import annotations

import optuna
import pytest
from conftest import hpo_cli
from optuna.trial import TrialState

from hpo.store import open_storage, open_study
from hpo.store.budget import finished, progress
from hpo.study_file import load_study_file

STUDY = '''
import math, random
from hpo import Study, scientific, nuisance, choice, log_uniform, uniform

def objective(config, ctx):
    lr = math.log10(config["learning_rate"])
    if config["optimizer"] == "sgd":
        base = 0.10 + 0.05 * (lr + 1.5) ** 2 + 0.2 * (config["momentum"] - 0.9) ** 2
    else:
        base = {adam} + 0.05 * (lr + 3) ** 2 + 0.2 * (config["beta1"] - 0.9) ** 2
    return base + random.Random(ctx.seed).gauss(0, 0.01)

study = Study(
    name={name!r}, goal="Which optimizer is better on a synthetic bowl?",
    metric="loss", direction="minimize",
    space={{
        "optimizer": scientific(choice("sgd", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "momentum": nuisance(uniform(0.8, 0.99), when={{"optimizer": "sgd"}}),
        "beta1": nuisance(uniform(0.8, 0.99), when={{"optimizer": "adam"}}),
    }},
    objective=objective, trials_per_value=16,
)
'''


def _write(tmp_path, name, adam_floor):
    path = tmp_path / f"{name}.py"
    path.write_text(STUDY.format(name=name, adam=adam_floor))
    return path


def _trials(path, storage):
    study = optuna.load_study(study_name=load_study_file(path).name,
                              storage=open_storage(str(storage)))
    design = [t for t in study.trials if "seed_rerun_of" not in t.user_attrs]
    reruns = [t for t in study.trials if "seed_rerun_of" in t.user_attrs]
    return study, design, reruns


def test_a_clear_winner_stops_early_and_is_named(tmp_path):
    path, storage = _write(tmp_path, "clear", 0.15), tmp_path / "journal.log"
    result = hpo_cli("run", path, "--until-decided", "--max-trials", "40", "--workers", "2",
                     "--storage", storage, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "**optimizer=sgd wins**" in result.stdout
    assert "hpo: stopped: decided: optimizer=sgd wins" in result.stderr
    _, design, reruns = _trials(path, storage)
    assert len(design) < 40 and all(t.state == TrialState.COMPLETE for t in design)
    assert len(reruns) >= 10  # the controller re-ran each value's best trial itself


def test_a_null_study_stops_at_max_trials_with_no_winner_on_postgresql(tmp_path, pg_url):
    path = _write(tmp_path, "null", 0.10)
    result = hpo_cli("run", path, "--until-decided", "--max-trials", "24", "--workers", "2",
                     "--storage", pg_url, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "**No winner yet.**" in result.stdout
    assert "hpo: stopped: no winner: the 24 design trials are spent" in result.stderr
    study, design, _ = _trials(path, pg_url)
    assert len(design) == 24
    slots = sorted(t.user_attrs["slot"] for t in design)
    for value in (0, 1):  # each value's trials are its first n slots: gaps only between values
        mine = [s for s in slots if s % 2 == value]
        assert mine == [2 * k + value for k in range(len(mine))]
    # Run again: it is stopped, and says so without running anything.
    again = hpo_cli("run", path, "--until-decided", "--storage", pg_url, cwd=tmp_path)
    assert again.returncode == 0 and "no winner" in again.stderr
    assert len(_trials(path, pg_url)[1]) == 24


def test_a_fixed_budget_on_an_until_decided_study_and_mixed_options_are_refused(tmp_path):
    path, storage = _write(tmp_path, "mixed", 0.15), tmp_path / "journal.log"
    bad = hpo_cli("run", path, "--max-trials", "8", "--storage", storage, cwd=tmp_path)
    assert bad.returncode == 2 and "--max-trials goes with --until-decided" in bad.stderr
    bad = hpo_cli("run", path, "--until-decided", "--trials", "8", "--storage", storage,
                  cwd=tmp_path)
    assert bad.returncode == 2 and "--trials" in bad.stderr
    assert not storage.exists()  # nothing written
    assert hpo_cli("run", path, "--until-decided", "--max-trials", "40", "--storage", storage,
                   cwd=tmp_path).returncode == 0
    plain = hpo_cli("run", path, "--storage", storage, cwd=tmp_path)
    assert plain.returncode == 2 and "was run with --until-decided" in plain.stderr
    changed = hpo_cli("run", path, "--until-decided", "--max-trials", "20", "--storage",
                      storage, cwd=tmp_path)
    assert changed.returncode == 2 and "with the same cap" in changed.stderr


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_slots_laid_out_with_gaps_are_claimed_and_counted(tmp_path, backend, request):
    url = (str(tmp_path / "journal.log") if backend == "journal"
           else request.getfixturevalue("pg_url"))
    definition = load_study_file(_write(tmp_path, "gaps", 0.15))
    study, queue = open_study(definition, url, budget=4)
    assert progress(study, 4) == (0, 4)
    study.set_user_attr("until_decided", {"max_trials": 10, "looks": 3, "stopped": None})
    assert queue.lay_out(0, [4, 6, 8]) == 3  # three more of value 0 only: slots k * 2 + 0
    assert queue.lay_out(0, [6, 8]) == 0  # idempotent
    study, queue = open_study(definition, url, budget=4)  # a worker joining: no layout of its own
    slots = sorted(t.user_attrs["slot"] for t in study.get_trials())
    assert slots == [0, 1, 2, 3, 4, 6, 8]
    claimed = []
    while (trial := queue.claim(2**31 - 1, {"host": "test"})) is not None:
        claimed.append(trial.user_attrs["slot"])
        queue.finish(trial, 1.0)
    assert sorted(claimed) == slots
    assert progress(study, 2**31 - 1) == (7, 7)
    assert not finished(study, 2**31 - 1)  # its controller has not stopped yet
    study.set_user_attr("until_decided", {"max_trials": 10, "looks": 3, "stopped": "decided"})
    assert finished(study, 2**31 - 1)
