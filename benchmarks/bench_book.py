"""Book build benchmark: per-chapter wall time and peak kernel memory, three ways.

- ``cold``: an empty model cache (``LSNOTES_CACHE`` pointed at a temporary folder, so every model
  is trained), no stored attack results, no stored executions: a fresh clone's first ``make book``.
- ``warm``: the user's model cache (``~/.cache/lsnotes`` or ``$LSNOTES_CACHE``), no stored attack
  results, no stored executions (every chapter executes): ``make book`` after a chapter changed.
- ``rebuild``: right after ``warm``, nothing changed: every chapter is reused (seconds).

``--hogs N`` runs N CPU-bound processes (``while True: pass``) beside the measurement, to see how
the build shares a loaded machine; ``--threads 1,2`` repeats ``warm`` once per kernel thread count
(``LSNOTES_THREADS``), interleaved ``--repeats`` times, so the ratios compare like with like.
``--html`` also times staging and the Sphinx build (only meaningful with every chapter).

    python benchmarks/bench_book.py --chapters toy_problem --modes warm,rebuild
    python benchmarks/bench_book.py --modes cold,warm,rebuild --html --json artifacts/book.json
    python benchmarks/bench_book.py --chapters toy_problem --hogs 2 --threads 2,1 --repeats 2

It prints a table and writes JSON (each chapter's row lists its five slowest cells) (``--json``, default ``artifacts/bench_book.json``). Nothing in
the user's caches is deleted; everything temporary lives in one folder removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lsnotes import runbook

MODES = ("cold", "warm", "rebuild")


@contextlib.contextmanager
def environment(**values):
    """Set (a value) or unset (None) environment variables inside the block, then restore."""
    before = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def cpu_hogs(count: int):
    """``count`` processes that each keep one core busy until the block ends."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def run_mode(mode: str, chapters, root: Path, work: Path, *, label: str, profile: str,
             html: bool, jobs: int | None = None) -> dict:
    """Run the chosen chapters once in ``mode``; one row per chapter (and the build)."""
    executions = work / "execution-cache"
    variables = {"LSNOTES_RESULTS": work / f"results-{label}"}
    if mode == "cold":
        variables["LSNOTES_CACHE"] = work / f"models-{label}"
    start = time.perf_counter()
    with environment(**variables):
        results = runbook.run_book(chapters, profile=profile, out=work / f"executed-{label}",
                                   root=root, progress=False, force=mode != "rebuild",
                                   cache_dir=executions, jobs=jobs)
    run_s = time.perf_counter() - start
    rows = [{"mode": label, "chapter": r.chapter, "status": "reused" if r.reused else r.status,
             "wall_s": r.wall_s, "peak_memory_mb": 0.0 if r.reused else r.peak_memory_mb,
             "error": r.error.splitlines()[0][:200] if r.error else "",
             "slowest_cells": sorted(r.cell_seconds, key=lambda c: -c["seconds"])[:5]}
            for r in results]
    summary = json.loads((work / f"executed-{label}" / "summary.json").read_text())
    rows.insert(0, {"mode": label, "chapter": "(zoo training)", "status": "ok",
                    "wall_s": summary["zoo_training"]["wall_s"], "peak_memory_mb": 0.0,
                    "error": f"{summary['zoo_training']['models']} models, "
                             f"{summary['jobs']} at a time"})
    total = {"mode": label, "chapter": "(all chapters)", "status": "",
             "wall_s": round(run_s, 3),
             "peak_memory_mb": max((row["peak_memory_mb"] for row in rows), default=0.0),
             "error": ""}
    if html:
        start = time.perf_counter()
        stage = runbook.stage_book(root, work / f"executed-{label}", work / f"stage-{label}")
        code, _, _ = runbook.build_html(stage, work / f"site-{label}", capture=True)
        rows.append({"mode": label, "chapter": "(stage + Sphinx)",
                     "status": "ok" if code == 0 else f"exit {code}",
                     "wall_s": round(time.perf_counter() - start, 3), "peak_memory_mb": 0.0,
                     "error": ""})
        total["wall_s"] = round(total["wall_s"] + rows[-1]["wall_s"], 3)
    return {"rows": rows, "total": total}


def print_table(rows: list[dict], stream=sys.stdout) -> None:
    width = max([len(r["chapter"]) for r in rows] + [7])
    mode_width = max([len(r["mode"]) for r in rows] + [4])
    print(f"{'mode':<{mode_width}}  {'chapter':<{width}}  {'status':>7}  {'wall s':>8}  "
          f"{'peak MB':>8}", file=stream)
    for r in rows:
        print(f"{r['mode']:<{mode_width}}  {r['chapter']:<{width}}  {r['status']:>7}  "
              f"{r['wall_s']:8.1f}  {r['peak_memory_mb']:8.0f}"
              + (f"  {r['error']}" if r["error"] else ""), file=stream)


def parse_list(text: str | None, allowed=None, name: str = "") -> list[str] | None:
    if not text:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if allowed is not None:
        bad = [item for item in items if item not in allowed]
        if bad:
            raise ValueError(f"{name} must be among {', '.join(allowed)}; got {bad}")
    return items


def parse_threads(text: str | None) -> list[int] | None:
    items = parse_list(text)
    if items is None:
        return None
    if not all(item.isdigit() and int(item) >= 1 for item in items):
        raise ValueError(f"--threads must be positive integers separated by commas; got {text!r}")
    return [int(item) for item in items]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapters", help="comma-separated chapter names (default: all)")
    parser.add_argument("--modes", default="cold,warm,rebuild",
                        help=f"comma-separated, in order, among {', '.join(MODES)}")
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--html", action="store_true", help="also time staging and Sphinx")
    parser.add_argument("--hogs", type=int, default=0, help="CPU-bound processes beside the run")
    parser.add_argument("--threads", help="compare these kernel thread counts in warm mode")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of the thread comparison")
    parser.add_argument("--jobs", type=int, default=None,
                        help="chapters at once (default: lsnotes.parallel.default_jobs)")
    parser.add_argument("--json", default="artifacts/bench_book.json", help="where to write JSON")
    args = parser.parse_args(argv)
    try:
        root = runbook.repo_root()
        modes = parse_list(args.modes, MODES, "--modes") or []
        threads = parse_threads(args.threads)
        chapters = parse_list(args.chapters)
        runbook.select_chapters(runbook.book_chapters(root), chapters)  # unknown names fail now
        if args.hogs < 0 or args.repeats < 1:
            raise ValueError("--hogs must be >= 0 and --repeats >= 1")
    except ValueError as err:
        print(f"bench_book: error: {err}", file=sys.stderr)
        return 2

    runs = []
    with tempfile.TemporaryDirectory(prefix="bench_book_") as tmp, cpu_hogs(args.hogs):
        work = Path(tmp)
        if threads:
            for repeat in range(args.repeats):
                for count in threads:
                    with environment(LSNOTES_THREADS=count, OMP_NUM_THREADS=None,
                                     MKL_NUM_THREADS=None):
                        runs.append(run_mode("warm", chapters, root, work, profile=args.profile,
                                             label=f"warm-{count}t-r{repeat + 1}", html=False))
        for mode in modes:
            runs.append(run_mode(mode, chapters, root, work, label=mode, profile=args.profile,
                                 html=args.html, jobs=args.jobs))
    rows = [row for run in runs for row in run["rows"] + [run["total"]]]
    print_table(rows)
    report = {"python": platform.python_version(), "machine": platform.machine(),
              "cores": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
              "hogs": args.hogs, "jobs": args.jobs, "profile": args.profile, "chapters": chapters or "all",
              "rows": rows}
    path = Path(args.json)
    path = path if path.is_absolute() else root / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"JSON: {path}")
    failed = [row for row in rows if row["status"] not in ("", "ok", "reused")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
