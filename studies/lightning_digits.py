"""Does a second hidden layer help a Lightning MLP on digits, at 8 epochs of SGD with momentum?

Your own LightningModule, trained as hpo trials: ``hpo_lightning.trainer(ctx, ...)`` builds
the Trainer (reporting ``val_error`` at every validation, so a pruner could stop a trial,
checkpointing every epoch where a retried trial finds it, using the trial's devices), and
``hpo_lightning.fit`` resumes an interrupted attempt with Lightning's own ``ckpt_path`` and
returns the best ``val_error``.

Depth is *scientific*; the learning rate and momentum are *nuisance* (both move with depth).

Data: scikit-learn's bundled digits, no download.
Run it:  hpo run studies/lightning_digits.py --workers 2
Each trial in two processes (Lightning's DDP over gloo here, NCCL on GPUs):
         hpo run studies/lightning_digits.py --procs-per-trial 2
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hpo
from hpo import Study, choice, fixed, log_uniform, nuisance, scientific, uniform
from hpo.integrations import lightning as hpo_lightning

pl = hpo_lightning.pl  # lightning.pytorch, or pytorch_lightning: whichever is installed


class DigitsData(pl.LightningDataModule):
    """The 8x8 digits, standardized with the training split's statistics."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str) -> None:
        x, y = load_digits(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.25, random_state=0,
                                                          stratify=y)
        mean, std = x_train.mean(0), x_train.std(0)
        std[std == 0] = 1.0  # the blank corners stay 0

        def tensors(a, b):
            return TensorDataset(torch.tensor((a - mean) / std, dtype=torch.float32),
                                 torch.tensor(b))

        self.train, self.val = tensors(x_train, y_train), tensors(x_val, y_val)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=512)


class DigitsMLP(pl.LightningModule):
    def __init__(self, config):
        super().__init__()
        self.config = dict(config)
        layers, size = [], 64
        for _ in range(config["depth"]):
            layers += [nn.Linear(size, config["width"]), nn.ReLU()]
            size = config["width"]
        self.net = nn.Sequential(*layers, nn.Linear(size, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_index):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_index):
        x, y = batch
        out = self(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y), batch_size=len(x))
        # The study's metric, under the study's name: what hpo reports and returns.
        self.log("val_error", (out.argmax(-1) != y).float().mean(), batch_size=len(x))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.config["learning_rate"],
                               momentum=self.config["momentum"])


def train(config, ctx):
    hpo.seed_everything(ctx.seed)
    torch.set_num_threads(1)  # several workers share this machine's cores
    trainer = hpo_lightning.trainer(ctx, max_epochs=config["epochs"])
    return hpo_lightning.fit(ctx, trainer, DigitsMLP(config),
                             datamodule=DigitsData(config["batch_size"]))


study = Study(
    name="lightning-digits-depth-v1",
    goal="Does a 2-hidden-layer MLP beat a 1-layer one on digits at 8 epochs of SGD+momentum?",
    metric="val_error",
    direction="minimize",
    space={
        "depth": scientific(choice(1, 2)),
        "learning_rate": nuisance(log_uniform(1e-2, 1.0)),
        "momentum": nuisance(uniform(0.8, 0.95)),
        "width": fixed(64),
        "batch_size": fixed(64),
        "epochs": fixed(8),
    },
    objective=train,
    trials_per_value=8,
    phase="explore",
    seed=0,
)
