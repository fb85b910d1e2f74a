"""What the ``classic_attacks`` chapter calls: its parameters, the accuracy an attack leaves, its
tables beside Goibert & Dohmatob's appendix tables, its claims and its figures.

The chapter teaches FGSM, BIM, DeepFool and C&W; the attacks themselves are
:mod:`lsnotes.attacks`. What is here is the chapter's bookkeeping, written once and tested
(``tests/test_chapter_classic_attacks.py``) so the chapter can show one line per result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from matplotlib.lines import Line2D

from lsnotes import attacks, plots, present, train
from lsnotes import claims as C
from lsnotes.checks import ChapterParams, chapter_params, choice, positive_int
from lsnotes.losses import LS_METHODS
from lsnotes.present import Claims, Table, Text, fixed
from lsnotes.zoo import book
from lsnotes.chapters.classic_attacks_goibert import (  # noqa: F401  (the chapter's ca.*)
    GOIBERT_METHODS, GOIBERT_REFERENCES, Findings, _get, _most, _number, beside_goibert, best_of,
    candidates, goibert_cells, goibert_claims, goibert_findings, ls_rows_above_normal, our_row,
    paper_reading, repository_facts)

CHAPTER = "classic_attacks"
#: The two reference models beside the LS variants: plain cross-entropy and FGSM-AT.
REFERENCES = ("CE", "FGSM-AT")
AT_COLOR = "#ff7f0e"


# ------------------------------------------------------------------------------ parameters

@dataclass(frozen=True)
class Run:
    """The chapter's validated parameters and the zoo setting it runs on."""

    params: ChapterParams
    zoo: book.Setting
    methods: tuple[str, ...]
    curve_examples: int
    minimal_examples: int
    cw_examples: int
    slider_examples: int
    cw_binary_steps: int
    cw_iterations: int

    @property
    def mid_alpha(self) -> float:
        return self.zoo.alpha_grid[len(self.zoo.alpha_grid) // 2]

    @property
    def ls_names(self) -> list[str]:
        return [book.ls_label(m, a) for m in self.methods for a in self.zoo.alpha_grid]

    @property
    def headline(self) -> list[str]:
        """CE, each variant at the middle α, FGSM-AT: the models every attack runs on."""
        return ["CE", *(book.ls_label(m, self.mid_alpha) for m in self.methods), "FGSM-AT"]

    def uses(self, label: str) -> bool:
        return label in REFERENCES or label in self.ls_names

    def _shown(self, value) -> Text:
        return Text(f"{value:g}" if isinstance(value, float) else str(value))

    # What the prose quotes ({eval}`run.zoo_eps`).
    zoo_eps = property(lambda self: self._shown(self.zoo.eps))
    mid_alpha_shown = property(lambda self: self._shown(self.mid_alpha))
    n_eval = property(lambda self: self._shown(self.zoo.eval_size))
    n_curve = property(lambda self: self._shown(min(self.curve_examples, self.zoo.eval_size)))
    n_slider = property(lambda self: self._shown(min(self.slider_examples, self.zoo.eval_size)))
    n_df = property(lambda self: self._shown(min(self.minimal_examples, self.zoo.eval_size)))
    n_cw = property(lambda self: self._shown(min(self.cw_examples, self.zoo.eval_size)))
    cw_steps_shown = property(lambda self: self._shown(self.cw_binary_steps))
    cw_iterations_shown = property(lambda self: self._shown(self.cw_iterations))
    zoo_setting = property(lambda self: Text(f"{self.zoo.model} on {self.zoo.dataset}"))
    scale = property(lambda self: Text(
        f"{self.params.profile} profile: {self.zoo.model} on {self.zoo.dataset}, "
        f"{self.zoo.eval_size} evaluation examples"))
    zoo_training = property(lambda self: Text(
        f"{self.zoo.epochs} epochs on {self.zoo.train_size or 'all'} training images"))

    def __repr__(self) -> str:
        z = self.zoo
        return (f"profile {self.params.profile!r}: {z.dataset}, {z.model}; zoo ε = {z.eps:g}\n"
                f"ε grid {tuple(z.eps_grid)}, α grid {tuple(z.alpha_grid)}, "
                f"{z.eval_size} evaluation examples; methods {', '.join(self.methods)}")


def chapter_run(profile: str = "quick", seed: int = 0, device: str = "auto", setup=None,
                methods=None, *, curve_examples: int = 100, minimal_examples: int = 64,
                cw_examples: int = 32, slider_examples: int = 128, cw_binary_steps: int = 4,
                cw_iterations: int = 60) -> Run:
    """Validate the chapter's papermill parameters (``ValueError`` naming the bad one)."""
    params = chapter_params(profile, seed, device)
    zoo = book.chapter_setting(CHAPTER, params.profile, setup)
    if methods is None:
        methods = zoo.methods
    elif isinstance(methods, str):  # one name, e.g. papermill -p methods sls
        methods = (methods,)
    methods = tuple(choice("methods entry", m, zoo.methods) for m in methods)
    for m in methods:
        choice("methods entry", m, LS_METHODS)
    if not methods:
        raise ValueError(f"methods must name at least one LS variant of {zoo.methods}")
    sizes = {name: positive_int(name, value, minimum=10) for name, value in (
        ("curve_examples", curve_examples), ("minimal_examples", minimal_examples),
        ("cw_examples", cw_examples), ("slider_examples", slider_examples))}
    return Run(params, zoo, methods, **sizes,
               cw_binary_steps=positive_int("cw_binary_steps", cw_binary_steps),
               cw_iterations=positive_int("cw_iterations", cw_iterations))


# ------------------------------------------------------------------------------ measuring

def robust_accuracy(attack: str, model, x, y, eps: float, seed: int = 0) -> float:
    """The model's accuracy on what the registered ``attack`` makes of ``(x, y)`` at ``eps``
    (its randomness from a generator seeded with ``seed``); at ε = 0, the clean accuracy."""
    if eps == 0:
        return train.accuracy(model, x, y)
    generator = attacks.seeded_generator(seed, device=x.device)
    return train.accuracy(model, attacks.run_attack(attack, model, x, y, eps,
                                                    generator=generator), y)


def after_attack(model, x, y, x_adv, norms, fooled) -> dict[str, float]:
    """What a minimal-perturbation attack leaves: the accuracy on its output, the share of the
    clean-correct examples it fooled, and the median L2 size of the perturbations it found (over
    the clean-correct examples; where it gave up, the size counts as infinite).

    A "success" the attack reports must really change the label of a clean-correct example;
    ``ValueError`` otherwise.
    """
    clean_right = train.correct(model, x, y)
    still_right = clean_right & train.correct(model, x_adv, y)
    if bool((still_right & fooled.to(still_right.device)).any()):
        raise ValueError("fooled marks an example the model still classifies correctly")
    if not bool(clean_right.any()):
        raise ValueError("the model gets no example of x right; nothing to attack")
    sizes = torch.where(fooled, norms, torch.full_like(norms, math.inf))[clean_right]
    return {"accuracy": still_right.float().mean().item(),
            "median_l2": sizes.median().item(),
            "fooled": fooled[clean_right].float().mean().item()}


def size(l2: float) -> Text:
    """A median perturbation size; ∞ where the attack gave up on half the examples."""
    return Text("∞") if math.isinf(l2) else fixed(l2)


# ------------------------------------------------------------------------------ FGSM and BIM

def at_eps_table(at_eps: Mapping[str, Mapping[str, float]], eps: float) -> Table:
    """Clean, FGSM and BIM accuracy per model (NaN: not run, shown "—")."""
    return Table(["model", "clean", f"FGSM ε={eps:g}", f"BIM-10 ε={eps:g}"],
                 [[n, fixed(r["clean"]), fixed(r["fgsm"]), fixed(r["bim"])]
                  for n, r in at_eps.items()])


def usable(at_eps: Mapping, names: Sequence[str], within: float = 0.05) -> list[str]:
    """The models of ``names`` whose clean accuracy is within ``within`` of CE's (the others
    have degenerate labels: their robustness means nothing)."""
    ce = _number("clean accuracy of CE", at_eps["CE"]["clean"]) if "CE" in at_eps else None
    if ce is None:
        raise present.ClaimFailed("CE was not evaluated: nothing to compare with")
    return [n for n in names if _number(f"clean accuracy of {n}", at_eps[n]["clean"])
            >= ce - within]


def fgsm_bim_findings(at_eps: Mapping[str, Mapping[str, float]], headline: Sequence[str],
                      ls_names: Sequence[str]) -> Findings:
    """The chapter's four asserted claims about FGSM and BIM at the zoo's ε, and the numbers
    its prose quotes (who beats CE, the best LS models, what FGSM-AT keeps)."""
    results = {a: {n: r[a] for n, r in at_eps.items()} for a in ("clean", "fgsm", "bim")}
    fgsm = lambda n: _get(results, "fgsm", n)  # noqa: E731
    bim = lambda n: _get(results, "bim", n)  # noqa: E731
    ok = usable(at_eps, ls_names)
    ok_headline = [n for n in ok if n in headline]
    ls_headline = [n for n in headline if n in ls_names]
    if not ok or not ok_headline:
        raise present.ClaimFailed("no LS model has a clean accuracy on CE's level")
    fgsm_winners = [n for n in ok if fgsm(n) > fgsm("CE")]
    bim_winners = [n for n in ok_headline if bim(n) > bim("CE")]
    best_fgsm = max(ok, key=fgsm)
    best_bim = max(ok_headline, key=bim)
    claims = {
        "most usable LS models beat CE under FGSM":
            _most([n in fgsm_winners for n in ok], "usable LS models"),
        "most usable headline LS models beat CE under BIM":
            _most([n in bim_winners for n in ok_headline], "usable headline LS models"),
        "BIM is at least as strong as FGSM on every headline model (within 0.02)":
            C.every(bim(n) <= fgsm(n) + 0.02 for n in headline),
        "FGSM-AT keeps more than every LS model under FGSM":
            C.exceeds(fgsm("FGSM-AT"), max(map(fgsm, ls_names))),
        "FGSM-AT keeps more than every headline LS model under BIM":
            C.exceeds(bim("FGSM-AT"), max(map(bim, ls_headline))),
    }
    texts = dict(
        ce_fgsm=fixed(fgsm("CE")), ce_bim=fixed(bim("CE")),
        at_fgsm=fixed(fgsm("FGSM-AT")), at_bim=fixed(bim("FGSM-AT")),
        n_fgsm_winners=present.share(len(fgsm_winners), len(ok)),
        n_bim_winners=present.share(len(bim_winners), len(ok_headline)),
        best_fgsm=Text(f"{best_fgsm} ({fgsm(best_fgsm):.3f})"),
        best_bim=Text(f"{best_bim} ({bim(best_bim):.3f})"))
    return Findings(Claims(claims, asserted=list(claims), title="FGSM and BIM at the zoo's ε"),
                    texts)


# ------------------------------------------------------------------------------ minimal attacks

def minimal_table(minimal: Mapping[str, Mapping[str, dict]]) -> Table:
    """Accuracy left and median L2 size, per model, under DeepFool and C&W."""
    return Table(["model", "DeepFool accuracy", "DeepFool median L2", "C&W accuracy",
                  "C&W median L2"],
                 [[n, *(f(r[a][k]) for a in ("deepfool", "cw")
                        for k, f in (("accuracy", fixed), ("median_l2", size)))]
                  for n, r in minimal.items()])


def minimal_findings(minimal: Mapping[str, Mapping[str, dict]], n_cw: int) -> Findings:
    """The two asserted claims about DeepFool and C&W (they fool at least 90 % of every model's
    clean-correct examples; most LS variants need a larger DeepFool perturbation than CE), one
    more shown, and the numbers the prose quotes. "LS" means every model but CE and FGSM-AT; the
    most an LS model keeps, and its lead over CE, are taken over LS models only."""
    for ref in REFERENCES:
        if ref not in minimal:
            raise present.ClaimFailed(f"{ref} was not attacked with DeepFool and C&W")
    ls = [n for n in minimal if n not in REFERENCES]
    if not ls:
        raise present.ClaimFailed("no LS model was attacked with DeepFool and C&W")
    get = lambda a, n, k: _number(f"{a} {k} of {n!r}", minimal[n][a][k],  # noqa: E731
                                  infinite_ok=k == "median_l2")  # ∞: the attack gave up
    larger = {a: [get(a, n, "median_l2") > get(a, "CE", "median_l2") for n in ls]
              for a in ("deepfool", "cw")}
    least_fooled = {a: min(get(a, n, "fooled") for n in minimal) for a in ("deepfool", "cw")}
    most_kept = {a: max(get(a, n, "accuracy") for n in ls) for a in ("deepfool", "cw")}
    lead = max(0.0, most_kept["cw"] - get("cw", "CE", "accuracy"))
    claims = {
        "DeepFool and C&W change the label of at least 90 % of the clean-correct examples "
        "of every model they attack": C.at_least(min(least_fooled.values()), 0.9),
        "most LS variants need a larger DeepFool perturbation than CE":
            _most(larger["deepfool"], "LS models"),
        "most LS variants need a larger C&W perturbation than CE": _most(larger["cw"], "LS models"),
    }
    texts = dict(
        ce_df=size(get("deepfool", "CE", "median_l2")), ce_cw=size(get("cw", "CE", "median_l2")),
        at_df=size(get("deepfool", "FGSM-AT", "median_l2")),
        at_cw=size(get("cw", "FGSM-AT", "median_l2")),
        n_df_larger=present.share(sum(larger["deepfool"]), len(ls)),
        n_cw_larger=present.share(sum(larger["cw"]), len(ls)),
        df_least_fooled=present.percent(least_fooled["deepfool"], 0),
        cw_least_fooled=present.percent(least_fooled["cw"], 0),
        df_most_kept=fixed(most_kept["deepfool"]), cw_most_kept=fixed(most_kept["cw"]),
        cw_extra=Text(f"{round(lead * positive_int('n_cw', n_cw))}"))
    return Findings(Claims(claims, asserted=list(claims)[:2], title="Minimal perturbations"),
                    texts)


# ------------------------------------------------------------------------------ figures

def color_of(name: str) -> str:
    """The book's colour of a model label ("CE", "ALS α=0.5", "FGSM-AT")."""
    return AT_COLOR if name == "FGSM-AT" else plots.METHOD_COLORS[name.split(" ")[0].lower()]


def curves_figure(curves: Mapping[str, Mapping[str, Sequence[float]]], eps_grid, zoo_eps):
    """Accuracy under FGSM (left) and BIM (right) against ε, one curve per headline model."""
    fig, axes = plots.new_figure(1, 2, width=12.0, height=4.8, sharey=True)
    for ax, attack in zip(axes, ("fgsm", "bim")):
        for name, values in curves[attack].items():
            ax.plot(eps_grid, values, marker="o", color=color_of(name), label=name, lw=2,
                    ls="--" if name == "FGSM-AT" else "-")
        ax.axvline(zoo_eps, color="black", lw=0.8, ls=":")
        plots.label_axes(ax, "ε (L∞, pixel scale)", "accuracy under attack", attack.upper())
    axes[1].legend(loc="upper right", fontsize=10)
    return fig


ALPHA_MARKERS = ("o", "s", "^", "D", "v", "P")


def fgsm_panels(fgsm_sweep: Mapping[str, Sequence[float]], methods: Sequence[str],
                alpha_grid, eps_grid):
    """One panel per LS variant: its FGSM curve at each α (marker and shade by α), CE dashed and
    FGSM-AT dotted; one shared legend, in the spare panel when there is one."""
    alpha_grid = list(alpha_grid)
    if len(alpha_grid) > len(ALPHA_MARKERS):
        raise ValueError(f"alpha_grid may hold at most {len(ALPHA_MARKERS)} values")

    def panel(ax, method):
        for i, alpha in enumerate(alpha_grid):
            ax.plot(eps_grid, fgsm_sweep[book.ls_label(method, alpha)], marker=ALPHA_MARKERS[i],
                    ms=5, lw=1.8, color=plots.METHOD_COLORS[method],
                    alpha=0.35 + 0.65 * (i + 1) / len(alpha_grid))
        ax.plot(eps_grid, fgsm_sweep["CE"], "k--", lw=1.8)
        ax.plot(eps_grid, fgsm_sweep["FGSM-AT"], ":", lw=2.2, color=AT_COLOR)
        plots.label_axes(ax, "ε (L∞, pixels)", "FGSM accuracy")

    ncols = min(3, len(methods))
    fig = plots.small_multiples([m for m in methods], panel, ncols=ncols, width=4.3,
                                height=3.5, title_fmt="{}")
    for i, (ax, method) in enumerate(zip(fig.axes, methods)):
        ax.set_title(method.upper() if method != "szegedy" else "Szegedy LS")
        if i % ncols:
            ax.set_ylabel("")
        if i + ncols < len(fig.axes) and i + ncols >= len(methods):
            ax.xaxis.set_tick_params(labelbottom=True)  # nothing below it shows the ε ticks
        elif i + ncols < len(methods):
            ax.set_xlabel("")
    handles = [Line2D([], [], color="0.4", marker=ALPHA_MARKERS[i], lw=1.8,
                            label=f"LS α = {a:g}") for i, a in enumerate(alpha_grid)]
    handles += [Line2D([], [], color="k", ls="--", lw=1.8, label="CE"),
                Line2D([], [], color=AT_COLOR, ls=":", lw=2.2, label="FGSM-AT")]
    spare = [ax for ax in fig.axes if not ax.get_visible()]
    if spare:
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles=handles, loc="center", fontsize=12, frameon=False)
    else:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=11)
    return fig


def eps_explorer(models: Mapping, fgsm_sweep: Mapping, run: Run, x, y):
    """The α/ε explorer: FGSM re-run live on a fixed batch for the chosen variant and α, CE and
    FGSM-AT (markers) over the precomputed curves (lines); the built book shows
    :func:`fgsm_panels` instead."""
    import ipywidgets

    from lsnotes import widgets

    x, y = x[:run.slider_examples], y[:run.slider_examples]
    eps_grid = run.zoo.eps_grid

    def draw(fig, method, alpha, eps):
        ax = fig.subplots()
        for name in ("CE", book.ls_label(method, alpha), "FGSM-AT"):
            ax.plot(eps_grid, fgsm_sweep[name], "-", color=color_of(name), alpha=0.6)
            live = robust_accuracy("fgsm", models[name], x, y, eps, run.params.seed)
            ax.plot([eps], [live], "o", ms=9, color=color_of(name), label=f"{name}: {live:.2f}")
        ax.axvline(eps, color="black", lw=0.8, ls=":")
        ax.set_ylim(0, 1)
        plots.label_axes(ax, "ε (L∞, pixel scale)", "FGSM accuracy",
                         f"FGSM on {len(y)} fixed examples at ε = {eps:.3f}")
        ax.legend(loc="upper right")

    controls = {
        "method": ipywidgets.Dropdown(options=list(run.methods), value=run.methods[0],
                                      description="method"),
        "alpha": widgets.snapping_slider("α", run.zoo.alpha_grid, value=run.mid_alpha),
        "eps": widgets.float_slider("ε", 0.0, max(eps_grid), 0.005, run.zoo.eps)}
    static = fgsm_panels(fgsm_sweep, run.methods, run.zoo.alpha_grid, eps_grid)
    return widgets.interactive_figure(draw, controls, static, width=7.0, height=4.2,
                                      caption="FGSM accuracy against ε, re-attacked live")


def full_profile_results():
    """The recorded full-profile (GPU) table, or a sentence saying it has not been recorded."""
    from IPython.display import Markdown

    full = book.load_results(CHAPTER, "full")
    if full is None:
        zoo = book.chapter_setting(CHAPTER, "full")
        return Markdown(
            f"The full-profile run ({zoo.paper}, {zoo.eval_size} evaluation examples) has not "
            "been recorded yet. Its models, FGSM-AT included, are trained by the training "
            "chapter; the attacks themselves (FGSM/BIM sweeps, DeepFool, C&W on ResNet-18) "
            "take roughly 10–20 minutes on one H100-class GPU.")
    return Table(["model (full profile, GPU)", "clean", "FGSM", "BIM"],
                 [[n, fixed(r["clean"]), fixed(r["fgsm"]), fixed(r["bim"])]
                  for n, r in full["results"]["at_eps"].items()])


def curve_claims(curves: Mapping[str, Mapping[str, Sequence[float]]],
                 tolerance: float = 0.03) -> Claims:
    """Asserted: every accuracy-against-ε curve starts at its clean accuracy (ε = 0) and never
    rises above it by more than ``tolerance`` (sampling noise); a rise would mean the attack
    found worse points at a larger budget than at a smaller one, i.e. it is not working."""
    if not curves or not all(curves.values()):
        raise C.MissingMeasurement("no accuracy-against-ε curve to check")
    holds = {}
    for attack, by_name in curves.items():
        for name, values in by_name.items():
            where = f"{attack} curve of {name!r}"
            if len(values) < 2:
                raise C.MissingMeasurement(f"{where} has fewer than two points")
            first, rest = _number(where, values[0]), [_number(where, v) for v in values[1:]]
            holds[f"{attack} {name}"] = first >= max(rest) - tolerance
    rising = [curve for curve, ok in holds.items() if not ok]
    statement = (f"no curve rises above its clean accuracy by more than {tolerance:g}"
                 + (f" (rising: {', '.join(rising)})" if rising else ""))
    return Claims({statement: C.every(holds.values())}, asserted=[statement],
                  title="The curves")


def check_explorer(explorer, run: Run) -> float:
    """Move the explorer's controls as a reader would: a larger ε and another α must each change
    the picture (``AssertionError`` otherwise); returns the seconds one redraw took."""
    import time

    started = time.perf_counter()
    before = explorer.set(method=run.methods[0], alpha=run.mid_alpha, eps=run.zoo.eps)
    seconds = time.perf_counter() - started
    if explorer.set(eps=max(run.zoo.eps_grid)) == before:
        raise AssertionError("the explorer did not change when ε moved")
    if len(run.zoo.alpha_grid) > 1 and (explorer.set(alpha=run.zoo.alpha_grid[0])
                                        == explorer.set(alpha=run.zoo.alpha_grid[-1])):
        raise AssertionError("the explorer did not change when α moved")
    explorer.set(method=run.methods[0], alpha=run.mid_alpha, eps=run.zoo.eps)
    return seconds
