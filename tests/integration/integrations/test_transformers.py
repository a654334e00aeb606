"""hpo.integrations.transformers with a real Trainer and real (small) training: a tiny BERT
built from a config (no download) on generated data. A SIGKILLed worker's retried trial
resumes from the Trainer's checkpoint with the same result, pruning stops the Trainer its own
way, and Accelerate's data-parallel runs over the processes hpo starts."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import time

import optuna
import pytest
from conftest import ROOT, hpo_cli
from optuna.trial import TrialState

from hpo.context import Context
from hpo.errors import InputError
from hpo.store import open_storage
from hpo.study_file import load_study_file

pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach the Hub
from hpo.integrations import transformers as hpo_transformers  # noqa: E402

EXAMPLE = ROOT / "studies" / "transformers_sentiment.py"
NAME = "transformers-sentiment-depth-v1"

# The example itself, with examples slowed down so that a worker can be killed mid-trial.
SLOWED = '''
import os, runpy, time
example = runpy.run_path({path!r}, run_name="transformers_sentiment_example")
item = example["Sequences"].__getitem__

def slowed(self, i):
    time.sleep(float(os.environ.get("ITEM_SECONDS", "0")))
    return item(self, i)

example["Sequences"].__getitem__ = slowed
study = example["study"]
'''


def trials(storage):
    return optuna.load_study(study_name=NAME, storage=open_storage(str(storage))).trials


def context(tmp_path, trial, *, seed, metric="eval_error"):
    return Context(trial, seed=seed, device="cpu", checkpoint_root=tmp_path, metric=metric)


def wait_for(predicate, timeout=180.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def running(storage, reports):
    try:
        found = trials(storage)
    except Exception:  # noqa: BLE001 - not created yet
        return None
    return next((t for t in found if t.state == TrialState.RUNNING
                 and t.user_attrs.get("worker_pid") and len(t.intermediate_values) >= reports),
                None)


def test_a_sigkilled_worker_resumes_from_the_trainers_checkpoint_with_the_same_result(tmp_path):
    study_file = tmp_path / "slowed.py"
    study_file.write_text(SLOWED.format(path=str(EXAMPLE)))
    storage = tmp_path / "journal.log"
    run = subprocess.Popen(
        [sys.executable, "-m", "hpo", "run", str(study_file), "--trials", "1", "--storage",
         str(storage), "--checkpoint-dir", str(tmp_path / "ckpt")], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**{k: v for k, v in os.environ.items() if k != "HPO_STORAGE"},
             "ITEM_SECONDS": "0.001"})
    try:
        killed = wait_for(lambda: running(storage, reports=2), what="epoch 2 of a trial")
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
    # resume_from_checkpoint: from the end of an epoch at or after the last reported one.
    assert retry.user_attrs["resumed_from_step"] >= max(killed.intermediate_values) > 0
    assert not list((tmp_path / "ckpt").rglob("checkpoint-*"))  # done with them

    definition = load_study_file(EXAMPLE)
    reference = optuna.create_study().ask()
    value = definition.objective({**retry.params, **definition.space.fixed},
                                 context(tmp_path / "ref", reference,
                                         seed=retry.user_attrs["seed"]))
    # Model, optimizer, scheduler, RNG states and the data position came back: on a CPU the
    # resumed run is the uninterrupted one.
    assert retry.value == value
    assert retry.user_attrs["curves"] == reference.user_attrs["curves"]


def test_a_pruned_trial_stops_the_trainer_its_own_way(tmp_path):
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    trial = study.ask()
    definition = load_study_file(EXAMPLE)
    config = {"layers": 1, "learning_rate": 3e-3, "warmup_fraction": 0.1,
              **definition.space.fixed}
    with pytest.raises(optuna.TrialPruned, match="pruned at step 32"):
        definition.objective(config, context(tmp_path, trial, seed=0))
    assert trial.user_attrs["curves"]["step"] == [32]  # stopped after the first evaluation


def test_an_evaluation_without_the_studys_metric_is_one_line(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification, Trainer

    namespace = runpy.run_path(str(EXAMPLE))
    ctx = context(tmp_path, optuna.create_study().ask(), seed=0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16, num_labels=2))
    trainer = Trainer(model=model, args=hpo_transformers.training_args(ctx, num_train_epochs=1),
                      train_dataset=namespace["Sequences"](64, seed=1),
                      eval_dataset=namespace["Sequences"](64, seed=2),
                      compute_metrics=lambda p: {"accuracy": 0.5},
                      callbacks=[hpo_transformers.HpoTrainerCallback(ctx)])
    with pytest.raises(InputError, match=r"^the Trainer's evaluation has no 'eval_error' \(the "
                       r"study's metric\): return it from compute_metrics \(the Trainer adds "
                       r"the eval_ prefix\); it has: epoch, eval_accuracy, eval_loss, "):
        hpo_transformers.train(ctx, trainer)
    plain = Trainer(model=model, args=hpo_transformers.training_args(ctx, num_train_epochs=1),
                    eval_dataset=namespace["Sequences"](64, seed=2))
    with pytest.raises(InputError, match="the Trainer has 0 HpoTrainerCallback"):
        hpo_transformers.train(ctx, plain)


def test_the_example_runs_data_parallel_in_two_processes(tmp_path):
    storage = tmp_path / "journal.log"
    result = hpo_cli("run", EXAMPLE, "--trials", "1", "--procs-per-trial", "2", "--storage",
                     storage, "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (trial,) = trials(storage)
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get("error")
    assert trial.user_attrs["world_size"] == 2
    # The study's batch of 32, 16 per process: as many steps per epoch as one process takes,
    # reported once per epoch by rank 0 alone.
    assert trial.user_attrs["curves"]["step"] == [32 * e for e in range(1, 7)]
    assert sorted(trial.intermediate_values) == trial.user_attrs["curves"]["step"]
    assert trial.value < 0.3  # it learned: chance is about 0.4 (the majority label)
