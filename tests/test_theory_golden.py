"""The theory chapters' sympy results are pinned: a changed checked output fails this test.

Each theory chapter is converted with jupytext; the outputs stored in ``tests/golden/NAME.json``
are injected into its ``# NBVAL_CHECK_OUTPUT`` cells, and ``pytest --nbval-lax`` runs the notebook
in a subprocess and compares those cells' fresh outputs with the stored ones. After an intended
change, regenerate the references with ``python tests/update_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import update_golden  # noqa: E402

pytestmark = [pytest.mark.chapters, pytest.mark.slow]


def notebook_with_golden_outputs(name: str, golden: dict):
    notebook = update_golden.load_chapter(name)
    cells = update_golden.checked_cells(notebook)
    if [cell.source for cell in cells] != [entry["source"] for entry in golden["cells"]]:
        pytest.fail(f"the checked cells of book/{name}.md changed since tests/golden/{name}.json "
                    "was written; run `python tests/update_golden.py` and review the diff")
    for number, (cell, entry) in enumerate(zip(cells, golden["cells"]), start=1):
        cell.outputs = [nbformat.from_dict(output) for output in entry["outputs"]]
        cell.execution_count = number  # nbval treats a cell without a count as never run
    return notebook


@pytest.mark.parametrize("name", update_golden.THEORY_CHAPTERS)
def test_checked_outputs_match_golden(name, tmp_path):
    golden = json.loads((update_golden.GOLDEN_DIR / f"{name}.json").read_text())
    assert golden["cells"], f"tests/golden/{name}.json pins no cells"
    notebook = notebook_with_golden_outputs(name, golden)
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(notebook, path)
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"checked outputs of book/{name}.md differ from tests/golden/{name}.json "
        f"(intended? run `python tests/update_golden.py {name}`):\n{result.stdout[-6000:]}")
