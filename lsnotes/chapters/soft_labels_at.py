"""The chapter "Soft labels inside adversarial training" (``book/soft_labels_at.md``): its knobs,
tables, claims and figures, written once and tested (``tests/test_chapter_soft_labels_at.py``).

Models are keyed by their adversarial mode (``"pgd"``, ``"sglr"``; in the full profile also
``"trades"``, ``"trades_sglr"``); ``final[mode]`` holds a model's accuracies as fractions.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Mapping, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from lsnotes import attacks, checks, plots, train, widgets
from lsnotes import claims as C
from lsnotes.present import (Claims, OurRun, PaperReports, Table, Text, beside, fixed,
                             percent, signed_points)
from lsnotes.zoo import book

COLORS = {"pgd": plots.METHOD_COLORS["ce"], "sglr": plots.METHOD_COLORS["als"],
          "trades": plots.METHOD_COLORS["sls"], "trades_sglr": plots.METHOD_COLORS["sbls"]}
#: Yu et al.'s README rows (their code's names) and our modes.
YU_ROWS = {"AT": "pgd", "AT+SGLS": "sglr", "TRADES": "trades", "TRADES+SGLS": "trades_sglr"}


# ----------------------------------------------------------------------------- knobs and models

def knobs(profile: str, eval_size, autoattack_size, full_autoattack,
          slider_batch) -> SimpleNamespace:
    """The chapter's parameters, checked against the profile's evaluation set (``ValueError``
    naming the parameter before any work)."""
    zoo = book.chapter_setting("soft_labels_at", profile)
    eval_size = (zoo.eval_size if eval_size is None
                 else checks.positive_int("eval_size", eval_size, minimum=10))
    autoattack_size = (eval_size if autoattack_size is None
                       else checks.positive_int("autoattack_size", autoattack_size))
    slider_batch = checks.positive_int("slider_batch", slider_batch, minimum=10)
    for name, value in (("eval_size", eval_size), ("autoattack_size", autoattack_size),
                        ("slider_batch", slider_batch)):
        if value > zoo.eval_size:
            raise ValueError(f"{name} must be at most the profile's eval_size {zoo.eval_size}; "
                             f"got {value}")
    full_autoattack = checks.choice("full_autoattack", full_autoattack, (None, False, True))
    if full_autoattack is None:
        full_autoattack = profile == "full"
    return SimpleNamespace(
        setting=zoo, eval_size=eval_size, autoattack_size=autoattack_size,
        slider_batch=slider_batch, full_autoattack=full_autoattack,
        autoattack_kw={} if full_autoattack else {"version": "custom",
                                                   "attacks_to_run": ["apgd-ce", "apgd-dlr"]},
        autoattack_name="AutoAttack" if full_autoattack else "APGD-CE + APGD-DLR")


def by_mode(trained: Mapping, configs: Mapping) -> SimpleNamespace:
    """The zoo's adversarially trained models (``zoo.chapter_trained``/``chapter_models`` of one
    setting) keyed by mode: ``.configs``, ``.models``, ``.histories``, ``.names``. Every history
    must hold the held-out robust accuracy the zoo records per epoch."""
    if list(trained) != list(configs):
        raise ValueError(f"trained and configs must have the same labels; got {list(trained)} "
                         f"and {list(configs)}")
    out = SimpleNamespace(configs={}, models={}, histories={}, names={})
    for name, result in trained.items():
        config = configs[name]
        if not result.history or not all("robust_acc" in r for r in result.history):
            raise ValueError(f"trained[{name!r}] (cache entry {config.key()}) has no per-epoch "
                             "robust accuracy")
        mode = config.adversarial
        out.configs[mode], out.models[mode] = config, result.model
        out.histories[mode], out.names[mode] = result.history, name
    return out


def describe(config, monitor_size: int) -> str:
    c = config
    return (f"{c.dataset}, {c.model}, {c.epochs} epochs of {c.train_size or 'all'} training "
            f"images, {c.optimizer} lr {c.lr} ({c.schedule}), L∞ ε = {c.eps:.4g}, "
            f"{c.attack_steps}-step PGD inside training; SGLR refines from epoch "
            f"{c.sglr_start_epoch}; held-out monitor: {monitor_size} test images")


# ----------------------------------------------------------------------------- the refinement

def start_table(their_epochs: int) -> Table:
    """When refinement starts: the authors' script and each profile of this book."""
    rows = [["Yu et al.'s script", their_epochs, book.sglr_start_epoch(their_epochs)]]
    for p in ("quick", "full"):
        n = book.chapter_setting("soft_labels_at", p).at_epochs
        rows.append([f"this book, {p} profile", n, book.sglr_start_epoch(n)])
    return Table(["training", "epochs", "first epoch with refinement"], rows)


#: The tiny side-by-side run: training images, epochs (refinement starts at the last).
TINY = SimpleNamespace(train_size=128, epochs=2)


def tiny_history(profile: str, setting, adversarial: str, *, seed: int, device: str,
                 **changes) -> list[dict]:
    """:data:`TINY` epochs of the zoo's adversarial training on :data:`TINY` images (no cache):
    the loss, training, test and robust accuracy of each epoch."""
    tiny = book.config(profile, "ce", 0.0, adversarial=adversarial, setting=setting, seed=seed,
                       device=device, train_size=TINY.train_size, test_size=50,
                       epochs=TINY.epochs, **changes)
    history = train.train(tiny, progress=False, eval_robust=True).history
    keys = ("loss", "train_acc", "test_acc", "robust_acc")
    return [{k: record[k] for k in keys} for record in history]


def refinement_claims(tiny_pgd: Sequence, tiny_sglr: Sequence, sglr_config, their_es: int,
                      their_epochs: int, on_cpu: bool) -> SimpleNamespace:
    """SGLR is PGD-AT until refinement starts (the tiny run; bit-for-bit only on the CPU), and
    the zoo starts it at the fraction of training of the authors' script: ``their_es`` of
    ``their_epochs`` (read from the papers' JSON, so this fails if the zoo's fraction drifts from
    theirs), within half an epoch of ours."""
    if len(tiny_pgd) < 2 or len(tiny_sglr) < 2:
        raise ValueError("the tiny runs must have two epochs each")
    start, epochs = sglr_config.sglr_start_epoch, sglr_config.epochs
    plain = start - 1  # epochs of plain PGD-AT before refinement
    claims = {
        "before refinement, SGLR's epoch is identical to PGD-AT's": tiny_pgd[0] == tiny_sglr[0],
        "once refinement starts, SGLR's epoch differs from PGD-AT's": tiny_pgd[1] != tiny_sglr[1],
        "the zoo's SGLR trains plain PGD-AT for the same fraction of its epochs as the authors' "
        "script (within half an epoch)": abs(plain - their_es / their_epochs * epochs) <= 0.5,
    }
    visits = epochs - start + 1
    return SimpleNamespace(
        claims=Claims(claims, asserted=list(claims) if on_cpu else list(claims)[2:]),
        start=start, visits=Text(str(visits)), last_plain=Text(str(plain)),
        epochs=Text(str(epochs)), share=fixed(1 - sglr_config.sglr_momentum ** visits, 2))


def draw_history(histories: Mapping, names: Mapping, start: int, eps: float):
    """Left: held-out PGD-10 and training-batch robust accuracy per epoch; right: held-out clean
    accuracy; a dotted line where refinement starts."""
    fig, (left, right) = plots.new_figure(1, 2, width=11, height=4.5, sharex=True)
    for mode, history in histories.items():
        record = {k: [r[k] for r in history] for k in ("epoch", "robust_acc", "train_acc",
                                                       "test_acc")}
        style = dict(color=COLORS[mode])
        left.plot(record["epoch"], record["robust_acc"], "o-", **style,
                  label=f"{names[mode]}: held-out, PGD-10")
        left.plot(record["epoch"], record["train_acc"], "s--", **style, alpha=0.6,
                  label=f"{names[mode]}: training batches, inner PGD")
        right.plot(record["epoch"], record["test_acc"], "o-", **style, label=names[mode])
    for ax in (left, right):
        ax.axvline(start - 0.5, color="0.6", linestyle=":")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    plots.label_axes(left, "epoch", "robust accuracy (fraction)",
                     f"adversarial accuracy, ε = {eps:.3g}")
    plots.label_axes(right, "epoch", "clean accuracy (fraction)", "held-out clean accuracy")
    left.legend(fontsize=9)
    right.legend()
    return fig


def best_vs_last(histories: Mapping, monitor_size: int, quick: bool) -> SimpleNamespace:
    """Per mode: the best and the last epoch of the held-out monitor, its standard error, and the
    claims that robust overfitting does not show (asserted in the quick profile)."""
    monitor_size = checks.positive_int("monitor_size", monitor_size)
    table = {}
    for mode, history in histories.items():
        robust = np.array([r["robust_acc"] for r in history], dtype=float)
        if robust.size == 0:
            raise ValueError(f"histories[{mode!r}] is empty")
        best, last = float(robust.max()), float(robust[-1])
        table[mode] = dict(best_epoch=int(robust.argmax()) + 1, best=best, last=last,
                           drop=best - last,
                           standard_error=math.sqrt(best * (1 - best) / monitor_size),
                           train_gap=history[-1]["train_acc"] - last)
    claims = {
        "for both models the last epoch is within two standard errors of the best":
            C.every(v["drop"] <= 2 * v["standard_error"] for v in table.values()),
        "at the last epoch, training-batch robust accuracy exceeds held-out by under 10 points":
            C.below(max(v["train_gap"] for v in table.values()), 0.1),
    }
    shown = SimpleNamespace(**{f"{mode}_{k}": (percent(v[k]) if k != "best_epoch"
                                               else Text(str(v[k])))
                               for mode, v in table.items() for k in ("best", "last", "best_epoch")})
    return SimpleNamespace(table=table, shown=shown,
                           claims=Claims(claims, asserted=list(claims) if quick else [],
                                         title="Our run: robust overfitting"))


# ----------------------------------------------------------------------------- final models

FINAL_COLUMNS = ("clean", "pgd20", "clean_aa_subset", "pgd20_aa_subset", "autoattack")


def final_table(final: Mapping, names: Mapping, autoattack_name: str) -> Table:
    headers = {"clean": "clean", "pgd20": "PGD-20", "clean_aa_subset": "clean (AA subset)",
               "pgd20_aa_subset": "PGD-20 (AA subset)",
               "autoattack": f"{autoattack_name} (AA subset)"}
    return Table(["model", *headers.values()],
                 [[names[mode], *(percent(r[k]) for k in FINAL_COLUMNS)]
                  for mode, r in final.items()])


def final_claims(final: Mapping, autoattack_name: str, autoattack_size: int) -> SimpleNamespace:
    """AutoAttack against PGD-20 on the same examples, and SGLR against PGD-AT (all asserted)."""
    for mode in ("pgd", "sglr"):
        if mode not in final:
            raise ValueError(f"final must hold the {mode!r} model's accuracies")
    aa_drop = {mode: r["pgd20_aa_subset"] - r["autoattack"] for mode, r in final.items()}
    delta = {k: final["sglr"][k] - final["pgd"][k] for k in ("clean", "pgd20", "autoattack")}
    claims = {
        "AutoAttack is at least as strong as PGD-20 on the same examples (within 2 points)":
            C.every(r["autoattack"] <= r["pgd20_aa_subset"] + 0.02 for r in final.values()),
        "AutoAttack takes at most 5 points beyond PGD-20 on the same examples":
            C.at_most(max(aa_drop.values()), 0.05),
        "both models keep more than 20 % under AutoAttack":
            C.exceeds(min(r["autoattack"] for r in final.values()), 0.2),
        "SGLR is within 5 points of PGD-AT in clean, PGD-20 and AutoAttack accuracy":
            C.at_most(max(map(abs, delta.values())), 0.05),
    }
    return SimpleNamespace(
        claims=Claims(claims, asserted=list(claims), title="Our run: the final models"),
        **{f"{mode}_{k}": percent(v) for mode, r in final.items() for k, v in r.items()},
        **{f"{mode}_aa_drop": fixed(100 * d, 1) for mode, d in aa_drop.items()},
        **{f"delta_{k}": signed_points(v) for k, v in delta.items()},
        autoattack_name=Text(autoattack_name), n_aa=Text(str(autoattack_size)),
        aa_se=fixed(100 * math.sqrt(0.25 / autoattack_size), 0))


# ----------------------------------------------------------------------------- Yu et al.

def yu_beside(yu_table, final: Mapping, ours: str) -> Table:
    """Yu et al.'s README rows beside ours, in their unit (%). A model we did not train (TRADES
    in the quick profile) shows "—" in every cell: a sentence there would make the column text,
    and a text column is left-aligned (``lsnotes.present.Table``); say "—" in the caption."""
    pairs = []
    for theirs, mode in YU_ROWS.items():
        cells = (["—"] * len(yu_table.columns) if mode not in final else
                 [fixed(100 * final[mode][k], 1) for k in ("clean", "pgd20", "autoattack")])
        pairs.append((theirs, yu_table.row(theirs).values, book.AT_LABELS[mode], cells))
    return beside(yu_table.columns, pairs, paper="Yu et al.", ours=ours, first_column="method",
                  title="Yu et al.'s final-checkpoint numbers beside ours (accuracy, %)")


def _as_fractions(yu_table, row: str) -> dict:
    clean, pgd, autoattack = (float(v) / 100 for v in yu_table.row(row).values)
    # both their attacks run on the whole test set: "PGD on the same examples" is their PGD
    return {"clean": clean, "pgd": pgd, "autoattack": autoattack, "pgd_same": pgd}


#: What their README's numbers say, each a test of {"AT": accuracies, "SGLR": accuracies}.
FINDINGS: dict[str, Callable[[Mapping], bool]] = {
    "label refinement raises PGD accuracy over AT": lambda a: a["SGLR"]["pgd"] > a["AT"]["pgd"],
    "label refinement raises AutoAttack accuracy over AT":
        lambda a: a["SGLR"]["autoattack"] > a["AT"]["autoattack"],
    "label refinement does not lower clean accuracy":
        lambda a: a["SGLR"]["clean"] >= a["AT"]["clean"],
    "AutoAttack is below PGD for both models (same examples)": lambda a: all(
        v["autoattack"] < v["pgd_same"] for v in a.values()),
}


def yu_findings(yu_table) -> PaperReports:
    """The findings checked on the authors' README numbers (asserted: the prose states them), in
    a "The paper reports" block with what their abstract claims (``.claims``: the checks)."""
    theirs = {"AT": _as_fractions(yu_table, "AT"), "SGLR": _as_fractions(yu_table, "AT+SGLS")}
    outcomes = {s: test(theirs) for s, test in FINDINGS.items()}
    claims = Claims(outcomes, asserted=list(outcomes), title="Their README's numbers, checked")
    block = PaperReports(
        "yu2024",
        "Their abstract claims that the method boosts standard accuracy and robust performance "
        "together, and proposes it against robust overfitting, which it describes as a gap "
        "between the training and the test curves of adversarial robustness. The README of their "
        "code (ResNet-18, CIFAR-10, final checkpoint) gives the numbers checked below.", claims)
    block.claims = claims
    return block


def yu_ours(final: Mapping, scale: str = "") -> OurRun:
    """The same findings on our PGD-AT and SGLR (PGD-20 on every evaluation example; against
    AutoAttack, PGD-20 on the AutoAttack subset), in an "Our run" block; shown, not asserted."""
    ours = {name: {"clean": final[mode]["clean"], "pgd": final[mode]["pgd20"],
                   "autoattack": final[mode]["autoattack"],
                   "pgd_same": final[mode]["pgd20_aa_subset"]}
            for mode, name in (("pgd", "AT"), ("sglr", "SGLR"))}
    claims = Claims({s: test(ours) for s, test in FINDINGS.items()},
                    title="The same findings, on our models")
    block = OurRun("Shown, not asserted: only directions are comparable at this scale.", claims,
                   scale=scale)
    block.claims = claims
    return block


# ----------------------------------------------------------------------------- the ε slider

def eps_explorer(models: Mapping, names: Mapping, x, y, eps_grid: Sequence, train_eps: float,
                 seed: int) -> SimpleNamespace:
    """PGD-10 accuracy of each model on the fixed batch ``x, y`` over ``eps_grid``
    (``.grid_accuracy``), and the slider that re-attacks the batch at any ε (``.view``; the
    built book shows the grid's curves)."""
    eps_grid = [float(e) for e in eps_grid]
    if train_eps not in eps_grid:
        raise ValueError(f"train_eps must be on eps_grid {eps_grid}; got {train_eps}")

    def accuracy(model, eps):
        if eps == 0:
            return train.accuracy(model, x, y)
        x_adv = attacks.run_attack("pgd10", model, x, y, eps,
                                   generator=attacks.seeded_generator(seed))
        return train.accuracy(model, x_adv, y)

    grid = {mode: [accuracy(m, e) for e in eps_grid] for mode, m in models.items()}

    def curves(ax):
        for mode, values in grid.items():
            ax.plot(eps_grid, values, "o-", color=COLORS[mode], label=names[mode])
        ax.axvline(train_eps, color="0.5", linestyle=":", label=f"training ε = {train_eps:.3g}")
        plots.label_axes(ax, "L∞ budget ε (pixel scale, [0, 1])",
                         "accuracy under PGD-10 (fraction)")
        ax.set_ylim(0, 1)

    def draw(fig, eps):
        bars, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
        now = {mode: accuracy(m, eps) for mode, m in models.items()}
        bars.bar([names[m] for m in now], list(now.values()), color=[COLORS[m] for m in now])
        for i, value in enumerate(now.values()):
            bars.text(i, value + 0.02, f"{value:.2f}", ha="center")
        bars.set_ylim(0, 1)
        plots.label_axes(bars, "training", "accuracy under PGD-10 (fraction)", f"ε = {eps:.3g}")
        curves(right)
        for mode, value in now.items():
            right.plot([eps], [value], "*", markersize=14, color=COLORS[mode])
        right.legend()

    static, ax = plots.new_figure(width=7.0, height=4.2)
    curves(ax)
    ax.legend()
    ax.set_title(f"PGD-10 on {len(y)} fixed images")
    slider = widgets.float_slider("ε", 0.0, max(eps_grid), 0.005, train_eps)
    view = widgets.interactive_figure(
        draw, {"eps": slider}, static, width=10, height=3.8,
        caption="PGD-AT vs SGLR: accuracy under PGD-10 as the L∞ budget ε changes")
    return SimpleNamespace(view=view, grid_accuracy=grid, eps_grid=eps_grid)


def slider_claims(explorer: SimpleNamespace, train_eps: float) -> SimpleNamespace:
    grid, eps_grid = explorer.grid_accuracy, explorer.eps_grid
    at_train = {m: v[eps_grid.index(train_eps)] for m, v in grid.items()}
    at_largest = {m: v[-1] for m, v in grid.items()}
    claims = {f"at ε = {eps_grid[-1]:g} both models keep less than half their accuracy at the "
              "training ε": C.every(at_largest[m] < 0.5 * at_train[m] for m in grid)}
    return SimpleNamespace(
        claims=Claims(claims, asserted=list(claims), title="Our run: beyond the training ε"),
        **{f"{m}_train": percent(v) for m, v in at_train.items()},
        **{f"{m}_largest": percent(v) for m, v in at_largest.items()},
        largest=Text(f"{eps_grid[-1]:g}"), train_eps=Text(f"{train_eps:g}"))


# ----------------------------------------------------------------------------- the full profile

def full_profile(recorded: dict | None, names: Mapping):
    """The full profile's recorded table, or what running it would take. The rate is an
    assumption we chose (10,000 ResNet-18 forward-backward passes per second, bf16, one H100)."""
    if recorded is None:
        full = book.chapter_setting("soft_labels_at", "full")
        passes = 50_000 * full.at_epochs * (full.at_steps + 1)  # CIFAR-10's training images
        rate = 10_000
        return Text(
            f"The full-profile run ({full.dataset}, {full.model}, {full.at_epochs} epochs of "
            f"{full.at_steps}-step PGD-AT, for each model) has not been recorded yet. It needs "
            f"about {passes / 1e6:.0f} million forward-backward passes per model, about "
            f"{passes / rate / 3600:.1f} GPU-hours per model at an assumed {rate:,} passes/s, "
            f"plus standard AutoAttack on {full.eval_size} images.")
    rows = []
    for mode, name in names.items():
        r = recorded["results"]["final"][mode]
        m = recorded["results"]["best_vs_last_monitor"][mode]
        rows.append([name, percent(r["clean"]), percent(r["pgd20"]), percent(r["autoattack"]),
                     percent(m["best"]), m["best_epoch"], percent(m["last"])])
    return Table(["model (full profile, GPU)", "clean", "PGD-20", "AutoAttack", "monitor best",
                  "best epoch", "monitor last"], rows)
