"""Does a deeper MLP (1, 2 or 3 hidden layers) classify handwritten digits better at 1,000 steps?

Depth is *scientific*. The learning rate and weight decay are *nuisance*: the best learning
rate usually moves with depth, so comparing depths at one shared learning rate would compare
tuning luck, not architectures. Width, optimizer, batch size and step budget are *fixed*.

Pruning, fair to every depth: a deeper network's validation error often falls later, so a
pruner that compared a 3-layer trial with 1-layer trials at the same step would stop the deep
ones for starting slow. hpo's pruners compare a trial only with trials of its own depth:
``MedianPruner`` stops a trial whose error at a step is worse than the median of its depth's
trials there, once 5 trials of that depth are complete, and never before step 300. Pruned
trials are counted per depth by ``hpo report``.

Data: scikit-learn's bundled digits, no download.
Run it:  hpo run studies/digits_depth.py --workers 2
"""

from hpo import MedianPruner, Study, choice, fixed, log_uniform, nuisance, scientific
from hpo.train import TrainSettings, mlp, objective


def model(config):
    return mlp(64, 10, width=config["width"], depth=config["depth"])


study = Study(
    name="digits-depth-v1",
    goal="Does a 2- or 3-hidden-layer MLP beat a 1-layer one on digits at 1,000 Adam steps?",
    metric="val_error",
    direction="minimize",
    space={
        "depth": scientific(choice(1, 2, 3)),
        "learning_rate": nuisance(log_uniform(1e-4, 1e-1)),
        "weight_decay": nuisance(log_uniform(1e-6, 1e-2)),
        "optimizer": fixed("adam"),
        "width": fixed(64),
        "batch_size": fixed(64),
        "max_train_steps": fixed(1000),
        "eval_every": fixed(100),
    },
    objective=objective(model, "digits", TrainSettings(cpu_threads=1)),
    trials_per_value=10,
    phase="explore",
    seed=0,
    pruner=MedianPruner(n_startup_trials=5, n_warmup_steps=300),
)
