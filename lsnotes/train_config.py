"""What a training run is: :class:`TrainConfig` describes one completely (checked once, here,
when it is made; its :meth:`~TrainConfig.key` names its cache entry), :class:`TrainResult` is what
:mod:`lsnotes.train` returns."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from lsnotes.checks import FLOAT32_MAX, check_device, choice, non_negative_int, number_in, positive_int
from lsnotes.data import DATASETS
from lsnotes.losses import METHODS
from lsnotes.models import MODELS

#: Bump when a change to lsnotes.train changes what a given config trains (invalidates the cache).
TRAIN_CODE_VERSION = "2"


ADVERSARIAL_MODES = ("none", "fgsm", "fgsm_rs", "pgd", "trades", "sglr", "trades_sglr")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "onecycle", "piecewise")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model. Validated on construction."""

    dataset: str = "fashion-mnist"
    model: str = "lenet"
    method: str = "ce"
    alpha: float = 0.0
    temperature: float = 1.0
    adversarial: str = "none"
    eps: float = 0.0
    attack_steps: int = 10
    attack_step_size: float | None = None  # None: 2.5·ε / steps (Madry et al.)
    trades_beta: float = 6.0
    sglr_start_epoch: int = 1
    sglr_momentum: float = 0.9
    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    train_size: int | None = None
    test_size: int | None = None
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    augment: bool | None = None  # None: the dataset's default (crop/flip for CIFAR and SVHN)

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        choice("dataset", self.dataset, DATASETS)
        choice("model", self.model, MODELS)
        choice("method", self.method, METHODS)
        put("alpha", number_in("alpha", self.alpha, 0.0, 1.0))
        put("temperature", number_in("temperature", self.temperature, 0.0, math.inf, low_open=True))
        choice("adversarial", self.adversarial, ADVERSARIAL_MODES)
        put("eps", number_in("eps", self.eps, 0.0, 1.0))
        if self.adversarial != "none" and self.eps == 0.0:
            raise ValueError(f"eps must be > 0 for adversarial={self.adversarial!r}; got 0")
        put("attack_steps", positive_int("attack_steps", self.attack_steps))
        if self.attack_step_size is not None:
            put("attack_step_size", number_in("attack_step_size", self.attack_step_size, 0.0, 1.0,
                                              low_open=True))
        put("trades_beta", number_in("trades_beta", self.trades_beta, 0.0, math.inf))
        put("sglr_start_epoch", positive_int("sglr_start_epoch", self.sglr_start_epoch))
        put("sglr_momentum", number_in("sglr_momentum", self.sglr_momentum, 0.0, 1.0, high_open=True))
        if self.adversarial in ("sglr", "trades_sglr") and self.method != "ce":
            raise ValueError(f"adversarial={self.adversarial!r} trains against its own soft labels; "
                             f"use method='ce' (got method={self.method!r})")
        put("epochs", positive_int("epochs", self.epochs))
        put("batch_size", positive_int("batch_size", self.batch_size))
        choice("optimizer", self.optimizer, OPTIMIZERS)
        put("lr", number_in("lr", self.lr, 0.0, FLOAT32_MAX, low_open=True))
        put("momentum", number_in("momentum", self.momentum, 0.0, 1.0, high_open=True))
        put("weight_decay", number_in("weight_decay", self.weight_decay, 0.0, FLOAT32_MAX))
        choice("schedule", self.schedule, SCHEDULES)
        for name in ("train_size", "test_size"):
            if getattr(self, name) is not None:
                put(name, positive_int(name, getattr(self, name), minimum=DATASETS[self.dataset].num_classes))
        put("seed", non_negative_int("seed", self.seed))
        check_device(self.device)
        choice("compile", self.compile, (False, True))
        choice("augment", self.augment, (None, False, True))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; allowed: {sorted(known)}")
        return cls(**values)

    def identity(self) -> dict[str, Any]:
        """The fields that determine what is trained: all but ``device`` (what the cache checks)."""
        return {k: v for k, v in self.to_dict().items() if k != "device"}

    def key(self) -> str:
        """A readable prefix plus a hash of every field but ``device``, and :data:`TRAIN_CODE_VERSION`.

        The device is left out so that ``device="cpu"`` and ``device="auto"`` (on a CPU machine)
        name the same model: chapters pass their resolved device and must share cache entries.
        """
        payload = json.dumps({"config": self.identity(), "code": TRAIN_CODE_VERSION}, sort_keys=True)
        digest = hashlib.sha256(payload.encode()).hexdigest()[:20]
        return f"{self.dataset}-{self.model}-{self.method}-{self.adversarial}-{digest}"

    @property
    def step_size(self) -> float:
        return self.attack_step_size if self.attack_step_size is not None else 2.5 * self.eps / self.attack_steps

    @property
    def uses_augmentation(self) -> bool:
        return DATASETS[self.dataset].augment if self.augment is None else self.augment


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]]
    key: str = ""
    from_cache: bool = False
    path: Path | None = None
    #: With ``eval_robust``: ``{"epoch", "robust_acc", "model"}`` of the epoch with the highest
    #: held-out robust accuracy (``model`` a CPU state_dict); None otherwise.
    best: dict | None = None

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}
