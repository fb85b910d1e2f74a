"""The built book in a real headless Chromium with the network blocked, checked for what a reader
sees: every computed table is a real table (no markdown pipes in the prose), formulae are typeset
by the book's own MathJax, figures load, no cell shows an error or a raw object, the prose shows
its numbers, code does not scroll sideways, navigation and citations work. A full-page screenshot
of every chapter lands in ``artifacts/screenshots/book_<chapter>.png``."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from browser_utils import chromium, pixel_spread, screenshot_path, serve_directory
from conftest import REPO, toc_chapters
from lsnotes import citations

pytestmark = [pytest.mark.browser, pytest.mark.chapters, pytest.mark.slow]

CHAPTERS = toc_chapters()
# Dollar math, the math directive/role, or a LaTeX environment in the chapter's source.
MATH_IN_SOURCE = re.compile(r"\$\$|\$[^$\s][^$\n]*\$|\{math\}|\\begin\{")
HIDDEN_OUTPUT_TAGS = {"remove-output", "remove-cell"}


@pytest.fixture(scope="module")
def site(built_book):
    if not (built_book.html / "index.html").is_file():
        pytest.fail(f"no built book at {built_book.html}")
    with serve_directory(built_book.html) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def chapter_page(browser, site, built_book, request):
    """(page, chapter name, html path, blocked requests) for the chapter this test is
    parametrised with: loaded once with every request off the local site refused, MathJax
    finished, screenshotted, and shared by that chapter's checks."""
    name = request.param
    if name not in built_book.chapters:
        pytest.fail(f"{name} was not executed (reused an old run-book summary?)")
    html = built_book.page(name)
    if not html.is_file():
        pytest.fail(f"{name}: no page {html} (did it execute? see test_chapters)")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked = []

    def offline(route):
        if route.request.url.startswith(site):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    page = context.new_page()
    page_errors = []  # uncaught exceptions: a SyntaxError in a script stops it for the reader
    page.on("pageerror", lambda err: page_errors.append(str(err)))
    page.goto(f"{site}/{html.relative_to(built_book.html).as_posix()}", wait_until="load")
    page.wait_for_function(MATHJAX_DONE, timeout=60_000)
    page.screenshot(path=str(screenshot_path(f"book_{name}")), full_page=True)
    page.page_errors = page_errors
    yield page, name, html, blocked
    context.close()


# True once MathJax (if the page loads it) has typeset everything.
MATHJAX_DONE = """async () => {
    if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) {
        return !document.querySelector('script[src*="mathjax"]') || !!window.MathJax;
    }
    await MathJax.startup.promise;
    return true;
}"""


def executed_notebook(built_book, name: str):
    return nbformat.read(built_book.chapters[name].notebook, as_version=4)


def shown_outputs(notebook):
    """Outputs of code cells the page shows (not removed by a tag)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and not HIDDEN_OUTPUT_TAGS & set(cell.metadata.get("tags", [])):
            yield from cell.get("outputs", [])


MARKDOWN_TABLE_RULE = re.compile(r"^\s*\|(\s*:?-{2,}:?\s*\|)+\s*$", re.M)


def tables_in_notebook(notebook) -> int:
    """Tables a reader should see: markdown tables in the prose and in displayed markdown,
    and HTML tables in displayed HTML."""
    count = sum(len(MARKDOWN_TABLE_RULE.findall(c.source)) for c in notebook.cells
                if c.cell_type == "markdown")
    for output in shown_outputs(notebook):
        data = output.get("data", {})
        if "text/html" in data:
            count += "".join(data["text/html"]).count("<table")
        elif "text/markdown" in data:
            count += len(MARKDOWN_TABLE_RULE.findall("".join(data["text/markdown"])))
    return count


def chapter_source(built_book, name: str) -> str:
    return (REPO / f"{built_book.chapters[name].entry}.md").read_text()


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_no_error_output(chapter_page):
    page, name, *_ = chapter_page
    errors = page.locator(".cell_output .output.stderr, .cell_output .output.traceback, "
                          ".cell_output .traceback")
    shown = [errors.nth(i).inner_text()[:300] for i in range(errors.count())]
    assert not shown, f"{name} shows error/stderr output:\n" + "\n---\n".join(shown)
    outputs = page.locator(".cell_output")
    texts = [outputs.nth(i).inner_text() for i in range(outputs.count())]
    assert not [t for t in texts if "Traceback (most recent call last)" in t], name
    as_text = [t[:80] for t in texts if re.search(r"<(Figure|matplotlib\.figure\.Figure) ", t)]
    assert not as_text, (f"{name}: figures printed as text instead of images {as_text}; "
                         "display them so IPython renders a PNG")
    raw_bytes = [t[:80] for t in texts if re.match(r"\s*b['\"]\\x", t)]
    assert not raw_bytes, f"{name}: a cell shows raw bytes (e.g. a returned PNG) {raw_bytes}"
    reprs = [t[:80] for t in texts if re.search(r"<[\w.]+ object at 0x[0-9a-f]+>", t)]
    assert not reprs, f"{name}: a cell shows a raw object repr instead of its content {reprs}"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_figures_are_present_and_not_blank(chapter_page, built_book):
    page, name, *_ = chapter_page
    expected = sum(1 for output in shown_outputs(executed_notebook(built_book, name))
                   if {"image/png", "image/svg+xml", "image/jpeg"} & set(output.get("data", {})))
    images = page.locator("article .cell_output img, article figure img, article img.image")
    assert images.count() >= expected, (
        f"{name}: the executed notebook has {expected} image outputs, the page shows "
        f"{images.count()}")
    for i in range(images.count()):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        width = image.evaluate("img => img.complete ? img.naturalWidth : 0")
        source = image.get_attribute("src")
        assert width > 0, f"{name}: image {source} did not load"
        spread = pixel_spread(image.screenshot())
        assert spread > 2.0, f"{name}: image {source} is a single colour (spread {spread:.2f})"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_math_is_typeset_offline(chapter_page, built_book):
    page, name, *_ = chapter_page
    if not MATH_IN_SOURCE.search(chapter_source(built_book, name)):
        pytest.skip(f"{name} has no math")
    assert page.locator("article mjx-container").count() > 0, (
        f"{name}: its source has math but MathJax typeset nothing (is MathJax served locally?)")
    prose = visible_prose(page)
    for raw in ("$$", "\\(", "\\[", "\\begin{"):
        assert raw not in prose, f"{name}: untypeset TeX ({raw}) in the text a reader sees"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_nothing_is_fetched_from_the_network(chapter_page):
    _, name, _, blocked = chapter_page
    assert not blocked, f"{name} tried to fetch {len(blocked)} resource(s) off the site: {blocked[:5]}"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_tables_are_tables(chapter_page, built_book):
    page, name, *_ = chapter_page
    expected = tables_in_notebook(executed_notebook(built_book, name))
    shown = page.locator("article table").count()
    assert shown == expected, f"{name}: the chapter produces {expected} table(s), the page shows {shown}"
    paragraphs = page.eval_on_selector_all("article p", "ps => ps.map(p => p.innerText)")
    raw = [p[:120] for p in paragraphs
           if MARKDOWN_TABLE_RULE.search(p) or re.search(r"\|\s*-{3}|^\s*\|.*\|\s*$", p, re.M)]
    assert not raw, f"{name}: markdown table rows shown as text: {raw[:3]}"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_prose_shows_its_numbers(chapter_page):
    page, name, *_ = chapter_page
    text = page.locator("article").inner_text()
    for role in ("{eval}", "{glue", "[not computed]"):
        assert role not in text, f"{name}: the page shows {role!r} instead of a number"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_visible_code_does_not_scroll_sideways(chapter_page):
    page, name, *_ = chapter_page
    wide = page.evaluate("""() => [...document.querySelectorAll('article .cell_input pre')]
        .filter(pre => pre.offsetParent !== null && pre.clientWidth > 0)
        .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
        .map(pre => pre.textContent.split('\\n').reduce((a, b) => a.length >= b.length ? a : b))""")
    assert not wide, f"{name}: code lines wider than the page: {wide[:3]}"


def visible_prose(page) -> str:
    """The article's text without code, outputs and typeset maths."""
    return page.evaluate("""() => {
        const article = document.querySelector('article').cloneNode(true);
        article.querySelectorAll('mjx-container, pre, code, .cell_output, script')
            .forEach(e => e.remove());
        return article.innerText; }""")


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_previous_and_next_links_follow_the_toc(chapter_page, built_book):
    page, name, html, _ = chapter_page
    index = CHAPTERS.index(name)
    for selector, neighbour in (("a.left-prev", index - 1), ("a.right-next", index + 1)):
        link = page.locator(f".prev-next-area {selector}")
        if 0 <= neighbour < len(CHAPTERS):
            assert link.count() == 1, f"{name}: no {selector} link"
            target = (html.parent / link.get_attribute("href")).resolve()
            assert target == built_book.page(CHAPTERS[neighbour]).resolve(), (
                f"{name}: {selector} goes to {target}, expected {CHAPTERS[neighbour]}")
        else:
            assert link.count() == 0, f"{name}: unexpected {selector} link"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_citations_link_to_bibliography_entries(chapter_page, built_book):
    page, name, html, _ = chapter_page
    source = chapter_source(built_book, name)
    cited = len(citations.LINK.findall(source)) + len(citations.ROLE.findall(source))
    if not cited:
        pytest.skip(f"{name} cites nothing")
    article_text = page.locator("article").inner_text()
    assert "{cite" not in article_text, f"{name}: a {{cite}} role was not rendered"
    assert "'cite:" not in article_text and "cite:t " not in article_text, (
        f"{name}: a citation link was not turned into a citation")
    links = page.locator("article a.reference.internal[href*='#']")
    reaching_bibliography = []
    for i in range(links.count()):
        href = links.nth(i).get_attribute("href")
        target_file, anchor = resolve_href(html, href, built_book.html)
        if anchor and anchor_has_class(target_file, anchor, "citation"):
            reaching_bibliography.append(href)
    assert reaching_bibliography, f"{name}: cites {cited} time(s) but no link reaches a bibliography entry"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_internal_links_resolve(chapter_page, built_book):
    page, name, html, _ = chapter_page
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    broken = []
    for href in set(hrefs):
        if urlsplit(href).scheme or href.startswith("//"):
            continue  # external: not checked offline
        target_file, anchor = resolve_href(html, href, built_book.html)
        if not target_file.exists():
            broken.append(f"{href} (no file {target_file})")
        elif anchor and target_file.suffix == ".html" and not has_anchor(target_file, anchor):
            broken.append(f"{href} (no id {anchor!r} in {target_file.name})")
    assert not broken, f"{name}: broken internal links:\n" + "\n".join(sorted(broken))


def resolve_href(page_file: Path, href: str, site_root: Path) -> tuple[Path, str]:
    parts = urlsplit(href)
    path = unquote(parts.path)
    if not path:
        target = page_file
    elif path.startswith("/"):
        target = site_root / path.lstrip("/")
    else:
        target = (page_file.parent / path).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


@lru_cache(maxsize=None)
def _ids(page_file: Path) -> dict[str, str]:
    """id -> the class attribute of the element carrying it."""
    text = page_file.read_text(errors="replace")
    found = {}
    for tag in re.finditer(r"<[a-zA-Z][^>]*\bid=\"([^\"]+)\"[^>]*>", text):
        classes = re.search(r"\bclass=\"([^\"]*)\"", tag.group(0))
        found[tag.group(1)] = classes.group(1) if classes else ""
    return found


def has_anchor(page_file: Path, anchor: str) -> bool:
    return anchor in _ids(page_file)


def anchor_has_class(page_file: Path, anchor: str, css_class: str) -> bool:
    return page_file.is_file() and css_class in _ids(page_file).get(anchor, "").split()


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_no_script_fails_on_the_page(chapter_page):
    page, name, _, _ = chapter_page
    assert page.page_errors == [], f"{name}: errors in the page's scripts: {page.page_errors[:3]}"
