"""hpo.integrations.lightning with real Lightning and real (small) training: the example study
end to end, a SIGKILLed worker whose retried trial resumes from Lightning's checkpoint, pruning
that stops Lightning its own way, and DDP over the processes hpo starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import optuna
import pytest
import torch
from conftest import ROOT, hpo_cli
from optuna.trial import TrialState

from hpo.context import Context
from hpo.errors import InputError
from hpo.store import open_storage
from hpo.study_file import load_study_file

pytest.importorskip("pytorch_lightning")
from hpo.integrations import lightning as hpo_lightning  # noqa: E402

pl = hpo_lightning.pl
EXAMPLE = ROOT / "studies" / "lightning_digits.py"
NAME = "lightning-digits-depth-v1"

# The example itself, with training steps slowed down so that a worker can be killed mid-trial.
SLOWED = '''
import os, runpy, time
example = runpy.run_path({path!r}, run_name="lightning_digits_example")
step = example["DigitsMLP"].training_step

def slowed(self, batch, batch_index):
    time.sleep(float(os.environ.get("STEP_SECONDS", "0")))
    return step(self, batch, batch_index)

example["DigitsMLP"].training_step = slowed
study = example["study"]
'''


def trials(storage):
    return optuna.load_study(study_name=NAME, storage=open_storage(str(storage))).trials


def context(tmp_path, trial, *, seed, metric="val_error"):
    return Context(trial, seed=seed, device="cpu", checkpoint_root=tmp_path, metric=metric)


def reference(tmp_path, params, seed):
    """The example's objective for one trial, uninterrupted, in this process."""
    definition = load_study_file(EXAMPLE)
    trial = optuna.create_study().ask()
    value = definition.objective({**params, **definition.space.fixed},
                                 context(tmp_path, trial, seed=seed))
    return value, trial.user_attrs


def running(storage, reports):
    try:
        found = trials(storage)
    except Exception:  # noqa: BLE001 - not created yet
        return None
    return next((t for t in found if t.state == TrialState.RUNNING
                 and t.user_attrs.get("worker_pid") and len(t.intermediate_values) >= reports),
                None)


def wait_for(predicate, timeout=180.0, what="condition"):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_a_sigkilled_worker_resumes_from_lightnings_checkpoint_with_the_same_result(tmp_path):
    study_file = tmp_path / "slowed.py"
    study_file.write_text(SLOWED.format(path=str(EXAMPLE)))
    storage = tmp_path / "journal.log"
    run = subprocess.Popen(
        [sys.executable, "-m", "hpo", "run", str(study_file), "--trials", "1", "--storage",
         str(storage), "--checkpoint-dir", str(tmp_path / "ckpt")], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**{k: v for k, v in os.environ.items() if k != "HPO_STORAGE"},
             "STEP_SECONDS": "0.04"})
    try:
        killed = wait_for(lambda: running(storage, reports=3), what="epoch 3 of a trial")
        os.kill(killed.user_attrs["worker_pid"], signal.SIGKILL)
        _, err = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    final = {t.number: t for t in trials(storage)}
    assert "worker died" in final[killed.number].user_attrs["error"]
    retry = next(t for t in final.values() if t.system_attrs.get("failed_trial") == killed.number)
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    # Lightning's own resume: from the end of an epoch at or after the last reported one.
    assert retry.user_attrs["resumed_from_step"] >= max(killed.intermediate_values) > 0
    assert not list((tmp_path / "ckpt").rglob("lightning-last.ckpt"))  # done with it

    value, uninterrupted = reference(tmp_path / "ref", retry.params, retry.user_attrs["seed"])
    # Model, optimizer, loops and (through the callback) the RNGs all came back: on a CPU the
    # resumed run is the uninterrupted one, to the last digit.
    assert retry.value == value
    assert retry.user_attrs["curves"] == uninterrupted["curves"]
    assert retry.user_attrs["best_step"] == uninterrupted["best_step"]


def test_a_pruned_trial_stops_lightning_its_own_way(tmp_path):
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    trial = study.ask()
    definition = load_study_file(EXAMPLE)
    config = {"learning_rate": 0.1, "momentum": 0.9, "depth": 1, **definition.space.fixed}
    with pytest.raises(optuna.TrialPruned, match="pruned at step 22"):
        definition.objective(config, context(tmp_path, trial, seed=0))
    assert trial.user_attrs["curves"]["step"] == [22]  # stopped after the first validation
    assert len(trial.user_attrs["curves"]["train_loss"]) == 1


class Quiet(pl.LightningModule):
    def __init__(self, logged):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.logged = logged

    def training_step(self, batch, batch_index):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_index):
        self.log(self.logged, self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader():
    data = torch.utils.data.TensorDataset(torch.randn(8, 2))
    return torch.utils.data.DataLoader(data, batch_size=4)


def test_a_module_that_does_not_log_the_studys_metric_is_one_line(tmp_path):
    ctx = context(tmp_path, optuna.create_study().ask(), seed=0)
    trainer = hpo_lightning.trainer(ctx, max_epochs=1)
    with pytest.raises(InputError, match=r"^the LightningModule logged no 'val_error' \(the "
                       r"study's metric\): log it in validation_step, self.log\('val_error', "
                       r"value\); it logged: val_acc$"):
        hpo_lightning.fit(ctx, trainer, Quiet("val_acc"), train_dataloaders=loader(),
                          val_dataloaders=loader())
    plain = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False)
    with pytest.raises(InputError, match="the Trainer has 0 HpoCallback"):
        hpo_lightning.fit(ctx, plain, Quiet("val_error"), train_dataloaders=loader())


def test_the_example_runs_data_parallel_in_two_processes(tmp_path):
    storage = tmp_path / "journal.log"
    result = hpo_cli("run", EXAMPLE, "--trials", "1", "--procs-per-trial", "2", "--storage",
                     storage, "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (trial,) = trials(storage)
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("error")
    assert trial.user_attrs["world_size"] == 2
    # Lightning's DDP splits each epoch between the ranks (its distributed sampler): half the
    # steps per epoch of one process, reported once per epoch by rank 0 alone.
    assert trial.user_attrs["curves"]["step"] == [11 * e for e in range(1, 9)]
    assert sorted(trial.intermediate_values) == trial.user_attrs["curves"]["step"]
    assert trial.value < 0.5  # it learned: chance is 0.9
