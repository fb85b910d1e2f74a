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
import sys
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from lsnotes import attacks as attack_lib
from lsnotes.robustness.indicators import Evidence, autoattack_checks, indicators
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


BATTERIES = {
    "quick": Battery("quick"),
    "full": Battery("full", restarts=10, restart_steps=50, multitargeted_targets=None,
                    odi_restarts=5, autoattack="standard", square_queries=5000,
                    sweep=(0.25, 0.5, 2.0, 4.0), repeats=5),
}

# ----------------------------------------------------------------------------- model checks

def model_device(model) -> torch.device:
    parameter = next(iter(model.parameters()), None)
    buffer = next(iter(model.buffers()), None)
    for tensor in (parameter, buffer):
        if tensor is not None:
            return tensor.device
    return torch.device("cpu")


def check_model(model, x, n_classes: int | None = None, batch: int = 8) -> torch.Tensor:
    """Raise ``ValueError`` unless ``model`` maps a batch of x to finite logits, one per class.

    Returns the outputs on ``x[:batch]``. ``n_classes`` is the number the dataset has (None: any
    number >= 2).
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    sample = x[:batch]
    try:
        with attack_lib.frozen_model(model), torch.no_grad():
            out = model(sample)
    except Exception as err:  # noqa: BLE001 - the reader's code: report, do not crash
        raise ValueError(f"the model fails on a batch of shape {tuple(sample.shape)} in [0, 1]: "
                         f"{type(err).__name__}: {_first_line(err)}") from None
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"the model must return a tensor of logits; it returned "
                         f"{type(out).__name__}")
    wanted = f"({len(sample)}, {n_classes})" if n_classes else f"({len(sample)}, K)"
    if out.dim() != 2 or out.shape[0] != len(sample) or out.shape[1] < 2 \
            or (n_classes is not None and out.shape[1] != n_classes):
        raise ValueError(f"the model returns outputs of shape {tuple(out.shape)} for "
                         f"{len(sample)} inputs; expected {wanted}: one logit per class")
    if not torch.isfinite(out).all():
        raise ValueError("the model returns non-finite outputs (nan or inf) on inputs in [0, 1]")
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""


def _predict(model, x, batch_size: int) -> torch.Tensor:
    with attack_lib.frozen_model(model), torch.no_grad():
        return torch.cat([model(chunk) for chunk in x.split(batch_size)])


def _input_gradient_norms(model, x, y, loss: str, batch_size: int):
    """Per-example L1 norm of the loss gradient w.r.t. the input, or (None, why) if there is none."""
    norms = []
    with attack_lib.frozen_model(model):
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            xb = xb.clone().requires_grad_(True)
            with torch.enable_grad():
                values = attack_lib.attack_loss(model(xb), yb, loss)
            if not values.requires_grad:
                return None, "the output does not depend on the input through autograd"
            try:
                grad, = torch.autograd.grad(values.sum(), xb, allow_unused=True)
            except RuntimeError as err:
                return None, _first_line(err)
            if grad is None:
                return None, "the loss is not connected to the input in the autograd graph"
            norms.append(torch.nan_to_num(grad, nan=0.0).flatten(1).abs().sum(1))
    return torch.cat(norms), None


def _output_spread(model, x, repeats: int, batch_size: int):
    """AutoAttack's randomness test per example: the largest L2 distance between normalised
    outputs of ``repeats`` calls on the same input, and whether the predicted class changed."""
    outputs = [_predict(model, x, batch_size) for _ in range(repeats)]
    normalised = [o / (o.norm(dim=1, keepdim=True) + 1e-10) for o in outputs]
    spread = torch.zeros(len(x), device=x.device)
    for a in range(repeats):
        for b in range(a + 1, repeats):
            spread = torch.maximum(spread, (normalised[a] - normalised[b]).norm(dim=1))
    flips = torch.stack([o.argmax(1) for o in outputs]).ne(outputs[0].argmax(1)).any(0)
    return spread, flips


def _autograd_calls_in_forward(model, x) -> int:
    """How often one forward pass calls into autograd's grad/backward (AutoAttack's "dynamic")."""
    calls = 0
    names = {"grad", "backward", "_make_grads"}

    def profile(frame, event, arg):
        nonlocal calls
        code = frame.f_code
        if event == "call" and code.co_name in names and "autograd" in code.co_filename:
            calls += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        with torch.enable_grad():
            model(x)
    except Exception:  # noqa: BLE001 - a dynamic defence may fail outside its own set-up
        pass
    finally:
        sys.setprofile(previous)
    return calls


# ----------------------------------------------------------------------------- the battery

def audit_generator(name: str, seed: int) -> torch.Generator:
    """One generator per attack, so adding or reordering attacks does not change the others."""
    return attack_lib.seeded_generator(seed, name)


class _Runner:
    """Runs attacks on chosen examples, keeps per-example results and PGD traces."""

    def __init__(self, model, x, y, clean, seed, batch_size, progress, stages):
        self.model, self.x, self.y, self.seed, self.batch_size = model, x, y, seed, batch_size
        self.clean = clean
        self.standing = clean.clone()       # correct so far under every attack at ε
        self.rows: list[AttackRow] = []
        self.traces: dict[str, dict] = {}   # name -> per-example silent / rising / ran
        self.bar = tqdm(total=stages, desc="audit", disable=not progress, leave=False)

    def row(self, name: str) -> AttackRow:
        return next(r for r in self.rows if r.name == name)

    def step(self, label: str):
        self.bar.set_description(label)

    def done(self):
        self.bar.update(1)

    def _attack(self, name, fn, idx):
        """Per example of ``idx``: correct after ``fn``'s attack, plus traces when it is PGD."""
        generator = audit_generator(name, self.seed)
        correct, trace_parts, notes = [], [], []
        for chunk in idx.split(self.batch_size):
            result = fn(self.x[chunk], self.y[chunk], generator)
            if isinstance(result, PGDTrace):
                trace_parts.append(result)
                result = result.x_adv
            elif isinstance(result, tuple):  # (x_adv, per-example note), e.g. AutoAttack's part
                result, note = result
                notes += list(note)
            correct.append(_predict(self.model, result, self.batch_size).argmax(1) == self.y[chunk])
        return torch.cat(correct), trace_parts, notes

    def run(self, name, description, scope, fn, *, examples=None, update=True):
        """Attack the clean-correct examples (``scope="all"``) or those still standing."""
        self.step(name)
        if examples is None:
            examples = self.clean if scope == "all" else self.standing
        idx = examples.nonzero().flatten()
        correct: list = [None] * len(self.x)
        error, notes = None, []
        started = time.perf_counter()
        if idx.numel():
            try:
                ok, parts, notes = self._attack(name, fn, idx)
            except RuntimeError as err:  # e.g. no gradient through the model at all
                error = _first_line(err)
            else:
                for i, c in zip(idx.tolist(), ok.tolist()):
                    correct[i] = c
                if parts:
                    self._keep_trace(name, idx, parts)
        row = AttackRow(name, description, scope, correct, time.perf_counter() - started, error)
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
          dataset: str = "unknown") -> AuditReport:
    """Attack ``model`` on ``(x, y)`` with the whole battery and compute every indicator.

    ``x`` holds images in [0, 1], ``y`` their labels; ``eps`` is the L∞ or L2 budget on that
    scale. ``quick`` picks the laptop-sized battery (:data:`BATTERIES`), ``battery`` any other.
    With ``source_model`` (a normally trained model for the same inputs) transfer is tried;
    without it, ``transfer_skipped`` says why in the report. ``tolerance`` is the fraction of
    examples below which count-based symptoms are noise; PGD-k overestimating the worst case by
    more than ``masking_gap`` is serious. Randomness comes from generators seeded by ``seed`` and
    each attack's name. The model is run in eval mode and handed back unchanged.
    """
    choice("norm", norm, NORMS)
    eps = number_in("eps", eps, 0, 1 if norm == "linf" else math.inf, low_open=True)
    battery = battery if battery is not None else BATTERIES["quick" if quick else "full"]
    if not isinstance(battery, Battery):
        raise ValueError(f"battery must be a lsnotes.robustness.Battery; got {type(battery).__name__}")
    seed = positive_int("seed", seed, 0)
    tolerance = number_in("tolerance", tolerance, 0, 1)
    masking_gap = number_in("masking_gap", masking_gap, 0, 1)
    batch_size = positive_int("batch_size", batch_size)
    attack_lib.check_batch(x, y)
    device = model_device(model)
    x, y = x.detach().to(device), y.to(device)
    check_model(model, x)
    started = time.perf_counter()

    logits = _predict(model, x, batch_size)
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
    stages = 9 + (source_model is not None) + len(sweep) + 1
    runner = _Runner(model, x, y, clean, seed, batch_size, progress, stages)

    def pgd(at_eps, steps, factor, loss="ce", restarts=1):
        return lambda xb, yb, g: traced_pgd(model, xb, yb, at_eps, steps=steps, norm=norm,
                                            step_size=factor * 2 * at_eps / steps, loss=loss,
                                            restarts=restarts, generator=g)

    # ---- checks on the model itself (no attack)
    runner.step("gradients and randomness")
    ce_norms, cut = _input_gradient_norms(model, x, y, "ce", batch_size)
    ce_norms = None if cut else ce_norms
    margin_norms, _ = _input_gradient_norms(model, x, y, "cw", batch_size)
    spread, flips = _output_spread(model, x, max(2, battery.repeats), batch_size)
    with attack_lib.frozen_model(model):
        autograd_calls = _autograd_calls_in_forward(model, x[:2])
    runner.done()

    # ---- the white-box battery: cheap attacks on every example, stronger ones on survivors
    single = "FGSM" if norm == "linf" else "FGM (L2)"
    runner.run("fgsm", f"{single}: one gradient step of 2ε from x, clipped into the ball", "all",
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

    # ---- the ε sweep, up to an ε that allows any image
    sweep_acc = {0.0: clean.float().mean().item(), eps: runner.row(main).accuracy(clean.tolist())}
    for e in sweep + [big_eps]:
        row = runner.run(f"{main}@{e:g}", f"PGD-{k} at ε = {e:g}", "all",
                         pgd(e, k, battery.pgd_step_factor), update=False)
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
        seconds=0.0, main_attack=main)
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
