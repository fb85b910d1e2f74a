"""The second half of the chapter "Is it real robustness?" (``book/gradient_masking.md``): beyond
PGD. Fu et al.'s Table 5 (Carlini–Wagner from two starts), Figure 3 (their tanh attack), Table 6
(transfer) and Figure 2 (the α sweep) beside ours, each finding tested on their numbers and on
ours; the chapter's figures; its saved results and the full-profile comparison.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction
from types import SimpleNamespace as Namespace

from lsnotes import claims as C
from lsnotes import plots, widgets
from lsnotes.chapters.gradient_masking import (AT, ATTACK_LABELS, COLUMNS, FU, fu_settings,
                                               fu_table4_accuracies, paper_findings, points)
from lsnotes import papers
from lsnotes.checks import positive_int
from lsnotes.present import Claims, Table, Text, beside, fixed, percent
from lsnotes.zoo import book


# ------------------------------------------------------------------------------ Table 5

CIFAR10_DIMENSION = 3 * 32 * 32


def cw_setting(eps: float, dimension: int, quick: bool, n_attack: int) -> Namespace:
    """Our Carlini–Wagner set-up from Fu et al.'s Table 5: their L2 bound as a share of the L2
    radius ε·√d of their L∞ ball, applied to our ε and dimension; their c; Adam's budget (theirs
    is not stated: we chose it) and the examples it runs on."""
    fu = fu_settings()
    fu_l2, fu_linf = Fraction(fu["table5_bound"]), Fraction(fu["linf_eps"])
    share_of_radius = float(fu_l2 / fu_linf) / math.sqrt(CIFAR10_DIMENSION)
    bound = share_of_radius * eps * math.sqrt(positive_int("dimension", dimension))
    budget = dict(max_iter=100, lr=0.1) if quick else dict(max_iter=1000, lr=0.01)
    n = min(positive_int("n_attack", n_attack), 50 if quick else n_attack)
    sqrt_bound = float(fu_l2) * math.sqrt(dimension / CIFAR10_DIMENSION)
    text = Namespace(share=fixed(share_of_radius, 3), bound=fixed(bound, 2),
                     sqrt_bound=fixed(sqrt_bound, 2), steps=Text(str(budget["max_iter"])),
                     lr=Text(f"{budget['lr']:g}"), n=Text(str(n)))
    return Namespace(bound=bound, c=float(fu["table5_c"]), budget=budget, n=n, text=text)


T5_COLUMNS = {"LabelSmoothing": "LS", "Madry": "PGD-AT", "Zhang": "TRADES"}
T5_ROWS = {"x0 = 0": "zero", "x0 = x_orig": "x"}


def table5(cw_acc, ls_name: str, ours: str = "ours") -> Table:
    """Fu et al.'s Table 5 (C&W-L2 from two starts) beside ours (percent)."""
    t5 = papers.table("fu2020", "table5")
    names = {"LS": ls_name, "PGD-AT": "PGD-AT", "TRADES": "TRADES"}
    return beside(t5.columns,
                  [(start, t5.row(start).values, f"x0 = {'0' if mine == 'zero' else 'x'}",
                    [points(cw_acc[names[m], mine]) for m in T5_COLUMNS.values()])
                   for start, mine in T5_ROWS.items()],
                  paper=FU, ours=ours, first_column="start",
                  title="Fu et al.'s Table 5 beside ours (accuracy under C&W-L2, %)")


FINDINGS_T5 = {
    "from x0 = 0 the LS model keeps at least 10 points less than from x0 = x":
        lambda a: C.below(a["LS", "zero"], a["LS", "x"], by=0.10),
    "PGD-AT and TRADES change by at most 3 points between the two starts":
        lambda a: C.every(C.within(a[m, "zero"], a[m, "x"], 0.03) for m in AT),
    "from either start LS keeps less than PGD-AT and TRADES":
        lambda a: C.every(C.below(a["LS", s], a[m, s]) for s in ("zero", "x") for m in AT),
}


def table5_findings(cw_acc, ls_name: str) -> Claims:
    """Fu et al.'s Table 5 findings, tested on their numbers and on ours."""
    t5 = papers.table("fu2020", "table5")
    theirs = {(m, mine): t5.value(start, column) / 100
              for column, m in T5_COLUMNS.items() for start, mine in T5_ROWS.items()}
    ours = {("LS" if m == ls_name else m, s): v for (m, s), v in cw_acc.items()}
    return paper_findings(FINDINGS_T5, theirs, ours, title="Fu et al.'s Table 5, at this scale")


def cw_claims(cw_acc, cw_norm, clean, bound: float, ls_name: str) -> Claims:
    """The book's own reading of the C&W runs (``clean``: accuracy on the same examples)."""
    claims = {
        "from x0 = 0 the attack breaks no LS example within the bound":
            C.at_least(cw_acc[ls_name, "zero"], clean[ls_name]),
        "from x0 = 0 the LS points the attack found lie, in median, beyond the bound":
            C.exceeds(cw_norm[ls_name, "zero"], bound),
        "from x0 = x the attack breaks some LS examples within the bound":
            C.below(cw_acc[ls_name, "x"], clean[ls_name]),
    }
    return Claims(claims, asserted=[list(claims)[1]], title="The book's own reading")


def cw_shown(cw_acc, cw_norm, clean, ls_name: str) -> Namespace:
    """The C&W numbers the prose quotes: ``ls_zero``, ``at_x``, ``ls_clean``, ``ls_norm_zero``."""
    tags = (("ls", ls_name), ("at", "PGD-AT"), ("trades", "TRADES"))
    return Namespace(
        **{f"{t}_{s}": percent(cw_acc[m, s]) for t, m in tags for s in ("zero", "x")},
        **{f"{t}_clean": percent(clean[m]) for t, m in tags},
        **{f"{t}_norm_{s}": fixed(cw_norm[m, s], 2) for t, m in tags for s in ("zero", "x")})


# ------------------------------------------------------------------------------ Figure 3

def tanh_findings(by_steps, by_size, ls_name: str) -> tuple[Claims, Namespace]:
    """Fu et al.'s Figure 3 (LS against the two adversarially trained models) at this scale,
    and the numbers the prose quotes. ``by_steps``/``by_size``: ``{model: [accuracy, …]}`` over
    increasing steps / step sizes."""
    spread = {m: max(v) - min(v) for m, v in by_size.items()}
    drop = {m: v[0] - v[-1] for m, v in by_steps.items()}
    best = {m: min([*by_steps[m], *by_size[m]]) for m in by_steps}
    claims = Claims({
        "the step size moves the LS model's accuracy more than PGD-AT's and TRADES' "
        "(Fu et al.'s Fig. 3a)": C.every(C.exceeds(spread[ls_name], spread[m]) for m in AT),
        "the largest step size leaves the LS model less than the smallest (Fig. 3a)":
            C.below(by_size[ls_name][-1], by_size[ls_name][0]),
        "more steps lower the LS model's accuracy more than PGD-AT's and TRADES' "
        "(Fig. 3b)": C.every(C.exceeds(drop[ls_name], drop[m]) for m in AT),
    }, title="Fu et al.'s Figure 3, at this scale")
    tags = {"ls": ls_name, "ce": "CE", "at": "PGD-AT", "trades": "TRADES"}
    shown = Namespace(**{f"{t}_{what}": percent(values[m])
                         for t, m in tags.items() if m in by_steps
                         for what, values in (("spread", spread), ("drop", drop),
                                              ("best", best))})
    return claims, shown


# ------------------------------------------------------------------------------ Table 6

T6_COLUMNS = {"Madry": "PGD-AT", "Zhang": "TRADES", "LabelSmoothing": "LS"}
T6_ROWS = {"FGSM": "FGSM", "PGD": "PGD-20", "CW": "PGD-CW"}


def table6(transfer_acc, ls_name: str, ours: str = "ours") -> Table:
    """Fu et al.'s Table 6 (crafted on an undefended model) beside ours (percent)."""
    t6 = papers.table("fu2020", "table6")
    names = {"LS": ls_name, "PGD-AT": "PGD-AT", "TRADES": "TRADES"}
    return beside(t6.columns,
                  [(attack, t6.row(attack).values, label,
                    [points(transfer_acc[attack][names[m]]) for m in T6_COLUMNS.values()])
                   for attack, label in T6_ROWS.items()],
                  paper=FU, ours=ours, first_column="attack crafted on the undefended model",
                  title="Fu et al.'s Table 6 beside ours (accuracy, %)")


FINDINGS_T6 = {
    "every transferred attack leaves LS below PGD-AT and TRADES":
        lambda a: C.every(C.below(a[k]["LS"], a[k][m]) for k in T6_ROWS for m in AT),
    "PGD and CW crafted on the undefended model beat LS's own white-box PGD-20":
        lambda a: C.every(C.below(a[k]["LS"], a["white-box PGD-20"]["LS"]) for k in ("PGD", "CW")),
    "PGD transfers to LS better than FGSM": lambda a: C.below(a["PGD"]["LS"], a["FGSM"]["LS"]),
    "no transferred attack costs PGD-AT or TRADES more than 5 points of clean accuracy":
        lambda a: C.every(C.at_most(a["clean"][m] - a[k][m], 0.05) for k in T6_ROWS for m in AT),
}


def table6_findings(transfer_acc, robust_acc, ls_name: str) -> Claims:
    """Fu et al.'s Table 6 findings (with their Table 4's white-box PGD-20 and clean accuracy),
    tested on their numbers and on ours."""
    t6 = papers.table("fu2020", "table6")
    fu4 = fu_table4_accuracies()
    theirs = {attack: {m: t6.value(attack, column) / 100 for column, m in T6_COLUMNS.items()}
              for attack in T6_ROWS}
    theirs["white-box PGD-20"] = {m: fu4[m]["pgd20"] for m in T6_COLUMNS.values()}
    theirs["clean"] = {m: fu4[m]["clean"] for m in T6_COLUMNS.values()}
    names = {"LS": ls_name, "PGD-AT": "PGD-AT", "TRADES": "TRADES"}
    ours = {attack: {m: transfer_acc[attack][names[m]] for m in names} for attack in T6_ROWS}
    ours["white-box PGD-20"] = {m: robust_acc[names[m]]["pgd20"] for m in names}
    ours["clean"] = {m: robust_acc[names[m]]["clean"] for m in names}
    return paper_findings(FINDINGS_T6, theirs, ours,
                          asserted=["every transferred attack leaves LS below PGD-AT and TRADES"],
                          title="Fu et al.'s Table 6, at this scale")


def transfer_shown(transfer_acc, ls_name: str) -> Namespace:
    """``ls_fgsm``, ``at_pgd``, ``trades_cw``, …: transferred accuracies the prose quotes."""
    return Namespace(**{f"{t}_{attack.lower()}": percent(transfer_acc[attack][m])
                        for t, m in (("ls", ls_name), ("at", "PGD-AT"), ("trades", "TRADES"))
                        for attack in T6_ROWS})


# ------------------------------------------------------------------------------ Figure 2 (α sweep)

def sweep_findings(sweep, alphas, eps: float, sweep_eps, ls_alpha: float) -> tuple[Claims, Namespace]:
    """Fu et al.'s α sweep (their Figure 2) at this scale: ``sweep[α, ε] = (PGD-20 accuracy,
    PGD-20-with-restarts accuracy)`` over ``alphas`` (0 = CE) and ``sweep_eps``."""
    fu = fu_settings()
    threshold, best = float(fu["alpha_sweep_threshold"]), float(fu["alpha_sweep_best"])
    trained = [a for a in alphas if a > 0]
    weak = {a: sweep[a, eps][0] for a in alphas}
    gain = {a: sweep[a, eps][0] - sweep[a, eps][1] for a in alphas}
    above = [a for a in trained if a > threshold]
    below = [a for a in trained if a <= threshold]
    our_best = max(trained, key=weak.get)
    claims = Claims({
        f"PGD-20 accuracy is highest at α = {best:g} of the trained α (Fu et al.'s Fig. 2)":
            C.one_of(our_best, [best]),
        # No trained α on one side of the threshold: that half of the curve is not measured.
        f"every α above {threshold:g} beats CE under PGD-20 by more than 10 points (Fig. 2)":
            C.every(C.exceeds(weak[a], weak[0.0], by=0.10) for a in above) if above else None,
        f"every α at or below {threshold:g} stays within 10 points of CE (Fig. 2)":
            C.every(C.within(weak[a], weak[0.0], 0.10) for a in below) if below else None,
        "restarts lower the LS model's accuracy more than CE's":
            C.exceeds(gain[ls_alpha], gain[0.0]),
        "at the largest ε every model is below 10 % under PGD-20 with restarts":
            C.every(C.below(sweep[a, max(sweep_eps)][1], 0.10) for a in alphas),
    }, title="Fu et al.'s α sweep, at this scale (ε of the chapter)")
    shown = Namespace(
        weak_ce=percent(weak[0.0]), weak_ls=percent(weak[ls_alpha]),
        strong_ce=percent(sweep[0.0, eps][1]), strong_ls=percent(sweep[ls_alpha, eps][1]),
        best_alpha=Text(f"{our_best:g}"), above=Text(", ".join(f"{a:g}" for a in above) or "none"),
        below=Text(", ".join(f"{a:g}" for a in below) or "none"))
    return claims, shown


# ------------------------------------------------------------------------------ figures

#: Colours of the four models: CE and Szegedy LS as everywhere in the book, and two colours no
#: LS method uses for the adversarially trained models.
MODEL_COLORS = {"CE": plots.METHOD_COLORS["ce"], "LS": plots.METHOD_COLORS["szegedy"],
                "PGD-AT": "#ff7f0e", "TRADES": "#17becf"}


def _colour(name: str) -> str:
    return MODEL_COLORS["LS" if name.startswith("LS") else name]


def tanh_figure(by_steps, by_size, steps, step_sizes):
    """Accuracy under the tanh attack against its number of steps (left) and its step size
    (right), one curve per model; the legend sits above the panels, clear of the curves."""
    fig, (ax_steps, ax_size) = plots.new_figure(1, 2, width=9.6, height=3.8, sharey=True)
    for name in by_steps:
        ax_steps.plot(steps, [100 * v for v in by_steps[name]], "o-", color=_colour(name),
                      label=name)
        ax_size.plot(step_sizes, [100 * v for v in by_size[name]], "o-", color=_colour(name))
    for ax, values in ((ax_steps, steps), (ax_size, step_sizes)):
        ax.set_xscale("log")
        ax.set_xticks(list(values), [f"{v:g}" for v in values])
        ax.minorticks_off()
        ax.set_ylim(-3, 103)
    plots.label_axes(ax_steps, "number of Adam steps (step size 0.1)", "accuracy under attack (%)",
                     "(a) steps")
    plots.label_axes(ax_size, "Adam step size in w (20 steps)", "", "(b) step size")
    fig.legend(loc="outside upper center", ncols=len(by_steps), frameon=False)
    return fig


def sweep_figure(sweep, clean, alphas, sweep_eps, restarts: int):
    """Accuracy against α, one panel per ε: clean, PGD-20 once and with ``restarts`` restarts
    (``sweep[α, ε] = (once, with restarts)``); the legend sits above the panels."""
    def panel(ax, epsilon):
        curves = ((clean, ":", "0.5", "clean"),
                  ({a: sweep[a, epsilon][0] for a in alphas}, "o-", MODEL_COLORS["LS"], "PGD-20"),
                  ({a: sweep[a, epsilon][1] for a in alphas}, "s--", plots.METHOD_COLORS["als"],
                   f"PGD-20 × {restarts} restarts"))
        for values, style, colour, label in curves:
            ax.plot(alphas, [100 * values[a] for a in alphas], style, color=colour, label=label)
        plots.label_axes(ax, "smoothing α (0 = CE)", "accuracy (%)")
        ax.set_ylim(-3, 103)

    fig = plots.small_multiples(sweep_eps, panel, ncols=min(3, len(sweep_eps)),
                                title_fmt="ε = {:.3g}")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=3, frameon=False)
    return fig


def sweep_explorer(weak_and_strong, clean, alphas, sweep_eps, *, ls_alpha: float, eps: float,
                   restarts: int, static):
    """Sliders for α (the trained grid) and ε that re-attack the batch through
    ``weak_and_strong(α, ε) -> (PGD-20 accuracy, with restarts)``; ``static`` is the figure the
    built book shows instead."""
    def draw(fig, alpha, epsilon):
        ax = fig.subplots()
        weak, strong = weak_and_strong(alpha, epsilon)
        bars = ax.bar(["clean", "PGD-20", f"PGD-20 ×{restarts}"],
                      [100 * v for v in (clean[alpha], weak, strong)],
                      color=["0.6", MODEL_COLORS["LS"], plots.METHOD_COLORS["als"]])
        ax.bar_label(bars, fmt="%.0f %%")
        ax.set_ylim(0, 105)
        model = "CE" if alpha == 0 else "Szegedy LS"
        plots.label_axes(ax, "attack", "accuracy on the slider batch (%)",
                         f"α = {alpha:g} ({model}), ε = {epsilon:.3g}")

    return widgets.interactive_figure(
        draw, {"alpha": widgets.snapping_slider("α", alphas, value=ls_alpha),
               "epsilon": widgets.float_slider("ε", 0.0, max(sweep_eps), 0.005, eps)},
        static, width=6.0, height=3.8,
        caption="Accuracy under PGD-20 once and with restarts; move α and ε (re-attacks the batch).")


# ------------------------------------------------------------------------------ results

#: Assumed H100 throughput for one CIFAR-10 WRN epoch of natural training (bf16); we chose it to
#: estimate the full profile's cost before it has run. PGD-AT and TRADES cost about
#: (at_steps + 1) natural epochs each.
NATURAL_EPOCH_SECONDS = 8.0


def save_results(run, *, robust_acc, cw, cw_acc, cw_norm, transfer_acc, tanh, sweep,
                 diagnostics) -> float:
    """Write the chapter's measurements (:func:`lsnotes.zoo.book.save_results`); returns the
    seconds the run took. ``tanh``: ``{"steps": …, "step_size": …, "by_steps": …, "by_size": …}``."""
    seconds = time.perf_counter() - run.started
    results = {
        "eps": run.eps, "n_attack": run.n_attack, "n_autoattack": run.n_autoattack,
        "ls_alpha": run.ls_alpha, "robust_accuracy": robust_acc,
        "carlini_wagner": {"bound": cw.bound, "c": cw.c, **cw.budget, "n": cw.n,
                           **{f"{name}|x0={start}": {"accuracy": cw_acc[name, start],
                                                     "median_l2_found": cw_norm[name, start]}
                              for name, start in cw_acc}},
        "transfer_from_ce": transfer_acc,
        "tanh_by_steps": {"steps": list(tanh["steps"]), **tanh["by_steps"]},
        "tanh_by_step_size": {"step_size": list(tanh["step_size"]), **tanh["by_size"]},
        "alpha_sweep": {f"alpha={a:g}|eps={e:.4g}": {"pgd20": weak, "pgd20_restarts": strong}
                        for (a, e), (weak, strong) in sweep.items()},
        "diagnostics": {name: d.to_dict() for name, d in diagnostics.items()},
        "seconds": seconds,
    }
    book.save_results("gradient_masking", run.profile, results, seed=run.seed, device=run.device)
    return seconds


def full_profile_hours(setting) -> float:
    """Estimated GPU-hours to train the full profile's models (:data:`NATURAL_EPOCH_SECONDS`)."""
    natural = (1 + len(setting.alpha_grid)) * setting.epochs * NATURAL_EPOCH_SECONDS
    adversarial = 2 * setting.at_epochs * (setting.at_steps + 1) * NATURAL_EPOCH_SECONDS
    return (natural + adversarial) / 3600


def full_profile(robust_acc, results=None) -> Namespace:
    """This run beside the recorded full-profile run (``results``: :func:`lsnotes.zoo.book.
    load_results`, default: the committed one): ``table`` (None when none is recorded) and
    ``note``, one sentence for the prose saying which."""
    full = book.chapter_setting("gradient_masking", "full")
    scale = f"{full.dataset}, {full.model}, ε = {full.eps:.4g}"
    results = book.load_results("gradient_masking", "full") if results is None else results
    if not results:
        hours = full_profile_hours(full)
        note = (f"No full-profile run ({scale}, Fu et al.'s attack settings) has been recorded "
                f"yet; training its models would take about {hours:.0f} GPU-hours on one H100 "
                "(our estimate), plus minutes of attacks.")
        return Namespace(table=None, note=Text(note))
    theirs = results["results"]["robust_accuracy"]
    table = Table(["model", "attack", "quick (this run)", "full profile, GPU"],
                  [[name, ATTACK_LABELS[key], percent(acc[key]), percent(theirs[name][key])]
                   for name, acc in robust_acc.items() for key in COLUMNS
                   if key in theirs.get(name, {})])
    note = (f"The table below puts the full-profile numbers ({scale}, Fu et al.'s attack "
            "settings) beside this run's.")
    return Namespace(table=table, note=Text(note))
