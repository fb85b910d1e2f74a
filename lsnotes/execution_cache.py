"""Executed chapters kept for reuse: a chapter is executed again only when its execution could
differ.

:func:`execution_key` follows Jupyter Book's ``execute_notebooks: cache`` (jupyter-cache) rules and
adds what jupyter-cache cannot see: its code cells (source, and the tags that change execution),
the ``{eval}`` expressions of its prose and where they stand between code cells, the parameters
papermill injects, the resolved device, and the package it imports
(:func:`lsnotes.result_cache.package_fingerprint`). :func:`reuse_outputs` puts a stored execution's
outputs and ``{eval}`` values under the chapter's current text, so prose and display-only edits
cost no execution. :class:`ExecutionCache` stores executions in the model cache's format.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import nbformat

from lsnotes import cache
from lsnotes.inline_expressions import INLINE_EXPRESSION
from lsnotes.kernels import KERNEL_NAME
from lsnotes.result_cache import package_fingerprint

#: Where executed chapters are kept for reuse, relative to the book's root (``make clean``
#: removes it with the rest of ``_build``).
EXECUTION_CACHE = Path("_build") / "execution-cache"
#: Entries kept per chapter (the newest): a few parameter sets side by side, not every past one.
KEEP_PER_CHAPTER = 4
#: Cell tags that change how a cell executes (the others only change how it is shown).
EXECUTION_TAGS = ("parameters", "raises-exception", "skip-execution")
_CACHED_NOTEBOOK = "notebook.ipynb"
_CACHED_RESULT = "result.json"
_CACHE_MANIFEST = "manifest.json"
_KEY_FORMAT = 1


def _is_injected(cell) -> bool:
    return "injected-parameters" in cell.metadata.get("tags", [])


def _prose_expressions(cells) -> list[tuple[int, str]]:
    """``(code cells before it, expression)`` for every {eval} of the prose, in reading order: a
    value depends on the kernel's state where the markdown cell stands."""
    found, code_cells = [], 0
    for cell in cells:
        if cell.cell_type == "code" and not _is_injected(cell):
            code_cells += 1
        elif cell.cell_type == "markdown":
            found += [(code_cells, e) for e in dict.fromkeys(INLINE_EXPRESSION.findall(cell.source))]
    return found


def execution_key(notebook, parameters: dict, device: str, package: dict | None = None) -> str:
    """The key of one chapter execution: equal keys, equal executions (up to randomness the
    chapter does not seed). ``device`` is the resolved one (``cpu``/``cuda``)."""
    code = [[cell.source, sorted(t for t in cell.metadata.get("tags", []) if t in EXECUTION_TAGS)]
            for cell in notebook.cells if cell.cell_type == "code"]
    described = {"format": _KEY_FORMAT,
                 "kernel": notebook.metadata.get("kernelspec", {}).get("name", KERNEL_NAME),
                 "code": code, "expressions": _prose_expressions(notebook.cells),
                 "parameters": parameters, "device": device,
                 "package": package if package is not None else package_fingerprint()}
    text = json.dumps(described, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def reuse_outputs(fresh, executed):
    """``fresh`` (the chapter as it is now) with the outputs, timings and {eval} values of
    ``executed`` (an execution with the same key): new prose, tags and metadata, old results.
    None if the two do not line up (the key should prevent it)."""
    stored = [c for c in executed.cells if c.cell_type == "code"]
    if sum(not _is_injected(c) for c in stored) != sum(c.cell_type == "code" for c in fresh.cells):
        return None
    answers, code_cells = {}, 0
    for cell in executed.cells:
        if cell.cell_type == "code" and not _is_injected(cell):
            code_cells += 1
        for entry in cell.metadata.get("user_expressions", []) if cell.cell_type == "markdown" else ():
            answers[(code_cells, entry.get("expression"))] = entry
    merged = copy.deepcopy(executed)
    merged.cells = []
    queue = list(stored)

    def take_injected():
        while queue and _is_injected(queue[0]):
            merged.cells.append(copy.deepcopy(queue.pop(0)))

    take_injected()
    code_cells = 0
    for cell in fresh.cells:
        new = copy.deepcopy(cell)
        if cell.cell_type == "code":
            old = queue.pop(0)
            new.outputs = copy.deepcopy(old.get("outputs", []))
            new.execution_count = old.get("execution_count")
            for name in ("papermill", "execution"):
                if name in old.metadata:
                    new.metadata[name] = copy.deepcopy(old.metadata[name])
            merged.cells.append(new)
            code_cells += 1
            take_injected()
            continue
        if cell.cell_type == "markdown":
            expressions = dict.fromkeys(INLINE_EXPRESSION.findall(cell.source))
            if expressions:
                try:
                    new.metadata["user_expressions"] = [copy.deepcopy(answers[(code_cells, e)])
                                                        for e in expressions]
                except KeyError:
                    return None
        merged.cells.append(new)
    return merged


class ExecutionCache:
    """Executed chapters by execution key: ``<folder>/<chapter>-<key>/`` holds the executed
    notebook, its :class:`ChapterResult` and a manifest of their SHA-256 (the model cache's
    format). An entry is written in a temporary folder and renamed into place, so it appears
    whole or not at all and never changes; a damaged one is deleted and executed again."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _entry(self, chapter: str, key: str) -> Path:
        return self.folder / f"{chapter}-{key}"

    def load(self, chapter: str, key: str):
        """``(executed notebook, stored result dict)`` or None."""
        entry = self._entry(chapter, key)
        try:
            contents = cache._read_bundle(entry, _CACHE_MANIFEST)
            if contents is None:
                return None
            notebook = nbformat.reads(contents[_CACHED_NOTEBOOK].decode(), as_version=4)
            record = json.loads(contents[_CACHED_RESULT])
            if record.get("key") != key or record.get("chapter") != chapter:
                raise cache.CacheCorruption("the entry belongs to another chapter or key")
        except Exception as err:  # noqa: BLE001 - whatever is wrong, the chapter executes again
            warnings.warn(f"discarding executed chapter {entry}: {err}; it will be executed "
                          "again", cache.CacheWarning, stacklevel=2)
            shutil.rmtree(entry, ignore_errors=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)  # newest use: kept longest by prune
        return notebook, record

    def store(self, chapter: str, key: str, executed_path: Path, record: dict) -> None:
        """Keep the executed notebook at ``executed_path`` and its result (a dict) under ``key``."""
        record = {**record, "notebook": ""}
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.folder, prefix=f".{chapter}-"))
        try:
            cache._write_bundle(staging, {
                _CACHED_NOTEBOOK: Path(executed_path).read_bytes(),
                _CACHED_RESULT: json.dumps(record, indent=1).encode()}, _CACHE_MANIFEST)
            os.rename(staging, self._entry(chapter, key))
        except OSError:  # another run stored the same key first: keep its entry
            pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.prune(chapter)

    def prune(self, chapter: str, keep: int = KEEP_PER_CHAPTER) -> None:
        """Keep the ``keep`` most recently used entries of ``chapter``."""
        pattern = re.compile(rf"{re.escape(chapter)}-[0-9a-f]{{32}}")
        entries = [p for p in self.folder.iterdir() if p.is_dir() and pattern.fullmatch(p.name)]
        entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[keep:]:
            shutil.rmtree(old, ignore_errors=True)


def cell_seconds(executed) -> list[dict]:
    """Seconds per code cell of an executed notebook (papermill's timings), with its first line."""
    timings = []
    for index, cell in enumerate(executed.cells):
        duration = cell.metadata.get("papermill", {}).get("duration")
        if cell.cell_type == "code" and duration is not None:
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            timings.append({"cell": index, "seconds": round(float(duration), 3),
                            "first_line": first[:100]})
    return timings
