"""Chapters, and the models they train, a few at a time.

On a CPU, one process with every core is not the fastest way through the book: a small network's
step shares two threads imperfectly (one cnn4 training step: 17.4 s per model on one thread,
10.7 s on two, so two models side by side on one thread each finish in 17.7 s instead of 21.4 s).
:func:`lsnotes.runbook.run_book` therefore runs ``jobs`` chapter kernels at once, each with
``cores ÷ jobs`` threads (:func:`lsnotes.kernels.kernel_threads`). Chapters that share models
would then wait on each other's cache locks, so before any chapter executes, :func:`pretrain`
trains the models the chapters declare (:mod:`lsnotes.zoo`) and the cache lacks, ``jobs`` at a
time, longest first. On a GPU one job is the default (the kernels would share one device).

``LSNOTES_JOBS`` overrides the number of jobs (``1``: everything in order, as before).
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Sequence

from lsnotes import checks

#: The documented override of the number of chapters (and models) run at once.
JOBS_VARIABLE = "LSNOTES_JOBS"
#: At most this many at once by default: a third kernel on a small machine adds memory, not speed.
MAX_DEFAULT_JOBS = 2


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_jobs(device: str) -> int:
    """``$LSNOTES_JOBS``, else 1 on CUDA and ``min(2, cores)`` on a CPU. ``device`` is the
    resolved one (``cpu``/``cuda``)."""
    raw = os.environ.get(JOBS_VARIABLE, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{JOBS_VARIABLE} must be a positive integer; got {raw!r}")
        return int(raw)
    return 1 if str(device).startswith("cuda") else max(1, min(MAX_DEFAULT_JOBS, usable_cores()))


def in_pool(function: Callable, calls: Sequence[tuple], jobs: int,
            on_result: Callable[[int, object], None] | None = None) -> list:
    """``function(*call)`` for every call, ``jobs`` processes at a time; the results in the order
    of ``calls``. ``on_result(index, result)`` runs here as each finishes. Workers are spawned (a
    fresh interpreter: no torch state forked mid-flight) and inherit this process's environment;
    ``function`` must be importable by name. With one job, or one call, nothing is spawned."""
    jobs = checks.positive_int("jobs", jobs)
    results: list = [None] * len(calls)
    if jobs == 1 or len(calls) <= 1:
        for index, call in enumerate(calls):
            results[index] = function(*call)
            if on_result is not None:
                on_result(index, results[index])
        return results
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(jobs, len(calls)), mp_context=context) as pool:
        futures = {pool.submit(function, *call): index for index, call in enumerate(calls)}
        for future in as_completed(futures):
            index = futures[future]
            results[index] = future.result()
            if on_result is not None:
                on_result(index, results[index])
    return results


def missing_models(chapters: Sequence[str], profile: str, seed: int, cache_dir=None) -> list:
    """The zoo's plan entries (:func:`lsnotes.zoo.schedule.plan`) that ``chapters`` declare and
    the cache lacks, one per cache key, the costliest first."""
    from lsnotes.zoo import book, schedule

    missing = {}
    for chapter in chapters:
        if chapter in book.CHAPTERS:
            for entry in schedule.plan(profile, seed, chapter=chapter, cache_dir=cache_dir):
                if not entry.cached:
                    missing.setdefault(entry.config.key(), entry)
    return sorted(missing.values(), key=lambda entry: -entry.seconds)


def train_one(config: dict, eval_robust: bool, keep_best: bool, cache_dir=None) -> str:
    """Train (or load) one model through the cache, as a chapter would; returns its key. Runs in
    a worker: the thread count comes from the environment the book's run set."""
    from lsnotes import data, train

    config = train.TrainConfig.from_dict(config)
    data.ensure_dataset(config.dataset)
    train.train_or_load(config, progress=False, cache_dir=cache_dir, eval_robust=eval_robust,
                        keep_best=keep_best)
    return config.key()


def pretrain(chapters: Sequence[str], profile: str, seed: int, jobs: int, cache_dir=None) -> list[str]:
    """Train the models ``chapters`` will ask for and the cache lacks, ``jobs`` at a time; returns
    the keys trained. A model that fails to train is left to its chapter, which reports the error
    where the reader sees it (a warning names it here)."""
    entries = missing_models(chapters, profile, seed, cache_dir)
    calls = [(e.config.to_dict(), e.request.eval_robust, e.request.keep_best, cache_dir)
             for e in entries]
    trained = []
    try:
        trained = in_pool(train_one, calls, jobs)
    except Exception as err:  # the chapters train what is still missing, and report why
        warnings.warn(f"training the zoo ahead of the chapters stopped ({type(err).__name__}: "
                      f"{err}); the chapters train what is missing", RuntimeWarning)
    return [key for key in trained if key]
