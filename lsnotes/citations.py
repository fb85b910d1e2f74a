"""Citations a reader can read everywhere: a Markdown link in the chapters, a ``{cite}`` in the book.

jupyterlab-myst cannot read BibTeX, so a ``{cite:t}`fu2020label``` role shows in JupyterLab as its
bare key beside a warning sign. The chapters therefore cite with plain Markdown links that name
the work and point at it, with the BibTeX key and the citation style in the link's title::

    [Fu et al. (2020)](https://arxiv.org/abs/2009.08233 'cite:t fu2020label') show ...
    ... under PGD ([Madry et al., 2018](https://arxiv.org/abs/1706.06083 'cite:p madry2018towards')).
    ... ([Guo et al., 2017](… 'cite:p guo2017calibration'); [Müller et al., 2019](… 'cite:p muller2019does'))

JupyterLab (and any Markdown viewer) shows "Fu et al. (2020)" linked to the paper. The book's
Sphinx extension (:mod:`lsnotes.sphinx_ext`) turns each back into the role before parsing
(:func:`to_roles`: the textual link into ``{cite:t}``, a parenthesised group of ``cite:p`` links
into one ``{cite:p}``), so the built book keeps sphinxcontrib-bibtex's citations and bibliography.
:func:`problems` checks that every link's text and address are what ``references.bib`` says, so
the readable text cannot drift from the entry; :func:`from_roles` writes the links from roles.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import latexcodec  # noqa: F401  (registers the "ulatex" codec)

STYLES = ("t", "p")

#: One citation link: [text](address 'cite:STYLE KEY').
_LINK = r"\[(?P<text>[^\]]+)\]\((?P<url>\S+)\s+'cite:(?P<style>[a-z]+)\s+(?P<key>[\w:.-]+)'\)"
LINK = re.compile(_LINK)
_P_LINK = _LINK.replace("(?P<style>[a-z]+)", "p").replace("?P<", "?P<p_")
#: A parenthetical group: "(" cite:p links joined by "; " ")".
GROUP = re.compile(r"\((?P<links>" + re.sub(r"\?P<\w+>", "?:", _P_LINK)
                   + r"(?:;\s*" + re.sub(r"\?P<\w+>", "?:", _P_LINK) + r")*)\)")
#: A MyST citation role (what :func:`from_roles` replaces).
ROLE = re.compile(r"\{cite(?::(?P<style>\w+))?\}`(?P<keys>[^`]+)`")


@dataclass(frozen=True)
class Entry:
    """What a citation shows of one BibTeX entry."""

    key: str
    surnames: tuple[str, ...]
    year: str
    url: str

    def names(self) -> str:
        """"Fu et al.", "Goibert and Dohmatob", "Goibert": as author-year styles print them."""
        if len(self.surnames) >= 3:
            return f"{self.surnames[0]} et al."
        return " and ".join(self.surnames)

    def text(self, style: str) -> str:
        """The link text: "Fu et al. (2020)" (textual) or "Fu et al., 2020" (parenthetical)."""
        return f"{self.names()} ({self.year})" if style == "t" else f"{self.names()}, {self.year}"


def _plain(latex: str) -> str:
    return codecs.decode(latex, "ulatex").replace("{", "").replace("}", "")


def _address(fields) -> str:
    if fields.get("url"):
        return fields["url"]
    if fields.get("doi"):
        return f"https://doi.org/{fields['doi']}"
    if fields.get("eprint"):
        return f"https://arxiv.org/abs/{fields['eprint']}"
    return ""


@lru_cache(maxsize=8)
def _read(path: str, mtime: float) -> dict[str, Entry]:
    from pybtex.database import parse_file

    entries = {}
    for key, entry in parse_file(path).entries.items():
        surnames = tuple(_plain(" ".join(person.prelast_names + person.last_names))
                         for person in entry.persons.get("author", ()))
        entries[key] = Entry(key, surnames, entry.fields.get("year", ""), _address(entry.fields))
    return entries


def bibliography(path: str | Path) -> dict[str, Entry]:
    """The entries of a BibTeX file, by key (re-read when the file changes)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"bibliography: no BibTeX file at {path}")
    return _read(str(path.resolve()), path.stat().st_mtime)


def _group_keys(group: str) -> list[str]:
    return [m["key"] for m in LINK.finditer(group)]


def to_roles(markdown: str) -> str:
    """``markdown`` with every citation link turned into the MyST role the book builds with:
    a parenthesised group of ``cite:p`` links into one ``{cite:p}``, a ``cite:t`` link into
    ``{cite:t}``. Ordinary links are left alone; the text keeps its number of lines."""
    # A link may wrap; its line breaks are kept after the role so that line numbers still match.
    markdown = GROUP.sub(lambda m: "{cite:p}`" + ",".join(_group_keys(m["links"])) + "`"
                         + "\n" * m[0].count("\n"), markdown)
    return LINK.sub(lambda m: "{cite:%s}`%s`" % (m["style"], m["key"]) + "\n" * m[0].count("\n"),
                    markdown)


def link(entry: Entry, style: str) -> str:
    """One citation link to ``entry`` in ``style`` (``t`` or ``p``)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}; got {style!r}")
    return f"[{entry.text(style)}]({entry.url} 'cite:{style} {entry.key}')"


def from_roles(markdown: str, entries: dict[str, Entry]) -> str:
    """``markdown`` with its ``{cite:t}``/``{cite:p}`` roles written as citation links (the form
    the chapters keep). A role naming an unknown key or another style raises ``ValueError``."""
    def replace(match: re.Match) -> str:
        style = match["style"] or "p"
        keys = [k.strip() for k in match["keys"].split(",")]
        unknown = [k for k in keys if k not in entries]
        if unknown or style not in STYLES:
            raise ValueError(f"cannot write {match[0]!r} as a link: "
                             + (f"unknown key(s) {unknown}" if unknown
                                else f"style must be one of {', '.join(STYLES)}"))
        if style == "t":
            return "; ".join(link(entries[k], "t") for k in keys)
        return "(" + "; ".join(link(entries[k], "p") for k in keys) + ")"

    return ROLE.sub(replace, markdown)


def problems(markdown: str, entries: dict[str, Entry]) -> list[str]:
    """What is wrong with the citations of ``markdown``: raw roles JupyterLab cannot show, links
    to unknown keys, a style other than t/p, text or address that differ from the entry, or a
    ``cite:p`` link outside a parenthesised group (the book would print it without parentheses)."""
    found = [f"raw role {m[0]!r} (JupyterLab shows its bare key): write it as a link"
             for m in ROLE.finditer(markdown)]
    for m in LINK.finditer(markdown):
        entry = entries.get(m["key"])
        if entry is None:
            found.append(f"{m[0]!r}: no entry {m['key']!r} in the bibliography")
            continue
        if m["style"] not in STYLES:
            found.append(f"{m[0]!r}: style must be one of {', '.join(STYLES)}")
            continue
        if " ".join(m["text"].split()) != entry.text(m["style"]):
            found.append(f"{m[0]!r}: text should read {entry.text(m['style'])!r}")
        if m["url"] != entry.url:
            found.append(f"{m[0]!r}: address should be {entry.url or '(none in the entry)'!r}")
    grouped = {m.start("links") + g.start() for m in GROUP.finditer(markdown)
               for g in LINK.finditer(m["links"])}
    found += [f"{m[0]!r}: a cite:p link belongs inside parentheses, e.g. ([…](…))"
              for m in LINK.finditer(markdown) if m["style"] == "p" and m.start() not in grouped]
    return found
