"""lsnotes.parallel: chapters and zoo models a few at a time (processes, shared cores)."""

from __future__ import annotations

import json
import operator
import textwrap
import types
from pathlib import Path

import pytest

from conftest import CHAPTER_HEADER as HEADER
from lsnotes import parallel, runbook

TIMED_CHAPTER = HEADER + textwrap.dedent("""\
    # {name}

    ```{{code-cell}} ipython3
    import os, time
    start = time.time()
    time.sleep(2)
    with open("times_{name}.txt", "w") as f:
        f.write(f"{{start}} {{time.time()}} {{os.environ.get('OMP_NUM_THREADS')}}")
    ```
    """)


def _timed_book(root: Path, names: list[str]) -> Path:
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/{names[0]}\nchapters:\n"
                                   + "".join(f"  - file: book/{n}\n" for n in names[1:]))
    for name in names:
        (root / "book" / f"{name}.md").write_text(TIMED_CHAPTER.format(name=name))
    return root


def _times(root: Path, name: str) -> tuple[float, float, str]:
    start, end, threads = (root / "book" / f"times_{name}.txt").read_text().split()
    return float(start), float(end), threads


def test_in_pool_keeps_the_order_of_the_calls_and_reports_each_result():
    seen = []
    calls = [(1, 2), (3, 4), (5, 6)]
    assert parallel.in_pool(operator.add, calls, 2, on_result=lambda i, r: seen.append((i, r))) \
        == [3, 7, 11]
    assert sorted(seen) == [(0, 3), (1, 7), (2, 11)]
    assert parallel.in_pool(operator.add, calls, 1) == [3, 7, 11]
    with pytest.raises(ValueError, match="jobs must be"):
        parallel.in_pool(operator.add, calls, 0)


def test_default_jobs_follow_the_device_and_the_override(monkeypatch):
    monkeypatch.delenv(parallel.JOBS_VARIABLE, raising=False)
    monkeypatch.setattr(parallel, "usable_cores", lambda: 16)
    assert parallel.default_jobs("cpu") == parallel.MAX_DEFAULT_JOBS
    assert parallel.default_jobs("cuda") == 1
    monkeypatch.setattr(parallel, "usable_cores", lambda: 1)
    assert parallel.default_jobs("cpu") == 1
    monkeypatch.setenv(parallel.JOBS_VARIABLE, "3")
    assert parallel.default_jobs("cuda") == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(parallel.JOBS_VARIABLE, bad)
        with pytest.raises(ValueError, match="LSNOTES_JOBS must be a positive integer"):
            parallel.default_jobs("cpu")


def test_bad_jobs_are_refused_before_any_work(tmp_path):
    book = _timed_book(tmp_path / "root", ["first"])
    with pytest.raises(ValueError, match="jobs must be"):
        runbook.run_book(None, root=book, out="executed", progress=False, jobs=0)
    assert not (book / "book" / "times_first.txt").exists()


@pytest.mark.chapters
@pytest.mark.slow
def test_two_jobs_run_two_chapters_at_once_on_shared_cores(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LSNOTES_THREADS", raising=False)
    book = _timed_book(tmp_path / "root", ["first", "second"])
    results = runbook.run_book(None, root=book, out="executed", progress=False, jobs=2)
    assert [r.chapter for r in results] == ["first", "second"]       # the book's order
    assert all(r.status == "ok" and r.peak_memory_mb > 10 for r in results), results
    (start1, end1, threads1), (start2, end2, threads2) = (_times(book, n) for n in ("first", "second"))
    assert start2 < end1 and start1 < end2                             # side by side
    assert threads1 == threads2 == str(max(1, parallel.usable_cores() // 2))
    summary = json.loads((book / "executed" / "summary.json").read_text())
    assert summary["jobs"] == 2 and summary["zoo_training"]["models"] == 0  # no zoo chapter

    ordered = runbook.run_book(None, root=book, out="executed", progress=False, jobs=1, force=True)
    assert all(r.status == "ok" for r in ordered)
    (start1, end1, _), (start2, _, _) = (_times(book, n) for n in ("first", "second"))
    assert end1 <= start2                                              # one after the other


def test_pretrain_trains_what_is_missing_and_leaves_failures_to_the_chapters(monkeypatch):
    from lsnotes import data, train

    config = train.TrainConfig(dataset="fashion-mnist", model="cnn4", epochs=1, train_size=64)
    entry = types.SimpleNamespace(config=config, request=types.SimpleNamespace(
        eval_robust=False, keep_best=False), seconds=1.0)
    monkeypatch.setattr(parallel, "missing_models", lambda *a, **k: [entry])
    monkeypatch.setattr(data, "ensure_dataset", lambda name: None)
    trained = []
    monkeypatch.setattr(train, "train_or_load", lambda c, **k: trained.append(c.key()))
    assert parallel.pretrain(["training_with_ls"], "quick", 0, jobs=1) == [config.key()]
    assert trained == [config.key()]

    def broken(c, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train, "train_or_load", broken)
    with pytest.warns(RuntimeWarning, match="out of memory"):
        assert parallel.pretrain(["training_with_ls"], "quick", 0, jobs=1) == []


def test_missing_models_are_the_declared_uncached_ones_costliest_first(tmp_path):
    from lsnotes.zoo import schedule

    entries = parallel.missing_models(["gradient_masking", "preface"], "quick", 0,
                                      cache_dir=tmp_path)
    declared = {e.config.key() for e in schedule.plan("quick", 0, chapter="gradient_masking",
                                                     cache_dir=tmp_path)}
    assert {e.config.key() for e in entries} == declared and entries
    assert [e.seconds for e in entries] == sorted((e.seconds for e in entries), reverse=True)
