"""Every example study runs to completion with 2 workers on the embedded storage, tiny budget,
and leaves what the analysis reads: curves, the best checkpoint, throughput (hpo.train's), or
curves and the best step (the Lightning and Transformers integrations')."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import ROOT, hpo_cli
from optuna.trial import TrialState

from hpo import curves
from hpo.store import open_storage
from hpo.study_file import load_study_file
from hpo.train import TrainObjective

STUDIES = sorted((ROOT / "studies").glob("*.py"))


def test_the_examples_are_all_here():
    assert {p.stem for p in STUDIES} >= {"digits_optimizer", "digits_depth", "digits_schedule",
                                         "digits_dropout", "digits_exploit", "ddp_digits",
                                         "lightning_digits", "transformers_sentiment"}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_example_study_runs_with_two_workers(tmp_path, path):
    storage = tmp_path / "journal.log"
    result = hpo_cli("run", path, "--workers", "2", "--trials", "4", "--storage", storage,
                     cwd=tmp_path, env={"HPO_CHECKPOINT_DIR": str(tmp_path / "checkpoints")})
    assert result.returncode == 0, result.stdout + result.stderr
    definition = load_study_file(path)
    study = optuna.load_study(study_name=definition.name, storage=open_storage(str(storage)))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 4, [(t.state, t.user_attrs.get("error")) for t in study.trials]
    for trial in done:
        stored = curves.read(trial)
        assert stored is not None
        assert trial.value == trial.user_attrs["best_metric"]
        assert trial.user_attrs["best_step"] in stored["step"]
        if isinstance(definition.objective, TrainObjective):
            assert stored["step"][-1] == trial.user_attrs["trainer"]["max_train_steps"]
            assert Path(trial.user_attrs["best_checkpoint"]).is_file()
            assert trial.user_attrs["examples_per_s"] > 0
        else:  # an integration: its resume checkpoint is gone once the trial is done
            assert not list((tmp_path / "checkpoints").rglob("*-last.*"))
