"""The model zoo at paper scale: what the chapters will ask for, trained once, anywhere.

- :func:`plan` lists every model the chapters request for a profile (the same declaration the
  chapters call, :func:`lsnotes.zoo.book.requests`), marks those already cached and estimates
  each one's GPU time (:func:`gpu_seconds` states the basis);
- :func:`train_sequential` trains the missing ones here, one after another;
- :func:`train_ray` trains them as one Ray task per model on an existing Ray cluster (or a local
  one it starts), each with the GPU it needs. Every epoch checkpoint and every finished model is
  serialised on the worker, sent with its SHA-256 to a *keeper* actor pinned to the driver's node,
  checked there and written with :mod:`lsnotes.cache`'s atomic functions, so the driver's cache
  fills whether or not the workers share its file system. A worker that dies is retried
  (``max_retries``) and resumes from its last epoch checkpoint (training resumes exactly, so the
  final weights equal an uninterrupted run's). The driver holds the cache's per-key lock while a
  key trains, so two drivers, or a driver and a chapter, never train the same key twice;
- :func:`sharded_report` splits a long attack battery (AutoAttack on thousands of examples) into
  shards of whole batches, locally or as Ray tasks, with exactly the per-example results of one
  :func:`lsnotes.robustness.evaluate.robustness_report`.

Ray is used as the scheduler; there is no scheduler of ours (see README: one multi-GPU machine,
``ray start`` on existing nodes, KubeRay).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from lsnotes import cache, data
from lsnotes.robustness import evaluate
from lsnotes.zoo import book
from lsnotes import train as train_lib
from lsnotes.checks import choice, number_in, positive_int

#: Training images per dataset when a setting trains on all of them.
TRAIN_IMAGES = {"mnist": 60_000, "fashion-mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000,
                "svhn": 73_257}

#: Without a measured throughput (``make gpu-check``), the effective bf16 rate we assume for one
#: GPU. A stated assumption, not a measurement: the plan says which basis it used.
ASSUMED_TFLOPS = 40.0

#: The held-out monitor's PGD steps (:func:`lsnotes.train.robust_accuracy`).
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
        return {(row["dataset"], row["model"]): float(row["images_per_s"])
                for row in report["training_epoch"] if row.get("adversarial", "none") == "none"}
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


# ------------------------------------------------------------------------------ Ray

def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs the 'ray' package (pinned in requirements.txt): "
                         "pip install -r requirements.txt") from None
    return ray


class CacheKeeper:
    """Runs on the driver's node (a Ray actor pinned there): the only writer of the driver's cache
    for Ray workers. Every byte string arrives with its SHA-256 and is checked before it is
    written (:func:`lsnotes.cache.save_checkpoint_bytes`, :func:`~lsnotes.cache.store_result_bytes`).
    """

    def __init__(self, cache_dir: str):
        self.cache_dir = cache_dir
        self.epochs: dict[str, tuple[int, int]] = {}

    def load_checkpoint(self, key: str):
        return cache.checkpoint_bytes(cache.entry_dir(key, self.cache_dir), key)

    def save_checkpoint(self, key: str, payload: bytes, digest: str, epoch: int, epochs: int) -> None:
        cache.save_checkpoint_bytes(cache.entry_dir(key, self.cache_dir), key, payload, digest)
        self.epochs[key] = (epoch, epochs)

    def store_result(self, key, config, weights, weights_digest, history, best, best_digest) -> None:
        directory = cache.entry_dir(key, self.cache_dir)
        cache.store_result_bytes(directory, key, config, weights, weights_digest, history,
                                 best, best_digest)
        cache.clear_checkpoint(directory)

    def progress(self) -> dict[str, tuple[int, int]]:
        return dict(self.epochs)


class KeeperCheckpoints:
    """A worker's epoch checkpoints, kept by the driver's :class:`CacheKeeper` (see
    :class:`lsnotes.train.DirectoryCheckpoints` for the contract)."""

    def __init__(self, keeper, epochs: int):
        self.keeper, self.epochs = keeper, epochs

    def load(self, key: str) -> dict | None:
        import ray

        sent = ray.get(self.keeper.load_checkpoint.remote(key))
        if sent is None:
            return None
        payload, digest = sent
        if cache.sha256(payload) != digest:
            raise cache.CacheCorruption(f"checkpoint of {key} changed in transit")
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)

    def save(self, state: dict) -> None:
        import ray

        payload, digest = cache.serialise(state)
        # Wait for the write: the epoch counts as saved only once the driver's disk has it.
        ray.get(self.keeper.save_checkpoint.remote(state["key"], payload, digest,
                                                   len(state["history"]), self.epochs))


def train_one_remote(config_dict: dict, eval_robust: bool, keep_best: bool, keeper,
                     code_version: str, threads: int, on_epoch_end=None) -> str:
    """The body of one Ray task: train one model, checkpointing through ``keeper``; returns its key."""
    import ray

    if train_lib.TRAIN_CODE_VERSION != code_version:
        raise RuntimeError(f"this worker's lsnotes trains code version {train_lib.TRAIN_CODE_VERSION}, "
                           f"the driver's {code_version}: install the same lsnotes on every node")
    gpus = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    device = "cuda" if gpus and torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(threads)
    config = train_lib.TrainConfig.from_dict({**config_dict, "device": device})
    data.ensure_dataset(config.dataset)
    result = train_lib.train(config, progress=False, eval_robust=eval_robust or keep_best,
                             checkpoints=KeeperCheckpoints(keeper, config.epochs),
                             on_epoch_end=on_epoch_end)
    key = config.key()
    weights, digest = cache.serialise({k: v.detach().cpu() for k, v in result.model.state_dict().items()})
    best = best_digest = None
    if result.best is not None:
        best, best_digest = cache.serialise({"key": key, **result.best})
    ray.get(keeper.store_result.remote(key, config.identity(), weights, digest, result.history,
                                       best, best_digest))
    return key


RAY_CONNECT_TIMEOUT = 5.0  # seconds: a head that does not answer by then is not there


def check_ray_address(address: str | None, timeout: float = RAY_CONNECT_TIMEOUT) -> str | None:
    """``address`` if it names a Ray cluster that answers, else a ``ValueError`` within
    ``timeout`` seconds (``ray.init`` itself retries an unreachable head for minutes).

    None or ``"local"``: start a local cluster; ``"auto"``: the cluster running on this machine
    (Ray says at once if there is none); ``host:port`` or ``ray://host:port``: a TCP connection
    to it must open within ``timeout``."""
    if address in (None, "local", "auto"):
        return address
    if not isinstance(address, str):
        raise ValueError(f"--ray must be auto, local, host:port or ray://host:port; got {address!r}")
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--ray must be auto, local, host:port or ray://host:port (port 1-65535); "
                         f"got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ValueError(f"--ray {address}: no Ray cluster answers there within {timeout:g} s "
                         f"({err.strerror or type(err).__name__}); start one with `ray start "
                         f"--head`, or leave out the address to start a local one") from None
    return address


def _connect(ray, address: str | None, num_cpus: int | None):
    """Join the cluster at ``address`` (``auto``, ``host:port``, ``ray://…``), or start a local one."""
    if ray.is_initialized():
        return False
    check_ray_address(address)
    kwargs: dict[str, Any] = dict(log_to_driver=False)
    if address in (None, "local"):
        kwargs.update(include_dashboard=False, num_cpus=num_cpus)
    else:
        kwargs["address"] = address
    ray.init(**kwargs)
    return True


def train_ray(entries: list[PlanEntry], address: str | None = None, cache_dir=None,
              progress: bool = True, max_retries: int = 3, cpus_per_model: int = 1,
              on_epoch_end: Callable | None = None, num_cpus: int | None = None) -> list[str]:
    """Train the entries' missing models as Ray tasks (one per model); returns the keys trained.

    ``address``: a running cluster (``"auto"``, ``"host:6379"``, ``"ray://head:10001"``), or None
    to start a local one (``num_cpus`` CPUs; all by default). Each task asks for one GPU when the
    cluster has GPUs, else ``cpus_per_model`` CPUs and uses that many threads (CPU weights depend
    on the thread count: a sequential run with as many threads gives bit-identical ones). Keys another
    process is training (its lock is held) are waited for, then loaded or trained here.
    """
    from filelock import Timeout
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from tqdm.auto import tqdm

    ray = _import_ray()
    max_retries = positive_int("max_retries", max_retries, minimum=0)
    cpus_per_model = positive_int("cpus_per_model", cpus_per_model)
    started_here = _connect(ray, address, num_cpus)
    root = str(cache.cache_root(cache_dir).expanduser().resolve())
    locks, pending, waited, trained = [], {}, [], []
    try:
        here = ray.get_runtime_context().get_node_id()
        keeper = ray.remote(CacheKeeper).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)
        ).remote(root)
        use_gpu = ray.cluster_resources().get("GPU", 0) >= 1
        task = ray.remote(train_one_remote).options(
            num_gpus=1 if use_gpu else 0, num_cpus=cpus_per_model, max_retries=max_retries,
            retry_exceptions=False)
        for entry in entries:
            key = entry.config.key()
            lock = cache.lock_for(key, root)
            try:
                lock.acquire(timeout=0)
            except Timeout:  # another driver or a chapter is training it right now
                waited.append(entry)
                continue
            if is_cached(entry.request, root):
                lock.release()
                continue
            locks.append(lock)
            r = entry.request
            ref = task.remote(r.config.to_dict(), r.eval_robust, r.keep_best, keeper,
                              train_lib.TRAIN_CODE_VERSION, cpus_per_model, on_epoch_end)
            pending[ref] = (entry, lock)
        models = tqdm(total=len(pending), desc="models", unit="model", disable=not progress)
        epoch_bars: dict[str, Any] = {}
        failures = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if progress:
                _show_epochs(ray.get(keeper.progress.remote()), pending, epoch_bars, tqdm)
            for ref in done:
                entry, lock = pending.pop(ref)
                try:
                    trained.append(ray.get(ref))
                except Exception as err:  # noqa: BLE001 - report every failed model at the end
                    failures.append(f"{entry.name} ({entry.config.key()}): {err}")
                finally:
                    lock.release()
                    bar = epoch_bars.pop(entry.config.key(), None)
                    if bar is not None:
                        bar.close()
                models.update(1)
        models.close()
        for entry in waited:  # the other trainer has finished (or died: then train it here)
            r = entry.request
            train_lib.train_or_load(r.config, progress=progress, cache_dir=root,
                                    eval_robust=r.eval_robust, keep_best=r.keep_best)
        if failures:
            raise RuntimeError("models that failed after retries: " + "; ".join(failures))
        return trained
    finally:
        for lock in locks:
            if lock.is_locked:
                lock.release()
        if started_here:
            ray.shutdown()


def _show_epochs(epochs: dict, pending: dict, bars: dict, tqdm) -> None:
    """One bar per running model, at the epoch its last checkpoint reached."""
    running = {entry.config.key(): entry for entry, _ in pending.values()}
    for key, (epoch, total) in epochs.items():
        if key not in running:
            continue
        if key not in bars:
            bars[key] = tqdm(total=total, desc=running[key].name, unit="epoch", leave=False)
        bars[key].update(epoch - bars[key].n)


# ------------------------------------------------------------------------------ sharded attacks

def _shard_rows(model, x, y, eps, attacks, seed, batch_size, overrides, first_index):
    """Per-example clean and per-attack correctness of one shard, and each attack's seconds."""
    if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_accelerator_ids().get("GPU"):
            model, x, y = model.cuda(), x.cuda(), y.cuda()
    rows = {"clean": evaluate._correct(model, x, y, batch_size).tolist()}
    seconds = {}
    for name in attacks:
        start = time.perf_counter()
        x_adv = evaluate._attack_batched(name, model, x, y, eps, seed=seed, batch_size=batch_size,
                                         overrides=overrides.get(name, {}), progress=False,
                                         first_index=first_index)
        rows[name] = evaluate._correct(model, x_adv, y, batch_size).tolist()
        seconds[name] = time.perf_counter() - start
    return rows, seconds


def shard_bounds(n: int, batch_size: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` runs of whole batches covering ``n`` examples (fewer if there are fewer batches)."""
    batches = -(-n // batch_size)
    shards = min(positive_int("shards", shards), batches)
    per = [batches // shards + (1 if i < batches % shards else 0) for i in range(shards)]
    bounds, start = [], 0
    for count in per:
        end = min(start + count * batch_size, n)
        bounds.append((start, end))
        start = end
    return bounds


def sharded_report(model, x, y, eps, attacks=evaluate.DEFAULT_ATTACKS, *, shards: int = 2,
                   seed: int = 0, batch_size: int = 256, overrides: dict | None = None,
                   use_ray: bool = False, address: str | None = None, model_name: str = "model",
                   architecture: str = "unknown", dataset: str = "unknown"
                   ) -> evaluate.RobustnessReport:
    """:func:`lsnotes.robustness.evaluate.robustness_report` split into ``shards`` runs of whole batches.

    Each batch keeps its boundaries and its generator (seeded from the seed, the attack and the
    batch's first example), so the per-example results equal the unsharded report's. With
    ``use_ray`` each shard is a Ray task (one GPU each when the cluster has GPUs); ``seconds``
    then add up the shards' times. No transfer row (use the unsharded report for that).
    """
    attacks = tuple(attacks)
    if not attacks:
        raise ValueError("attacks must name at least one attack from lsnotes.attacks.ATTACKS")
    from lsnotes import attacks as attack_lib

    for name in attacks:
        choice("attack", name, attack_lib.ATTACKS)
    overrides = dict(overrides or {})
    for name in overrides:
        choice("overrides key", name, attacks)
    eps = number_in("eps", eps, 0)
    seed = positive_int("seed", seed, 0)
    batch_size = positive_int("batch_size", batch_size)
    attack_lib.check_batch(x, y)
    bounds = shard_bounds(len(x), batch_size, shards)
    if use_ray:
        ray = _import_ray()
        started_here = _connect(ray, address, None)
        try:
            use_gpu = ray.cluster_resources().get("GPU", 0) >= 1
            task = ray.remote(_shard_rows).options(num_gpus=1 if use_gpu else 0, max_retries=3)
            model_ref = ray.put(model.cpu() if use_gpu else model)
            results = ray.get([task.remote(model_ref, x[a:b].cpu(), y[a:b].cpu(), eps, attacks,
                                           seed, batch_size, overrides, a) for a, b in bounds])
        finally:
            if started_here:
                ray.shutdown()
    else:
        results = [_shard_rows(model, x[a:b], y[a:b], eps, attacks, seed, batch_size, overrides, a)
                   for a, b in bounds]
    column = lambda name: [flag for rows, _ in results for flag in rows[name]]  # noqa: E731
    return evaluate.RobustnessReport(
        model_name=model_name, architecture=architecture, eps=eps, norm="linf",
        n_examples=len(x), seed=seed, device=str(x.device), clean_correct=column("clean"),
        robust_correct={name: column(name) for name in attacks},
        seconds={name: sum(s[name] for _, s in results) for name in attacks}, dataset=dataset)


# ------------------------------------------------------------------------------ command line

def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("zoo", help="plan and train every model the chapters ask for",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", default="quick", help="quick or full (default: quick)")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--paper", default=None,
                        help=f"only this paper's models ({', '.join(book.PAPERS)})")
    common.add_argument("--chapter", default=None,
                        help=f"only this chapter's models ({', '.join(book.CHAPTERS)})")
    common.add_argument("--cache-dir", default=None,
                        help="cache folder (default: $LSNOTES_CACHE or ~/.cache/lsnotes)")
    common.add_argument("--throughput", default=None,
                        help="a make gpu-check JSON: estimate GPU time from its measured images/s")
    common.add_argument("--tflops", type=float, default=ASSUMED_TFLOPS,
                        help=f"effective TFLOP/s assumed without --throughput (default {ASSUMED_TFLOPS:g})")
    plan_parser = sub.add_parser("plan", parents=[common],
                                 help="list the models, their cache state and GPU-time estimates")
    plan_parser.set_defaults(func=_run_plan)
    train_parser = sub.add_parser("train", parents=[common], help="train the missing models")
    train_parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                              help="one Ray task per model; without ADDRESS a local Ray cluster is "
                                   "started, else joined (auto, host:6379, ray://head:10001)")
    train_parser.add_argument("--max-retries", type=int, default=3,
                              help="retries of a model whose Ray worker died (default 3)")
    train_parser.add_argument("--threads", type=int, default=None,
                              help="CPU threads per model (default: torch's for sequential training, "
                                   "1 per Ray task, which then asks for that many CPUs). On a CPU "
                                   "the weights depend on it: equal --threads, bit-identical weights")
    train_parser.add_argument("--limit", type=int, default=None,
                              help="train at most this many missing models (in plan order)")
    train_parser.add_argument("--quiet", action="store_true", help="no progress bars")
    train_parser.set_defaults(func=_run_train)


def _plan_from(args) -> list[PlanEntry]:
    return plan(args.profile, positive_int("--seed", args.seed, 0), paper=args.paper,
                chapter=args.chapter, cache_dir=args.cache_dir, throughput_file=args.throughput,
                tflops=args.tflops)


def _run_plan(args) -> int:
    entries = _plan_from(args)
    print(format_plan(entries, args.tflops, args.throughput))
    return 0


def _run_train(args) -> int:
    if args.ray is not None:
        check_ray_address(args.ray)  # before the plan reads the cache, and before any training
    entries = [e for e in _plan_from(args) if not e.cached]
    if args.limit is not None:
        entries = entries[:positive_int("--limit", args.limit, 0)]
    if not entries:
        print("nothing to train: every requested model is in the cache")
        return 0
    threads = None if args.threads is None else positive_int("--threads", args.threads)
    started = time.perf_counter()
    try:
        if args.ray is None:
            if threads is not None:
                torch.set_num_threads(threads)
            keys = train_sequential(entries, args.cache_dir, progress=not args.quiet)
        else:
            keys = train_ray(entries, args.ray, args.cache_dir, progress=not args.quiet,
                             max_retries=args.max_retries, cpus_per_model=threads or 1)
    except FileNotFoundError as err:  # a dataset missing offline: the one line that says what to do
        print(f"lsnotes zoo: error: {err}", file=sys.stderr)
        return 2
    where = "sequentially" if args.ray is None else f"on Ray ({args.ray})"
    print(f"trained {len(keys)} of {len(entries)} missing models {where} in "
          f"{time.perf_counter() - started:.0f} s; cache: {cache.cache_root(args.cache_dir)}")
    return 0
