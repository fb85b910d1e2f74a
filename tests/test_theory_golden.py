"""The theory chapters' sympy results are pinned: a changed checked output fails this test.

The checked cells (``# NBVAL_CHECK_OUTPUT``) of each theory chapter, as the session's one execution
of the book left them (the ``executed_book`` fixture: no second execution), are compared with the
outputs stored in ``tests/golden/NAME.json`` as nbval compares them (streams merged per name,
plain text only, no counts or metadata). After an intended change, regenerate the references with
``python tests/update_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import update_golden  # noqa: E402

pytestmark = [pytest.mark.chapters, pytest.mark.slow]


@pytest.mark.parametrize("name", update_golden.THEORY_CHAPTERS)
def test_checked_outputs_match_golden(name, executed_book):
    golden = json.loads((update_golden.GOLDEN_DIR / f"{name}.json").read_text())
    assert golden["cells"], f"tests/golden/{name}.json pins no cells"
    result = executed_book[name]
    assert result.status == "ok", f"{name} did not execute: {result.error}"
    cells = update_golden.checked_cells(nbformat.read(result.notebook, as_version=4))
    if [cell.source for cell in cells] != [entry["source"] for entry in golden["cells"]]:
        pytest.fail(f"the checked cells of book/{name}.md changed since tests/golden/{name}.json "
                    "was written; run `python tests/update_golden.py` and review the diff")
    for cell, entry in zip(cells, golden["cells"]):
        assert update_golden.comparable_outputs(cell.outputs) == entry["outputs"], (
            f"a checked output of book/{name}.md differs from tests/golden/{name}.json "
            f"(intended? run `python tests/update_golden.py {name}`):\n{cell.source}")
