"""Which learning-rate schedule, constant, linear decay or cosine decay, trains digits best?

The playbook (FAQ on schedules): start with a constant learning rate and default to linear or
cosine decay; this study checks that advice on a small problem. The schedule is *scientific*;
the base learning rate and the warmup length are *nuisance*, because a decaying schedule
usually wants a larger peak rate than a constant one, and warmup interacts with both. The
warmup range stops at 10% of the step budget, the playbook's ceiling.

Data: scikit-learn's bundled digits, no download.
Run it:  hpo run studies/digits_schedule.py --workers 2
"""

from hpo import Study, choice, fixed, integer, log_uniform, nuisance, scientific
from hpo.train import TrainSettings, mlp, objective


def model(config):
    return mlp(64, 10, width=config["width"])


study = Study(
    name="digits-lr-schedule-v1",
    goal="Does linear or cosine decay beat a constant learning rate for SGD+momentum on digits?",
    metric="val_error",
    direction="minimize",
    space={
        "lr_schedule": scientific(choice("constant", "linear", "cosine")),
        "learning_rate": nuisance(log_uniform(1e-3, 1.0)),
        "warmup_steps": nuisance(integer(0, 100)),
        "optimizer": fixed("sgd_momentum"),
        "momentum": fixed(0.9),
        "weight_decay": fixed(1e-4),
        "width": fixed(128),
        "batch_size": fixed(64),
        "max_train_steps": fixed(1000),
        "eval_every": fixed(50),
    },
    objective=objective(model, "digits", TrainSettings(cpu_threads=1)),
    trials_per_value=10,
    phase="explore",
    seed=0,
)
