"""A reader's path through JupyterLab: open a chapter's ``.md`` as a Jupytext notebook, run all
cells, read the prose (MyST rendered by jupyterlab-myst: numbers from ``{eval}``, citations, no raw
roles), move a slider and see the figure change. Screenshots land in ``artifacts/screenshots/``.

The server works on a temporary copy of ``book/`` with autosave off, so nothing it does can
rewrite the chapters in the checkout.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from browser_utils import chromium, free_port, pixel_spread, screenshot_path
from conftest import REPO
from lsnotes import citations

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# (chapter, description of the slider to move). A new chapter is one more line here.
LAB_CHAPTERS = [
    pytest.param("toy_problem", "α", id="toy_problem"),
    # A trained-model chapter: its models come from the cache the book run filled.
    pytest.param("classic_attacks", "α", id="classic_attacks"),
]

SERVER_START_S = 120
OPEN_S = 120
RUN_ALL_S = 420
REDRAW_S = 90

# What a reader who installed the book gets from its settings: .md opens as a notebook.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {
        "defaultViewers": {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"},
        "autosave": False},
    # Every cell in the DOM (no virtual scrolling), so every output can be checked.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, executed_book):
    """A JupyterLab server on 127.0.0.1 (token, free port) serving a copy of book/.

    It waits for the book run (``executed_book``): trained-model chapters then load their models
    from the cache that run filled instead of training them inside the browser test.
    """
    yield from serve_book(tmp_path_factory.mktemp("jupyterlab"))


@pytest.fixture(scope="module")
def lab_before_any_run(tmp_path_factory):
    """The same server for tests that run a few cells only (no book run needed)."""
    yield from serve_book(tmp_path_factory.mktemp("jupyterlab_cells"))


def serve_book(base):
    """Start the server on a copy of book/ under ``base``; yield its url, token and root."""
    root, settings = base / "root", base / "settings"
    shutil.copytree(REPO / "book", root / "book",
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token, port = secrets.token_hex(16), free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"))
    log = open(base / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--IdentityProvider.token={token}",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--ServerApp.open_browser=False"]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, token, server, base / "server.log")
        yield {"url": url, "token": token, "root": root, "log": base / "server.log"}
    finally:
        shutdown_kernels(url, token)
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def wait_for_server(url, token, server, log_path):
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited ({server.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"jupyter lab did not answer in {SERVER_START_S} s:\n{log_path.read_text()[-3000:]}")


def shutdown_kernels(url, token):
    try:
        with urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=5) as reply:
            kernels = json.load(reply)
        for kernel in kernels:
            request = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}?token={token}",
                                             method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()
    except OSError:
        pass  # the server is going down anyway


def chapter_in_lab(lab, chapter: str) -> str:
    """Path of the chapter inside the server's root."""
    relative = f"book/{chapter}.md"
    assert (lab["root"] / relative).is_file(), f"book/{chapter}.md does not exist"
    return relative


def open_chapter(page, lab, chapter: str) -> None:
    """Open the chapter in a workspace of its own and wait for its kernel.

    A fresh workspace restores no notebook from an earlier test, and the kernels of earlier tests
    are shut down first: otherwise JupyterLab may ask which kernel to use, or start one kernel and
    swap it for another while Run All Cells is sent to the first.
    """
    relative = chapter_in_lab(lab, chapter)
    shutdown_kernels(lab["url"], lab["token"])
    workspace = f"{chapter}-{secrets.token_hex(4)}"
    page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{relative}?reset&token={lab['token']}")
    try:
        page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(timeout=OPEN_S * 1000)
    except Exception as err:
        page.screenshot(path=str(screenshot_path(f"jupyterlab_{chapter}_open_failed")))
        raise AssertionError(f"{relative} did not open as a Jupytext notebook") from err
    # The status bar says "<kernel> | Idle" only once a kernel is connected; before that
    # Run All Cells does nothing.
    wait_until(page, """() => /\\|\\s*Idle/.test(
        (document.querySelector('#jp-main-statusbar') || {}).textContent || '')""",
               OPEN_S, "the kernel to start")


VISIBLE_PROSE_INCLUDES = """(text) => [...document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownCell')].some(c => c.innerText.includes(text))"""


def wait_until(page, predicate_js: str, timeout_s: float, what: str, arg=None):
    try:
        page.wait_for_function(predicate_js, arg=arg, timeout=timeout_s * 1000, polling=500)
    except Exception as err:
        screenshot = screenshot_path("jupyterlab_timeout")
        page.screenshot(path=str(screenshot))
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; cell prompts: "
                             f"{prompt_summary(page)} (screenshot {screenshot})") from err


# Done when the kernel is idle and every code cell has run, or a cell raised (Run All stops there).
KERNEL_IDLE_AND_ALL_RUN = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    if (!panel) return false;
    const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
    if (!indicator || indicator.getAttribute('data-status') !== 'idle') return false;
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
    const raised = [...panel.querySelectorAll(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")]
        .some(o => o.textContent.includes('Traceback'));
    return raised || (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)));
}"""


def prompt_summary(page) -> str:
    prompts = page.eval_on_selector_all(".jp-CodeCell .jp-InputArea-prompt",
                                        "ps => ps.map(p => p.textContent.trim())")
    return " ".join(prompts)


ANY_CELL_STARTED = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .some(p => !/\\[ \\]/.test(p.textContent))"""


def dialog_texts(page) -> list[str]:
    """The text of every open JupyterLab dialog (a modal one takes every click)."""
    return [d.inner_text() for d in page.locator(".jp-Dialog").all()]


def run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells, clicked again if no cell starts (the kernel may still be settling)."""
    for _ in range(attempts):
        if texts := dialog_texts(page):
            page.screenshot(path=str(screenshot_path("jupyterlab_dialog")))
            if any(re.search(r"died|dead|error|fail|restart", text, re.I) for text in texts):
                raise AssertionError(f"JupyterLab reports a problem in a dialog: {texts}")
            # e.g. "Select Kernel" when another chapter's kernel still runs: take its default
            # (a new Python 3 kernel), as a reader clicking "Select" would
            print(f"answered a JupyterLab dialog before Run All: {texts}")
            page.locator(".jp-Dialog .jp-mod-accept").first.click()
            page.locator(".jp-Dialog").first.wait_for(state="detached", timeout=10_000)
            wait_until(page, """() => /\\|\\s*Idle/.test(
                (document.querySelector('#jp-main-statusbar') || {}).textContent || '')""",
                       OPEN_S, "the kernel to start")
        try:  # a dialog that opens now takes the click: the next round names or dismisses it
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click(timeout=10_000)
            page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).first.click(
                timeout=10_000)
            page.wait_for_function(ANY_CELL_STARTED, timeout=30_000, polling=500)
            return
        except Exception:
            page.keyboard.press("Escape")
    page.screenshot(path=str(screenshot_path("jupyterlab_run_all_failed")))
    raise AssertionError(f"Run All Cells started no cell after {attempts} tries")


def quoted_numbers(executed_book, chapter: str) -> list[str]:
    """The values the chapter's prose quotes, as ``lsnotes run-book`` evaluated them."""
    import nbformat

    from lsnotes import runbook

    notebook = nbformat.read(executed_book[chapter].notebook, as_version=4)
    return [runbook._shown_text(entry["result"]) for cell in notebook.cells
            for entry in cell.metadata.get("user_expressions", [])
            if entry["result"].get("status") == "ok"]


def check_prose(page, chapter: str, executed_book) -> None:
    """After Run All the prose shows numbers and rendered citations, never raw MyST roles."""
    # jupyterlab-myst renders into its own element, not .jp-RenderedMarkdown; a rendered cell's
    # editor is hidden, so the cell's visible text is what a reader sees. Only the notebook in
    # front: notebooks restored from an earlier session sit hidden in the DOM, where innerText
    # falls back to the raw source.
    prose = "\n".join(page.locator(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownCell:visible").all_inner_texts())
    assert len(prose) > 200, f"{chapter}: no rendered prose found in JupyterLab"
    for raw in ("{glue", "{cite", "{eval}"):
        assert raw not in prose, f"{chapter}: JupyterLab shows raw {raw!r} in the prose"
    # Citations read as names and years; a bare BibTeX key is what an unresolved role shows.
    source = (REPO / "book" / f"{chapter}.md").read_text(encoding="utf-8")
    cited = {m["key"]: " ".join(m["text"].split()) for m in citations.LINK.finditer(source)}
    assert cited, f"{chapter}: cites nothing (expected citation links)"
    bare = [key for key in cited if key in prose]
    assert not bare, f"{chapter}: JupyterLab shows bare citation keys {bare}"
    unread = [text for text in cited.values() if text not in prose]
    assert not unread, f"{chapter}: citations not shown as written: {unread[:3]}"
    numbers = quoted_numbers(executed_book, chapter)
    assert numbers, f"{chapter}: the prose quotes no computed number ({{eval}})"
    missing = [n for n in numbers if n not in prose]
    if missing:
        dump = screenshot_path(f"jupyterlab_{chapter}_prose").with_suffix(".txt")
        dump.write_text(prose)
    assert not missing, (f"{chapter}: numbers the prose quotes (as run-book computed them) are "
                         f"not shown in JupyterLab: {missing[:5]} (its prose: {dump})")


@pytest.mark.parametrize("chapter, slider_label", LAB_CHAPTERS)
def test_run_all_and_move_slider_redraws_figure(lab, chapter, slider_label, executed_book):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        open_chapter(page, lab, chapter)
        run_all_cells(page)
        started = time.monotonic()
        wait_until(page, KERNEL_IDLE_AND_ALL_RUN, RUN_ALL_S, "Run All Cells to finish")
        run_all_s = time.monotonic() - started
        page.screenshot(path=str(screenshot_path(f"jupyterlab_{chapter}_run_all")))
        print(f"{chapter}: Run All Cells took {run_all_s:.1f} s in JupyterLab")

        stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        tracebacks = [t for t in (stderr.nth(i).inner_text() for i in range(stderr.count()))
                      if "Traceback" in t or re.search(r"^\w*Error", t, re.M)]
        assert not tracebacks, f"{chapter} raised in JupyterLab:\n" + tracebacks[0][-3000:]
        check_prose(page, chapter, executed_book)

        slider = page.locator(".widget-hslider", has=page.locator(
            ".widget-label", has_text=re.compile(rf"^\s*{re.escape(slider_label)}\s*$"))).first
        assert slider.count() == 1, f"{chapter}: no slider labelled {slider_label!r} rendered"
        widget = slider.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]")
        image = widget.locator("img").first
        image.scroll_into_view_if_needed()
        before_src = image.get_attribute("src")
        before_png = image.screenshot(path=str(screenshot_path(f"jupyterlab_{chapter}_before")))
        before_value = slider.locator(".widget-readout").inner_text()
        assert pixel_spread(before_png) > 2.0, f"{chapter}: the widget figure is blank"

        # A reader's move: focus the handle and press the arrow keys.
        slider.locator(".noUi-handle").focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        wait_until(page, "([img, src]) => img.getAttribute('src') !== src", REDRAW_S,
                   "the figure to redraw after moving the slider",
                   arg=[image.element_handle(), before_src])
        after_png = image.screenshot(path=str(screenshot_path(f"jupyterlab_{chapter}_after")))
        after_value = slider.locator(".widget-readout").inner_text()
        assert after_value != before_value, f"{chapter}: the {slider_label} readout did not move"
        assert after_png != before_png, f"{chapter}: the redrawn figure looks the same"
        print(f"{chapter}: {slider_label} {before_value} -> {after_value}, figure redrawn")
        page.close()


# A checkable exercise, a wrong answer with the hint it must get, and a right answer. One-liners:
# typed into CodeMirror, a multi-line answer would be re-indented by the editor.
LAB_EXERCISE = dict(
    chapter="gradient_masking", label="gradient_masking-worst_case",
    stub="def worst_case_accuracy(correct):",
    wrong="worst_case_accuracy = lambda correct: correct.float().mean(1).min().item()",
    hint="survives every attack",
    right="worst_case_accuracy = lambda correct: correct.all(0).float().mean().item()")
CELL_S = 120


def code_cell(page, text: str):
    """The visible notebook's code cell whose source contains ``text``."""
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell",
                        has=page.locator(".jp-InputArea-editor", has_text=text)).first
    assert cell.count() == 1, f"no code cell containing {text!r}"
    return cell


def run_cell(page, cell, expected: str, source: str | None = None) -> str:
    """Optionally replace the cell's source, run it (Shift+Enter), wait for ``expected`` in its
    output; return the output text."""
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    if source is not None:
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(source)
    page.keyboard.press("Shift+Enter")
    output = cell.locator(".jp-OutputArea")
    try:
        page.wait_for_function("([el, text]) => el.innerText.includes(text)",
                               arg=[output.element_handle(), expected], timeout=CELL_S * 1000,
                               polling=500)
    except Exception as err:
        page.screenshot(path=str(screenshot_path("jupyterlab_exercise_timeout")))
        raise AssertionError(f"no {expected!r} in the output; it shows {output.inner_text()!r}") from err
    return output.inner_text()


def test_exercise_check_gives_hint_then_passes(lab_before_any_run):
    """A reader at a chapter's exercise: the directive renders, the untouched stub is "not
    attempted", a wrong answer gets its hint, a right one passes."""
    lab, ex = lab_before_any_run, LAB_EXERCISE
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        open_chapter(page, lab, ex["chapter"])
        # jupyterlab-myst renders cells one after another; on a busy machine the last ones lag
        wait_until(page, VISIBLE_PROSE_INCLUDES, OPEN_S, "the exercise's prose to render",
                   arg="worst_case_accuracy(correct)")
        prose = "\n".join(page.locator(
            ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownCell:visible").all_inner_texts())
        assert "{exercise}" not in prose and ":label:" not in prose, "raw exercise directive shown"

        run_cell(page, code_cell(page, "from lsnotes.exercises import check"), "")
        check_call = 'check("%s", worst_case_accuracy)' % ex["label"]
        check_cell = code_cell(page, check_call)
        stub_cell = code_cell(page, ex["stub"])
        run_cell(page, stub_cell, "")  # the untouched stub, as a reader first runs it
        assert "not attempted" in run_cell(page, check_cell, "not attempted")
        run_cell(page, stub_cell, "", source=ex["wrong"])
        assert ex["hint"] in " ".join(run_cell(page, check_cell, "Hint:").split())
        answer_cell = code_cell(page, ex["wrong"].split(":")[0])  # the cell just rewritten
        run_cell(page, answer_cell, "", source=ex["right"])
        assert "passed" in run_cell(page, check_cell, "passed")
        page.screenshot(path=str(screenshot_path("jupyterlab_exercise_passed")))
        stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        assert not [t for t in stderr.all_inner_texts() if "Traceback" in t]
        page.close()
