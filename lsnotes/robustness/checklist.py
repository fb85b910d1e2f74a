"""Audit any PyTorch classifier's robustness: the book's checklist, with every known sign of a
failed attack, and verdicts in words.

:func:`audit` runs one battery of attacks on the same examples — FGSM, PGD-k on cross-entropy and
on the margin loss, then, on the examples those left standing, PGD with restarts and a larger
step, MultiTargeted, ODI, APGD-CE (or all of AutoAttack), the black-box Square attack and transfer
from a normally trained model — plus an ε sweep up to an unconstrained ε. The robust accuracy it
reports is the per-example worst case over every attack that ran. PGD runs record every iterate
(:mod:`lsnotes.robustness.pgd_trace`), which two of the indicators read.

It then computes the six *indicators of attack failure* of Pintor et al. (2022) per example —
unavailable gradients, unstable predictions, silent success, incomplete optimisation, transfer
failure, unconstrained-attack failure — two symptoms from the book's checklist (single-step beats
iterative; stronger attacks beat PGD-k) and the equivalents of the checks later AutoAttack
releases print (pyautoattack 0.2.0 ships none). Each says how many examples trip it, what that
means and what to do next. An indicator is *serious* when the robust accuracy the audit reports
may still be too high; :data:`lsnotes.robustness.report.SERIOUS_WHEN` states the rule for each.

``lsnotes audit`` (see :func:`add_cli`) loads the reader's own module and weights, and writes the
report as RobustBench-shaped JSON and one self-contained HTML page (:mod:`lsnotes.robustness.report_html`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from lsnotes import attacks as attack_lib
from lsnotes.robustness.bpda import (StraightThroughInput, StraightThroughLayer, cut_modules,
                                     unreached)
from lsnotes.robustness.eot import ExpectedModel, is_random
from lsnotes.robustness.indicators import (RANDOMNESS_ALPHA, Evidence, autoattack_checks,
                                           indicators)
from lsnotes.robustness.pgd_trace import NORMS, PGDTrace, traced_pgd  # noqa: F401 - public
from lsnotes.robustness.report import AttackRow, AuditReport
from lsnotes.checks import choice, number_in, positive_int


from lsnotes.robustness.battery import (BATTERIES, Battery, _Runner, audit_generator,  # noqa: F401
                                       unconstrained_eps)
from lsnotes.robustness.probes import (check_model, model_device, _autograd_calls_in_forward,  # noqa: F401,E501
                                     _first_line, _input_gradient_norms, _output_spread, _predict)


def audit(model, x, y, eps, *, norm: str = "linf", quick: bool = False,
          battery: Battery | None = None, source_model=None, source_name: str = "source model",
          transfer_skipped: str | None = None, seed: int = 0, tolerance: float = 0.02,
          masking_gap: float = 0.05, batch_size: int = 256, progress: bool = False,
          model_name: str = "model", architecture: str | None = None,
          dataset: str = "unknown", bpda_layer: str | None = None) -> AuditReport:
    """Attack ``model`` on ``(x, y)`` with the whole battery and compute every indicator.

    ``x`` holds images in [0, 1], ``y`` their labels; ``eps`` is the L∞ or L2 budget on that
    scale. ``quick`` picks the laptop-sized battery (:data:`BATTERIES`), ``battery`` any other.
    With ``source_model`` (a normally trained model for the same inputs) transfer is tried;
    without it, ``transfer_skipped`` says why in the report. ``tolerance`` is the fraction of
    examples below which count-based symptoms are noise; PGD-k overestimating the worst case by
    more than ``masking_gap`` is serious. Randomness comes from generators seeded by ``seed`` and
    each attack's name. The model is run in eval mode and handed back unchanged.

    Where gradients are cut, zero or non-finite on examples still standing after the white-box
    attacks, the audit escalates: PGD (cross-entropy and margin), MultiTargeted, APGD-CE and
    AutoAttack's targeted APGD through a straight-through view of the model (BPDA: the
    preprocessing before its first layer, or the submodule named by ``bpda_layer``, is
    differentiated as the identity; :mod:`lsnotes.robustness.bpda`) and Square with
    ``battery.escalation_queries`` queries (AutoAttack's 5000) on the survivors.
    """
    battery, eps = _checked(model, x, y, eps, norm, quick, battery, seed, tolerance,
                            masking_gap, batch_size, bpda_layer)
    device = model_device(model)
    x, y = x.detach().to(device), y.to(device)
    check_model(model, x)
    attack_lib.check_fits(model, x, y)   # dtype, device and labels against the model
    started = time.perf_counter()
    plan = _Plan.make(model, x, y, eps, norm, battery, seed, batch_size, progress,
                      source_model is not None)
    probes = _probe_model(plan)
    _white_box(plan)
    white_box_standing = plan.runner.standing.clone()
    _black_box(plan, white_box_standing, source_model, source_name)
    if (_blind_examples(probes["cut"], probes["ce_norms"], plan.clean, plan.runner)
            & plan.runner.standing).any():
        _escalate(plan.runner, model, eps, norm, plan.k, battery, bpda_layer, plan.n_classes,
                  plan.batch_size, expect=battery.eot_gradient_draws if plan.randomised else None)
    if plan.randomised:
        plan.runner.rescore_random(battery.eot_draws)
    sweep_acc, unconstrained_row = _eps_sweep(plan)
    plan.runner.bar.close()
    report = AuditReport(
        model_name=model_name, architecture=architecture or type(model).__name__,
        dataset=dataset, eps=eps, norm=norm, battery=battery, seed=seed, device=str(device),
        labels=y.tolist(), clean_correct=plan.clean.tolist(), rows=plan.runner.rows,
        eps_sweep=sweep_acc, unconstrained_eps=plan.big_eps, indicators=[],
        autoattack_checks=[], transfer_source=source_name if source_model is not None else None,
        seconds=0.0, main_attack=plan.main, single_step=plan.single_row,
        escalation_note=plan.runner.escalation_note,
        forward_passes=battery.eot_draws if plan.randomised else 1,
        gradient_draws=battery.eot_gradient_draws if plan.randomised else 1)
    evidence = Evidence(report=report, traces=plan.runner.traces, **probes,
                        repeats=max(2, battery.repeats), unconstrained=unconstrained_row,
                        white_box_standing=white_box_standing, n_classes=plan.n_classes,
                        autoattack_parts=plan.parts, tolerance=tolerance, masking_gap=masking_gap,
                        transfer_skipped=transfer_skipped, restart_row=plan.restart_row)
    report.autoattack_checks = autoattack_checks(evidence)
    report.indicators = indicators(evidence, report.autoattack_checks)
    report.seconds = time.perf_counter() - started
    return report


def _checked(model, x, y, eps, norm, quick, battery, seed, tolerance, masking_gap, batch_size,
             bpda_layer) -> tuple:
    """Every argument checked before any work; returns the battery to run and eps."""
    choice("norm", norm, NORMS)
    eps = number_in("eps", eps, 0, 1 if norm == "linf" else 3.4e38, low_open=True)
    battery = battery if battery is not None else BATTERIES["quick" if quick else "full"]
    if not isinstance(battery, Battery):
        raise ValueError(f"battery must be a lsnotes.robustness.Battery; got {type(battery).__name__}")
    positive_int("seed", seed, 0)
    number_in("tolerance", tolerance, 0, 1)
    number_in("masking_gap", masking_gap, 0, 1)
    positive_int("batch_size", batch_size)
    attack_lib.check_batch(x, y)
    if eps > unconstrained_eps(norm, x):
        raise ValueError(f"eps must be at most {unconstrained_eps(norm, x):g} for {norm} on "
                         f"images of {x[0].numel()} pixels in [0, 1] (the ball then holds every "
                         f"image); got {eps:g}")
    if bpda_layer is not None:
        StraightThroughLayer(model, bpda_layer)  # checks the name before any work
    return battery, eps


@dataclass
class _Plan:
    """One audit's set-up: the model as attacked and as scored (its expected prediction, by
    EOT, when it is random), the clean predictions, the row names and the runner."""

    model: torch.nn.Module     # what the attacks differentiate
    raw: torch.nn.Module       # the reader's model itself
    x: torch.Tensor
    y: torch.Tensor
    eps: float
    norm: str
    battery: Battery
    batch_size: int
    randomised: bool
    spread: torch.Tensor
    flips: torch.Tensor
    outputs: torch.Tensor
    runner: _Runner

    @classmethod
    def make(cls, model, x, y, eps, norm, battery, seed, batch_size, progress, transfer):
        spread, flips = _output_spread(model, x, max(2, battery.repeats), batch_size)
        randomised = is_random(spread, flips, RANDOMNESS_ALPHA)
        scorer = ExpectedModel(model, battery.eot_draws) if randomised else model
        attacked = ExpectedModel(model, battery.eot_gradient_draws) if randomised else model
        outputs = _predict(scorer, x, batch_size)
        if not torch.isfinite(outputs).all():
            raise ValueError("the model returns non-finite outputs (nan or inf) on some inputs")
        if int(y.max()) >= outputs.shape[1]:
            raise ValueError(f"y holds class {int(y.max())} but the model has "
                             f"{outputs.shape[1]} outputs")
        stages = 12 + transfer + 2 * (len(battery.sweep) + 1) + 6  # the last 6: the escalation
        runner = _Runner(scorer, x, y, outputs.argmax(1) == y, seed, batch_size, progress, stages)
        return cls(attacked, model, x, y, eps, norm, battery, batch_size, randomised, spread,
                   flips, outputs, runner)

    clean = property(lambda self: self.runner.clean)
    n_classes = property(lambda self: self.outputs.shape[1])
    k = property(lambda self: self.battery.pgd_steps)
    main = property(lambda self: f"pgd{self.k}")
    margin_row = property(lambda self: f"pgd{self.k}_margin")
    restart_row = property(lambda self: f"pgd{self.battery.restart_steps}_restarts")
    single_row = property(lambda self: "fgsm" if self.norm == "linf" else "fgm")
    parts = property(lambda self: _autoattack_parts(self.battery.autoattack, self.n_classes))
    big_eps = property(lambda self: unconstrained_eps(self.norm, self.x))

    def pgd(self, at_eps, steps, factor, loss="ce", restarts=1):
        return lambda xb, yb, g: traced_pgd(self.model, xb, yb, at_eps, steps=steps,
                                            norm=self.norm, step_size=factor * 2 * at_eps / steps,
                                            loss=loss, restarts=restarts, generator=g)


def _probe_model(plan: _Plan) -> dict:
    """Checks on the model itself (no attack): input gradients, randomness, autograd calls."""
    plan.runner.step("gradients and randomness")
    raw, x, y, batch_size = plan.raw, plan.x, plan.y, plan.batch_size
    ce_norms, cut = _input_gradient_norms(raw, x, y, "ce", batch_size)
    margin_norms, _ = _input_gradient_norms(raw, x, y, "cw", batch_size)
    with attack_lib.frozen_model(raw):
        autograd_calls = _autograd_calls_in_forward(raw, x[:2])
    plan.runner.done()
    return {"ce_norms": None if cut else ce_norms, "cut": cut, "margin_norms": margin_norms,
            "spread": plan.spread, "flips": plan.flips, "outputs": plan.outputs,
            "autograd_calls": autograd_calls}


def _white_box(plan: _Plan):
    """Cheap gradient attacks on every example, stronger ones on the survivors."""
    runner, model, eps, norm, k, battery = (plan.runner, plan.model, plan.eps, plan.norm, plan.k,
                                            plan.battery)
    single = "FGSM" if norm == "linf" else "FGM (L2)"
    runner.run(plan.single_row, f"{single}: one gradient step of 2ε from x, clipped into the "
               f"ball", "all",
               lambda xb, yb, g: attack_lib.pgd(model, xb, yb, eps, steps=1, step_size=2 * eps,
                                                norm=norm, random_start=False, keep_best=False,
                                                generator=g))
    step = f"{battery.pgd_step_factor * 2:g}ε/{k}"
    runner.run(plan.main, f"PGD-{k}: random start, {k} steps of {step}, cross-entropy", "all",
               plan.pgd(eps, k, battery.pgd_step_factor))
    runner.run(plan.margin_row, f"PGD-{k} on the margin loss max_j≠y z_j − z_y", "all",
               plan.pgd(eps, k, battery.pgd_step_factor, loss="cw"))
    if battery.autoattack == "standard":  # on every example: RobustBench's number
        runner.run("autoattack", f"AutoAttack ({', '.join(plan.parts)}; original code, its own "
                   f"cascade)", "all", _autoattack(model, eps, norm, plan.parts, plan.batch_size))
    r, rs, rf = battery.restarts, battery.restart_steps, battery.restart_step_factor
    runner.run(plan.restart_row, f"PGD-{rs} ×{r} restarts, step ×{rf:g} ({rf * 2:g}ε/{rs})",
               "survivors", plan.pgd(eps, rs, rf, restarts=r))
    targets = battery.multitargeted_targets
    targets = plan.n_classes - 1 if targets is None else min(targets, plan.n_classes - 1)
    runner.run("multitargeted", f"MultiTargeted: {k}-step margin PGD towards each of the {targets} "
               f"most likely other classes", "survivors",
               lambda xb, yb, g: attack_lib.multitargeted(model, xb, yb, eps, steps=k,
                                                          restarts=targets, norm=norm, generator=g))
    runner.run("odi", f"ODI: {battery.odi_restarts} output-diversified starts, then {k}-step "
               f"margin PGD", "survivors",
               lambda xb, yb, g: attack_lib.odi(model, xb, yb, eps, steps=k, norm=norm,
                                                restarts=battery.odi_restarts, generator=g))
    if battery.autoattack != "standard":
        runner.run("apgd_ce", f"APGD-CE (AutoAttack's code): {battery.apgd_steps} iterations, "
                   f"adaptive step", "survivors",
                   lambda xb, yb, g: attack_lib.apgd_ce(model, xb, yb, eps, norm=norm,
                                                        steps=battery.apgd_steps, generator=g))
        _targeted_apgd(runner, model, eps, norm, plan.n_classes, plan.batch_size)


def _black_box(plan: _Plan, white_box_standing, source_model, source_name):
    """Attacks that do not use the model's gradients, on what the white-box ones left."""
    runner, model, eps, norm, battery = plan.runner, plan.model, plan.eps, plan.norm, plan.battery
    if battery.autoattack != "standard":  # AutoAttack's cascade ends with its own Square
        runner.run("square", f"Square Attack (black-box, original code), "
                   f"{battery.square_queries} queries", "survivors",
                   lambda xb, yb, g: attack_lib.square(model, xb, yb, eps, norm=norm,
                                                       n_queries=battery.square_queries,
                                                       generator=g),
                   examples=white_box_standing)
    else:
        runner.done()
    if source_model is not None:
        check_model(source_model, plan.x, plan.n_classes)
        runner.run("transfer", f"transfer: PGD-{plan.k} examples crafted on {source_name}",
                   "survivors",
                   lambda xb, yb, g: attack_lib.pgd(source_model, xb, yb, eps, steps=plan.k,
                                                    norm=norm, generator=g),
                   examples=white_box_standing)


def _eps_sweep(plan: _Plan):
    """CE and margin PGD up to an ε that allows any image, merged per example; returns the
    accuracy per ε and the row at the unconstrained ε."""
    eps, big_eps, factor, k = plan.eps, plan.big_eps, plan.battery.pgd_step_factor, plan.k
    sweep = sorted({round(m * eps, 6) for m in plan.battery.sweep if 0 < m * eps < big_eps}
                   - {eps})
    accuracy = {0.0: plan.clean.float().mean().item(),
                eps: _both_accuracy(plan.runner.row(plan.main), plan.runner.row(plan.margin_row),
                                    plan.clean)}
    for e in sweep + [big_eps]:
        row = _sweep_point(plan.runner, plan.main, k, e, plan.pgd(e, k, factor),
                           plan.pgd(e, k, factor, loss="cw"))
        accuracy[e] = row.accuracy(plan.clean.tolist()) if not row.error else None
    return dict(sorted(accuracy.items())), row


STANDARD = ["apgd-ce", "apgd-t", "fab-t", "square"]


def _autoattack_parts(version: str, n_classes: int) -> list:
    """AutoAttack's attacks that work with ``n_classes`` (DLR needs 3, targeted DLR 4 classes)."""
    choice("battery.autoattack", version, ("apgd-ce", "standard"))
    if version == "apgd-ce":
        return ["apgd-ce"]
    if n_classes >= 4:
        return STANDARD
    return ["apgd-ce", "apgd-dlr", "square"] if n_classes == 3 else ["apgd-ce", "square"]


def _autoattack(model, eps, norm, parts, batch_size):
    """AutoAttack's cascade; the note per example is the part that broke it (or None)."""
    def fn(xb, yb, generator):
        standard = parts == STANDARD
        return attack_lib.autoattack(model, xb, yb, eps, norm=norm,
                                     version="standard" if standard else "custom",
                                     attacks_to_run=None if standard else parts,
                                     generator=generator, batch_size=batch_size)
    return fn


def _targeted_apgd(runner, model, eps, norm, n_classes, batch_size, prefix="", through=""):
    """AutoAttack's targeted APGD (DLR towards each of up to 9 other classes, 100 iterations;
    untargeted APGD-DLR for 3 classes) on the survivors: what the standard cascade adds to
    APGD-CE, so the worst case does not stay above AutoAttack's. ``prefix`` and ``through``
    name the row and the view attacked (the escalation's straight-through view)."""
    part = "apgd-t" if n_classes >= 4 else "apgd-dlr" if n_classes == 3 else None
    if part is None:  # DLR needs three classes
        return
    what = (f"targeted DLR towards each of the {min(9, n_classes - 1)} most likely other classes"
            if part == "apgd-t" else "the DLR loss")
    runner.run(prefix + part.replace("-", "_"), f"{'BPDA: ' if prefix else ''}{part.upper()} "
               f"(AutoAttack's code): 100 iterations on {what}{through}", "survivors",
               lambda xb, yb, g: attack_lib.autoattack(model, xb, yb, eps, norm=norm,
                                                       version="custom", attacks_to_run=[part],
                                                       generator=g, batch_size=batch_size))


# ----------------------------------------------------------------------------- escalation, sweep

def _blind_examples(cut, ce_norms, clean, runner) -> torch.Tensor:
    """Examples on which a gradient-based attack could not see: the graph is cut, the input
    gradient is zero or non-finite, or an attack met non-finite gradients."""
    if cut is not None or any(r.nonfinite_gradients for r in runner.rows):
        return clean.clone()
    return clean & ((ce_norms == 0) | ~torch.isfinite(ce_norms))


def _escalate(runner, model, eps, norm, k, battery, bpda_layer, n_classes, batch_size,
              expect=None):
    """BPDA PGD (cross-entropy and margin), MultiTargeted, APGD-CE and targeted APGD, then Square
    with AutoAttack's query budget, on the examples every earlier attack left standing.
    ``expect``: a random model's gradient draws."""

    view = (StraightThroughLayer(model, bpda_layer) if bpda_layer is not None
            else StraightThroughInput(model))
    if unreached(view, runner.x[:8]):
        runner.escalation_note = _name_the_layer(cut_modules(model, runner.x[:8]), bpda_layer)
    if expect is not None:
        view, model = ExpectedModel(view, expect), ExpectedModel(model, expect)
    where = f"the layer {bpda_layer!r}" if bpda_layer else "everything before the first layer"
    for loss, label in (("ce", "cross-entropy"), ("cw", "margin loss")):
        runner.run(f"bpda_pgd{k}_{loss}", f"BPDA: PGD-{k} on the {label} with {where} "
                   f"differentiated as the identity (straight-through)", "survivors",
                   lambda xb, yb, g, loss=loss: attack_lib.pgd(
                       view, xb, yb, eps, steps=k, norm=norm, loss=loss, restarts=2,
                       generator=g))
    targets = min(battery.multitargeted_targets or 9, 9)
    runner.run("bpda_multitargeted", f"BPDA: MultiTargeted ({targets} targets) through the "
               f"straight-through view", "survivors",
               lambda xb, yb, g: attack_lib.multitargeted(view, xb, yb, eps, steps=k, norm=norm,
                                                          restarts=targets, generator=g))
    runner.run("bpda_apgd_ce", f"BPDA: APGD-CE ({battery.apgd_steps} iterations) through the "
               f"straight-through view", "survivors",
               lambda xb, yb, g: attack_lib.apgd_ce(view, xb, yb, eps, norm=norm,
                                                    steps=battery.apgd_steps, generator=g))
    # AutoAttack's targeted part through the same view: without it the worst case of a
    # quantised-input model stayed 1-1.5 points above AutoAttack's run through the view
    _targeted_apgd(runner, view, eps, norm, n_classes, batch_size, prefix="bpda_",
                   through=" through the straight-through view")
    queries = battery.escalation_queries
    runner.run("square_escalated", f"Square Attack (black-box, original code), {queries} "
               f"queries (AutoAttack's budget): gradients were unusable", "survivors",
               lambda xb, yb, g: attack_lib.square(model, xb, yb, eps, norm=norm,
                                                   n_queries=queries, generator=g))


def _name_the_layer(candidates, bpda_layer) -> str:
    """What the user must do when the straight-through view still has no gradient."""
    tried = (f"the layer {bpda_layer!r} as the identity" if bpda_layer else
             "every cut it could bridge (same number of values per example)")
    found = (f" Submodules whose output has no gradient though their input has: "
             f"{', '.join(candidates)}." if candidates else "")
    return (f"The straight-through (BPDA) view still has no input gradient after treating {tried}."
            f"{found} Name the non-differentiable layer that maps a tensor to one of the same shape "
            f"with --bpda-layer NAME (Python: audit(..., bpda_layer=NAME)), or give a "
            f"differentiable copy of the model as --source-model to transfer from; until then the "
            f"escalation rests on Square alone.")


def _both_accuracy(ce_row, margin_row, clean) -> float | None:
    if ce_row.error or margin_row.error:
        return None
    both = [bool(c) and a is not False and b is not False
            for c, a, b in zip(clean.tolist(), ce_row.correct, margin_row.correct)]
    return sum(both) / len(both)


def _sweep_point(runner, main, k, at_eps, ce_attack, margin_attack) -> AttackRow:
    """PGD-k on cross-entropy and on the margin at ``at_eps``, merged per example (broken by
    either), so saturated logits the margin attack breaks do not look like an attack failure."""
    ce = runner.run(f"{main}@{at_eps:g}", f"PGD-{k} at ε = {at_eps:g}", "all", ce_attack,
                    update=False)
    margin = runner.run(f"{main}_margin@{at_eps:g}", f"PGD-{k} margin at ε = {at_eps:g}", "all",
                        margin_attack, update=False)
    merged = [None if a is None and b is None else (a is not False and b is not False)
              for a, b in zip(ce.correct, margin.correct)]
    error = ce.error if ce.error and margin.error else None
    return AttackRow(f"{main}@{at_eps:g}", f"PGD-{k} (cross-entropy and margin) at ε = {at_eps:g}",
                     "all", merged, ce.seconds + margin.seconds, error)
