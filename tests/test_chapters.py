"""Every chapter of ``_toc.yml`` executes without error (quick profile), each exactly once per run."""

from __future__ import annotations

import pytest

from conftest import toc_chapters

pytestmark = [pytest.mark.chapters, pytest.mark.slow]


@pytest.mark.parametrize("chapter", toc_chapters())
def test_chapter_executes(executed_book, chapter):
    result = executed_book[chapter]
    print(f"{chapter}: {result.status} in {result.wall_s:.1f} s, "
          f"peak kernel memory {result.peak_memory_mb:.0f} MB on {result.device}")
    assert result.status == "ok", (
        f"{chapter} {result.status}: {result.error}\n"
        + (f"failing cell:\n{result.failed_cell}\n" if result.failed_cell else "")
        + (f"executed notebook: {result.notebook}" if result.notebook else ""))
