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

import math
import time
import warnings
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lsnotes import attacks as attack_lib
from lsnotes.robustness.eot import GRADIENT_DRAWS, SCORE_DRAWS, ExpectedModel, is_random
from lsnotes.robustness.indicators import (RANDOMNESS_ALPHA, Evidence, autoattack_checks,
                                           indicators)
from lsnotes.robustness.pgd_trace import NORMS, PGDTrace, traced_pgd  # noqa: F401 - public
from lsnotes.robustness.report import AttackRow, AuditReport
from lsnotes.checks import choice, number_in, positive_int


@dataclass(frozen=True)
class Battery:
    """How hard the audit attacks: step counts, restarts, queries, the ε sweep."""

    name: str
    pgd_steps: int = 20               # PGD-k, the number people usually report
    pgd_step_factor: float = 1.0      # step = factor · 2ε/k (Fu et al.'s 2ε/k when 1)
    restarts: int = 2                 # "PGD with restarts and a larger step"
    restart_steps: int = 20
    restart_step_factor: float = 4.0
    multitargeted_targets: int | None = 3   # None: every other class
    odi_restarts: int = 2
    autoattack: str = "apgd-ce"       # APGD-CE on survivors, or "standard": all of AutoAttack
    apgd_steps: int = 50              # APGD-CE's iterations (AutoAttack's own: 100)
    square_queries: int = 100         # Square on survivors: a smoke test (AutoAttack's has 5000)
    sweep: tuple[float, ...] = (0.5, 2.0)   # multiples of ε (besides ε and the unconstrained ε)
    repeats: int = 3                  # forward passes per input for the randomness check
    escalation_queries: int = 5000    # Square on the survivors when gradients are unusable (AutoAttack's)
    eot_draws: int = SCORE_DRAWS      # random model: forward passes averaged per prediction
    eot_gradient_draws: int = GRADIENT_DRAWS  # random model: forward passes per attack gradient

    def __post_init__(self):
        for name in ("pgd_steps", "restarts", "restart_steps", "odi_restarts", "apgd_steps",
                     "square_queries", "repeats", "escalation_queries", "eot_draws",
                     "eot_gradient_draws"):
            positive_int(f"Battery.{name}", getattr(self, name))
        for name in ("pgd_step_factor", "restart_step_factor"):
            number_in(f"Battery.{name}", getattr(self, name), 0, 1e3, low_open=True)
        if self.multitargeted_targets is not None:
            positive_int("Battery.multitargeted_targets", self.multitargeted_targets)
        choice("Battery.autoattack", self.autoattack, ("apgd-ce", "standard"))
        if isinstance(self.sweep, (str, bytes)) or not all(
                isinstance(m, (int, float)) and math.isfinite(m) and m > 0 for m in self.sweep):
            raise ValueError(f"Battery.sweep must be a tuple of positive multiples of eps; got "
                             f"{self.sweep!r}")


BATTERIES = {
    "quick": Battery("quick"),
    "full": Battery("full", restarts=10, restart_steps=50, multitargeted_targets=None,
                    odi_restarts=5, autoattack="standard", square_queries=5000,
                    sweep=(0.25, 0.5, 2.0, 4.0), repeats=5),
}

from lsnotes.robustness.probes import (check_model, model_device, _autograd_calls_in_forward,  # noqa: F401,E501
                                     _first_line, _input_gradient_norms, _output_spread, _predict)

# ----------------------------------------------------------------------------- the battery

def audit_generator(name: str, seed: int) -> torch.Generator:
    """One generator per attack, so adding or reordering attacks does not change the others."""
    return attack_lib.seeded_generator(seed, name)


class _Runner:
    """Runs attacks on chosen examples, keeps per-example results and PGD traces."""

    def __init__(self, model, x, y, clean, seed, batch_size, progress, stages):
        self.model, self.x, self.y, self.seed, self.batch_size = model, x, y, seed, batch_size
        self.clean = clean
        self.escalation_note: str | None = None  # what the user must do for BPDA to work
        self.standing = clean.clone()       # correct so far under every attack at ε
        self.rows: list[AttackRow] = []
        self.traces: dict[str, dict] = {}   # name -> per-example silent / rising / ran
        self.bar = tqdm(total=stages, desc="audit", disable=not progress, leave=False)
        # a random model: each example's strongest adversarial example so far (lowest mean
        # probability of its label), rescored with fresh draws at the end (see rescore_random)
        self.strongest = x.clone()
        self.lowest = torch.full((len(x),), math.inf, device=x.device)

    def row(self, name: str) -> AttackRow:
        return next(r for r in self.rows if r.name == name)

    def step(self, label: str):
        self.bar.set_description(label)

    def done(self):
        self.bar.update(1)

    def _keep_strongest(self, chunk, x_adv, logits):
        prob = logits.softmax(1).gather(1, self.y[chunk][:, None]).squeeze(1)
        better = prob < self.lowest[chunk]
        self.strongest[chunk[better]] = x_adv[better]
        self.lowest[chunk[better]] = prob[better]

    def rescore_random(self, draws: int):
        """The worst case of a random model: each example's strongest adversarial example,
        scored once more with fresh draws, so no example gets one extra noisy chance per attack
        to be wrong."""
        self.step("EOT rescoring")
        idx = self.clean.nonzero().flatten()
        correct: list = [None] * len(self.x)
        for chunk in idx.split(self.batch_size):
            right = _predict(self.model, self.strongest[chunk], self.batch_size).argmax(1) \
                == self.y[chunk]
            for i, c in zip(chunk.tolist(), right.tolist()):
                correct[i] = c
        self.rows.append(AttackRow(
            "eot_rescored", f"each example's strongest adversarial example above (lowest mean "
            f"probability of its label), scored over {draws} fresh forward passes", "all",
            correct, 0.0))
        self.done()

    def _attack(self, name, fn, idx, keep=False):
        """Per example of ``idx``: correct after ``fn``'s attack, plus traces when it is PGD."""
        generator = audit_generator(name, self.seed)
        correct, trace_parts, notes = [], [], []
        self.nonfinite = 0
        for chunk in idx.split(self.batch_size):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always", attack_lib.NonFiniteGradientWarning)
                result = fn(self.x[chunk], self.y[chunk], generator)
            for w in seen:
                if issubclass(w.category, attack_lib.NonFiniteGradientWarning):
                    self.nonfinite += 1
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if isinstance(result, PGDTrace):
                trace_parts.append(result)
                result = result.x_adv
            elif isinstance(result, tuple):  # (x_adv, per-example note), e.g. AutoAttack's part
                result, note = result
                notes += list(note)
            logits = _predict(self.model, result, self.batch_size)
            if keep:
                self._keep_strongest(chunk, result, logits)
            correct.append(logits.argmax(1) == self.y[chunk])
        return torch.cat(correct), trace_parts, notes

    def run(self, name, description, scope, fn, *, examples=None, update=True):
        """Attack the clean-correct examples (``scope="all"``) or those still standing."""
        self.step(name)
        if examples is None:
            examples = self.clean if scope == "all" else self.standing
        idx = examples.nonzero().flatten()
        correct: list = [None] * len(self.x)
        error, notes = None, []
        self.nonfinite = 0
        started = time.perf_counter()
        if idx.numel():
            try:
                ok, parts, notes = self._attack(name, fn, idx, keep=update)
            except (RuntimeError, ValueError, TypeError) as err:  # e.g. no gradient at all
                error = _first_line(err)
            else:
                for i, c in zip(idx.tolist(), ok.tolist()):
                    correct[i] = c
                if parts:
                    self._keep_trace(name, idx, parts)
        row = AttackRow(name, description, scope, correct, time.perf_counter() - started, error,
                        nonfinite_gradients=self.nonfinite)
        if error is None and notes:
            row.notes = [None] * len(self.x)
            for i, note in zip(idx.tolist(), notes):
                row.notes[i] = note
        if update:
            self.rows.append(row)
            broken = torch.tensor([c is False for c in correct], device=self.x.device)
            self.standing &= ~broken
        self.done()
        return row

    def _keep_trace(self, name, idx, parts):
        n = len(self.x)
        ran = torch.zeros(n, dtype=torch.bool, device=self.x.device)
        ran[idx] = True
        silent, rising, broken = (torch.zeros(n, dtype=torch.bool, device=self.x.device)
                                  for _ in range(3))
        silent[idx] = torch.cat([p.silent_success() for p in parts])
        rising[idx] = torch.cat([p.still_rising() for p in parts])
        broken[idx] = torch.cat([p.broken for p in parts])
        self.traces[name] = {"ran": ran, "silent": silent, "rising": rising, "broken": broken}


def unconstrained_eps(norm: str, x: torch.Tensor) -> float:
    """The ε at which the ball holds every image in [0, 1]: 1 for L∞, √(number of pixels) for L2."""
    return 1.0 if norm == "linf" else math.sqrt(x[0].numel())


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
    attacks, the audit escalates: PGD (cross-entropy and margin) through a straight-through view
    of the model (BPDA: the preprocessing before its first layer, or the submodule named by
    ``bpda_layer``, is differentiated as the identity; :mod:`lsnotes.robustness.bpda`) and Square
    with ``battery.escalation_queries`` queries (AutoAttack's 5000) on the survivors.
    """
    choice("norm", norm, NORMS)
    eps = number_in("eps", eps, 0, 1 if norm == "linf" else 3.4e38, low_open=True)
    battery = battery if battery is not None else BATTERIES["quick" if quick else "full"]
    if not isinstance(battery, Battery):
        raise ValueError(f"battery must be a lsnotes.robustness.Battery; got {type(battery).__name__}")
    seed = positive_int("seed", seed, 0)
    tolerance = number_in("tolerance", tolerance, 0, 1)
    masking_gap = number_in("masking_gap", masking_gap, 0, 1)
    batch_size = positive_int("batch_size", batch_size)
    attack_lib.check_batch(x, y)
    if eps > unconstrained_eps(norm, x):
        raise ValueError(f"eps must be at most {unconstrained_eps(norm, x):g} for {norm} on "
                         f"images of {x[0].numel()} pixels in [0, 1] (the ball then holds every "
                         f"image); got {eps:g}")
    if bpda_layer is not None:
        from lsnotes.robustness.bpda import StraightThroughLayer
        StraightThroughLayer(model, bpda_layer)  # checks the name before any work
    device = model_device(model)
    x, y = x.detach().to(device), y.to(device)
    check_model(model, x)
    attack_lib.check_fits(model, x, y)   # dtype, device and labels against the model
    started = time.perf_counter()

    # a random model is scored and attacked through its expected prediction (EOT)
    spread, flips = _output_spread(model, x, max(2, battery.repeats), batch_size)
    raw_model = model
    randomised = is_random(spread, flips, RANDOMNESS_ALPHA)
    scorer = ExpectedModel(model, battery.eot_draws) if randomised else model
    model = ExpectedModel(model, battery.eot_gradient_draws) if randomised else model
    logits = _predict(scorer, x, batch_size)
    if not torch.isfinite(logits).all():
        raise ValueError("the model returns non-finite outputs (nan or inf) on some of the inputs")
    n_classes = logits.shape[1]
    if int(y.max()) >= n_classes:
        raise ValueError(f"y holds class {int(y.max())} but the model has {n_classes} outputs")
    clean = logits.argmax(1) == y
    big_eps = unconstrained_eps(norm, x)
    k = battery.pgd_steps
    main, margin_row = f"pgd{k}", f"pgd{k}_margin"
    sweep = sorted({round(m * eps, 6) for m in battery.sweep if 0 < m * eps < big_eps} - {eps})
    stages = 11 + (source_model is not None) + 2 * (len(sweep) + 1) + 5
    runner = _Runner(scorer, x, y, clean, seed, batch_size, progress, stages)

    def pgd(at_eps, steps, factor, loss="ce", restarts=1):
        return lambda xb, yb, g: traced_pgd(model, xb, yb, at_eps, steps=steps, norm=norm,
                                            step_size=factor * 2 * at_eps / steps, loss=loss,
                                            restarts=restarts, generator=g)

    # ---- checks on the model itself (no attack)
    runner.step("gradients and randomness")
    ce_norms, cut = _input_gradient_norms(raw_model, x, y, "ce", batch_size)
    ce_norms = None if cut else ce_norms
    margin_norms, _ = _input_gradient_norms(raw_model, x, y, "cw", batch_size)
    with attack_lib.frozen_model(raw_model):
        autograd_calls = _autograd_calls_in_forward(raw_model, x[:2])
    runner.done()

    # ---- the white-box battery: cheap attacks on every example, stronger ones on survivors
    single, single_row = ("FGSM", "fgsm") if norm == "linf" else ("FGM (L2)", "fgm")
    runner.run(single_row, f"{single}: one gradient step of 2ε from x, clipped into the ball", "all",
               lambda xb, yb, g: attack_lib.pgd(model, xb, yb, eps, steps=1, step_size=2 * eps,
                                                norm=norm, random_start=False, keep_best=False,
                                                generator=g))
    step = f"{battery.pgd_step_factor * 2:g}ε/{k}"
    runner.run(main, f"PGD-{k}: random start, {k} steps of {step}, cross-entropy", "all",
               pgd(eps, k, battery.pgd_step_factor))
    runner.run(margin_row, f"PGD-{k} on the margin loss max_j≠y z_j − z_y", "all",
               pgd(eps, k, battery.pgd_step_factor, loss="cw"))
    parts = _autoattack_parts(battery.autoattack, n_classes)
    if battery.autoattack == "standard":  # on every example: RobustBench's number
        runner.run("autoattack", f"AutoAttack ({', '.join(parts)}; original code, its own "
                   f"cascade)", "all", _autoattack(model, eps, norm, parts, batch_size))
    r, rs, rf = battery.restarts, battery.restart_steps, battery.restart_step_factor
    restart_row = f"pgd{rs}_restarts"
    runner.run(restart_row, f"PGD-{rs} ×{r} restarts, step ×{rf:g} ({rf * 2:g}ε/{rs})",
               "survivors", pgd(eps, rs, rf, restarts=r))
    targets = battery.multitargeted_targets
    targets = n_classes - 1 if targets is None else min(targets, n_classes - 1)
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
        _targeted_apgd(runner, model, eps, norm, n_classes, batch_size)
    white_box_standing = runner.standing.clone()

    # ---- attacks that do not use the model's gradients, on what the white-box ones left
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
        check_model(source_model, x, n_classes)
        runner.run("transfer", f"transfer: PGD-{k} examples crafted on {source_name}",
                   "survivors",
                   lambda xb, yb, g: attack_lib.pgd(source_model, xb, yb, eps, steps=k, norm=norm,
                                                    generator=g),
                   examples=white_box_standing)

    # ---- gradients unusable where examples still stand: attacks that do not need them
    blind = _blind_examples(cut, ce_norms, clean, runner)
    if (blind & runner.standing).any():
        _escalate(runner, raw_model, eps, norm, k, battery, bpda_layer,
                  expect=battery.eot_gradient_draws if randomised else None)

    if randomised:
        runner.rescore_random(battery.eot_draws)

    # ---- the ε sweep, up to an ε that allows any image: CE and margin PGD, per-example worst
    sweep_acc = {0.0: clean.float().mean().item(),
                 eps: _both_accuracy(runner.row(main), runner.row(margin_row), clean)}
    for e in sweep + [big_eps]:
        row = _sweep_point(runner, main, k, e, pgd(e, k, battery.pgd_step_factor),
                           pgd(e, k, battery.pgd_step_factor, loss="cw"))
        sweep_acc[e] = row.accuracy(clean.tolist()) if not row.error else None
        if e == big_eps:
            unconstrained_row = row
    runner.bar.close()

    report = AuditReport(
        model_name=model_name, architecture=architecture or type(model).__name__,
        dataset=dataset, eps=eps, norm=norm, battery=battery, seed=seed, device=str(device),
        labels=y.tolist(), clean_correct=clean.tolist(), rows=runner.rows,
        eps_sweep=dict(sorted(sweep_acc.items())), unconstrained_eps=big_eps, indicators=[],
        autoattack_checks=[], transfer_source=source_name if source_model is not None else None,
        seconds=0.0, main_attack=main, single_step=single_row,
        escalation_note=runner.escalation_note,
        forward_passes=battery.eot_draws if randomised else 1,
        gradient_draws=battery.eot_gradient_draws if randomised else 1)
    evidence = Evidence(report=report, traces=runner.traces, ce_norms=ce_norms, cut=cut,
                        margin_norms=margin_norms, spread=spread, flips=flips,
                        repeats=max(2, battery.repeats), outputs=logits,
                        autograd_calls=autograd_calls, unconstrained=unconstrained_row,
                        white_box_standing=white_box_standing, n_classes=n_classes,
                        autoattack_parts=parts, tolerance=tolerance, masking_gap=masking_gap,
                        transfer_skipped=transfer_skipped, restart_row=restart_row)
    report.autoattack_checks = autoattack_checks(evidence)
    report.indicators = indicators(evidence, report.autoattack_checks)
    report.seconds = time.perf_counter() - started
    return report


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


def _targeted_apgd(runner, model, eps, norm, n_classes, batch_size):
    """AutoAttack's targeted APGD (DLR towards each of up to 9 other classes, 100 iterations;
    untargeted APGD-DLR for 3 classes) on the survivors: what the standard cascade adds to
    APGD-CE, so the worst case does not stay above AutoAttack's."""
    part = "apgd-t" if n_classes >= 4 else "apgd-dlr" if n_classes == 3 else None
    if part is None:  # DLR needs three classes
        return
    what = (f"targeted DLR towards each of the {min(9, n_classes - 1)} most likely other classes"
            if part == "apgd-t" else "the DLR loss")
    runner.run(part.replace("-", "_"), f"{part.upper()} (AutoAttack's code): 100 iterations on "
               f"{what}", "survivors",
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


def _escalate(runner, model, eps, norm, k, battery, bpda_layer, expect=None):
    """BPDA PGD (cross-entropy and margin) and Square with AutoAttack's query budget, on the
    examples every earlier attack left standing. ``expect``: a random model's gradient draws."""
    from lsnotes.robustness.bpda import (StraightThroughInput, StraightThroughLayer, cut_modules,
                                         unreached)

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
