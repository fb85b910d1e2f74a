"""The HTML book builds from the executed notebooks (no re-execution) with warnings as errors."""

from __future__ import annotations

import re

import pytest

from conftest import toc_chapters

pytestmark = [pytest.mark.chapters, pytest.mark.slow]


def test_book_builds_without_warnings(built_book):
    warnings = [line for line in built_book.log.splitlines()
                if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]
    assert built_book.returncode == 0 and not warnings, (
        "jupyter-book build failed:\n" + "\n".join(warnings or built_book.log.splitlines()[-40:]))
    assert (built_book.html / "index.html").is_file()


@pytest.mark.parametrize("chapter", toc_chapters())
def test_chapter_page_exists(built_book, chapter):
    assert built_book.page(chapter).is_file(), f"no HTML page for {chapter}"
