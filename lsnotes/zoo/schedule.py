"""The model zoo at paper scale: what the chapters will ask for, trained once, anywhere.

- :func:`plan` lists every model the chapters request for a profile (the same declaration the
  chapters call, :func:`lsnotes.zoo.book.requests`), marks those already cached and estimates
  each one's GPU time (:func:`gpu_seconds` states the basis);
- :func:`train_sequential` trains the missing ones here, one after another;
- :func:`lsnotes.zoo.cluster.train_ray` trains them on a Ray cluster, one task per model.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from lsnotes import cache, data
from lsnotes.zoo import book
from lsnotes import train as train_lib
from lsnotes.checks import choice, number_in

#: Training images per dataset when a setting trains on all of them.
TRAIN_IMAGES = {"mnist": 60_000, "fashion-mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000,
                "svhn": 73_257}

#: Without a measured throughput (``make gpu-check``), the effective bf16 rate we assume for one
#: GPU. A stated assumption, not a measurement: the plan says which basis it used.
ASSUMED_TFLOPS = 40.0

#: The held-out monitor's PGD steps (:func:`lsnotes.metrics.robust_accuracy`).
MONITOR_STEPS = 10


# ------------------------------------------------------------------------------ cost model

@functools.lru_cache(maxsize=None)
def step_flops(dataset: str, model: str) -> dict[str, float]:
    """FLOPs per image of one forward pass, one training step (forward + backward into the
    weights) and one attack step (forward + backward into the input), counted by
    ``torch.utils.flop_counter`` on the meta device (shapes only: instant, no memory)."""
    from torch.utils.flop_counter import FlopCounterMode

    from lsnotes.models import build_model

    info = data.DATASETS[choice("dataset", dataset, data.DATASETS)]
    with torch.device("meta"):
        net = build_model(model, info.num_classes, info.shape[0], info.shape[1], info.mean, info.std)
        x = torch.zeros(2, *info.shape)
    counts = {}
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            net(x)
    counts["forward"] = counter.get_total_flops() / 2
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    counts["train"] = counter.get_total_flops() / 2
    for p in net.parameters():
        p.requires_grad_(False)
    x_adv = torch.zeros(2, *info.shape, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        net(x_adv).sum().backward()
    counts["attack"] = counter.get_total_flops() / 2
    return counts


def epoch_flops(config: train_lib.TrainConfig, eval_robust: bool) -> float:
    """FLOPs of one epoch of ``config``: the training steps of its adversarial mode, then the
    clean (and, with ``eval_robust``, PGD-10) scoring of its held-out images."""
    f = step_flops(config.dataset, config.model)
    steps = config.attack_steps
    per_image = {
        "none": f["train"],
        "fgsm": f["attack"] + 2 * f["train"],          # clean and FGSM halves both trained
        "fgsm_rs": f["attack"] + f["train"],
        "pgd": steps * f["attack"] + f["train"],
        "sglr": steps * f["attack"] + f["train"] + f["forward"],
        "trades": f["forward"] + steps * f["attack"] + 2 * f["train"],
        "trades_sglr": f["forward"] + steps * f["attack"] + 2 * f["train"],
    }[config.adversarial]
    images = config.train_size or TRAIN_IMAGES[config.dataset]
    held_out = config.test_size or 10_000
    scoring = held_out * f["forward"] * (2 if eval_robust else 1)
    if eval_robust:
        scoring += held_out * MONITOR_STEPS * f["attack"]
    return images * per_image + scoring


def load_throughput(path: str | Path | None) -> dict[tuple[str, str], float]:
    """``{(dataset, model): training images/s}`` from a ``make gpu-check`` JSON (empty if None)."""
    if path is None:
        return {}
    try:
        report = json.loads(Path(path).read_text())
        rates = {(row["dataset"], row["model"]): float(row["images_per_s"])
                 for row in report["training_epoch"] if row.get("adversarial", "none") == "none"}
        if not all(math.isfinite(r) and r > 0 for r in rates.values()):
            raise ValueError("images_per_s must be a positive finite number in every row")
        return rates
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--throughput {path}: not a readable gpu-check JSON ({err})") from None


def gpu_seconds(config: train_lib.TrainConfig, eval_robust: bool,
                throughput: dict[tuple[str, str], float] | None = None,
                tflops: float = ASSUMED_TFLOPS) -> tuple[float, str]:
    """Estimated seconds on one GPU and the basis: a measured images/s of the architecture's plain
    training step (scaled by the FLOP ratio of this mode to it), else ``tflops`` effective."""
    total = config.epochs * epoch_flops(config, eval_robust)
    measured = (throughput or {}).get((config.dataset, config.model))
    if measured:
        per_step = step_flops(config.dataset, config.model)["train"]
        return total / (per_step * measured), "measured"
    return total / (tflops * 1e12), "assumed"


# ------------------------------------------------------------------------------ the plan

@dataclass
class PlanEntry:
    """One cache key the chapters will ask for."""

    request: book.Request      # the first chapter request of this key
    chapters: tuple[str, ...]
    papers: tuple[str, ...]
    cached: bool
    seconds: float
    basis: str

    @property
    def config(self) -> train_lib.TrainConfig:
        return self.request.config

    @property
    def name(self) -> str:
        return f"{self.request.setting.name}: {self.request.label}"


def _paper_of(setting: book.Setting) -> str | None:
    return next((p for p, group in book.PAPERS.items() if setting in group), None)


def is_cached(request: book.Request, cache_dir=None) -> bool:
    """Whether the cache already holds this request as the chapters will load it (verified, with
    the per-epoch robust accuracy and best epoch it asks for): then nothing is trained."""
    key = request.config.key()
    directory = cache.entry_dir(key, cache_dir)
    if not (directory / cache.MANIFEST).exists():
        return False
    stored = cache.load_result(directory, key, request.config.identity())
    if stored is None:
        return False
    if request.eval_robust and any("robust_acc" not in r for r in stored[1]):
        return False
    return not (request.keep_best and cache.load_best(directory, key) is None)


def plan(profile: str = "quick", seed: int = 0, *, paper: str | None = None,
         chapter: str | None = None, cache_dir=None, throughput_file=None,
         tflops: float = ASSUMED_TFLOPS) -> list[PlanEntry]:
    """Every model the chapters request for ``profile`` (one entry per cache key), optionally only
    ``paper``'s or ``chapter``'s, with its cache state and GPU-time estimate."""
    if paper is not None:
        choice("paper", paper, book.PAPERS)
    tflops = number_in("tflops", tflops, 0, low_open=True)
    throughput = load_throughput(throughput_file)
    by_key: dict[str, PlanEntry] = {}
    for r in book.requests(chapter, profile, seed):
        key = r.config.key()
        papers = (_paper_of(r.setting),) if profile == "full" else book.CHAPTERS[r.chapter]
        if key in by_key:
            entry = by_key[key]
            entry.chapters += (r.chapter,) if r.chapter not in entry.chapters else ()
            entry.papers += tuple(p for p in papers if p not in entry.papers)
            continue
        seconds, basis = gpu_seconds(r.config, r.eval_robust, throughput, tflops)
        by_key[key] = PlanEntry(r, (r.chapter,), tuple(papers), is_cached(r, cache_dir), seconds, basis)
    entries = list(by_key.values())
    if paper is not None:
        entries = [e for e in entries if paper in e.papers]
    return entries


def format_plan(entries: list[PlanEntry], tflops: float = ASSUMED_TFLOPS, throughput_file=None) -> str:
    """The plan as a text table, then totals per paper and the basis of the estimates."""
    header = ("", "setting", "model", "dataset", "network", "method", "α", "AT", "epochs", "GPU h")
    rows = []
    for e in entries:
        c = e.config
        method = c.method if c.method != "bls" or c.temperature == 1.0 else f"bls T={c.temperature:g}"
        rows.append(("✓" if e.cached else "·", e.request.setting.name, e.request.label, c.dataset,
                     c.model, method, f"{c.alpha:g}", c.adversarial, str(c.epochs),
                     f"{e.seconds / 3600:.2f}"))
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(f"{v:<{w}}" for v, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(header)] + [line(r) for r in rows]
    out.append("")
    for paper in book.PAPERS:
        mine = [e for e in entries if paper in e.papers]
        if not mine:
            continue
        todo = [e for e in mine if not e.cached]
        out.append(f"{book.PAPER_TITLES[paper]}: {len(mine)} models, {len(todo)} missing; "
                   f"{sum(e.seconds for e in mine) / 3600:.1f} GPU h in all, "
                   f"{sum(e.seconds for e in todo) / 3600:.1f} GPU h missing")
    todo = [e for e in entries if not e.cached]
    out.append(f"all papers: {len(entries)} models ({len(entries) - len(todo)} cached), "
               f"{sum(e.seconds for e in entries) / 3600:.1f} GPU h in all, "
               f"{sum(e.seconds for e in todo) / 3600:.1f} GPU h missing")
    bases = {e.basis for e in entries}
    basis = ("GPU time = FLOPs of each model's training (torch.utils.flop_counter, per "
             "architecture and adversarial mode, held-out scoring included) ÷ ")
    if bases == {"measured"}:
        basis += f"the training images/s measured by make gpu-check ({throughput_file})"
    elif "measured" in bases:
        basis += (f"measured images/s ({throughput_file}) where gpu-check measured the "
                  f"architecture, else an assumed {tflops:g} TFLOP/s effective")
    else:
        basis += (f"an assumed {tflops:g} TFLOP/s effective on one GPU (not measured: run "
                  f"`make gpu-check` and pass --throughput artifacts/gpu/gpu_check.json)")
    out.append(basis)
    return "\n".join(out)


# ------------------------------------------------------------------------------ sequential

def train_sequential(entries: list[PlanEntry], cache_dir=None, progress: bool = True,
                     on_epoch_end: Callable | None = None) -> list[str]:
    """Train the entries' missing models here, one after another (each through the cache's lock,
    as a chapter would); returns the keys trained or found."""
    from tqdm.auto import tqdm

    keys = []
    for entry in tqdm(entries, desc="models", unit="model", disable=not progress):
        r = entry.request
        data.ensure_dataset(r.config.dataset)
        train_lib.train_or_load(r.config, progress=progress, cache_dir=cache_dir,
                                on_epoch_end=on_epoch_end, eval_robust=r.eval_robust,
                                keep_best=r.keep_best)
        keys.append(r.config.key())
    return keys
