"""With only 150 training digits, does dropout lower a wide MLP's validation error?

An overfitting case on purpose: a 2x256 MLP (about 85k weights) on 150 training examples fits
them perfectly within a few hundred steps, after which the validation loss climbs (look at the
trials' curves). Dropout is *scientific*; the learning rate is *nuisance* (dropout slows
training, so it may want another rate). The trial's value is the retrospective best
checkpoint's validation error, as the playbook recommends; each trial also records its
``final_metric``, the error at the last step, where overfitting shows fully.

Data: a fixed, stratified 150-example subset of scikit-learn's digits; the validation set is
the usual 450 images.
Run it:  hpo run studies/digits_dropout.py --workers 2
"""

from hpo import Study, choice, fixed, log_uniform, nuisance, scientific
from hpo.train import TrainSettings, load_dataset, mlp, objective

TRAIN_EXAMPLES = 150


def model(config):
    return mlp(64, 10, width=config["width"], depth=config["depth"], dropout=config["dropout"])


def small_digits(device):
    return load_dataset("digits", device, train_examples=TRAIN_EXAMPLES)


study = Study(
    name="digits-dropout-v1",
    goal="Does dropout reduce overfitting of a 2x256 MLP trained on 150 digits?",
    metric="val_error",
    direction="minimize",
    space={
        "dropout": scientific(choice(0.0, 0.3, 0.6)),
        "learning_rate": nuisance(log_uniform(1e-4, 1e-2)),
        "optimizer": fixed("adam"),
        "train_examples": fixed(TRAIN_EXAMPLES),
        "width": fixed(256),
        "depth": fixed(2),
        "batch_size": fixed(32),
        "max_train_steps": fixed(1000),
        "eval_every": fixed(50),
    },
    objective=objective(model, small_digits, TrainSettings(cpu_threads=1)),
    trials_per_value=10,
    phase="explore",
    seed=0,
)
