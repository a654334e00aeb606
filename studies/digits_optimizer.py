"""Does Adam beat SGD with momentum on a small MLP for handwritten digits, at a 1,500-step budget?

The playbook's question shape: the optimizer is *scientific* (what we compare), the learning
rate, momentum / beta1 and weight decay are *nuisance* (re-tuned for each optimizer so the
comparison is fair; SGD's momentum is not Adam's beta1), and the batch size, step budget,
evaluation interval and width are *fixed* (held constant, recorded as caveats).

Training is hpo.train's: constant learning rate (the playbook's starting point), evaluation
every 100 steps, the retrospective best checkpoint's validation error as the trial's value.

Data: scikit-learn's bundled digits (1,797 8x8 images), no download.
Run it:  hpo run studies/digits_optimizer.py --workers 2
Next:    studies/digits_exploit.py tunes the winner further.
"""

from hpo import Study, choice, fixed, log_uniform, nuisance, scientific, uniform
from hpo.train import TrainSettings, mlp, objective


def model(config):
    return mlp(64, 10, width=config["width"])


study = Study(
    name="digits-optimizer-v1",
    goal="Does Adam beat SGD with momentum on a 1-hidden-layer MLP for digits at 1,500 steps?",
    metric="val_error",
    direction="minimize",
    space={
        "optimizer": scientific(choice("sgd_momentum", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd_momentum"}),
        "beta1": nuisance(uniform(0.8, 0.99), when={"optimizer": "adam"}),
        "weight_decay": nuisance(log_uniform(1e-6, 1e-2)),
        "batch_size": fixed(64),
        "max_train_steps": fixed(1500),
        "eval_every": fixed(100),
        "width": fixed(128),
    },
    # One CPU thread per worker: `hpo run --workers 2` on a small machine shares its cores.
    objective=objective(model, "digits", TrainSettings(cpu_threads=1)),
    trials_per_value=12,
    phase="explore",
    seed=0,
)
