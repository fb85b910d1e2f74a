"""Execute the book's chapters in batch (papermill) and build the HTML from the executed notebooks.

``lsnotes run-book`` reads ``_toc.yml``, converts each MyST chapter to a notebook with jupytext,
executes it with papermill (kernel ``python3``, working directory ``book/``) and writes
``<out>/<chapter>.ipynb`` plus ``<out>/summary.json`` (status, wall time, peak kernel memory,
device, error per chapter). ``lsnotes build-book`` runs every chapter this way, then builds the
HTML from a staged copy of the book whose chapters are the executed notebooks, so nothing is
executed twice.

An executed chapter is reused, not executed again, while nothing it depends on has changed
(:func:`execution_key`, the rules of Jupyter Book's ``execute_notebooks: cache``, plus what
jupyter-cache cannot see): its code cells, the {eval} expressions of its prose and where they
stand between code cells, the parameters injected, the device, and the package (every
``lsnotes/**/*.py``, its version, ``requirements.txt``, the papers' data and the Python version).
Prose, tags and other display-only edits reuse the stored outputs and {eval} values under the new
text. ``--force`` executes anyway.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import yaml

from . import checks

KERNEL_NAME = "python3"
#: Environment for the chapter kernels. glibc's malloc hands large freed buffers back to the OS,
#: so every large tensor pays its page faults again; keeping freed memory (as jemalloc and
#: TCMalloc do, which PyTorch's CPU performance guide recommends) took the classic-attacks chapter
#: from 112 s to 101 s and its system time from 25 s to 6 s. Values the user set win.
KERNEL_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def repo_root() -> Path:
    """The checkout holding ``_toc.yml``: the working directory or one of its parents."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    raise ValueError(f"no _toc.yml found in {here} or its parents; run lsnotes from the book's "
                     "checkout")


# ----------------------------------------------------------------------------- table of contents

def toc_entries(toc_path: Path) -> list[str]:
    """Every file entry of a jb-book ``_toc.yml`` in reading order (``root`` first, no extension)."""
    toc = yaml.safe_load(Path(toc_path).read_text())
    entries = [toc["root"]] if toc.get("root") else []

    def walk(items):
        for item in items or ():
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    for part in toc.get("parts") or ():
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [str(Path(e).with_suffix("")) if Path(e).suffix in (".md", ".ipynb") else e
            for e in entries]


def chapter_name(entry: str) -> str:
    """The short name of a toc entry (``book/toy_problem`` -> ``toy_problem``)."""
    return Path(entry).name


@dataclass(frozen=True)
class Chapter:
    name: str      # short name, used for --chapters and output files
    entry: str     # toc entry, relative to the root, without extension
    source: Path   # the MyST markdown file


def book_chapters(root: Path) -> list[Chapter]:
    return [Chapter(chapter_name(e), e, root / f"{e}.md") for e in toc_entries(root / "_toc.yml")]


def select_chapters(chapters: list[Chapter], wanted: list[str] | None) -> list[Chapter]:
    """The chapters named in ``wanted`` (short names or toc entries), in toc order."""
    if not wanted:
        return list(chapters)
    known = {c.name: c for c in chapters} | {c.entry: c for c in chapters}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; chapters in _toc.yml: "
                         f"{', '.join(c.name for c in chapters)}")
    picked = {known[w].entry for w in wanted}
    return [c for c in chapters if c.entry in picked]


# ----------------------------------------------------------------------------- parameters

def parse_param(text: str) -> tuple[str, object]:
    """``name=value`` -> (name, value); the value is a Python literal when it parses as one."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ValueError(f"--param must look like name=value; got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name, value


def load_chapter_notebook(chapter: Chapter):
    import jupytext

    if not chapter.source.is_file():
        raise FileNotFoundError(f"chapter {chapter.name!r} is listed in _toc.yml as "
                                f"{chapter.entry!r} but {chapter.source} does not exist")
    notebook = jupytext.read(chapter.source)
    notebook.metadata.setdefault("kernelspec", {"name": KERNEL_NAME, "display_name": "Python 3",
                                                "language": "python"})
    return notebook


def defined_parameters(notebook) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (empty if it has none)."""
    from papermill.inspection import inspect_notebook

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chapter.ipynb"
        nbformat.write(notebook, path)
        return list(inspect_notebook(str(path)))


def chapter_parameters(chapter_defines: list[str], standard: dict, extra: dict,
                       chapter: str) -> dict:
    """What to inject into one chapter; extra names the chapter does not define are an error."""
    undefined = [name for name in extra if name not in chapter_defines]
    if undefined:
        raise ValueError(f"chapter {chapter!r} has no parameter(s) {undefined} in its parameters "
                         f"cell (it defines: {', '.join(chapter_defines) or 'nothing'}); "
                         "choose the chapters that take it with --chapters")
    # A chapter without a parameters cell (a prose-only preface) gets nothing injected, rather
    # than a stray code cell at its top.
    passed = {k: v for k, v in standard.items() if k in chapter_defines}
    return passed | extra


# ----------------------------------------------------------------------------- execution

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


@dataclass
class ChapterResult:
    chapter: str
    entry: str
    status: str                     # "ok", "failed" or "missing"
    wall_s: float = 0.0
    peak_memory_mb: float = 0.0
    device: str = ""
    parameters: dict = field(default_factory=dict)
    notebook: str = ""
    error: str = ""
    failed_cell: str = ""           # source of the cell that raised, shortened
    #: True when the chapter was not executed but reused from the execution cache; wall_s is
    #: then the time to reuse it, and executed_wall_s (and peak memory, cells) the execution's.
    reused: bool = False
    executed_wall_s: float = 0.0
    key: str = ""                   # the execution key (see execution_key)
    #: seconds per executed code cell: [{"cell": index, "seconds": s, "first_line": "..."}]
    cell_seconds: list = field(default_factory=list)


# ----------------------------------------------------------------------------- numbers in prose

#: ``{eval}`expression``` in a markdown cell: MyST's inline-expression role.
INLINE_EXPRESSION = re.compile(r"\{eval\}`([^`]+)`")
ENGINE_NAME = "lsnotes"


class InlineExpressionError(RuntimeError):
    """A ``{eval}`...``` expression in a chapter's prose failed in the kernel."""


def _register_engine() -> None:
    """A papermill engine that also evaluates the ``{eval}`...``` expressions of markdown cells.

    JupyterLab's MyST renderer (jupyterlab-myst) asks the kernel for each expression when a reader
    runs a markdown cell and keeps the answers in the cell's ``user_expressions`` metadata. This
    engine does the same at the same point of execution, so the executed notebook carries the
    numbers its prose quotes, and :func:`stage_book` can put them into the built book.
    """
    from nbclient.util import ensure_async, run_sync
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class InlineExpressionClient(PapermillNotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                     store_history=True):
            if cell.cell_type != "markdown":
                return await super().async_execute_cell(cell, cell_index, execution_count,
                                                        store_history)
            expressions = list(dict.fromkeys(INLINE_EXPRESSION.findall(cell.source)))
            if not expressions:
                return cell
            msg_id = await ensure_async(self.kc.execute(
                "", silent=True, store_history=False,
                user_expressions={str(i): e for i, e in enumerate(expressions)}))
            reply = await self.async_wait_for_reply(msg_id, cell)
            answers = (reply or {}).get("content", {}).get("user_expressions", {})
            stored = [{"expression": e, "result": answers.get(str(i), {
                "status": "error", "ename": "NoReply", "evalue": "the kernel did not answer",
                "traceback": []})} for i, e in enumerate(expressions)]
            cell.metadata["user_expressions"] = stored
            failed = [s for s in stored if s["result"].get("status") != "ok"]
            if failed:  # like a failing code cell: the chapter stops here
                result = failed[0]["result"]
                raise InlineExpressionError(
                    f"{{eval}}`{failed[0]['expression']}` in the markdown cell {cell_index}: "
                    f"{result.get('ename', 'Error')}: {result.get('evalue', '')}")
            return cell

        # nbclient binds its synchronous wrapper to the base class's coroutine; rebind it.
        execute_cell = run_sync(async_execute_cell)

    class InlineExpressionEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     **kwargs):
            # As NBClientEngine.execute_managed_notebook, with the client above.
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(
                safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
                startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
            return InlineExpressionClient(nb_man, **final_kwargs).execute()

    papermill_engines.register(ENGINE_NAME, InlineExpressionEngine)


def _shown_text(result: dict) -> str:
    """What a reader sees for one stored expression result: its plain text, string quotes off."""
    text = result.get("data", {}).get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else str(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


_MYST_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|$~#])")


def fill_inline_expressions(markdown: str, stored: list[dict], where: str,
                            strict: bool = True) -> str:
    """Replace every ``{eval}`e``` in ``markdown`` by the stored result's text (escaped for MyST).

    ``stored`` is the cell's ``user_expressions`` metadata. A missing or failed result is an error
    naming ``where`` and the expression; with ``strict=False`` (a chapter whose execution failed,
    built so that its error can be read) it shows as "[not computed]" instead.
    """
    results = {entry.get("expression"): entry.get("result", {}) for entry in stored or []}

    def fill(match):
        expression = match.group(1)
        result = results.get(expression)
        if result is None or result.get("status") != "ok":
            if not strict:
                return "[not computed]"
            raise ValueError(f"{where}: the prose's {{eval}}`{expression}` has no stored result; "
                             "execute the chapter with `lsnotes run-book` first")
        return _MYST_SPECIAL.sub(r"\\\1", _shown_text(result))

    return INLINE_EXPRESSION.sub(fill, markdown)


def execute_chapter(chapter: Chapter, notebook, parameters: dict, out_dir: Path, cwd: Path,
                    device: str, progress_bar: bool = False) -> ChapterResult:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _register_engine()

    output = out_dir / f"{chapter.name}.ipynb"
    result = ChapterResult(chapter.name, chapter.entry, "ok", device=device,
                           parameters=parameters, notebook=str(output))
    start = time.perf_counter()
    with PeakMemory() as memory:
        try:
            papermill.execute_notebook(notebook, str(output), parameters=parameters,
                                       kernel_name=KERNEL_NAME, cwd=str(cwd),
                                       progress_bar=progress_bar, engine_name=ENGINE_NAME)
        except PapermillExecutionError as err:
            result.status = "failed"
            result.error = f"{err.ename}: {err.evalue}"
            result.failed_cell = _shorten(err.source)
        except Exception as err:  # kernel died, timeout, ...: report it and go on
            result.status = "failed"
            result.error = f"{type(err).__name__}: {err}"
    result.wall_s = result.executed_wall_s = round(time.perf_counter() - start, 3)
    result.peak_memory_mb = round(memory.peak_bytes / 2**20, 1)
    if output.is_file():
        result.cell_seconds = cell_seconds(nbformat.read(output, as_version=4))
    return result


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
    """:data:`KERNEL_ENV` plus the thread count (torch reads ``OMP_NUM_THREADS`` when it starts,
    MKL its own variable); see :func:`kernel_threads`."""
    threads = str(kernel_threads(concurrent))
    return {**KERNEL_ENV, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


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


def _shorten(source: str, lines: int = 3) -> str:
    kept = source.strip().splitlines()
    return "\n".join(kept[:lines] + (["..."] if len(kept) > lines else []))


# ----------------------------------------------------------------------------- reusing executions

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


def package_fingerprint() -> dict:
    """What the chapters import or read through the package (see
    :func:`lsnotes.cache.package_fingerprint`), read afresh."""
    from .cache import package_fingerprint as fingerprint

    return fingerprint()


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
    import copy

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
        from . import cache

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

    def store(self, chapter: str, key: str, executed_path: Path, result: "ChapterResult") -> None:
        from . import cache

        record = {**asdict(result), "notebook": ""}
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


def reuse_chapter(chapter: Chapter, notebook, key: str, store: ExecutionCache, out_dir: Path,
                  device: str) -> ChapterResult | None:
    """Write the stored execution of ``key`` under the chapter's current text to
    ``<out_dir>/<chapter>.ipynb``; its result, or None when there is none to reuse."""
    from .cache import atomic_write

    start = time.perf_counter()
    hit = store.load(chapter.name, key)
    if hit is None:
        return None
    executed, record = hit
    merged = reuse_outputs(notebook, executed)
    if merged is None:
        return None
    output = out_dir / f"{chapter.name}.ipynb"
    atomic_write(output, nbformat.writes(merged).encode())
    known = {f.name for f in dataclasses.fields(ChapterResult)}
    result = ChapterResult(**{k: v for k, v in record.items() if k in known})
    result.entry, result.device, result.notebook = chapter.entry, device, str(output)
    result.reused = True
    result.wall_s = round(time.perf_counter() - start, 3)
    return result


def run_book(chapters: list[str] | None = None, *, profile: str = "quick", seed: int = 0,
             device: str = "auto", out: str | Path = "_build/executed",
             params: dict | None = None, root: Path | None = None,
             progress: bool = True, force: bool = False,
             cache_dir: str | Path | None = None) -> list[ChapterResult]:
    """Execute the chosen chapters (all by default) and write notebooks and ``summary.json``.

    A chapter whose :func:`execution_key` has a stored execution (in ``cache_dir``, by default
    ``<root>/_build/execution-cache``) is reused instead; ``force=True`` executes every chosen
    chapter anyway. Only chapters that ran without error are stored.

    Bad input (unknown chapter, a parameter no chosen chapter defines, invalid profile/seed/
    device) raises ``ValueError`` before anything executes. A failing chapter does not stop
    the others; check each result's ``status``.
    """
    from tqdm.auto import tqdm

    root = Path(root).resolve() if root else repo_root()
    checks.choice("profile", profile, checks.PROFILES)
    seed = checks.positive_int("seed", seed, minimum=0)
    resolved_device = checks.resolve_device(device)
    checks.flag("force", force)
    threads = kernel_threads()  # a bad LSNOTES_THREADS fails here, before any work
    chosen = select_chapters(book_chapters(root), chapters)
    standard = {"profile": profile, "seed": seed, "device": device}
    extra = dict(params or {})
    clash = [name for name in extra if name in standard]
    if clash:
        raise ValueError(f"pass {clash} with --{clash[0]}, not --param")

    # Everything that can be checked without running a kernel is checked first.
    plan, results = [], []
    for chapter in chosen:
        try:
            notebook = load_chapter_notebook(chapter)
        except FileNotFoundError as err:
            results.append(ChapterResult(chapter.name, chapter.entry, "missing",
                                         device=resolved_device, error=str(err)))
            continue
        passed = chapter_parameters(defined_parameters(notebook), standard, extra, chapter.name)
        plan.append((chapter, notebook, passed))

    out_dir = Path(out)
    out_dir = out_dir if out_dir.is_absolute() else root / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    store = ExecutionCache(Path(cache_dir) if cache_dir else root / EXECUTION_CACHE)
    package = package_fingerprint()
    bar = tqdm(plan, desc="chapters", unit="chapter", disable=not progress)
    with kernel_environment():
        for chapter, notebook, passed in bar:
            bar.set_postfix_str(chapter.name)
            key = execution_key(notebook, passed, resolved_device, package)
            result = None if force else reuse_chapter(chapter, notebook, key, store, out_dir,
                                                      resolved_device)
            if result is None:
                result = execute_chapter(chapter, notebook, passed, out_dir,
                                         cwd=chapter.source.parent, device=resolved_device)
                result.key = key
                if result.status == "ok":
                    store.store(chapter.name, key, Path(result.notebook), result)
            results.append(result)
    order = {c.entry: i for i, c in enumerate(chosen)}
    results.sort(key=lambda r: order[r.entry])
    write_summary(out_dir / "summary.json", results, profile=profile, seed=seed,
                  kernel_threads=int(os.environ.get("OMP_NUM_THREADS") or threads))
    return results


def write_summary(path: Path, results: list[ChapterResult], **run_info) -> None:
    summary = {**run_info, "ok": all(r.status == "ok" for r in results),
               "chapters": [asdict(r) for r in results]}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, path)


def print_results(results: list[ChapterResult], stream=None) -> None:
    stream = stream or sys.stdout
    width = max((len(r.chapter) for r in results), default=7)
    for r in results:
        status = "reused" if r.reused else r.status
        line = f"{status:>7}  {r.chapter:<{width}}  {r.wall_s:7.1f} s  {r.peak_memory_mb:7.0f} MB"
        if r.error:
            line += f"  {r.error.splitlines()[0][:200]}"
        print(line, file=stream)
    failed = [r.chapter for r in results if r.status != "ok"]
    reused = sum(r.reused for r in results)
    print(f"{len(results) - len(failed)}/{len(results)} chapters ran"
          + (f" ({reused} reused unchanged; --force executes them)" if reused else "")
          + (f"; failed: {', '.join(failed)}" if failed else ""), file=stream)


# ----------------------------------------------------------------------------- building

def stage_book(root: Path, executed: Path, stage: Path) -> Path:
    """A copy of the book whose chapters are the executed notebooks and whose config executes
    nothing; toc entries have no extension, so the same ``_toc.yml`` finds the ``.ipynb`` files."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    (stage / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy2(root / "_toc.yml", stage / "_toc.yml")
    if (root / "_static").is_dir():  # the book's own CSS (Jupyter Book adds every file there)
        shutil.copytree(root / "_static", stage / "_static")
    # book/ minus the sources that the executed notebooks replace: bibliography, images, data.
    book_dirs = {Path(e).parent for e in toc_entries(root / "_toc.yml")}
    for folder in sorted(book_dirs):
        shutil.copytree(root / folder, stage / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.md", "*.ipynb", ".ipynb_checkpoints",
                                                      "__pycache__"))
    chapters = book_chapters(root)
    staged_entries = {c.entry for c in chapters}
    for chapter in chapters:
        notebook = executed / f"{chapter.name}.ipynb"
        if notebook.is_file():
            staged = nbformat.read(notebook, as_version=4)
            completed = not any(c.metadata.get("papermill", {}).get("exception") for c in staged.cells)
            for cell in staged.cells:
                tags = cell.metadata.setdefault("tags", [])
                # papermill's copy of the parameters: folded away, the chapter's own cell stays.
                if "injected-parameters" in tags and "hide-input" not in tags:
                    tags.append("hide-input")
                if cell.cell_type == "markdown":
                    cell.source = fill_inline_expressions(
                        cell.source, cell.metadata.get("user_expressions", []), chapter.name,
                        strict=completed)
                    cell.source = _link_to_staged(cell.source, chapter.entry, staged_entries)
            nbformat.write(staged, stage / f"{chapter.entry}.ipynb")
    return stage


_MARKDOWN_LINK = re.compile(r"(\]\()([^)\s#]+)\.md((?:#[^)\s]*)?\))")


def _link_to_staged(markdown: str, entry: str, staged_entries: set[str]) -> str:
    """Point ``[text](other.md#x)`` links between chapters at the staged ``other.ipynb``."""
    def relink(match):
        target = (Path(entry).parent / match.group(2)).as_posix()
        target = os.path.normpath(target)
        if target in staged_entries:
            return f"{match.group(1)}{match.group(2)}.ipynb{match.group(3)}"
        return match.group(0)

    return _MARKDOWN_LINK.sub(relink, markdown)


def html_location(out: Path) -> tuple[Path, Path]:
    """(jupyter-book --path-output, resulting html folder). jupyter-book always writes to
    ``<path-output>/_build/html``, so ``--out _build`` maps to ``_build/html``."""
    if out.name == "_build":
        return out.parent, out / "html"
    return out, out / "_build" / "html"


def build_html(stage: Path, out: Path, capture: bool = False) -> tuple[int, Path, str]:
    """``jupyter-book build`` of a staged book with warnings as errors.

    Returns (exit code, html folder, build log; the log is empty unless ``capture``)."""
    path_output, html = html_location(out)
    command = ["jupyter-book", "build", str(stage), "--path-output", str(path_output),
               "-W", "-n", "--keep-going"]
    binary = Path(sys.executable).parent / "jupyter-book"
    if binary.exists():
        command[0] = str(binary)
    if not capture:
        return subprocess.run(command).returncode, html, ""
    done = subprocess.run(command, capture_output=True, text=True)
    return done.returncode, html, done.stdout + done.stderr


def build_book(*, profile: str = "quick", seed: int = 0, device: str = "auto",
               out: str | Path = "_build", root: Path | None = None,
               progress: bool = True, force: bool = False,
               cache_dir: str | Path | None = None) -> tuple[int, Path, list[ChapterResult]]:
    """Execute every chapter (reusing unchanged ones, as :func:`run_book`), then build the HTML
    from the executed notebooks.

    Returns (exit code, html folder, chapter results); non-zero when a chapter or the build
    failed. The HTML is built even when a chapter failed, so its error can be read there.
    """
    root = Path(root).resolve() if root else repo_root()
    out = Path(out)
    out = out if out.is_absolute() else root / out
    executed = out / "executed"
    results = run_book(None, profile=profile, seed=seed, device=device, out=executed, root=root,
                       progress=progress, force=force, cache_dir=cache_dir)
    print_results(results)
    stage = stage_book(root, executed, out / "stage")
    code, html, _ = build_html(stage, out)
    failed = any(r.status != "ok" for r in results)
    return (1 if failed or code else 0), html, results


# ----------------------------------------------------------------------------- command line

def _run_book_cli(args) -> int:
    chapters = [c.strip() for c in args.chapters.split(",") if c.strip()] if args.chapters else None
    params = dict(parse_param(p) for p in args.param)
    results = run_book(chapters, profile=args.profile, seed=args.seed, device=args.device,
                       out=args.out, params=params, progress=not args.no_progress,
                       force=args.force)
    print_results(results)
    print(f"summary: {Path(args.out) / 'summary.json'}")
    return 0 if all(r.status == "ok" for r in results) else 1


def _build_book_cli(args) -> int:
    code, html, _ = build_book(profile=args.profile, seed=args.seed, device=args.device,
                               out=args.out, progress=not args.no_progress, force=args.force)
    print(f"HTML: {html / 'index.html'}" if code == 0 else
          f"build failed (see above); partial HTML: {html}")
    return code


def add_cli(subparsers) -> None:
    def common(parser):
        parser.add_argument("--profile", default="quick", choices=checks.PROFILES)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="auto", choices=checks.DEVICES)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument("--force", action="store_true",
                            help="execute every chapter, even one whose code, parameters and "
                                 "package are unchanged since its stored execution")

    run = subparsers.add_parser("run-book", help="execute chapters with papermill",
                                description="Execute chapters listed in _toc.yml with papermill.")
    run.add_argument("--chapters", help="comma-separated chapter names (default: all)")
    run.add_argument("--out", default="_build/executed", help="folder for executed notebooks")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="extra chapter parameter (repeatable); must exist in the chapter")
    common(run)
    run.set_defaults(func=_run_book_cli)

    build = subparsers.add_parser("build-book", help="execute every chapter and build the HTML",
                                  description="run-book on every chapter, then jupyter-book "
                                              "build of the executed notebooks (no re-execution).")
    build.add_argument("--out", default="_build", help="build folder (HTML in <out>/html)")
    common(build)
    build.set_defaults(func=_build_book_cli)
