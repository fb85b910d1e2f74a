"""How chapter kernels run: their environment (memory allocator settings, thread count) and the
peak memory they use.

Threads: a chapter kernel is one process; left alone, torch starts one OpenMP thread per core in
every process, and on a machine shared with other CPU-bound work those threads wait on each other
(each parallel region waits for its slowest thread, and a descheduled thread stalls them all).
:func:`kernel_threads` gives each kernel the usable cores divided by the kernels running at once,
and ``LSNOTES_THREADS`` overrides it (``benchmarks/bench_book.py --hogs 2 --threads 2,1``
measures the choice beside CPU hogs).
"""

from __future__ import annotations

import contextlib
import os
import threading

from lsnotes import checks

KERNEL_NAME = "python3"
#: Environment for the chapter kernels. glibc's malloc hands large freed buffers back to the OS,
#: so every large tensor pays its page faults again; keeping freed memory (as jemalloc and
#: TCMalloc do, which PyTorch's CPU performance guide recommends) took the classic-attacks chapter
#: from 112 s to 101 s and its system time from 25 s to 6 s. Values the user set win.
KERNEL_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


#: The documented override of the chapter kernels' thread count (a positive integer).
THREADS_VARIABLE = "LSNOTES_THREADS"


def kernel_threads(concurrent: int = 1) -> int:
    """Threads for each chapter kernel: ``$LSNOTES_THREADS``, else the usable cores shared
    evenly by ``concurrent`` kernels running at once (at least one)."""
    raw = os.environ.get(THREADS_VARIABLE, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"{THREADS_VARIABLE} must be a positive integer; got {raw!r}")
        return int(raw)
    concurrent = checks.positive_int("concurrent", concurrent)
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    return max(1, cores // concurrent)


def kernel_variables(concurrent: int = 1) -> dict[str, str]:
    """:data:`KERNEL_ENV`, the thread count (torch reads ``OMP_NUM_THREADS`` when it starts, MKL
    its own variable; see :func:`kernel_threads`) and ``OMP_WAIT_POLICY=PASSIVE``: a thread with
    nothing to do sleeps instead of spinning, so it does not take a core from a thread that has
    work (another kernel's, another program's, or its own team's while the machine is busy)."""
    threads = str(kernel_threads(concurrent))
    return {**KERNEL_ENV, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "OMP_WAIT_POLICY": "PASSIVE"}


@contextlib.contextmanager
def kernel_environment(concurrent: int = 1):
    """Set :func:`kernel_variables` (where unset) for kernels started inside the block, then
    restore. A variable the user set wins, so ``OMP_NUM_THREADS=1 lsnotes run-book`` works too."""
    added = {name: value for name, value in kernel_variables(concurrent).items()
             if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


class PeakMemory:
    """Samples the resident memory of this process's descendants (the kernel and its workers)."""

    def __init__(self, interval_s: float = 0.1):
        import psutil

        self._me = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak_bytes = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        total = 0
        for child in self._me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # exited between listing and reading
                pass
        self.peak_bytes = max(self.peak_bytes, total)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
