"""Does a second transformer layer help a tiny BERT tell "positive" from "negative" sequences?

A Hugging Face ``Trainer``, trained as hpo trials: ``hpo_transformers.training_args(ctx, ...)``
seeds it from the trial (``seed=ctx.seed``), evaluates and checkpoints every epoch where a
retried trial finds it, and uses the trial's devices; ``HpoTrainerCallback`` reports
``eval_error`` at every evaluation; ``hpo_transformers.train`` resumes an interrupted attempt
with ``resume_from_checkpoint`` and returns the best ``eval_error``.

The model is built from a config, never downloaded: a BERT with 32 hidden units and a
vocabulary of 32 tokens. The data is generated: sequences of 16 tokens; tokens 4-13 are
"positive" words, 14-23 "negative" ones, the rest neutral, and a sequence's label is whether
it has more positive than negative words: a counting task that attention can learn.

Depth is *scientific*; the learning rate and the warmup are *nuisance*.

Run it:  hpo run studies/transformers_sentiment.py --workers 2
Each trial in two processes (Accelerate's data-parallel, gloo here, NCCL on GPUs):
         hpo run studies/transformers_sentiment.py --procs-per-trial 2
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the Hub: never reach it

import numpy as np  # noqa: E402 - after the variable, so nothing imported reaches the Hub
import torch  # noqa: E402

from hpo import Study, choice, fixed, log_uniform, nuisance, scientific, uniform  # noqa: E402

VOCAB, LENGTH = 32, 16


class Sequences(torch.utils.data.Dataset):
    """Generated sequences, the same for every trial (their own fixed seed)."""

    def __init__(self, count: int, seed: int):
        rng = np.random.RandomState(seed)
        self.ids = rng.randint(4, VOCAB, size=(count, LENGTH))
        positive = ((self.ids >= 4) & (self.ids < 14)).sum(1)
        negative = ((self.ids >= 14) & (self.ids < 24)).sum(1)
        self.labels = (positive > negative).astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": torch.tensor(self.ids[i]), "labels": torch.tensor(self.labels[i])}


def error_rate(prediction) -> dict:
    return {"error": float((prediction.predictions.argmax(-1) != prediction.label_ids).mean())}


def train(config, ctx):
    from transformers import BertConfig, BertForSequenceClassification, Trainer

    import hpo
    from hpo.integrations import transformers as hpo_transformers

    torch.set_num_threads(1)  # several workers share this machine's cores
    args = hpo_transformers.training_args(
        ctx, learning_rate=config["learning_rate"],
        warmup_steps=config["warmup_fraction"],  # below 1: a fraction of the steps
        num_train_epochs=config["epochs"],
        # The batch is the study's, whatever the number of processes that share it.
        per_device_train_batch_size=config["batch_size"] // ctx.world_size,
        per_device_eval_batch_size=256)
    hpo.seed_everything(ctx.seed)  # the model's initial weights: built before the Trainer
    model = BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=config["layers"],
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=LENGTH,
        num_labels=2))
    trainer = Trainer(model=model, args=args, train_dataset=Sequences(1024, seed=1),
                      eval_dataset=Sequences(512, seed=2), compute_metrics=error_rate,
                      callbacks=[hpo_transformers.HpoTrainerCallback(ctx)])
    return hpo_transformers.train(ctx, trainer)


study = Study(
    name="transformers-sentiment-depth-v1",
    goal="Does a 2-layer tiny BERT beat a 1-layer one at counting sentiment words, 6 epochs?",
    metric="eval_error",
    direction="minimize",
    space={
        "layers": scientific(choice(1, 2)),
        "learning_rate": nuisance(log_uniform(1e-3, 2e-2)),
        "warmup_fraction": nuisance(uniform(0.0, 0.2)),
        "batch_size": fixed(32),
        "epochs": fixed(6),
    },
    objective=train,
    trials_per_value=8,
    phase="explore",
    seed=0,
)
