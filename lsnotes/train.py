"""One training entry point: label smoothing, and adversarial training with or without it.

:class:`TrainConfig` describes a run completely; :func:`train` runs it; :func:`train_or_load` runs it
once and then serves it from the verified checkpoint cache (:mod:`lsnotes.cache`), resuming an
interrupted run from its last epoch.

Adversarial modes (``TrainConfig.adversarial``):

- ``"none"``: the (smoothed) loss on clean inputs.
- ``"fgsm"``: FGSM adversarial training (Goodfellow et al., 2015), the reference Goibert & Dohmatob
  train against: ½ clean loss + ½ loss on FGSM examples (no random start). The weights are our
  choice: the text we read lost the formula, and their repository's README gives a default
  "regularization parameter" of 0.75 without saying which term it weights.
- ``"fgsm_rs"``: Wong et al. (2020), "fast is better than free": uniform random start, step 1.25 ε.
- ``"pgd"``: Madry et al. (2018): loss on L∞-PGD examples (random start).
- ``"trades"``: Zhang et al. (2019): loss(clean) + β·KL(p(x) ‖ p(x')), x' maximising that KL.
- ``"sglr"``: Yu et al. (2024), as their code runs it: plain PGD-AT (cross-entropy on the
  adversarial logits) before epoch ``sglr_start_epoch``; from then on each training example keeps
  a soft label ``s ← m·s + (1−m)·(0.2·p(x) + 0.8·p(x'))`` (p the detached softmax, p(x) in train
  mode, m = ``sglr_momentum``) and the loss is the cross-entropy of the adversarial logits
  against ``s``.
- ``"trades_sglr"``: TRADES before epoch ``sglr_start_epoch``; from then on the same soft labels
  (refined from p(x) and p(x')) replace the one-hot label in TRADES's clean term. Yu et al. report
  TRADES+SGLR but their released code has no source for it: this is our reading of it.

On CUDA the data stay on the GPU, the model runs channels_last under bf16 autocast and optionally
``torch.compile``; on the CPU the same code runs in fp32 and is bit-for-bit reproducible.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from lsnotes import cache
from lsnotes.checks import flag, resolve_device
from lsnotes.data import DATASETS, DeviceLoader, load_subset
from lsnotes.losses import loss_function
from lsnotes.train_config import SCHEDULES, TrainConfig, TrainResult
from lsnotes.metrics import accuracy, adversarial_examples, cross_entropy_objective, robust_accuracy
from lsnotes.models import build_model

# ------------------------------------------------------------------------------ schedule

def scheduled_lr(schedule: str, base_lr: float, step: int, total_steps: int) -> float:
    """The learning rate at optimizer step ``step`` (0-based) of ``total_steps``."""
    t = step / max(total_steps, 1)
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return base_lr * 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "onecycle":  # linear warm-up over the first 20 %, then linear decay to 0
        return base_lr * (t / 0.2 if t < 0.2 else (1 - t) / 0.8)
    if schedule == "piecewise":  # ÷10 at 50 % and 75 % of training (Madry et al., Rice et al.)
        return base_lr * (1.0 if t < 0.5 else 0.1 if t < 0.75 else 0.01)
    raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}")


# ------------------------------------------------------------------------------ training

class _Trainer:
    """The state of one run; :meth:`state_dict` holds everything needed to resume it exactly."""

    def __init__(self, config: TrainConfig, progress: bool):
        self.config = config
        self.progress = progress
        self.device = torch.device(resolve_device(config.device))
        self.cuda = self.device.type == "cuda"
        info = DATASETS[config.dataset]
        x, y = load_subset(config.dataset, "train", config.train_size, config.seed)
        x_test, y_test = load_subset(config.dataset, "test", config.test_size, config.seed)
        self.loader = DeviceLoader(x, y, config.batch_size, shuffle=True,
                                   augment=config.uses_augmentation, flip=info.flip,
                                   seed=config.seed, device=str(self.device), return_indices=True)
        self.x_test, self.y_test = x_test.to(self.device), y_test.to(self.device)
        # Initialisation draws from torch's global RNG: seed it without disturbing the caller's.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = build_model(config.model, info.num_classes, info.shape[0], info.shape[1],
                                     info.mean, info.std)
        self.model.to(self.device)
        if self.cuda:
            self.model.to(memory_format=torch.channels_last)
        self.forward = torch.compile(self.model) if config.compile else self.model
        if config.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr,
                                             momentum=config.momentum, weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr,
                                              weight_decay=config.weight_decay)
        self.attack_generator = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        # The first step of a run checks its logits and labels fully (one host sync); the labels
        # are checked here once, so every later step runs without a device-to-host sync.
        _check_labels(self.loader.y, info.num_classes, config.dataset)
        self.checked_loss = loss_function(config.method, config.alpha, config.temperature)
        self.fast_loss = loss_function(config.method, config.alpha, config.temperature,
                                       check_values=False)
        self.loss = self.checked_loss
        self.soft_labels = None
        if config.adversarial in ("sglr", "trades_sglr"):
            self.soft_labels = F.one_hot(self.loader.y, info.num_classes).float()
        self.history: list[dict[str, float]] = []
        self.total_steps = config.epochs * len(self.loader)

    # -- checkpoint state
    def state_dict(self) -> dict:
        return {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "loader": {"generator": self.loader.generator.get_state().cpu()},
                "attack_generator": self.attack_generator.get_state().cpu(),
                "soft_labels": None if self.soft_labels is None else self.soft_labels.cpu(),
                "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.loader.load_state_dict(state["loader"])
        self.attack_generator.set_state(state["attack_generator"])
        if state["soft_labels"] is not None:
            self.soft_labels = state["soft_labels"].to(self.device)
        self.history = list(state["history"])

    # -- one step
    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda)

    def _attack(self, x, objective, steps, step_size, random_start):
        return adversarial_examples(self.forward, x, objective, self.config.eps, steps, step_size,
                                    random_start, self.attack_generator)

    def step_loss(self, x, y, index, epoch):
        """The training loss of one batch and the logits its accuracy is measured on."""
        return STEP_LOSSES[self.config.adversarial](self, x, y, index, epoch)

    @torch.no_grad()
    def _refined_labels(self, index, clean_logits, adversarial_logits):
        """SGLR's refinement, s ← m·s + (1−m)·(0.2·p(x) + 0.8·p(x')), for these examples; returns
        the new s. As in the authors' code (devicerxx/SGLS, losses/loss.py), p(x) comes from the
        model in train mode."""
        refined = 0.2 * F.softmax(clean_logits.detach().float(), dim=1) + \
            0.8 * F.softmax(adversarial_logits.detach().float(), dim=1)
        m = self.config.sglr_momentum
        self.soft_labels[index] = m * self.soft_labels[index] + (1 - m) * refined
        return self.soft_labels[index]

    def run_epoch(self, epoch: int, bar) -> dict[str, float]:
        self.model.train()
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        step = (epoch - 1) * len(self.loader)
        for x, y, index in self.loader:
            if self.cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            for group in self.optimizer.param_groups:
                group["lr"] = scheduled_lr(self.config.schedule, self.config.lr, step, self.total_steps)
            with self._autocast():
                loss, logits = self.step_loss(x, y, index, epoch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            # Accumulate on the device: no host synchronisation inside the loop.
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            step += 1
            self.loss = self.fast_loss
            bar.update(1)
        mean_loss = loss_sum.item() / seen
        if not math.isfinite(mean_loss):  # what the per-step finiteness check used to catch
            raise ValueError(f"training diverged: the mean loss of epoch {epoch} is {mean_loss} "
                             f"(lr={self.config.lr}); lower lr")
        return {"epoch": epoch, "loss": mean_loss, "train_acc": correct.item() / seen,
                "lr": self.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started}


# ------------------------------------------------------------------------------ one step's loss
# Each adversarial mode is one function (trainer, x, y, index, epoch) -> (loss, logits), the
# logits being those the step's training accuracy is measured on.

def _clean_step(tr, x, y, index, epoch):
    logits = tr.forward(x).float()
    return tr.loss(logits, y), logits


def _fgsm_step(tr, x, y, index, epoch):
    x_adv = tr._attack(x, cross_entropy_objective(y), 1, tr.config.eps, random_start=False)
    clean, adv = tr.forward(torch.cat([x, x_adv])).float().chunk(2)
    return 0.5 * tr.loss(clean, y) + 0.5 * tr.loss(adv, y), clean


def _fgsm_rs_step(tr, x, y, index, epoch):
    x_adv = tr._attack(x, cross_entropy_objective(y), 1, 1.25 * tr.config.eps, random_start=True)
    logits = tr.forward(x_adv).float()
    return tr.loss(logits, y), logits


def _pgd_step(tr, x, y, index, epoch):
    c = tr.config
    x_adv = tr._attack(x, cross_entropy_objective(y), c.attack_steps, c.step_size, random_start=True)
    logits = tr.forward(x_adv).float()
    if c.adversarial == "pgd" or epoch < c.sglr_start_epoch:
        return tr.loss(logits, y), logits
    # SGLR: refine this example's soft label, then fit the adversarial logits to it
    with torch.no_grad():
        clean = tr.forward(x).float()
    soft = tr._refined_labels(index, clean, logits)
    return -(soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean(), logits


def _trades_step(tr, x, y, index, epoch):
    c = tr.config
    clean = tr.forward(x).float()
    target = F.softmax(clean.detach(), dim=1)

    def kl_to_clean(adv_logits):
        return F.kl_div(F.log_softmax(adv_logits.float(), dim=1), target, reduction="batchmean")

    x_adv = tr._attack(x, kl_to_clean, c.attack_steps, c.step_size, random_start=True)
    adv = tr.forward(x_adv).float()
    robust = F.kl_div(F.log_softmax(adv, dim=1), F.softmax(clean, dim=1), reduction="batchmean")
    if c.adversarial == "trades" or epoch < c.sglr_start_epoch:
        return tr.loss(clean, y) + c.trades_beta * robust, clean
    soft = tr._refined_labels(index, clean, adv)  # TRADES+SGLR: soft labels in the clean term
    natural = -(soft * F.log_softmax(clean, dim=1)).sum(1).mean()
    return natural + c.trades_beta * robust, clean


STEP_LOSSES = {"none": _clean_step, "fgsm": _fgsm_step, "fgsm_rs": _fgsm_rs_step, "pgd": _pgd_step,
               "sglr": _pgd_step, "trades": _trades_step, "trades_sglr": _trades_step}


def _check_labels(y: torch.Tensor, num_classes: int, dataset: str) -> None:
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"dataset {dataset!r} holds labels outside [0, {num_classes - 1}]")


class DirectoryCheckpoints:
    """Epoch checkpoints in a cache entry's folder (:func:`lsnotes.cache.save_checkpoint`).

    :func:`train` accepts any object with these two methods, so a Ray worker can keep its
    checkpoints on the driver's machine instead (:mod:`lsnotes.zoo`).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def load(self, key: str) -> dict | None:
        return cache.load_checkpoint(self.directory, key)

    def save(self, state: dict) -> None:
        cache.save_checkpoint(self.directory, state)


def train(config: TrainConfig, progress: bool = True, eval_robust: bool = False,
          checkpoint_dir: str | Path | None = None,
          on_epoch_end: Callable[[int, list[dict]], None] | None = None,
          checkpoints: Any = None) -> TrainResult:
    """Train ``config``; returns the model (evaluation mode) and its per-epoch history.

    With ``checkpoint_dir``, a verified checkpoint is written after every epoch and an existing one
    for the same config is resumed from. ``eval_robust`` adds ``robust_acc`` (PGD-10 at the
    config's ε, or the dataset's usual ε for standard training) to each epoch's record; it uses
    its own random stream, so it does not change what is trained. ``on_epoch_end(epoch, history)``
    runs after each epoch's checkpoint is saved. ``checkpoints`` replaces ``checkpoint_dir`` by
    any store with ``load(key) -> dict | None`` and ``save(state)`` (see
    :class:`DirectoryCheckpoints`). With ``eval_robust`` the result's ``best`` holds the weights of
    the epoch with the highest held-out robust accuracy (kept in the checkpoints too).
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(config).__name__}")
    from tqdm.auto import tqdm

    trainer = _Trainer(config, progress)
    key = config.key()
    start_epoch = 1
    best = None
    if checkpoint_dir is not None:
        checkpoints = DirectoryCheckpoints(checkpoint_dir)
    if checkpoints is not None:
        state = checkpoints.load(key)
        if state is not None:
            trainer.load_state_dict(state)
            best = state.get("best")
            start_epoch = len(trainer.history) + 1
    eval_eps = config.eps if config.eps > 0 else DATASETS[config.dataset].default_eps
    epoch_bar = tqdm(total=config.epochs, initial=start_epoch - 1, desc=f"train {config.model}",
                     unit="epoch", disable=not progress, leave=True)
    for epoch in range(start_epoch, config.epochs + 1):
        with tqdm(total=len(trainer.loader), desc=f"epoch {epoch}", unit="batch",
                  disable=not progress, leave=False) as batch_bar:
            record = trainer.run_epoch(epoch, batch_bar)
        record["test_acc"] = accuracy(trainer.model, trainer.x_test, trainer.y_test)
        if eval_robust:
            record["robust_acc"] = robust_accuracy(trainer.model, trainer.x_test, trainer.y_test,
                                                   eval_eps, seed=config.seed + 2)
        trainer.history.append(record)
        if eval_robust and (best is None or record["robust_acc"] > best["robust_acc"]):
            best = {"epoch": epoch, "robust_acc": record["robust_acc"],
                    "model": {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}}
        epoch_bar.update(1)
        epoch_bar.set_postfix(loss=f"{record['loss']:.3f}", test_acc=f"{record['test_acc']:.3f}")
        if checkpoints is not None:
            checkpoints.save({"key": key, **trainer.state_dict(), "best": best})
        if on_epoch_end is not None:
            on_epoch_end(epoch, trainer.history)
    epoch_bar.close()
    trainer.model.eval()
    return TrainResult(trainer.model, trainer.history, key=key, best=best)


def _empty_model(config: TrainConfig) -> nn.Module:
    info = DATASETS[config.dataset]
    return build_model(config.model, info.num_classes, info.shape[0], info.shape[1], info.mean, info.std)


def train_or_load(config: TrainConfig, progress: bool = True, cache_dir: str | Path | None = None,
                  on_epoch_end: Callable[[int, list[dict]], None] | None = None,
                  eval_robust: bool = False, keep_best: bool = False) -> TrainResult:
    """The trained model for ``config``: from the cache if a verified entry exists, else trained.

    A verified entry is served without taking a lock, so a read-only cache folder works. Training
    takes a per-key file lock, so concurrent callers train once: the first trains (resuming from
    its last epoch checkpoint if an earlier run was interrupted) and stores, the others wait and
    load. A cache that must be written but cannot raises :class:`lsnotes.cache.CacheNotWritable`.
    ``eval_robust`` asks for the per-epoch robust accuracy in the history (see :func:`train`); a
    cached entry recorded without it is trained again with it (the weights come out the same).
    With ``eval_robust`` the best epoch's weights are stored beside the final ones
    (:func:`load_best`); ``keep_best`` retrains an entry stored without them.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(config).__name__}")
    progress = flag("progress", progress)
    eval_robust = flag("eval_robust", eval_robust)
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise ValueError(f"on_epoch_end must be a function or None; got {on_epoch_end!r}")

    key = config.key()
    directory = cache.entry_dir(key, cache_dir)

    def usable(stored: TrainResult | None, locked: bool) -> bool:
        return (stored is not None
                and not (eval_robust and any("robust_acc" not in r for r in stored.history))
                and not (keep_best and cache.load_best(directory, key, discard=locked) is None))

    # Without the lock a writer may be replacing the entry: a failed read here discards nothing.
    stored = load_trained(config, cache_dir)
    if usable(stored, locked=False):
        return stored
    with cache.lock_for(key, cache_dir):
        stored = load_trained(config, cache_dir, discard=True)
        if usable(stored, locked=True):
            return stored
        result = train(config, progress=progress, eval_robust=eval_robust or keep_best,
                       checkpoint_dir=directory, on_epoch_end=on_epoch_end)
        if result.best is not None:  # before the entry's manifest, which marks it complete
            cache.store_best(directory, key, result.best)
        cache.store_result(directory, key, config.identity(), result.model.state_dict(), result.history)
        cache.clear_checkpoint(directory)
        result.path = directory
        return result


def load_trained(config: TrainConfig, cache_dir: str | Path | None = None, *,
                 discard: bool = False) -> TrainResult | None:
    """The cached model for ``config`` if a verified entry exists, else None; never trains.

    A damaged entry, or one that verifies but does not load into the model (weights of another
    shape), reads as missing. ``discard=True`` says the caller holds the key's lock
    (:func:`lsnotes.cache.lock_for`): the entry is then reported with a
    :class:`lsnotes.cache.CacheWarning` and removed. Without the lock another process may be
    rewriting the entry, so nothing is deleted.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig; got {type(config).__name__}")
    key = config.key()
    directory = cache.entry_dir(key, cache_dir)
    stored = cache.load_result(directory, key, config.identity(), discard=flag("discard", discard))
    if stored is None:
        return None
    state_dict, history = stored
    model = _empty_model(config)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:  # missing, unexpected or differently shaped tensors
        if discard:
            reason = str(err).strip().splitlines()
            cache.discard_result(directory, f"its weights do not fit a {config.model!r} model "
                                            f"({reason[0]} {reason[1].strip() if len(reason) > 1 else ''})")
        return None
    model.to(resolve_device(config.device)).eval()
    return TrainResult(model, history, key=key, from_cache=True, path=directory)


def load_best(config: TrainConfig, cache_dir: str | Path | None = None) -> TrainResult | None:
    """The best-epoch weights stored beside a verified cached model, or None; never trains.

    ``history`` is the whole run's; ``best`` is ``{"epoch", "robust_acc"}`` of the kept epoch.
    """
    stored = load_trained(config, cache_dir)
    if stored is None:
        return None
    best = cache.load_best(stored.path, stored.key)
    if best is None:
        return None
    model = _empty_model(config)
    model.load_state_dict(best["model"])
    model.to(resolve_device(config.device)).eval()
    return TrainResult(model, stored.history, key=stored.key, from_cache=True, path=stored.path,
                       best={"epoch": best["epoch"], "robust_acc": best["robust_acc"]})


# ------------------------------------------------------------------------------ command line

def _cli_type(f: dataclasses.Field):
    default = f.default
    if f.name in ("train_size", "test_size", "attack_steps", "sglr_start_epoch", "epochs",
                  "batch_size", "seed"):
        return int
    if f.name == "attack_step_size" or isinstance(default, float):
        return float
    return str


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model (or load it from the cache) and print its final metrics",
        description="Train one configuration with lsnotes.train.train_or_load. Options default to "
                    "TrainConfig's defaults.")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name in ("compile", "augment"):
            parser.add_argument(flag, action=argparse_boolean(), default=None,
                                help=f"(default: {f.default})")
        else:
            parser.add_argument(flag, type=_cli_type(f), default=None, help=f"(default: {f.default})")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: $LSNOTES_CACHE "
                                                          "or ~/.cache/lsnotes)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run_cli)


def argparse_boolean():
    import argparse

    return argparse.BooleanOptionalAction


def _run_cli(args) -> int:
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name) is not None}
    config = TrainConfig(**given)
    result = train_or_load(config, progress=not args.quiet, cache_dir=args.cache_dir)
    source = "loaded from cache" if result.from_cache else "trained"
    metrics = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in result.final.items())
    print(f"{source}: {metrics}")
    print(f"cache: {result.path}")
    return 0
