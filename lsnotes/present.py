"""How chapters show what they measured: numbers in prose, tables, and lists of claims.

- **Numbers in prose.** Chapters write ``{eval}`name``` in their text. JupyterLab (with
  jupyterlab-myst) evaluates it in the kernel when the reader runs the cell; ``lsnotes run-book``
  evaluates it the same way while it executes the chapter and the built book shows the stored
  result. A plain ``str`` would show with quotes in some renderers, so every value meant for prose
  is a :class:`Text`, whose ``repr`` is the text itself: :func:`percent`, :func:`fixed`,
  :func:`signed_points`.
- **Tables.** :class:`Table` displays as markdown, which JupyterLab renders as a table and the
  book renders as MyST (``nb_render_markdown_format: myst`` in ``_config.yml``), so a computed
  table is an HTML ``<table>`` in both, with numeric columns right-aligned.
- **Claims.** :class:`Claims` lists each statement a chapter makes about its numbers with whether
  this run bears it out; the statements the prose relies on are asserted, so a change that breaks
  one stops the chapter. Build each outcome from a predicate of :mod:`lsnotes.claims`
  (``C.exceeds(ls, ce)``, ``C.most(...)``): each is tested with a counter-example, refuses missing
  inputs, and shows what it compared. An asserted claim that was not measured (``None``) fails.
- **The paper's claim and ours, kept apart.** What a paper reports and what our run measured are
  two visibly different blocks, in the built book and in JupyterLab alike: MyST admonitions
  titled "The paper reports: <authors> (<year>)" and "Our run", with the classes
  ``lsnotes-paper-reports`` and ``lsnotes-our-run`` (styled in ``_static/lsnotes.css``; in
  JupyterLab, jupyterlab-myst renders them as a note and a tip). One line each, as the last
  expression of a cell; any argument may be text (markdown, ``{eval}``-free: format it in Python)
  or a :class:`Table`/:class:`Claims`/paper table::

      PaperReports("fu2020", f"Under AutoAttack their LS model keeps {fu_aa} %.", fu_t4)
      OurRun(f"Our LS model keeps {ls_aa} under AutoAttack.", claims, scale="quick profile")

  A :class:`Claims` about the papers' own numbers (a check that a sentence reads their table
  right) goes in a :class:`PaperReports`, never beside our results.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Iterable, Mapping, Sequence

from lsnotes import papers
from lsnotes.checks import choice, positive_int


class Text(str):
    """A string that shows as itself (no quotes) wherever it is displayed."""

    def __repr__(self) -> str:
        return str(self)


def percent(fraction, digits: int = 1) -> Text:
    """``0.4213`` -> ``"42.1 %"``; NaN (a measurement that was not made) -> ``"—"``."""
    digits = positive_int("digits", digits, minimum=0)
    value = _finite_or_nan("fraction", fraction)
    return Text("—" if math.isnan(value) else f"{100 * value:.{digits}f} %")


def signed_points(difference, digits: int = 1) -> Text:
    """A difference of two fractions in percentage points: ``0.052`` -> ``"+5.2"``."""
    digits = positive_int("digits", digits, minimum=0)
    value = _finite_or_nan("difference", difference)
    return Text("—" if math.isnan(value) else f"{100 * value:+.{digits}f}")


def fixed(value, digits: int = 3) -> Text:
    """A number with ``digits`` decimals (``fixed(0.5, 2)`` -> ``"0.50"``); NaN -> ``"—"``."""
    digits = positive_int("digits", digits, minimum=0)
    number = _finite_or_nan("value", value)
    return Text("—" if math.isnan(number) else f"{number:.{digits}f}")


def _finite_or_nan(name: str, value) -> float:
    if isinstance(value, bool) or (not isinstance(value, numbers.Real)
                                   and not hasattr(value, "__float__")):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    number = float(value)
    if math.isinf(number):
        raise ValueError(f"{name} must be finite (or NaN for a missing value); got {value!r}")
    return number


# ----------------------------------------------------------------------------- tables

ALIGNMENTS = ("left", "right")


def _escape_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


class Table:
    """A table a cell computes: ``Table(columns, rows)`` as the last expression of a cell.

    Cells may be any values (``Text`` from :func:`percent` reads best). Columns whose cells are
    all numbers or numeric-looking text (``"42.1 %"``, ``"+3.0"``, ``"0.512"``, ``"—"``) are
    right-aligned unless ``align`` says otherwise. ``title`` is a bold line above the table.
    """

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence], *, title: str = "",
                 align: Mapping[str, str] | None = None):
        self.columns = [str(c) for c in columns]
        if not self.columns:
            raise ValueError("columns must name at least one column")
        self.rows = [list(r) for r in rows]
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"rows[{i}] has {len(row)} cells; columns has {len(self.columns)}")
        self.title = str(title)
        self.align = {c: "right" if self._numeric(j) else "left"
                      for j, c in enumerate(self.columns)}
        for column, side in dict(align or {}).items():
            choice("align column", column, self.columns)
            self.align[column] = choice(f"align[{column!r}]", side, ALIGNMENTS)

    def _numeric(self, j: int) -> bool:
        cells = [row[j] for row in self.rows]
        return bool(cells) and all(_looks_numeric(c) for c in cells)

    def to_markdown(self) -> str:
        rule = {"left": ":--", "right": "--:"}
        lines = [f"**{self.title}**", ""] if self.title else []
        lines.append("| " + " | ".join(_escape_cell(c) for c in self.columns) + " |")
        lines.append("| " + " | ".join(rule[self.align[c]] for c in self.columns) + " |")
        lines += ["| " + " | ".join(_escape_cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:  # text/plain: what a plain console shows
        return self.to_markdown()

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, row)) for row in self.rows]


def _looks_numeric(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    text = str(value).strip().replace("%", "").replace("−", "-").replace(",", "").strip()
    if text in ("—", "-", "/", ""):
        return True
    try:
        float(text)
        return True
    except ValueError:
        return False


def beside(columns: Sequence[str], pairs: Iterable[tuple[str, Sequence, str, Sequence]], *,
           paper: str = "paper", ours: str = "ours", first_column: str = "model",
           title: str = "") -> Table:
    """A paper's rows beside ours: each pair ``(their name, their cells, our name, our cells)``
    becomes two rows, "their name (paper)" then "our name (ours)", under the same ``columns``.

    Their cells are the paper's numbers as printed (``lsnotes.papers``); ours are whatever the
    chapter measured (``percent(...)`` reads best). Say the difference of scale in the caption.
    """
    rows = []
    for their_name, their_cells, our_name, our_cells in pairs:
        rows.append([f"{their_name} ({paper})", *their_cells])
        rows.append([f"{our_name} ({ours})", *our_cells])
    return Table([first_column, *columns], rows, title=title)


# ----------------------------------------------------------------------------- claims

class ClaimFailed(AssertionError):
    """A statement the chapter's prose relies on does not hold in this run."""


class Claims:
    """What a chapter says about its numbers, each with whether this run bears it out.

    ``claims`` maps a statement to its outcome: a bool, or better a :class:`lsnotes.claims.Check`
    from one of the tested predicates of :mod:`lsnotes.claims` (it shows what it compared), or
    ``None`` where this run did not measure it. ``asserted`` names the statements the prose relies
    on: if one of them is false, construction raises :class:`ClaimFailed` naming it (and the
    chapter stops there); if one was not measured (``None``), it raises too, saying so: an
    asserted claim is never skipped. Any other value (a number, NaN, a list) is refused with a
    ``ValueError`` naming the statement, since ``bool(nan)`` is ``True``.

    Displayed, it is a list: ✔ holds / ✘ does not hold here / — not measured in this run, with
    "(asserted)" on the asserted ones, so a reader sees what did and did not reproduce.
    """

    def __init__(self, claims: Mapping[str, object], asserted: Iterable[str] = (), *,
                 title: str = ""):
        if not isinstance(claims, Mapping):
            raise ValueError(f"claims must map statements to outcomes; got {type(claims).__name__}")
        self.outcomes: dict[str, object] = {}
        for statement, outcome in claims.items():
            if outcome is not None and not is_outcome(outcome):
                raise ValueError(f"the outcome of claim {statement!r} must be a bool, a "
                                 f"lsnotes.claims.Check or None (not measured); got {outcome!r}")
            self.outcomes[str(statement)] = outcome
        if not self.outcomes:
            raise ValueError("claims must hold at least one statement")
        self.claims = {s: None if o is None else bool(o) for s, o in self.outcomes.items()}
        if isinstance(asserted, str):
            asserted = [asserted]
        self.asserted = list(asserted)
        for statement in self.asserted:
            choice("asserted statement", statement, self.claims)
        self.title = str(title)
        missing = [s for s in self.asserted if self.claims[s] is None]
        if missing:
            raise ClaimFailed("claim(s) the text relies on were not measured in this run: "
                              + "; ".join(missing))
        failed = [s for s in self.asserted if not self.claims[s]]
        if failed:
            raise ClaimFailed("claim(s) the text relies on no longer hold: " + "; ".join(
                s + _compared(self.outcomes[s]) for s in failed))

    def holds(self, statement: str) -> bool | None:
        """Whether the statement holds in this run (``None``: not measured)."""
        return self.claims[choice("statement", statement, self.claims)]

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", ""] if self.title else []
        for statement, holds in self.claims.items():
            mark = ("— not measured in this run" if holds is None
                    else "✔ holds" if holds else "✘ does not hold here")
            lines.append(f"- {mark}{' (asserted)' if statement in self.asserted else ''}: "
                         f"{statement}{_compared(self.outcomes[statement])}")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return self.to_markdown()


def is_outcome(value) -> bool:
    """A claim's outcome: a Python or NumPy bool, a one-element bool array or tensor, or a
    :class:`lsnotes.claims.Check` (anything with a bool ``holds``)."""
    if isinstance(value, bool) or isinstance(getattr(value, "holds", None), bool):
        return True
    if str(getattr(value, "dtype", "")) not in ("bool", "torch.bool"):
        return False
    return math.prod(tuple(getattr(value, "shape", ()))) == 1


def _compared(outcome) -> str:
    """" (0.431 > 0.219)" for a :class:`lsnotes.claims.Check`; nothing for a plain bool."""
    shown = getattr(outcome, "shown", "")
    return f" ({shown})" if shown else ""


# ----------------------------------------------------------------------------- paper vs ours

PAPER_REPORTS_CLASS = "lsnotes-paper-reports"
OUR_RUN_CLASS = "lsnotes-our-run"


def _markdown_of(part, index: int) -> str:
    if isinstance(part, str):
        text = part
    elif hasattr(part, "to_markdown"):
        text = part.to_markdown()
    elif hasattr(part, "markdown"):
        text = part.markdown()  # a lsnotes.papers.PaperTable
    elif hasattr(part, "_repr_markdown_"):
        text = part._repr_markdown_()
    else:
        raise ValueError(f"parts[{index}] must be text, a Table, Claims or a paper's table; "
                         f"got {type(part).__name__}")
    if not str(text).strip():
        raise ValueError(f"parts[{index}] is empty")
    return str(text).strip()


class _Block:
    """A titled MyST admonition of markdown parts (see the module docstring)."""

    css_class = ""
    theme_class = ""  # the admonition kind JupyterLab and the book's theme colour it as

    def __init__(self, title: str, parts: Sequence):
        if not parts:
            raise ValueError(f"{type(self).__name__} needs at least one part to show")
        self.title = title
        self.body = "\n\n".join(_markdown_of(p, i) for i, p in enumerate(parts))

    def to_markdown(self) -> str:
        longest = max((len(run) for run in _backtick_runs(self.body)), default=0)
        fence = "`" * max(3, longest + 1)
        return (f"{fence}{{admonition}} {self.title}\n:class: {self.theme_class} {self.css_class}\n"
                f"{self.body}\n{fence}")

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return self.to_markdown()


def _backtick_runs(text: str) -> list[str]:
    return re.findall(r"`{3,}", text)


def paper_label(paper: str) -> str:
    """"Fu et al. (2020)", "Goibert & Dohmatob (2019)": the paper's authors and year."""
    meta = papers.paper(paper)
    surnames = [name.split()[-1] for name in meta["authors"].split(",")]
    who = (surnames[0] if len(surnames) == 1 else " & ".join(surnames) if len(surnames) == 2
           else f"{surnames[0]} et al.")
    return f"{who} ({meta['year']})"


class PaperReports(_Block):
    """What one paper reports, as a block titled "The paper reports: Fu et al. (2020)"."""

    css_class = PAPER_REPORTS_CLASS
    theme_class = "note"

    def __init__(self, paper: str, *parts):
        choice("paper", paper, papers.PAPERS)
        self.paper = paper
        super().__init__(f"The paper reports: {paper_label(paper)}", parts)


class OurRun(_Block):
    """What this run measured, as a block titled "Our run" (with its ``scale`` when given:
    "Our run (quick profile, 100 examples)")."""

    css_class = OUR_RUN_CLASS
    theme_class = "tip"

    def __init__(self, *parts, scale: str = ""):
        scale = str(scale).strip()
        super().__init__(f"Our run ({scale})" if scale else "Our run", parts)


def share(count: int, total: int) -> Text:
    """``"3 of 5"``."""
    total = positive_int("total", total)
    count = positive_int("count", count, minimum=0)
    if count > total:
        raise ValueError(f"count must be at most total {total}; got {count}")
    return Text(f"{count} of {total}")

