"""The three papers' tables as data: every number exactly as printed, with where it was read.

``lsnotes/paper_tables/<paper>.json`` (linked as ``book/papers``) holds one paper: its metadata, the facts the chapters cite (each with
the line of the text it comes from) under ``settings``, and its tables. A cell is the printed
string ("75.10" stays "75.10") or ``None`` where the paper printed "/" (not run). Chapters quote a
paper only through this module, so no chapter types a paper's number::

    from lsnotes import papers
    t4 = papers.table("fu2020", "table4")
    t4.value("LS", "AA")                 # 6.86
    print(t4.markdown(columns=["clean", "PGD^20", "AA"]))

The files are read-only data; this module never writes them. Stdlib only.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from lsnotes.checks import choice

PAPERS = ("fu2020", "goibert2019", "yu2024")
# Shipped inside the package (package data), so an installed lsnotes finds them too;
# book/papers is a link to this folder.
PAPERS_DIR = Path(__file__).resolve().parent / "paper_tables"
NOT_RUN = "/"  # how the papers print a cell that was not run; stored as None

Key = str | tuple[str, ...]


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper's table: its index ``key``, its printed ``values``, the text's ``line``."""

    key: tuple[str, ...]
    values: tuple[str | None, ...]
    line: int


def _number(text: str | None, where: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where} is {text!r}, which is not a number; use printed()") from None


def _is_number(text: str | None) -> bool:
    try:
        _number(text, "")
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class PaperTable:
    """A paper's table, immutable. Rows are identified by ``key`` (one entry per ``index`` level)."""

    paper: str
    table_id: str
    caption: str
    location: str
    unit: str
    index: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[PaperRow, ...]
    notes: str

    def row(self, key: Key) -> PaperRow:
        """The row with this key: a tuple, or a plain string when the index has one level."""
        one_level = len(self.index) == 1
        if one_level and isinstance(key, str):
            wanted: Any = (key,)
        elif isinstance(key, (list, tuple)):
            wanted = tuple(key)
        else:
            wanted = key
        for r in self.rows:
            if r.key == wanted:
                return r
        allowed = ", ".join(repr(r.key[0] if one_level else r.key) for r in self.rows)
        raise ValueError(f"key of {self.paper} {self.table_id} must be one of {allowed}; got {key!r}")

    def _column(self, column: str) -> int:
        choice(f"column of {self.paper} {self.table_id}", column, self.columns)
        return self.columns.index(column)

    def printed(self, key: Key, column: str) -> str | None:
        """The cell exactly as printed, or ``None`` where the paper printed "/" (not run)."""
        return self.row(key).values[self._column(column)]

    def value(self, key: Key, column: str) -> float | None:
        """The cell as a float (``None`` if not run); ``ValueError`` if the cell is text."""
        return _number(self.printed(key, column), f"{self.paper} {self.table_id} [{key!r}, {column!r}]")

    def column(self, name: str, *, parsed: bool = False) -> list[str | float | None]:
        """One column, row by row: printed strings, or floats with ``parsed=True``."""
        j = self._column(name)
        cells = [r.values[j] for r in self.rows]
        if not parsed:
            return cells
        return [_number(c, f"{self.paper} {self.table_id} [{r.key!r}, {name!r}]")
                for r, c in zip(self.rows, cells)]

    def select(self, filters: Mapping[str, Any] | None = None, /, **index_filters: Any) -> PaperTable:
        """The rows whose index entries match, as a new table.

        Each filter names an index level and gives one allowed value or a collection of them, e.g.
        ``select(method="ALS", α=["α₁", "α₂"])``; a level that is not an identifier goes in a
        dict: ``select({"set-up": "MNIST LeNet"}, method="SBLS")``.
        """
        wanted = {**dict(filters or {}), **index_filters}
        keep = list(self.rows)
        for name, allowed_values in wanted.items():
            choice(f"index level of {self.paper} {self.table_id}", name, self.index)
            level = self.index.index(name)
            present = list(dict.fromkeys(r.key[level] for r in self.rows))
            values = ((allowed_values,) if isinstance(allowed_values, str)
                      else tuple(allowed_values))
            for v in values:
                choice(name, v, present)
            keep = [r for r in keep if r.key[level] in values]
        return replace(self, rows=tuple(keep))

    def to_records(self, *, parsed: bool = False) -> list[dict[str, Any]]:
        """One dict per row: index levels, then columns (printed, or floats with ``parsed=True``
        where the cell is a number), then ``line``."""
        records = []
        for r in self.rows:
            cells = [(_number(v, "") if parsed and _is_number(v) else v) for v in r.values]
            records.append({**dict(zip(self.index, r.key)), **dict(zip(self.columns, cells)),
                            "line": r.line})
        return records

    def markdown(self, columns: Iterable[str] | None = None, caption: bool = True) -> str:
        """A GitHub-flavoured markdown table (cells as printed, numeric columns right-aligned,
        "/" for not run), followed by the caption (unless ``caption=False``) and a line
        ``Source: <location>``, which is always there."""
        if isinstance(columns, str):
            columns = (columns,)
        shown = self.columns if columns is None else tuple(columns)
        picks = [self._column(c) for c in shown]
        numeric = [all(_is_number(r.values[j]) for r in self.rows)
                   and any(r.values[j] is not None for r in self.rows) for j in picks]

        def line(cells: Iterable[str]) -> str:
            return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

        lines = [line([*self.index, *shown]),
                 line([":--"] * len(self.index) + ["--:" if n else ":--" for n in numeric])]
        for r in self.rows:
            lines.append(line([*r.key, *(NOT_RUN if r.values[j] is None else r.values[j]
                                          for j in picks)]))
        not_run = any(r.values[j] is None for r in self.rows for j in picks)
        source = f"Source: {self.location}" + (f' ("{NOT_RUN}": not run)' if not_run else "")
        return "\n".join(lines + ([""] + [self.caption] if caption else []) + ["", source]) + "\n"

    def _repr_markdown_(self) -> str:
        """As a cell's result: the table, its caption and its source (a real table in JupyterLab
        and in the book)."""
        return self.markdown()


@lru_cache(maxsize=None)
def _document(name: str) -> dict[str, Any]:
    return json.loads((PAPERS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def paper(name: str) -> dict[str, Any]:
    """A paper's metadata and ``settings`` (facts with their line numbers), without its tables.

    Keys: paper, citation_key (as in ``book/references.bib``), title, authors, year, source,
    settings. The result is a copy: changing it changes nothing else.
    """
    choice("paper", name, PAPERS)
    return copy.deepcopy({k: v for k, v in _document(name).items() if k != "tables"})


def tables(paper: str) -> list[str]:
    """The ids of a paper's tables, in the file's order."""
    choice("paper", paper, PAPERS)
    return list(_document(paper)["tables"])


def table(paper: str, table_id: str) -> PaperTable:
    """One table of one paper (``tables(paper)`` lists the ids)."""
    choice("paper", paper, PAPERS)
    choice("table_id", table_id, tables(paper))
    return _table(paper, table_id)


@lru_cache(maxsize=None)
def _table(paper: str, table_id: str) -> PaperTable:
    t = _document(paper)["tables"][table_id]
    rows = tuple(PaperRow(key=tuple(r["key"]), values=tuple(r["values"]), line=r["line"])
                 for r in t["rows"])
    return PaperTable(paper=paper, table_id=table_id, caption=t["caption"],
                      location=t["location"], unit=t["unit"], index=tuple(t["index"]),
                      columns=tuple(t["columns"]), rows=rows, notes=t["notes"])


#: The two reference rows of Goibert & Dohmatob's appendix tables.
GOIBERT_REFERENCES = ("Normal classifier", "Adv. training")


def best_ls_rows(table: PaperTable, column: str,
                 references: tuple[str, ...] = GOIBERT_REFERENCES) -> dict[str, dict]:
    """Per set-up of one of Goibert & Dohmatob's appendix tables, in ``column``: the best
    label-smoothing cell as printed (``"best"``), the rows reaching it (``"which"``, ties kept,
    as ``"<method> <α>"``), and each reference row's cell (None where the paper printed "/")."""
    choice("column", column, table.columns)
    summary: dict[str, dict] = {}
    for r in table.to_records():
        s = summary.setdefault(r["set-up"], {"best": None, "which": [],
                                             **dict.fromkeys(references)})
        value = r[column]
        if r["method"] in references:
            s[r["method"]] = value
        elif value is not None:
            name = f"{r['method']} {r['α']}"
            if s["best"] is None or float(value) > float(s["best"]):
                s["best"], s["which"] = value, [name]
            elif float(value) == float(s["best"]):
                s["which"].append(name)
    return summary
