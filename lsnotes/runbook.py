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
``lsnotes/**/*.py``, its data files, its version, ``requirements.txt`` and the Python version).
Prose, tags and other display-only edits reuse the stored outputs and {eval} values under the new
text. ``--force`` executes anyway.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import yaml

from . import checks, parallel
from .execution_cache import EXECUTION_CACHE, ExecutionCache, cell_seconds, execution_key, \
    package_fingerprint, reuse_outputs
from .inline_expressions import (ENGINE_NAME, INLINE_EXPRESSION, fill_inline_expressions,  # noqa: F401
                                 register_engine)
from .inline_expressions import shown_text as _shown_text  # noqa: F401 - tests read it here
from .kernels import (KERNEL_ENV, KERNEL_NAME, THREADS_VARIABLE, PeakMemory,  # noqa: F401
                      kernel_environment, kernel_threads, kernel_variables)

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


def execute_chapter(chapter: Chapter, notebook, parameters: dict, out_dir: Path, cwd: Path,
                    device: str, progress_bar: bool = False) -> ChapterResult:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    register_engine()

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


def _shorten(source: str, lines: int = 3) -> str:
    kept = source.strip().splitlines()
    return "\n".join(kept[:lines] + (["..."] if len(kept) > lines else []))


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
             cache_dir: str | Path | None = None, jobs: int | None = None) -> list[ChapterResult]:
    """Execute the chosen chapters (all by default) and write notebooks and ``summary.json``.

    A chapter whose :func:`execution_key` has a stored execution (in ``cache_dir``, by default
    ``<root>/_build/execution-cache``) is reused instead; ``force=True`` executes every chosen
    chapter anyway. Only chapters that ran without error are stored. ``jobs`` chapters execute at
    once (default :func:`lsnotes.parallel.default_jobs`: 2 on a CPU), after the models they
    declare are trained ``jobs`` at a time (:func:`lsnotes.parallel.pretrain`).

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
    jobs = parallel.default_jobs(resolved_device) if jobs is None else checks.positive_int("jobs", jobs)
    threads = kernel_threads(jobs)  # a bad LSNOTES_THREADS fails here, before any work
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
    bar = tqdm(total=len(plan), desc="chapters", unit="chapter", disable=not progress)
    to_execute = []
    for chapter, notebook, passed in plan:
        key = execution_key(notebook, passed, resolved_device, package)
        result = None if force else reuse_chapter(chapter, notebook, key, store, out_dir,
                                                  resolved_device)
        if result is None:
            to_execute.append((key, (chapter, notebook, passed, out_dir, chapter.source.parent,
                                     resolved_device)))
        else:
            results.append(result)
            bar.update()

    def executed(index: int, result: ChapterResult) -> None:
        result.key = to_execute[index][0]
        if result.status == "ok":
            store.store(result.chapter, result.key, Path(result.notebook), asdict(result))
        results.append(result)
        bar.set_postfix_str(result.chapter)
        bar.update()

    with kernel_environment(jobs):  # workers and kernels inherit the thread count
        started, pretrained = time.perf_counter(), []
        if jobs > 1 and to_execute:
            bar.set_postfix_str("training the zoo")
            pretrained = parallel.pretrain([call[0].name for _, call in to_execute], profile,
                                           seed, jobs)
        zoo_training = {"models": len(pretrained), "wall_s": round(time.perf_counter() - started, 3)}
        parallel.in_pool(execute_chapter, [call for _, call in to_execute], jobs,
                         on_result=executed)
    bar.close()
    order = {c.entry: i for i, c in enumerate(chosen)}
    results.sort(key=lambda r: order[r.entry])
    write_summary(out_dir / "summary.json", results, profile=profile, seed=seed,
                  kernel_threads=int(os.environ.get("OMP_NUM_THREADS") or threads), jobs=jobs,
                  zoo_training=zoo_training)
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
               progress: bool = True, force: bool = False, cache_dir: str | Path | None = None,
               jobs: int | None = None) -> tuple[int, Path, list[ChapterResult]]:
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
                       progress=progress, force=force, cache_dir=cache_dir, jobs=jobs)
    print_results(results)
    stage = stage_book(root, executed, out / "stage")
    code, html, _ = build_html(stage, out)
    failed = any(r.status != "ok" for r in results)
    return (1 if failed or code else 0), html, results


# ----------------------------------------------------------------------------- command line

def _check_out_folder(out) -> Path:
    """``--out`` must be a folder we can create or write, checked before any chapter runs."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must name a folder; {out} is a file")
    parent = next((p for p in [out, *out.absolute().parents] if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK):
        raise ValueError(f"--out {out}: {parent} cannot be written")
    return out


def _run_book_cli(args) -> int:
    _check_out_folder(args.out)
    chapters = [c.strip() for c in args.chapters.split(",") if c.strip()] if args.chapters else None
    params = dict(parse_param(p) for p in args.param)
    results = run_book(chapters, profile=args.profile, seed=args.seed, device=args.device,
                       out=args.out, params=params, progress=not args.no_progress,
                       force=args.force, jobs=args.jobs)
    print_results(results)
    print(f"summary: {Path(args.out) / 'summary.json'}")
    return 0 if all(r.status == "ok" for r in results) else 1


def _build_book_cli(args) -> int:
    _check_out_folder(args.out)
    code, html, _ = build_book(profile=args.profile, seed=args.seed, device=args.device,
                               out=args.out, progress=not args.no_progress, force=args.force,
                               jobs=args.jobs)
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
        parser.add_argument("--jobs", type=int, default=None,
                            help="chapters (and models) run at once (default: $LSNOTES_JOBS, "
                                 "else 2 on a CPU, 1 on CUDA)")

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
