"""The built book in a real headless Chromium: every chapter page shows its outputs without
errors, real (non-blank) figures, math markup, working navigation, resolved citations and no
broken internal links. Screenshots land in ``artifacts/screenshots/``."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from browser_utils import chromium, pixel_spread, screenshot_path, serve_directory
from conftest import REPO, toc_chapters

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
    """(page, chapter name, html path) for the chapter this test is parametrised with; loaded
    and screenshotted once per chapter, shared by that chapter's checks."""
    name = request.param
    if name not in built_book.chapters:
        pytest.fail(f"{name} was not executed (reused an old run-book summary?)")
    html = built_book.page(name)
    if not html.is_file():
        pytest.fail(f"{name}: no page {html} (did it execute? see test_chapters)")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site}/{html.relative_to(built_book.html).as_posix()}", wait_until="load")
    page.screenshot(path=str(screenshot_path(f"book_{name}")), full_page=True)
    yield page, name, html
    page.close()


def chapter_source(built_book, name: str) -> str:
    return (REPO / f"{built_book.chapters[name].entry}.md").read_text()


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_no_error_output(chapter_page):
    page, name, _ = chapter_page
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


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_figures_are_present_and_not_blank(chapter_page, built_book):
    page, name, _ = chapter_page
    notebook = nbformat.read(built_book.chapters[name].notebook, as_version=4)
    expected = sum(1 for cell in notebook.cells if cell.cell_type == "code"
                   and not HIDDEN_OUTPUT_TAGS & set(cell.metadata.get("tags", []))
                   for output in cell.get("outputs", [])
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
def test_math_is_marked_up(chapter_page, built_book):
    page, name, _ = chapter_page
    if not MATH_IN_SOURCE.search(chapter_source(built_book, name)):
        pytest.skip(f"{name} has no math")
    # MathJax comes from a CDN, unreachable offline: check the markup MathJax would typeset.
    assert page.locator("article div.math, article span.math").count() > 0, (
        f"{name}: its source has math but the page has no div.math/span.math")
    prose = page.evaluate("""() => {
        const article = document.querySelector('article').cloneNode(true);
        article.querySelectorAll('.math, pre, code, .cell_output').forEach(e => e.remove());
        return article.innerText; }""")
    assert "$$" not in prose, f"{name}: unrendered $$ math in the prose"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_previous_and_next_links_follow_the_toc(chapter_page, built_book):
    page, name, html = chapter_page
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
    page, name, html = chapter_page
    source = chapter_source(built_book, name)
    cited = len(re.findall(r"\{cite(?::\w+)?\}`", source))
    if not cited:
        pytest.skip(f"{name} cites nothing")
    article_text = page.locator("article").inner_text()
    assert "{cite" not in article_text, f"{name}: a {{cite}} role was not rendered"
    links = page.locator("article a.reference.internal[href*='#']")
    citations = []
    for i in range(links.count()):
        href = links.nth(i).get_attribute("href")
        target_file, anchor = resolve_href(html, href, built_book.html)
        if anchor and anchor_has_class(target_file, anchor, "citation"):
            citations.append(href)
    assert citations, f"{name}: cites {cited} time(s) but no link reaches a bibliography entry"


@pytest.mark.parametrize("chapter_page", CHAPTERS, indirect=True)
def test_internal_links_resolve(chapter_page, built_book):
    page, name, html = chapter_page
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
