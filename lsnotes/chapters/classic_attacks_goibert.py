"""The classic_attacks chapter's paper-vs-ours side: Goibert & Dohmatob's appendix tables read
cell by cell, our rows beside them, the findings each table shows and whether our run shows them,
and what their repository adds; with the checked inputs every claim of the chapter is built on.
Re-exported by :mod:`lsnotes.chapters.classic_attacks` (the chapter imports that one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Mapping, Sequence

from lsnotes import claims as C
from lsnotes import papers, present
from lsnotes.present import Claims, Table, Text, fixed

#: Goibert & Dohmatob's four methods (Szegedy's LS is ours only) and their reference rows.
GOIBERT_METHODS = ("ALS", "SLS", "BLS", "SBLS")
GOIBERT_REFERENCES = ("Normal classifier", "Adv. training")


def repository_facts() -> SimpleNamespace:
    """What Goibert & Dohmatob's public repository adds to the paper's text, as recorded in the
    papers' JSON with file and commit: ``svhn_eps`` (the SVHN LeNet set-up's ε₁, ε₂, ε₃, matched
    through its adversarial-training row) and ``at_parameter`` (the code's default weight
    parameter for adversarial training; its README does not say which term it weights)."""
    facts = papers.paper("goibert2019")["repository"]["facts"]
    return SimpleNamespace(svhn_eps=Text(facts["svhn_lenet_fgsm_bim_eps"]["value"]),
                           at_parameter=Text(facts["adv_training_reg_param_default"]["value"]))


# ------------------------------------------------------------------------------ claim helpers
# Every claim below is computed from measured numbers only; an input that is missing (an absent
# model, a NaN, an empty list) raises instead of quietly making the claim true or false.

def _number(where: str, value, infinite_ok: bool = False) -> float:
    if value is None or isinstance(value, bool) or math.isnan(float(value)) or (
            math.isinf(float(value)) and not infinite_ok):
        raise present.ClaimFailed(f"{where} was not measured in this run ({value!r})")
    return float(value)


def _get(results: Mapping, attack: str, name: str) -> float:
    if attack not in results or name not in results[attack]:
        raise present.ClaimFailed(f"{attack} accuracy of {name!r} was not measured in this run")
    return _number(f"{attack} accuracy of {name!r}", results[attack][name])


def _most(outcomes: Sequence[bool], what: str) -> C.Check:
    if not outcomes:
        raise C.MissingMeasurement(f"no {what} to count: the claim has no inputs")
    return C.most(outcomes)



@dataclass
class Findings:
    """Numbers the prose quotes (attributes, for ``{eval}``) and the claims it rests on."""

    claims: Claims
    texts: dict[str, Text] = field(default_factory=dict)

    def __getattr__(self, name):
        texts = self.__dict__.get("texts", {})
        if name in texts:
            return texts[name]
        raise AttributeError(name)

    def _repr_markdown_(self) -> str:
        return self.claims.to_markdown()

    def __repr__(self) -> str:
        return self.claims.to_markdown()


# ------------------------------------------------------------------------------ Goibert's tables

def goibert_cells(table: papers.PaperTable) -> dict[tuple[str, str], dict]:
    """Per (set-up, column) of one of Goibert et al.'s appendix tables: the best LS cell as
    printed (``best``), the LS rows reaching it (``which``, ties kept), and the two reference
    rows' cells (``None`` where the paper printed "/")."""
    return {(setup, column): s for column in table.columns
            for setup, s in papers.best_ls_rows(table, column, GOIBERT_REFERENCES).items()}


def goibert_findings(table: papers.PaperTable) -> dict[tuple[str, str], dict]:
    """Their cells where the best LS row and both references were run, as floats."""
    kept = {}
    for key, s in goibert_cells(table).items():
        if None not in (s["best"], *(s.get(k) for k in GOIBERT_REFERENCES)):
            kept[key] = {"best": float(s["best"]), "which": s["which"],
                         **{k: float(s[k]) for k in GOIBERT_REFERENCES}}
    return kept


def candidates(results: Mapping, attack: str) -> list[str]:
    """Our models of Goibert et al.'s four methods that ``attack`` was run on."""
    names = [n for n in results.get(attack, {}) if n.split()[0] in GOIBERT_METHODS
             and not (isinstance(results[attack][n], float) and math.isnan(results[attack][n]))]
    if not names:
        raise present.ClaimFailed(f"no model of {GOIBERT_METHODS} was run under {attack}")
    return names


def best_of(results: Mapping, attack: str) -> str:
    """Our best model of those four methods under ``attack`` (the first of a tie)."""
    return max(candidates(results, attack), key=lambda n: _get(results, attack, n))


def our_row(results: Mapping, attack: str, eps_text: str | None = None) -> list:
    """Our row for :func:`beside_goibert`: best LS accuracy, which models reach it, CE, FGSM-AT."""
    best = _get(results, attack, best_of(results, attack))
    tied = [n for n in candidates(results, attack) if _get(results, attack, n) == best]
    cells = [fixed(best), ", ".join(tied), fixed(_get(results, attack, "CE")),
             fixed(_get(results, attack, "FGSM-AT"))]
    return ([eps_text] if eps_text else []) + cells


def beside_goibert(table: papers.PaperTable, ours: Sequence, our_setup: str) -> Table:
    """Their best LS / normal classifier / adversarial training cells per set-up (and strength),
    then our row (:func:`our_row`)."""
    several = len(table.columns) > 1
    shown = lambda cell: papers.NOT_RUN if cell is None else cell  # noqa: E731
    rows = [[setup, *([column] if several else []), shown(s["best"]), ", ".join(s["which"]),
             shown(s.get("Normal classifier")), shown(s.get("Adv. training"))]
            for (setup, column), s in goibert_cells(table).items()]
    rows.append([our_setup, *ours])
    return Table(["set-up", *(["ε"] if several else []), "best LS", "best LS is",
                  "normal classifier", "adv. training"], rows)


def _count(cells: Mapping, holds: Callable[[dict], bool]) -> Text:
    if not cells:
        raise present.ClaimFailed("no cell of their table to count")
    return present.share(sum(map(holds, cells.values())), len(cells))


def _beats_normal(c): return c["best"] > c["Normal classifier"]  # noqa: E704
def _beats_at(c): return c["best"] > c["Adv. training"]  # noqa: E704
def _at_wins(c): return c["Adv. training"] > c["best"]  # noqa: E704
def _best_is(*methods): return lambda c: any(w.split()[0] in methods for w in c["which"])  # noqa: E704


def paper_reading(goibert: Mapping[str, papers.PaperTable]) -> Findings:
    """What the prose says of Goibert et al.'s own tables, asserted (a misreading stops the
    chapter): adversarial training wins most FGSM cells but not all; the best LS row beats it in
    at least one cell of each other attack; under DeepFool no LS row is above the normal
    classifier on CIFAR LeNet and fewer than half are on SVHN LeNet."""
    cells = {a: goibert_findings(goibert[a]) for a in ("fgsm", "bim", "deepfool", "cw")}
    fgsm_at = sum(map(_at_wins, cells["fgsm"].values()))
    above = {setup: ls_rows_above_normal(goibert["deepfool"], setup)
             for setup, _ in cells["deepfool"]}
    claims = {
        "FGSM: adversarial training is above their best LS row in most set-up/ε cells, "
        f"not all ({present.share(fgsm_at, len(cells['fgsm']))})":
            len(cells["fgsm"]) / 2 < fgsm_at < len(cells["fgsm"]),
        "BIM, DeepFool, C&W: their best LS row is above adversarial training in at least "
        "one set-up each": all(any(map(_beats_at, cells[a].values()))
                               for a in ("bim", "deepfool", "cw")),
        "DeepFool, CIFAR LeNet: no LS row above the normal classifier":
            above["CIFAR LeNet"][0] == 0,
        "DeepFool, SVHN LeNet: fewer than half the LS rows above the normal classifier":
            above["SVHN LeNet"][0] < above["SVHN LeNet"][1] / 2,
    }
    texts = dict(svhn_above=present.share(*above["SVHN LeNet"]),
                 above_text=Text("; ".join(f"{s}: {k} of {n}" for s, (k, n) in above.items())))
    return Findings(Claims(claims, asserted=list(claims),
                           title="Read from Goibert et al.'s tables"), texts)


def ls_rows_above_normal(deepfool: papers.PaperTable, setup: str) -> tuple[int, int]:
    """(LS rows above the normal classifier, LS rows) of one set-up of a one-column table."""
    rows = [r for r in deepfool.to_records(parsed=True) if r["set-up"] == setup]
    if not rows:
        raise ValueError(f"setup {setup!r} is not in {deepfool.paper} {deepfool.table_id}")
    normal = next(r["accuracy"] for r in rows if r["method"] == "Normal classifier")
    ls = [r["accuracy"] for r in rows if r["method"] in GOIBERT_METHODS]
    return sum(a > normal for a in ls), len(ls)


def goibert_claims(goibert: Mapping[str, papers.PaperTable], results: Mapping,
                   attacks_: Sequence[str], title: str = "Goibert et al.'s findings, ours"
                   ) -> Claims:
    """Each finding of their tables for ``attacks_``, with how many of their set-up(/ε) cells
    show it, and whether our run shows it (not asserted: a ✘ is a result)."""
    claims = {}
    for attack in attacks_:
        cells = goibert_findings(goibert[attack])
        best = best_of(results, attack)
        ours = lambda n: _get(results, attack, n)  # noqa: E731
        name = {"cw": "C&W", "deepfool": "DeepFool"}.get(attack, attack.upper())
        claims[f"{name}: the best LS model beats the normal classifier (Goibert et al.: "
               f"{_count(cells, _beats_normal)} cells)"] = C.exceeds(ours(best), ours("CE"))
        if attack == "fgsm":
            claims[f"FGSM: adversarial training beats the best LS model (Goibert et al.: "
                   f"{_count(cells, _at_wins)})"] = C.exceeds(ours("FGSM-AT"), ours(best))
        else:
            claims[f"{name}: the best LS model beats adversarial training (Goibert et al.: "
                   f"{_count(cells, _beats_at)})"] = C.exceeds(ours(best), ours("FGSM-AT"))
        if attack == "bim":
            claims[f"BIM: the best LS model is ALS or BLS (Goibert et al.: "
                   f"{_count(cells, _best_is('ALS', 'BLS'))})"] = C.one_of(
                best.split()[0], ("ALS", "BLS"))
        if attack == "deepfool":
            above = [ours(n) > ours("CE") for n in candidates(results, attack)]
            rows = "; ".join(f"{s}: {k} of {n}" for s, (k, n) in (
                (s, ls_rows_above_normal(goibert[attack], s)) for s, _ in cells))
            claims["DeepFool: most LS models beat the normal classifier (Goibert et al., LS "
                   f"rows above it: {rows})"] = _most(above, "LS models under DeepFool")
        if attack == "cw":
            top = [n for n in candidates(results, attack) if ours(n) == ours(best)]
            claims[f"C&W: SBLS is (among) the best LS methods, above the normal classifier "
                   f"(Goibert et al.: {_count(cells, _best_is('SBLS'))})"] = (
                any(n.startswith("SBLS") for n in top) and ours(best) > ours("CE"))
    return Claims(claims, title=title)
