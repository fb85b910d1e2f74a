"""The zoo on a Ray cluster: one task per model, results sent home checked.

- :func:`train_ray` trains the plan's missing models as one Ray task per model on an existing Ray
  cluster (or a local one it starts), each with the GPU it needs. Every epoch checkpoint and every
  finished model is serialised on the worker, sent with its SHA-256 to a *keeper* actor pinned to
  the driver's node, checked there and written with :mod:`lsnotes.cache`'s atomic functions, so
  the driver's cache fills whether or not the workers share its file system. A worker that dies is
  retried (``max_retries``) and resumes from its last epoch checkpoint (training resumes exactly,
  so the final weights equal an uninterrupted run's). The driver holds the cache's per-key lock
  while a key trains, so two drivers, or a driver and a chapter, never train the same key twice.
- :func:`import_ray` and :func:`connect` join (or start) a cluster; the sharded attack batteries
  of :mod:`lsnotes.robustness.sharded` use them too.

Ray is used as the scheduler; there is no scheduler of ours (see README: one multi-GPU machine,
``ray start`` on existing nodes, KubeRay).
"""

from __future__ import annotations

import io
import socket
import torch
from tqdm.auto import tqdm
from typing import Any, Callable

from lsnotes.checks import positive_int
from lsnotes.zoo.schedule import is_cached, PlanEntry
from lsnotes import cache, data
from lsnotes import train as train_lib
from lsnotes.train_config import TRAIN_CODE_VERSION


# ------------------------------------------------------------------------------ Ray

def import_ray():
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

    if TRAIN_CODE_VERSION != code_version:
        raise RuntimeError(f"this worker's lsnotes trains code version {TRAIN_CODE_VERSION}, "
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


def connect(ray, address: str | None, num_cpus: int | None):
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
    
    ray = import_ray()
    max_retries = positive_int("max_retries", max_retries, minimum=0)
    cpus_per_model = positive_int("cpus_per_model", cpus_per_model)
    started_here = connect(ray, address, num_cpus)
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
                              TRAIN_CODE_VERSION, cpus_per_model, on_epoch_end)
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
