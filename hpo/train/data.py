"""Small datasets as tensors on the device, with a fixed train/validation split.

A dataset that fits in device memory is best kept there: batches are slices of a tensor, with
no DataLoader workers, no host-to-device copies and no collation per step. The split is fixed
(stratified, ``random_state=0``) so every trial of every study sees the same validation set;
features are standardized with the training split's statistics.

Bundled datasets ship with scikit-learn (no download): ``digits`` (1,797 8x8 images, 10
classes), ``wine`` (178, 3 classes), ``breast_cancer`` (569, 2 classes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.train.config import HyperparameterError

if TYPE_CHECKING:
    import torch

DATASETS = ("digits", "wine", "breast_cancer")


@dataclass(frozen=True, eq=False)
class Data:
    """Training and validation tensors, on one device; targets are class indices or values."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    name: str = "custom"

    @property
    def train_examples(self) -> int:
        return len(self.x_train)

    @property
    def features(self) -> int:
        """Input features per example (the size of ``x``'s second dimension)."""
        return int(self.x_train.shape[1])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape, e.g. ``(64,)``, or ``(1, 28, 28)`` for images."""
        return tuple(int(n) for n in self.x_train.shape[1:])

    @property
    def outputs(self) -> int:
        """What a model's last layer must produce: the number of classes for integer
        targets (the largest label + 1), else the targets' width (1 for one value)."""
        y = self.y_train
        if not y.dtype.is_floating_point:
            return int(max(int(y.max()), int(self.y_val.max()))) + 1
        return int(y.shape[1]) if y.dim() > 1 else 1

    def to(self, device: Any) -> Data:
        return Data(self.x_train.to(device), self.y_train.to(device), self.x_val.to(device),
                    self.y_val.to(device), name=self.name)


def load_dataset(name: str, device: str = "cpu", *, train_examples: int | None = None,
         val_fraction: float = 0.25) -> Data:
    """A bundled dataset, split and standardized, on ``device``.

    ``train_examples`` keeps only that many training examples (a stratified subset, fixed):
    a small training set is how the example studies make a model overfit. Loaded once per
    process and device: a worker's later trials reuse the tensors (the trainer never writes
    to them).
    """
    if name not in DATASETS:
        raise HyperparameterError(
            f"unknown dataset {name!r}; bundled ones are {', '.join(DATASETS)}, "
            "or pass a Data or a function data(device) -> Data"
        )
    return _load(name, str(device), train_examples, val_fraction)


@functools.lru_cache(maxsize=8)
def _load(name: str, device: str, train_examples: int | None, val_fraction: float) -> Data:
    import sklearn.datasets
    import torch
    from sklearn.model_selection import train_test_split

    x, y = getattr(sklearn.datasets, f"load_{name}")(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=val_fraction, random_state=0, stratify=y
    )
    if train_examples is not None:
        if not 0 < train_examples <= len(x_train):
            raise HyperparameterError(
                f"train_examples must be between 1 and {len(x_train)} for {name!r}, "
                f"got {train_examples!r}"
            )
        if train_examples < len(x_train):
            x_train, _, y_train, _ = train_test_split(
                x_train, y_train, train_size=train_examples, random_state=0, stratify=y_train
            )
    mean, std = x_train.mean(0), x_train.std(0)
    std[std == 0] = 1.0  # constant features (digits' blank corners) stay 0, not NaN

    def features(a: Any) -> torch.Tensor:
        return torch.tensor((a - mean) / std, dtype=torch.float32, device=device)

    def labels(a: Any) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.int64, device=device)

    return Data(features(x_train), labels(y_train), features(x_val), labels(y_val), name=name)


def resolve(data: str | Data | Callable[[str], Data], device: Any) -> Data:
    """A dataset name, a Data, or a function ``data(device) -> Data``, as a Data on ``device``."""
    if isinstance(data, str):
        return load_dataset(data, str(device))
    if isinstance(data, Data):
        return data.to(device)
    if callable(data):
        made = data(str(device))
        if not isinstance(made, Data):
            raise HyperparameterError(
                f"the data function {data!r} returned {type(made).__name__}; it must return "
                "hpo.train.Data(x_train, y_train, x_val, y_val)"
            )
        return made.to(device)
    raise HyperparameterError(
        f"data must be a dataset name ({', '.join(DATASETS)}), a Data, or a function "
        f"data(device) -> Data, got {data!r}"
    )
