"""Where each number in a sentence about a paper comes from.

A chapter may quote one of the three papers only through ``book/papers/*.json``: a number in a
prose sentence that cites a paper must either be computed (``{eval}`` or ``{glue}``) or be a
number that paper's JSON holds. :func:`uncited_numbers` finds the others in one chapter's text::

    from lsnotes import provenance
    for f in provenance.uncited_numbers(Path("book/gradient_masking.md").read_text()):
        print(f)            # line, the number, the sentence

or, from a shell, ``python -m lsnotes.provenance book/gradient_masking.md`` (exit status 1 when
something is found; ``--show-known`` also lists the typed numbers that pass only because the
paper prints the same number somewhere, e.g. a "10" that is K, not their PGD-10: read those).

**What is scanned.** Markdown cells of a MyST notebook: paragraphs, list items, headings, table
rows, and the bodies of directives such as ``{note}`` or ``{admonition}``. Code cells, fenced code,
``{math}`` and ``$$`` blocks, directive options, front matter, comments and link targets are not
prose. Inline code (```x```) is code; inline math (``$K = 10$``) is prose, except its subscripts,
superscripts (``x_0``, ``\\ell_2``, ``^{-1}``) and one-digit integers (``T \\to 0``, ``K - 1``),
which are notation.

**Which sentences.** A sentence cites a paper when it holds a ``{cite...}`` role naming the
paper's citation key, or names its authors (:data:`AUTHOR_NAMES`); "the papers"
(:data:`COLLECTIVE`) cites all three at once, and a number so quoted must be in every paper's
JSON. A number passes when it is a value of a cited paper's JSON (:func:`known_numbers`: table
cells, row keys, column names and ``settings`` values, as printed; not the notes, captions or
line numbers, which are ours). Facts read from the authors' repository (``repository.facts``)
count only where the sentence cites the repository (:func:`cited_repositories`).

**Exempt, narrowly.** (1) References to a part of a paper: "Table 4", "Tables 3–6", "Fig. 3",
"Section 3.2", "Eq. (5)", "Lemma 1" (:data:`PART_WORDS`). (2) A year of an entry of
``book/references.bib`` (a citation's year, "Goibert & Dohmatob (2019)"). (3) The digits of the
data-set and architecture names and pixel ranges in :data:`NAMES_WITH_DIGITS` ("CIFAR-10",
"ResNet-18", "[0, 1]"). Nothing
else: α and ε values, step counts and accuracies must be in the JSON or computed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

from lsnotes import papers
from lsnotes.citations import to_roles

REFERENCES_BIB = Path(__file__).resolve().parent.parent / "book" / "references.bib"

AUTHOR_NAMES = {
    "goibert2019": r"\bGoibert\b|\bDohmatob\b",
    "fu2020": r"\bFu\b(?=\s+et\s+al\b|'s\b|’s\b)",
    "yu2024": r"\bYu\b(?=\s+et\s+al\b|'s\b|’s\b)",
}

# "the papers" in this book means the three together: a number so quoted must be in all three.
COLLECTIVE = r"\b(?:the|both|all three|the three) papers\b"

# Words that introduce the number of a part of a paper (or of this book), possibly a range or list.
PART_WORDS = (r"Tables?|Figs?\.|Figures?|Sections?|Secs?\.|§|Eqs?\.|Equations?|Lemmas?|Theorems?"
              r"|Propositions?|Corollar(?:y|ies)|Definitions?|Algorithms?|Appendix|Chapters?")
_PART_NUMBER = r"\(?\d+(?:\.\d+)*[a-z]?\)?"
PART_REFERENCE = re.compile(
    rf"(?:{PART_WORDS})\s*~?{_PART_NUMBER}(?:\s*(?:[-–—,]|and|or|to)\s*{_PART_NUMBER})*",
    re.IGNORECASE)

# Data-set and architecture names whose digits are part of the name, and the pixel ranges.
NAMES_WITH_DIGITS = ("[0, 1]", "[0, 255]", "CIFAR-100", "CIFAR-10", "WideResNet-34-10",
                     "WRN-34-10", "ResNet-18", "ResNet-50", "LeNet-5")

# A printed number: not glued to a word or another number ("CIFAR-10" would give 10, "x0"
# nothing, "8/255" gives 8 and 255). ASCII classes so that "2ε" still gives 2.
NUMBER = re.compile(r"(?<![\w.])[-−]?\d+(?:\.\d+)?(?!\w|\.\d)", re.ASCII)

_ABBREVIATIONS = ("al.", "e.g.", "i.e.", "Fig.", "Figs.", "Eq.", "Eqs.", "Sec.", "Secs.", "cf.",
                  "vs.", "resp.", "approx.", "No.", "etc.")

# Inline pieces of a MyST line, in the order they are recognised.
_INLINE = re.compile(
    r"(?P<role>\{(?P<name>[\w:+-]+)\}`(?P<body>[^`]*)`)"
    r"|(?P<code>`+[^`]+`+)"
    r"|(?P<math>(?<!\\)\$(?!\$)(?P<tex>[^$]+?)(?<!\\)\$)"
    r"|(?P<link>\]\([^)]*\))")
_COMPUTED_ROLES = ("eval",)  # and every role starting with "glue"
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<mark>`{3,}|~{3,}|:{3,})\s*(?P<info>.*)$")
_PROSE_DIRECTIVE = re.compile(r"^\{(?!code-cell|math|raw|eval-rst|list-table|csv-table)[^}]+\}")
_SUB_SUPERSCRIPT = re.compile(r"[_^](?:\{[^{}]*\}|\\?\w)")
_MATH_SMALL_INTEGER = re.compile(r"(?<![\w.])\d(?![\w.])", re.ASCII)  # 0, 1, K − 1: notation


@dataclass(frozen=True)
class Sentence:
    """A prose sentence of a chapter: its text as written and the line it starts on (1-based)."""

    text: str
    line: int


@dataclass(frozen=True)
class Finding:
    """A number in a sentence citing ``papers`` that is neither computed nor in their JSON."""

    line: int
    number: str
    papers: tuple[str, ...]
    sentence: str

    def __str__(self) -> str:
        return (f"line {self.line}: {self.number} (cites {', '.join(self.papers)}; not in its "
                f"JSON, not computed)\n    {self.sentence}")


# ----------------------------------------------------------------------------- prose blocks

def _prose_blocks(markdown_text: str) -> Iterator[tuple[int, str]]:
    """Blocks of prose (paragraph, list item, heading, table row) with their first line."""
    lines = markdown_text.split("\n")
    i = 0
    if lines and lines[0].strip() == "---":  # front matter
        i = next((j + 1 for j in range(1, len(lines)) if lines[j].strip() == "---"), len(lines))
    fences: list[tuple[str, bool]] = []  # (closing mark, is prose)
    in_display_math = in_comment = False
    block: list[str] = []
    start = 0

    def flush():
        nonlocal block
        if block:
            yield start, " ".join(block)
        block = []

    while i < len(lines):
        line, number = lines[i], i + 1
        i += 1
        stripped = line.strip()
        if in_comment:
            in_comment = "-->" not in stripped
            continue
        if stripped.startswith("<!--"):
            yield from flush()
            in_comment = "-->" not in stripped
            continue
        fence = _FENCE.match(line)
        if fence and fences and fence["mark"][0] == fences[-1][0][0] \
                and len(fence["mark"]) >= len(fences[-1][0]) and not fence["info"]:
            yield from flush()
            fences.pop()
            continue
        if fence and (not fences or fences[-1][1]):
            yield from flush()
            info = fence["info"].strip()
            is_prose = bool(_PROSE_DIRECTIVE.match(info))
            fences.append((fence["mark"], is_prose))
            title = info.split("}", 1)[1].strip() if is_prose else ""
            if title and not info.startswith(("{figure}", "{image}", "{glue:figure}")):
                yield number, title
            continue
        if fences and not fences[-1][1]:
            continue
        if stripped.startswith("$$"):
            yield from flush()
            closes = stripped.count("$$") >= 2
            in_display_math = not closes if not in_display_math else False
            continue
        if in_display_math:
            continue
        if (not stripped or stripped.startswith("+++") or re.match(r"^\(.*\)=$", stripped)
                or (fences and re.match(r"^:[\w-]+:", stripped))):
            yield from flush()
            continue
        starts_item = re.match(r"^(?:[-*+]|\d+[.)])\s+", stripped)
        if stripped.startswith(("#", "|")) or starts_item:
            yield from flush()
            text = re.sub(r"^(?:#+|[-*+]|\d+[.)])\s+", "", stripped)
            if stripped.startswith(("#", "|")):
                if not re.fullmatch(r"\|?[\s:|-]+\|?", stripped):  # a table's rule row
                    yield number, text
                continue
            block, start = [text], number
            continue
        if not block:
            start = number
        block.append(stripped)
    yield from flush()


def prose_sentences(markdown_text: str) -> list[Sentence]:
    """The prose sentences of a MyST-markdown chapter, in order (see the module docstring)."""
    if not isinstance(markdown_text, str):
        raise ValueError(f"markdown_text must be a str; got {type(markdown_text).__name__}")
    markdown_text = to_roles(markdown_text)  # citation links count as the roles they build to
    sentences = []
    for line, block in _prose_blocks(markdown_text):
        sentences += [Sentence(text, line) for text in _split_sentences(block)]
    return sentences


def _split_sentences(block: str) -> list[str]:
    masked = _INLINE.sub(lambda m: "\x00" * len(m.group(0)), block)
    cuts = [0]
    for m in re.finditer(r"[.!?][)\"”*_]*\s+(?=[^a-z\s])", masked):
        word = masked[:m.start() + 1].rsplit(None, 1)[-1] if masked[:m.start() + 1].split() else ""
        if word.endswith(_ABBREVIATIONS):
            continue
        cuts.append(m.end())
    cuts.append(len(block))
    return [block[a:b].strip() for a, b in zip(cuts, cuts[1:]) if block[a:b].strip()]


# ----------------------------------------------------------------------------- numbers

def _value(text: str) -> str:
    return text.replace("−", "-")


@lru_cache(maxsize=None)
def known_numbers(paper: str) -> frozenset[str]:
    """Every number a paper's JSON holds as the paper's, as printed ("0.400" is not "0.4"):
    table cells, row keys, column names and ``settings`` values (not our notes, captions,
    ``about`` texts or line numbers, nor the facts read from the authors' repository)."""
    meta = papers.paper(paper)
    texts = [fact["value"] for fact in meta["settings"].values()]
    for table_id in papers.tables(paper):
        t = papers.table(paper, table_id)
        texts += list(t.columns)
        for row in t.rows:
            texts += [*row.key, *(v for v in row.values if v is not None)]
    return frozenset(_value(n) for text in texts for n in NUMBER.findall(text))


@lru_cache(maxsize=None)
def repository_numbers(paper: str) -> frozenset[str]:
    """The numbers of the facts read from a paper's public repository (``repository.facts`` of
    its JSON): they count only in a sentence that cites the repository
    (:func:`cited_repositories`), never as the paper's."""
    facts = papers.paper(paper).get("repository", {}).get("facts", {})
    return frozenset(_value(n) for fact in facts.values() for n in NUMBER.findall(fact["value"]))


@lru_cache(maxsize=None)
def _citation_keys() -> dict[str, str]:
    return {papers.paper(p)["citation_key"]: p for p in papers.PAPERS}


@lru_cache(maxsize=None)
def bibliography_years() -> frozenset[int]:
    """The years of the entries of ``book/references.bib``."""
    text = REFERENCES_BIB.read_text(encoding="utf-8")
    return frozenset(int(y) for y in re.findall(r"^\s*year\s*=\s*\{?(\d{4})", text, re.M))


def cited_repositories(sentence: str) -> tuple[str, ...]:
    """The papers whose public repository a sentence cites (its ``citation_key``) or names
    ("MGoibert/Label_smoothing")."""
    sentence = to_roles(sentence)
    cited = []
    for p in papers.PAPERS:
        repository = papers.paper(p).get("repository")
        if not repository:
            continue
        keys = {k.strip() for m in re.finditer(r"\{cite(?::\w+)?\}`([^`]*)`", sentence)
                for k in m.group(1).split(",")}
        if repository["citation_key"] in keys or repository["name"] in sentence:
            cited.append(p)
    return tuple(cited)


def cited_papers(sentence: str) -> tuple[str, ...]:
    """The papers among :data:`lsnotes.papers.PAPERS` a sentence cites or names, in that order."""
    keys = _citation_keys()
    sentence = to_roles(sentence)
    cited = set()
    for m in re.finditer(r"\{cite(?::\w+)?\}`([^`]*)`", sentence):
        cited |= {keys[k.strip()] for k in m.group(1).split(",") if k.strip() in keys}
    cited |= {p for p, pattern in AUTHOR_NAMES.items() if re.search(pattern, sentence)}
    return tuple(p for p in papers.PAPERS if p in cited)


def typed_numbers(sentence: str) -> list[str]:
    """The numbers a sentence types, after the exemptions of the module docstring: computed
    roles, code, link targets, sub/superscripts in math, parts of a paper, citation years and
    the names in :data:`NAMES_WITH_DIGITS` are removed first."""
    def keep(m: re.Match) -> str:
        if m["role"]:
            return f" {m['body']} " if m["name"] == "math" else " "
        if m["math"]:
            notation = _SUB_SUPERSCRIPT.sub(" ", m["tex"])
            return f" {_MATH_SMALL_INTEGER.sub(' ', notation)} "
        return " "

    text = _INLINE.sub(keep, sentence)
    text = PART_REFERENCE.sub(" ", text)
    for name in NAMES_WITH_DIGITS:
        text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", " ", text)
    years = bibliography_years()
    return [n for n in NUMBER.findall(text)
            if not (re.fullmatch(r"\d{4}", n) and int(n) in years)]


def uncited_numbers(markdown_text: str) -> list[Finding]:
    """Each number in a prose sentence citing one of the papers that is neither computed
    (``{eval}``, ``{glue}``) nor in a cited paper's JSON. Empty when the chapter is clean."""
    findings = []
    for sentence in prose_sentences(markdown_text):
        cited = cited_papers(sentence.text)
        collective = re.search(COLLECTIVE, sentence.text, re.IGNORECASE)
        if not cited and not collective:
            continue
        repositories = cited_repositories(sentence.text)
        known = frozenset().union(*(known_numbers(p) for p in cited),
                                  *(repository_numbers(p) for p in repositories))
        if collective:
            known |= frozenset.intersection(*(known_numbers(p) for p in papers.PAPERS))
            cited = tuple(dict.fromkeys(cited + ("all of " + ", ".join(papers.PAPERS),)))
        findings += [Finding(sentence.line, n, cited, sentence.text)
                     for n in typed_numbers(sentence.text) if _value(n) not in known]
    return findings


def checked_numbers(markdown_text: str) -> list[tuple[Sentence, str]]:
    """Every (sentence, number) pair :func:`uncited_numbers` checks: the typed numbers of the
    sentences that cite a paper (computed ones are not typed, so not counted)."""
    return [(s, n) for s in prose_sentences(markdown_text)
            if cited_papers(s.text) or re.search(COLLECTIVE, s.text, re.IGNORECASE)
            for n in typed_numbers(s.text)]


def report(paths: Iterable[Path], *, show_known: bool = False) -> tuple[str, int]:
    """A per-chapter report of :func:`uncited_numbers` and the number of findings; with
    ``show_known``, also the typed numbers that pass because the JSON holds them (a number a
    paper prints somewhere is not necessarily the one the sentence means: read them)."""
    out, total = [], 0
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        found = uncited_numbers(text)
        checked = checked_numbers(text)
        total += len(found)
        out.append(f"{path}: {len(checked)} typed number(s) in sentences citing a "
                   f"paper, {len(found)} neither computed nor in the paper's JSON")
        out += [f"  {f}" for f in found]
        if show_known:
            flagged = {(f.line, f.number) for f in found}
            out += [f"  line {s.line}: {n} (typed, in the JSON: is it the paper's?)\n    {s.text}"
                    for s, n in checked if (s.line, n) not in flagged]
    return "\n".join(out), total


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    show_known = "--show-known" in args
    args = [a for a in args if a != "--show-known"]
    if not args:
        print("usage: python -m lsnotes.provenance [--show-known] book/CHAPTER.md [...]",
              file=sys.stderr)
        return 2
    text, total = report((Path(a) for a in args), show_known=show_known)
    print(text)
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main())
