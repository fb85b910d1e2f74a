"""The chapter "Training with label smoothing" (``book/training_with_ls.md``): its tables, claims
and figures, written once and tested (``tests/test_chapter_training_with_ls.py``).

Models are keyed ``(method, alpha, temperature)``: ``("ce", 0.0, 1.0)`` is cross-entropy. What the
chapter teaches (which labels favour the true class, the logit statistics, the margin gradient,
the reliability diagram) stays in the chapter; this module holds what turns those measurements
into the tables, claims and figures a reader sees.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Mapping, Sequence

import numpy as np

from lsnotes import claims as C
from lsnotes import losses, papers, plots
from lsnotes.present import Claims, OurRun, PaperReports, Table, Text, fixed, share

CE_KEY = ("ce", 0.0, 1.0)
#: Goibert & Dohmatob's four methods (Szegedy's label is not among them).
GOIBERT_METHODS = ("als", "sls", "bls", "sbls")
REFERENCE_ROWS = ("Normal classifier", "Adv. training")


# ----------------------------------------------------------------------------- the zoo's models

def keyed(trained: Mapping, configs: Mapping) -> dict:
    """``{(method, alpha, temperature): TrainResult}`` from the zoo's declaration
    (``zoo.chapter_trained`` and ``zoo.chapter_models`` of one setting, both ``{label: ...}``)."""
    if list(trained) != list(configs):
        raise ValueError(f"trained and configs must have the same labels; got {list(trained)} "
                         f"and {list(configs)}")
    out = {}
    for name, result in trained.items():
        c = configs[name]
        if getattr(result, "key", c.key()) != c.key():
            raise ValueError(f"trained[{name!r}] is the model {result.key}, not {c.key()}")
        key = (c.method, float(c.alpha), float(c.temperature))
        if key in out:  # e.g. FGSM-AT is CE's key trained adversarially: the chapter takes it out
            raise ValueError(f"configs {name!r} has the key {key} of another label; take the "
                             f"adversarially trained models out before keying")
        out[key] = result
    return out


def method_name(method: str) -> str:
    """``"Szegedy"`` (a name), ``"SLS"``, ``"CE"`` (acronyms)."""
    return "Szegedy" if method == "szegedy" else method.upper()


def label(key) -> str:
    """``"CE"``, ``"SLS α=0.5"``, ``"BLS α=0.5, T=10"``."""
    method, alpha, temperature = key
    if method == "ce":
        return "CE"
    suffix = f", T={temperature:g}" if method == "bls" and temperature != 1.0 else ""
    return f"{method_name(method)} α={alpha:g}{suffix}"


def recorded_time(result) -> float:
    """Seconds the model's training took, as recorded when it was trained (so the number stays
    meaningful when the model comes from the cache)."""
    return float(sum(r["seconds"] for r in result.history))


def describe(setting, params) -> str:
    return (f"profile {params.profile!r}: {setting.dataset}, {setting.model}, {setting.epochs} "
            f"epochs on {setting.train_size or 'all'} images,\nalpha grid {tuple(setting.alpha_grid)}"
            f", device {params.device}")


def scale(setting, profile: str, n_test: int) -> SimpleNamespace:
    """The words the prose uses for our scale (``.model``, ``.epochs``, ``.train_size``,
    ``.point``: test images per percentage point, ``.setup``: our row's name in a table)."""
    return SimpleNamespace(
        model=Text(f"{setting.model} on {setting.dataset}"), epochs=Text(f"{setting.epochs}"),
        train_size=Text(f"{setting.train_size or 'all'}"), point=Text(f"{n_test / 100:g}"),
        mid_alpha=Text(f"{setting.mid_alpha:g}"), top_alpha=Text(f"{max(setting.alpha_grid):g}"),
        setup=f"{setting.dataset} {setting.model} (ours, {profile})",
        block=(f"{profile} profile: {setting.model} on {setting.dataset}, {setting.epochs} "
               f"epochs, {n_test} test images"))


def readiness(results: Mapping, *extra) -> str:
    """"17 models ready (2 trained now)"."""
    everything = [*results.values(), *extra]
    now = sum(not r.from_cache for r in everything)
    return f"{len(everything)} models ready ({now} trained now, the rest from the cache)"


# ----------------------------------------------------------------------------- clean accuracy

def clean_table(clean_acc: Mapping, results: Mapping, fgsm_at_acc: float, fgsm_at) -> Table:
    rows = [[label(k), fixed(clean_acc[k]), fixed(recorded_time(results[k]), 1)]
            for k in clean_acc]
    rows.append(["FGSM-AT", fixed(fgsm_at_acc), fixed(recorded_time(fgsm_at), 1)])
    return Table(["model", "clean accuracy", "training time (s)"], rows)


def clean_accuracy_claims(clean_acc: Mapping, favours_y: Sequence, methods: Sequence,
                          tolerance: float = 0.03) -> SimpleNamespace:
    """What the chapter says about clean accuracy, as claims (``.claims``) and the numbers its
    prose quotes. "On CE's level": within ``tolerance`` of CE; "collapses": below half of CE."""
    ce = clean_acc[CE_KEY]
    ls_keys = [k for k in clean_acc if k != CE_KEY]
    if not favours_y:
        raise ValueError("favours_y must name at least one model")
    uncertain = [k for k in ls_keys if k not in favours_y]
    drop = {k: ce - clean_acc[k] for k in ls_keys}
    collapsed = {k: clean_acc[k] < ce / 2 for k in ls_keys}
    ties = {m: (m, 0.5, 1.0) for m in ("als", "sbls") if (m, 0.5, 1.0) in clean_acc}
    against_y = [k for k in uncertain
                 if k[0] == "sls" or (k[0] in ("als", "sbls") and k[1] > 0.5)]
    bls = [k for k in ls_keys if k[0] == "bls"]
    worst_drop = max(drop[k] for k in favours_y)
    points = Text(f"{100 * tolerance:.0f}")
    claims = {  # statement: (whether it holds, the methods it needs)
        f"every LS model whose label favours y whatever the logits is within {points} points "
        "of CE": (C.at_most(worst_drop, tolerance), ()),
        "at α = 0.5, ALS (tie with the least likely class) keeps at least 90 % of CE's "
        "accuracy": (C.at_least(clean_acc[ties["als"]], 0.9 * ce) if "als" in ties else None,
                     ("als",)),
        "at α = 0.5, SBLS (tie with the runner-up) falls below half of CE's accuracy":
            (C.below(clean_acc[ties["sbls"]], ce / 2) if "sbls" in ties else None, ("sbls",)),
        "every ALS/SBLS label that favours a wrong class, and SLS's uniform label, falls below "
        "half of CE's accuracy": (C.every(collapsed[k] for k in against_y) if against_y else None,
                                  ("als", "sbls", "sls")),
        f"every BLS model (each α, each T) is within {points} points of CE":
            (C.at_most(max(drop[k] for k in bls), tolerance) if bls else None, ("bls",)),
    }  # None: not measured (the method was not trained); an asserted one then fails
    shown = {m: fixed(clean_acc[ties[m]]) if m in ties else Text("—") for m in ("als", "sbls")}
    return SimpleNamespace(
        claims=Claims({s: ok for s, (ok, _) in claims.items()},
                      asserted=[s for s, (_, needs) in claims.items() if set(needs) <= set(methods)],
                      title="Our run: clean accuracy"),
        ce=fixed(ce), tolerance_points=points, drop_points=Text(f"{100 * worst_drop:.1f}"),
        uncertain=Text(", ".join(map(label, uncertain)) or "none"),
        against_y=Text(", ".join(map(label, against_y)) or "none"),
        als_tie=shown["als"], sbls_tie=shown["sbls"])


def draw_clean_accuracy(clean_acc: Mapping, methods: Sequence, alpha_grid: Sequence,
                        fgsm_at_acc: float):
    fig, ax = plots.new_figure(width=7.5, height=4.0)
    for method in methods:
        ax.plot(alpha_grid, [clean_acc[method, a, 1.0] for a in alpha_grid], "o-",
                color=plots.METHOD_COLORS[method], label=method_name(method))
    ax.axhline(clean_acc[CE_KEY], color=plots.METHOD_COLORS["ce"], ls="--", label="CE (α = 0)")
    ax.axhline(fgsm_at_acc, color="#ff7f0e", ls=":", label="FGSM-AT")
    plots.label_axes(ax, "smoothing strength α", "clean test accuracy")
    ax.set_ylim(0, 1)
    ax.legend(ncols=3, loc="lower left")
    return fig


# ----------------------------------------------------------------------------- Goibert et al.

def goibert_per_setup(table, column: str) -> dict:
    """Per set-up of Goibert & Dohmatob's appendix table: the best LS cell as printed
    (``"best"``), the LS rows reaching it (``"which"``), and the two reference rows' cells
    (None where the paper printed "/")."""
    return papers.best_ls_rows(table, column, REFERENCE_ROWS)


def best_goibert_model(clean_acc: Mapping, methods: Sequence, alpha_grid: Sequence):
    """Our best model among Goibert & Dohmatob's four methods on our grid."""
    ours = [(m, a, 1.0) for m in GOIBERT_METHODS if m in methods for a in alpha_grid]
    if not ours:
        raise ValueError(f"methods must include one of {GOIBERT_METHODS}; got {tuple(methods)}")
    return max(ours, key=lambda k: clean_acc[k])


def goibert_clean_table(theirs: Mapping, our_setup: str, clean_acc: Mapping, best_ls,
                        fgsm_at_acc: float) -> Table:
    def shown(cell):
        return papers.NOT_RUN if cell is None else cell

    rows = [[setup, shown(s["best"]), ", ".join(s["which"]), shown(s["Normal classifier"]),
             shown(s["Adv. training"])] for setup, s in theirs.items()]
    rows.append([our_setup, fixed(clean_acc[best_ls]), label(best_ls), fixed(clean_acc[CE_KEY]),
                 fixed(fgsm_at_acc)])
    return Table(["set-up", "best LS", "best LS is", "normal classifier", "adv. training"], rows,
                 align={"best LS is": "left"})


def goibert_clean_findings(table) -> PaperReports:
    """What Goibert & Dohmatob's table of standard accuracies shows, checked on their numbers, as a
    "The paper reports" block (``.claims`` inside ``.parts``). The first statement (their text's
    reading of the table, at each method's best α) is asserted: the prose relies on it."""
    theirs = goibert_per_setup(table, "accuracy")
    records = table.to_records(parsed=True)
    normal = {k: v["Normal classifier"] for k, v in theirs.items()}
    if any(v is None for v in normal.values()):
        raise ValueError("every set-up needs a normal classifier's accuracy")
    pairs = [(m, k) for m in ("ALS", "SLS", "BLS") for k in theirs]
    reached = [(m, k) for m, k in pairs
               if max(r["accuracy"] for r in records
                      if r["method"] == m and r["set-up"] == k) >= float(normal[k])]
    cells = [r for r in records if r["method"] in ("ALS", "SLS", "BLS")
             and r["accuracy"] is not None]
    every_alpha = [r for r in cells if r["accuracy"] >= float(normal[r["set-up"]])]
    best_above = [k for k, v in theirs.items() if float(v["best"]) >= float(normal[k])]
    at_below = [k for k, v in theirs.items()
                if v["Adv. training"] is not None and float(v["Adv. training"]) < float(normal[k])]
    first = ("ALS, SLS and BLS each reach the normal classifier at their best α "
             f"({share(len(reached), len(pairs))} method/set-up pairs)")
    claims = Claims({
        first: len(reached) == len(pairs),
        "ALS, SLS and BLS reach the normal classifier at every α "
        f"({share(len(every_alpha), len(cells))} cells)": len(every_alpha) == len(cells),
        f"the best LS model is at or above the normal classifier "
        f"({share(len(best_above), len(theirs))} set-ups)": len(best_above) == len(theirs),
        f"FGSM adversarial training costs clean accuracy ({share(len(at_below), len(theirs))} "
        "set-ups)": len(at_below) == len(theirs),
    }, asserted=[first], title="Their table of standard accuracies, checked")
    block = PaperReports(
        "goibert2019",
        "Their text reads the appendix table of standard accuracies as ALS, BLS and SLS being "
        "always better than or equivalent to the normal classifier. Their numbers bear that out "
        "for each method's best α (asserted below, on the table itself); the other lines count "
        "the cells and set-ups of their table where each statement holds.", claims)
    block.claims = claims
    return block


def goibert_clean_ours(clean_acc: Mapping, methods: Sequence, alpha_grid: Sequence,
                       fgsm_at_acc: float, n_test: int, scale: str = "") -> OurRun:
    """The same statements on our one set-up, as an "Our run" block (shown, not asserted: with
    ``n_test`` examples a point or two is within the noise of one run)."""
    ce = clean_acc[CE_KEY]
    best = clean_acc[best_goibert_model(clean_acc, methods, alpha_grid)]
    ours = [m for m in ("als", "sls", "bls") if m in methods]
    reached = [m for m in ours if max(clean_acc[m, a, 1.0] for a in alpha_grid) >= ce]
    claims = Claims({
        f"ALS, SLS and BLS each reach CE at their best α ({share(len(reached), len(ours))} "
        "methods)": None if not ours else len(reached) == len(ours),
        "the best LS model is at or above CE": best >= ce,
        "FGSM adversarial training costs clean accuracy": fgsm_at_acc < ce,
    }, title="The same statements, on our models")
    block = OurRun(
        f"Shown, not asserted: \"at or above\" is strict, and with {n_test} test images a "
        "difference of a point or two is within the noise of one run.", claims, scale=scale)
    block.claims = claims
    return block


# ----------------------------------------------------------------------------- logits

def m_star(method: str, alpha: float, num_classes: int) -> float:
    """The equilibrium margin of Szegedy's or SLS's label (NaN: no closed form, or α = 0)."""
    if method in ("szegedy", "sls") and alpha > 0:
        return losses.equilibrium_margin(alpha, num_classes, convention=method)
    return float("nan")


def logit_table(summary: Mapping, num_classes: int) -> Table:
    return Table(["model", "median logit range", "median mean gap", "m*(α, K)", "median margin"],
                 [[label(k), fixed(s["range"], 2), fixed(s["mean_gap"], 2),
                   fixed(m_star(k[0], k[1], num_classes), 2), fixed(s["margin"], 2)]
                  for k, s in summary.items()])


def squeeze_claims(summary: Mapping, favours_y: Sequence, methods: Sequence,
                   alpha_grid: Sequence, num_classes: int) -> SimpleNamespace:
    """Does LS squeeze the logits (against CE), and do Szegedy's models reach m*?"""
    ce_range = summary[CE_KEY]["range"]
    # Szegedy, SLS and BLS push on every wrong logit; ALS and SBLS on one only.
    uniform_type = [k for k in favours_y if k[0] in ("szegedy", "sls", "bls")]
    squeezed = [k for k in uniform_type if summary[k]["range"] < ce_range]
    gaps = ({a: summary["szegedy", a, 1.0]["mean_gap"] - m_star("szegedy", a, num_classes)
             for a in alpha_grid} if "szegedy" in methods else {})
    worst = max(map(abs, gaps.values()), default=float("nan"))
    sbls_small = ("sbls", alpha_grid[0], 1.0)
    claims = {
        "every Szegedy, SLS and BLS model whose label favours y has a smaller median logit "
        "range than CE": C.every(summary[k]["range"] < ce_range for k in uniform_type),
        "the Szegedy models' median mean gap is within 1 logit unit of m*(α, K) at every α":
            C.below(worst, 1.0) if gaps else None,
    }
    return SimpleNamespace(
        claims=Claims(claims, asserted=list(claims)[:1 + ("szegedy" in methods)],
                      title="Our run: logit squeezing"),
        ce_range=fixed(ce_range, 1), n_squeezed=share(len(squeezed), max(len(uniform_type), 1)),
        szegedy_worst_gap=fixed(worst, 2),
        sbls_small_range=(fixed(summary[sbls_small]["range"], 1) if sbls_small in summary
                          else Text("—")))


# ----------------------------------------------------------------------------- Fu et al.

def fu_ranges(table) -> dict:
    """Fu et al.'s Table 2 as ``{alpha: (lower, upper)}``."""
    return {float(r.key[0]): (float(r.values[0]), float(r.values[1])) for r in table.rows}


def our_range(summary: Mapping, alpha: float) -> float:
    """Our median logit range at α: Szegedy LS (Fu et al.'s label), CE at α = 0; NaN where we
    did not train that α."""
    key = CE_KEY if alpha == 0 else ("szegedy", alpha, 1.0)
    return summary[key]["range"] if key in summary else float("nan")


def fu_table2_beside(table, summary: Mapping, num_classes: int) -> Table:
    rows = []
    for row in table.rows:
        (alpha_text,), (lower, upper) = row.key, row.values
        alpha = float(alpha_text)
        rows.append([alpha_text, lower, upper, fixed(float(upper) - float(lower), 2),
                     fixed(our_range(summary, alpha), 2),
                     fixed(m_star("szegedy", alpha, num_classes), 2)])
    return Table(["α", "lower (Fu)", "upper (Fu)", "width (Fu)", "our median range",
                  f"m*(α, {num_classes})"], rows)


def _decreasing(values) -> bool:
    return len(values) > 1 and all(b < a for a, b in zip(values, values[1:]))


def fu_table2_findings(table, num_classes: int) -> SimpleNamespace:
    """What Fu et al.'s Table 2 shows, checked on their numbers (all asserted: the prose says
    each). ``num_classes`` is ours to choose: their text does not say which model Table 2 is of."""
    fu = fu_ranges(table)
    if 0.0 not in fu or len(fu) < 2:
        raise ValueError("Fu et al.'s Table 2 must hold α = 0 and at least one α > 0")
    width = {a: hi - lo for a, (lo, hi) in fu.items()}
    smoothed = [a for a in sorted(fu) if a > 0]
    target = {a: m_star("szegedy", a, num_classes) for a in smoothed}
    claims = {
        f"the width upper − lower shrinks as α grows (all {len(fu)} rows)":
            _decreasing([width[a] for a in sorted(fu)]),
        "without smoothing (α = 0) the width is at least twice that at any α > 0":
            all(width[0.0] >= 2 * width[a] for a in smoothed),
        f"the width exceeds m*(α, {num_classes}) at every α > 0":
            all(width[a] > target[a] for a in smoothed),
        "at every α > 0 the lower end is negative and the upper end positive":
            all(fu[a][0] < 0 < fu[a][1] for a in smoothed),
    }
    checked = Claims(claims, asserted=list(claims), title="Their Table 2, checked")
    upper_gap = max(abs(fu[a][1] - target[a]) for a in smoothed)
    block = PaperReports(
        "fu2020",
        f"In their Table 2 the width upper − lower shrinks as α grows; at α = 0 it is "
        f"{width[0.0]:.1f}, at least twice the width at any smoothed α; every width exceeds "
        f"m*(α, {num_classes}) (with our choice of K). Their upper ends lie within "
        f"{upper_gap:.2f} of m*(α, {num_classes}) at every α > 0 and their lower ends between "
        f"{min(fu[a][0] for a in smoothed):g} and 0. Their explanation of the α = 0 row: "
        "without smoothing the loss keeps encouraging the margin to grow, so this width would "
        "depend on how long the network was trained.", checked)
    return SimpleNamespace(claims=checked, block=block, ce_width=fixed(width[0.0], 1))


def fu_table2_ours(table, summary: Mapping, methods: Sequence, num_classes: int,
                   scale: str = "") -> SimpleNamespace:
    """Our Szegedy models' median logit range against Fu et al.'s widths: the claims, the
    sentences' numbers, and the reproduction checks the prose states (asserted when Szegedy LS
    was trained)."""
    fu = fu_ranges(table)
    width = {a: hi - lo for a, (lo, hi) in fu.items()}
    ours_at = [a for a in sorted(fu) if math.isfinite(our_range(summary, a))]
    smoothed = [a for a in ours_at if a > 0]
    difference = {a: abs(our_range(summary, a) / width[a] - 1) for a in ours_at}
    widest = max((difference[a] for a in smoothed), default=float("nan"))
    below = [a for a in smoothed
             if our_range(summary, a) < m_star("szegedy", a, num_classes)]
    claims = {
        f"our median range shrinks as α grows (at {len(ours_at)} α)":
            _decreasing([our_range(summary, a) for a in ours_at]),
        "at each smoothed α of our grid our median range is within 25 % of Fu's width":
            bool(smoothed) and widest <= 0.25,
        "at α = 0 our range differs from Fu's width more than at any smoothed α":
            0.0 in difference and bool(smoothed) and difference[0.0] > widest,
        "without smoothing our range is at least twice as wide as at any α > 0":
            0.0 in difference and bool(smoothed)
            and all(our_range(summary, 0.0) >= 2 * our_range(summary, a) for a in smoothed),
        f"our range exceeds m*(α, {num_classes}) at every α > 0": bool(smoothed) and not below,
        "where our range falls short of m*, so does our median mean gap":
            all(summary["szegedy", a, 1.0]["mean_gap"] < m_star("szegedy", a, num_classes)
                for a in below),
    }
    relied_on = [s for i, s in enumerate(claims) if i in (0, 1, 2, 5)]
    checked = Claims(claims, asserted=relied_on if "szegedy" in methods else [],
                     title="Beside their Table 2")
    below_text = ", ".join(f"{a:g}" for a in below) or "no α of our grid"
    block = OurRun(
        f"Our median range (Szegedy LS; CE at α = 0) lies within {100 * widest:.0f} % of their "
        f"width at each smoothed α of our grid, although neither the data nor the network is "
        f"theirs; without smoothing the two differ more (our CE: "
        f"{our_range(summary, 0.0):.1f}). Our range falls below m* at α = {below_text}, where "
        "our median mean gap is below m* too: a few epochs leave the quick models short of the "
        "optimum there.", checked, scale=scale)
    return SimpleNamespace(claims=checked, block=block, ours_at=ours_at,
                           widest_percent=fixed(100 * widest, 0),
                           ce_range=fixed(our_range(summary, 0.0), 1),
                           below_m_star=Text(below_text))


def draw_gap_and_width(summary: Mapping, methods: Sequence, alpha_grid: Sequence, table,
                       num_classes: int):
    """Top: each variant's median mean gap against m*; bottom: Fu et al.'s widths and ours."""
    fig, (top, bottom) = plots.new_figure(2, 1, width=7.5, height=8.5)
    fine = np.linspace(0.05, 0.95, 91)
    for ax in (top, bottom):
        ax.plot(fine, [m_star("szegedy", a, num_classes) for a in fine], color="black",
                label="$m^\\star$ (Szegedy label)")
    top.plot(fine, [m_star("sls", a, num_classes) for a in fine], color="black", ls=":",
             label="$m^\\star$ (SLS label)")
    for method in methods:
        top.plot(alpha_grid, [summary[method, a, 1.0]["mean_gap"] for a in alpha_grid], "o-",
                 color=plots.METHOD_COLORS[method], label=method_name(method))
    plots.label_axes(top, "smoothing strength α", "median mean gap (logit units)",
                     "mean gap against $m^\\star$")
    top.set_ylim(bottom=min(-1.0, top.get_ylim()[0]))
    top.legend(ncols=2)
    width = {a: hi - lo for a, (lo, hi) in fu_ranges(table).items()}
    bottom.plot(list(width), list(width.values()), "x", ms=8, color="#ff7f0e",
                label="Fu et al., Table 2: upper − lower")
    ours_at = [a for a in width if math.isfinite(our_range(summary, a))]
    bottom.plot(ours_at, [our_range(summary, a) for a in ours_at], "o-",
                color=plots.METHOD_COLORS["szegedy"], label="ours: median logit range (CE at α = 0)")
    plots.label_axes(bottom, "smoothing strength α", "logit range (logit units)",
                     "range width, Fu et al. and ours")
    bottom.legend()
    return fig
