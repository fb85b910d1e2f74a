"""Regenerate the reference outputs of the theory chapters' checked (sympy) cells.

    python tests/update_golden.py                 # every theory chapter
    python tests/update_golden.py logit_squeezing # one chapter

A checked cell is a code cell whose source contains ``# NBVAL_CHECK_OUTPUT``. Chapters are
committed as text without outputs, so their expected outputs live in ``tests/golden/NAME.json``;
``tests/test_theory_golden.py`` compares them with the book's executed chapters. Run this
after an intended change to a checked cell, and review the diff of the JSON before committing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jupytext
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = ROOT / "tests" / "golden"
THEORY_CHAPTERS = ("unified_framework", "adversarial_ls", "logit_squeezing")
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"


def checked_cells(notebook) -> list:
    return [cell for cell in notebook.cells
            if cell.cell_type == "code" and CHECK_MARKER in cell.source]


def load_chapter(name: str):
    notebook = jupytext.read(ROOT / "book" / f"{name}.md")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    return notebook


def comparable_outputs(outputs) -> list:
    """Outputs as nbval compares them: streams merged per name, no counts or metadata."""
    kept: list[dict] = []
    for output in outputs:
        if output["output_type"] == "stream":
            if kept and kept[-1]["output_type"] == "stream" and kept[-1]["name"] == output["name"]:
                kept[-1]["text"] += output["text"]
            else:
                kept.append({"output_type": "stream", "name": output["name"], "text": output["text"]})
        elif output["output_type"] in ("execute_result", "display_data"):
            data = {k: v for k, v in output["data"].items() if k == "text/plain"}
            kept.append({"output_type": output["output_type"], "data": data, "metadata": {},
                         **({"execution_count": None} if output["output_type"] == "execute_result" else {})})
        else:
            raise ValueError(f"checked cells must not raise; got output {output['output_type']}")
    return kept


def execute(notebook):
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "book")}}).execute()
    return notebook


def update(name: str) -> Path:
    notebook = execute(load_chapter(name))
    golden = {"chapter": f"book/{name}.md",
              "cells": [{"source": cell.source, "outputs": comparable_outputs(cell.outputs)}
                        for cell in checked_cells(notebook)]}
    path = GOLDEN_DIR / f"{name}.json"
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")
    return path


def main(argv: list[str]) -> int:
    names = argv or list(THEORY_CHAPTERS)
    for name in names:
        if name not in THEORY_CHAPTERS:
            print(f"unknown chapter {name!r}; allowed: {', '.join(THEORY_CHAPTERS)}", file=sys.stderr)
            return 2
        print(f"wrote {update(name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
