"""The Python API: hpo.run and hpo.load, as a notebook or a script uses them."""

from __future__ import annotations

import math
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

import hpo
from hpo import Study, choice, fixed, log_uniform, nuisance, scientific
from hpo.store import StorageError


def quadratic(config, ctx):
    """Cheap and deterministic: the 'adam' arm is better by 1."""
    loss = (math.log10(config["learning_rate"]) + 2) ** 2 + (config["optimizer"] == "sgd")
    ctx.report(0, loss + 1)
    return loss


def notebook_study(name="notebook-v1", per_value=3):
    return Study(name=name, goal="Is adam better than sgd on a quadratic?", metric="loss",
                 space={"optimizer": scientific(choice("sgd", "adam")),
                        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
                        "batch_size": fixed(32)},
                 objective=quadratic, trials_per_value=per_value)


def test_run_a_study_file_as_hpo_run_does_and_read_its_results(tmp_path, study_file,
                                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, storage = study_file(per_value=3), str(tmp_path / "journal.log")
    results = hpo.run(path, workers=2, storage=storage)
    assert results.finished and results.budget == 6
    assert len([t for t in results.trials if t.state == TrialState.COMPLETE]) == 6
    values = results.values
    assert [v.counts.complete for v in values] == [3, 3]
    assert values[0].best_value <= values[1].best_value  # best first
    for v in values:
        assert v.best_trial.value == v.best_value
        assert v.config == {**v.best_trial.params, "sleep": 0.0}
        assert v.label == f"optimizer={v.value['optimizer']}"
    assert results.best == values[0]
    verdict = results.verdict()  # no seed re-runs yet: the noise is unknown, no winner
    assert verdict.winner is None and verdict.text.startswith("**No winner")
    report = results.report(tmp_path / "report")
    assert report.name == "report.html" and "Isolation" in report.read_text()
    frame = results.to_pandas()
    assert len(frame) == 6 and {"scientific.optimizer", "metric.loss"} <= set(frame.columns)
    assert len(results.study.trials_dataframe()) == 6  # Optuna's own, pandas installed
    assert "optimizer=adam" in repr(results)

    again = hpo.load(path, storage=storage)  # a finished study, opened for analysis
    assert [t.number for t in again.trials] == [t.number for t in results.trials]
    assert again.values[0].best_value == values[0].best_value


def test_run_a_study_made_in_a_notebook_in_this_process_and_in_forked_workers(tmp_path,
                                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    one = hpo.run(notebook_study("notebook-one-v1"), storage=str(tmp_path / "one.log"))
    two = hpo.run(notebook_study("notebook-two-v1"), workers=2,
                  storage=str(tmp_path / "two.log"))
    for results in (one, two):
        assert results.finished
        assert sorted(t.user_attrs["slot"] for t in results.trials) == list(range(6))
        assert results.best.value == {"optimizer": "adam"}
    # The same design (paired seeds, the same quasi-random points) whoever ran it.
    assert [v.best_value for v in one.values] == [v.best_value for v in two.values]


def test_running_again_continues_and_a_larger_budget_adds_trials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = str(tmp_path / "j.log")
    hpo.run(notebook_study(), trials=2, storage=storage)
    results = hpo.run(notebook_study(), trials=4, storage=storage)
    assert results.budget == 4 and results.finished
    assert len(results.trials) == 4


def test_load_names_what_the_storage_holds(tmp_path):
    storage = str(tmp_path / "j.log")
    hpo.run(notebook_study(), trials=2, storage=storage, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(StorageError, match="study 'other-v1' is not in .* \\(it holds: "
                                           "notebook-v1\\)"):
        hpo.load(notebook_study("other-v1"), storage=storage)


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": 0}, r"hpo.run\(workers=0\): workers must be a positive integer"),
    ({"trials": -1}, r"hpo.run\(trials=-1\): trials must be a positive integer"),
])
def test_bad_arguments_are_one_line(tmp_path, kwargs, message):
    with pytest.raises(hpo.HpoError, match=message):
        hpo.run(notebook_study(), storage=str(tmp_path / "j.log"), **kwargs)
    with pytest.raises(hpo.HpoError, match="expected a Study or a study file's path, got int"):
        hpo.load(3)


def test_importing_hpo_loads_neither_torch_nor_the_frameworks():
    code = ("import sys, hpo; hpo.run; hpo.load; import hpo.integrations; "
            "print(sorted(m for m in ('torch', 'pytorch_lightning', 'lightning', 'transformers',"
            " 'pandas', 'plotly') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_what_hpo_run_stored_is_a_plain_optuna_study(tmp_path):
    hpo.run(notebook_study(), trials=2, storage=str(tmp_path / "j.log"),
            checkpoint_dir=tmp_path / "ckpt")
    from hpo.store import open_storage

    study = optuna.load_study(study_name="notebook-v1", storage=open_storage(
        str(tmp_path / "j.log")))
    assert study.best_value == min(t.value for t in study.trials)
