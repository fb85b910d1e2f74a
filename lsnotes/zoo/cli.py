"""``lsnotes zoo plan`` and ``lsnotes zoo train``: the zoo's declaration, its cache state and
GPU hours, and its missing models trained here or on a Ray cluster."""

from __future__ import annotations

import argparse
import sys
import time

import torch

from lsnotes import cache
from lsnotes.checks import positive_int
from lsnotes.zoo import book
from lsnotes.zoo.cluster import check_ray_address, train_ray
from lsnotes.zoo.schedule import ASSUMED_TFLOPS, PlanEntry, format_plan, plan, train_sequential


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
