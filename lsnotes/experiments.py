"""The book's model zoo: the settings every experiment chapter shares, per profile.

Chapters ask for models through :func:`config` / :func:`trained`, so the same request made in two
chapters hits the same cache entry and nothing is trained twice. ``quick`` is sized for a 2-core
CPU (the whole book in minutes); ``full`` follows the papers on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from lsnotes.checks import choice, chapter_params, positive_int
from lsnotes.data import load_subset
from lsnotes.train import TrainConfig, TrainResult, train_or_load


@dataclass(frozen=True)
class Setting:
    """What a profile trains and attacks: one dataset/model pair and its budgets."""

    dataset: str
    model: str
    epochs: int
    train_size: int | None
    test_size: int | None
    batch_size: int
    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    eps: float                    # the L∞ budget the chapter's attacks use (pixel scale)
    eps_grid: tuple[float, ...]   # for ε sweeps and sliders
    alpha_grid: tuple[float, ...] # smoothing strengths trained (the α slider snaps to these)
    eval_size: int                # test examples every attack is scored on
    at_steps: int                 # inner PGD steps for adversarial training
    at_epochs: int
    paper: str                    # where the full-profile setting comes from


SETTINGS: dict[str, Setting] = {
    # Fashion-MNIST and a four-conv CNN (Carlini & Wagner's MNIST network): the smallest setting where LS visibly changes
    # FGSM/PGD accuracy on CPU (see the training chapter for what was measured).
    # ε = 0.1 is the usual Fashion-MNIST budget; at 0.03 plain CE already kept ~2/3 of its accuracy
    # under PGD-20 in this setting, leaving nothing for LS to change.
    "quick": Setting(dataset="fashion-mnist", model="cnn4", epochs=4, train_size=4000,
                     test_size=500, batch_size=128, optimizer="adam", lr=1e-3, weight_decay=0.0,
                     schedule="onecycle", eps=0.1, eps_grid=(0.0, 0.025, 0.05, 0.1, 0.15, 0.2),
                     alpha_grid=(0.1, 0.5, 0.9), eval_size=500, at_steps=3, at_epochs=4,
                     paper="CPU-sized stand-in"),
    # Fu et al.: CIFAR-10, ResNet-18, ε = 8/255, α up to 0.9, PGD-AT with 10 steps.
    "full": Setting(dataset="cifar10", model="resnet18", epochs=60, train_size=None,
                    test_size=None, batch_size=128, optimizer="sgd", lr=0.1, weight_decay=5e-4,
                    schedule="piecewise", eps=8 / 255,
                    eps_grid=(0.0, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255),
                    alpha_grid=(0.1, 0.3, 0.5, 0.7, 0.9), eval_size=1000, at_steps=10,
                    at_epochs=100, paper="Fu et al. (2020), CIFAR-10 ResNet-18"),
}


#: Yu et al.'s code trains plain PGD-AT for its first ``es`` = 90 of 200 epochs (refinement starts
#: just before the first learning-rate drop); every profile starts SGLR at the same fraction.
SGLR_START_FRACTION = 90 / 200


def sglr_start_epoch(epochs: int) -> int:
    """The first (1-based) epoch of label refinement: 91 of 200, as in Yu et al.'s script."""
    return round(SGLR_START_FRACTION * positive_int("epochs", epochs)) + 1


def setting(profile: str) -> Setting:
    return SETTINGS[choice("profile", profile, SETTINGS)]


def config(profile: str = "quick", method: str = "ce", alpha: float = 0.0, *,
           temperature: float = 1.0, adversarial: str = "none", seed: int = 0,
           device: str = "auto", **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of the zoo's model trained with ``method``/``alpha``/``adversarial``.

    Adversarial training uses the profile's ε, ``at_steps`` inner steps and ``at_epochs`` epochs.
    """
    s = setting(profile)
    adversarial_kw = {}
    epochs = s.epochs
    if adversarial != "none":
        adversarial_kw = dict(eps=s.eps, attack_steps=s.at_steps)
        epochs = s.at_epochs
        if adversarial == "sglr":
            adversarial_kw["sglr_start_epoch"] = sglr_start_epoch(epochs)
    fields = dict(dataset=s.dataset, model=s.model, method=method, alpha=alpha,
                  temperature=temperature, adversarial=adversarial, epochs=epochs,
                  batch_size=s.batch_size, optimizer=s.optimizer, lr=s.lr,
                  weight_decay=s.weight_decay, schedule=s.schedule, train_size=s.train_size,
                  test_size=s.test_size, seed=seed, device=device, **adversarial_kw)
    fields.update(overrides)
    return TrainConfig(**fields)


def trained(profile: str = "quick", method: str = "ce", alpha: float = 0.0, *,
            progress: bool = False, **kwargs) -> TrainResult:
    """The zoo's model for these settings, from the cache or trained now (then cached).

    Adversarially trained models always record held-out robust accuracy after every epoch, so any
    chapter can show their robust-overfitting curve without training them again.
    """
    cfg = config(profile, method, alpha, **kwargs)
    return train_or_load(cfg, progress=progress, eval_robust=cfg.adversarial != "none")


def eval_examples(profile: str = "quick", seed: int = 0, device: str = "auto",
                  n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed test examples every attack in the book is scored on (class-balanced)."""
    s = setting(profile)
    n = s.eval_size if n is None else positive_int("n", n)
    x, y = load_subset(s.dataset, "test", n, seed)
    target = chapter_params(profile, seed, device).device
    return x.to(target), y.to(target)


def with_overrides(profile: str, **changes) -> Setting:
    """A copy of a profile's setting with some fields changed (for exercises)."""
    return replace(setting(profile), **changes)


# ------------------------------------------------------------------------------ results as data

def _results_path(chapter: str, profile: str, results_dir=None):
    """Full-profile results are data the repository keeps (``book/results/full``); quick-profile
    results are regenerated by every run and live under ``_build/results/quick``."""
    from pathlib import Path

    choice("profile", profile, SETTINGS)
    root = Path(__file__).resolve().parent.parent
    if results_dir is None:
        results_dir = root / ("book/results" if profile == "full" else "_build/results")
    return Path(results_dir) / profile / f"{chapter}.json"


def save_results(chapter: str, profile: str, results: dict, *, seed: int, device: str,
                 results_dir=None):
    """Write a chapter's measured numbers as JSON with versions, seed and device (atomically).

    Full-profile runs on a GPU write ``book/results/full/<chapter>.json``, which is committed, so the
    quick-profile chapters can show the paper-scale numbers beside their own.
    """
    import json
    import platform

    import lsnotes
    from lsnotes.cache import atomic_write

    path = _results_path(chapter, profile, results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"chapter": chapter, "profile": profile, "seed": seed, "device": device,
               "device_name": (torch.cuda.get_device_name() if device.startswith("cuda") else
                               platform.processor() or platform.machine()),
               "versions": {"torch": torch.__version__, "lsnotes": lsnotes.__version__,
                            "python": platform.python_version()},
               "setting": setting(profile).__dict__, "results": results}
    atomic_write(path, json.dumps(payload, indent=1, sort_keys=True, default=float).encode())
    return path


def load_results(chapter: str, profile: str = "full", results_dir=None) -> dict | None:
    """The saved results of ``chapter`` for ``profile``, or None when none were produced yet."""
    import json

    path = _results_path(chapter, profile, results_dir)
    if not path.exists():
        return None
    return json.loads(path.read_text())
