"""Long attack batteries split into shards of whole batches, locally or as Ray tasks.

:func:`sharded_report` gives exactly the per-example results of one
:func:`lsnotes.robustness.evaluate.robustness_report` (AutoAttack on thousands of examples spread
over a cluster's GPUs). It joins a cluster with :mod:`lsnotes.zoo.cluster`'s helpers.
"""

from __future__ import annotations

import time

import torch

from lsnotes import attacks as attack_lib
from lsnotes.checks import choice, number_in, positive_int
from lsnotes.robustness import evaluate
from lsnotes.zoo.cluster import connect, import_ray


def _shard_rows(model, x, y, eps, attacks, seed, batch_size, overrides, first_index):
    """Per-example clean and per-attack correctness of one shard, and each attack's seconds."""
    if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_accelerator_ids().get("GPU"):
            model, x, y = model.cuda(), x.cuda(), y.cuda()
    clean = evaluate._correct(model, x, y, batch_size)
    rows = {"clean": clean.tolist()}
    seconds = {}
    for name in attacks:
        start = time.perf_counter()
        x_adv = evaluate._attack_batched(name, model, x, y, eps, seed=seed, batch_size=batch_size,
                                         overrides=overrides.get(name, {}), progress=False,
                                         first_index=first_index)
        rows[name] = evaluate._correct(model, x_adv, y, batch_size, clean).tolist()
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
        ray = import_ray()
        started_here = connect(ray, address, None)
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
