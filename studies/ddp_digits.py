"""Does a wider MLP (256 vs 64 hidden units) classify digits better, each trial data-parallel?

Width is *scientific*; the learning rate is *nuisance* (it moves with width). Each trial can
run in several processes with ``torch.distributed``: every process trains on its slice of
each batch of 128 and the gradients are averaged, so the optimizer sees the batches one
process would, and the value matches a one-process run up to float rounding. Only rank 0
reports, checkpoints and records.

The model function takes the data, ``model(config, data)``: its input and output sizes come
from the dataset instead of being written here.

Data: scikit-learn's bundled digits, no download.
On a CPU, two processes per trial:  hpo run studies/ddp_digits.py --workers 2 --procs-per-trial 2
With GPUs, two GPUs per trial:      hpo workers studies/ddp_digits.py --gpus all --gpus-per-trial 2
"""

from hpo import Study, choice, fixed, log_uniform, nuisance, scientific
from hpo.train import TrainSettings, mlp, objective


def model(config, data):
    return mlp(data.features, data.outputs, width=config["width"], depth=2)


study = Study(
    name="ddp-digits-width-v1",
    goal="Does a 256-wide 2-layer MLP beat a 64-wide one on digits at 600 Adam steps?",
    metric="val_error",
    direction="minimize",
    space={
        "width": scientific(choice(64, 256)),
        "learning_rate": nuisance(log_uniform(1e-4, 1e-1)),
        "optimizer": fixed("adam"),
        "batch_size": fixed(128),
        "max_train_steps": fixed(600),
        "eval_every": fixed(100),
    },
    objective=objective(model, "digits", TrainSettings(cpu_threads=1)),
    trials_per_value=6,
    phase="explore",
    seed=0,
)
