"""The indicators of attack failure and AutoAttack's checks, computed from what an audit measured.

Each function turns the evidence of one :func:`lsnotes.robustness.audit` run into an
:class:`~lsnotes.robustness.report.Indicator`: which examples trip it, whether that is serious (see
:data:`lsnotes.robustness.report.SERIOUS_WHEN`), what was found (with the numbers), what it means and
what to do. The six of Pintor et al. (2022) come first, then two symptoms from the book's
checklist, then the equivalents of AutoAttack's own checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lsnotes.robustness import symptoms
from lsnotes.robustness.report import AuditReport, AttackRow, Indicator

#: Pintor et al.'s rule for incomplete optimisation: the best loss so far, rescaled to [0, 1] over
#: the run, still rose by more than this over the last :data:`LAST_STEPS_FRACTION` of the steps.
RISE_THRESHOLD = 0.05
LAST_STEPS_FRACTION = 0.2
RANDOMNESS_ALPHA = 1e-4   # AutoAttack's: normalised outputs differing by more are random
SQUARE_ALPHA = 0.002      # AutoAttack's: Square beating the others by more is suspicious
PINTOR = "Pintor et al. (2022)"


@dataclass
class Evidence:
    """What :func:`lsnotes.robustness.audit` measured, for the indicator functions below."""

    report: AuditReport
    traces: dict                  # attack name -> per-example "ran", "silent", "rising", "broken"
    ce_norms: torch.Tensor | None     # per-example L1 norm of the CE input gradient (None: cut)
    cut: str | None                   # why there is no gradient at all
    margin_norms: torch.Tensor | None
    spread: torch.Tensor              # largest change of the normalised outputs over calls
    flips: torch.Tensor               # the predicted class changed over calls
    repeats: int
    outputs: torch.Tensor             # the clean outputs
    autograd_calls: int
    unconstrained: AttackRow
    white_box_standing: torch.Tensor
    n_classes: int
    autoattack_parts: list
    tolerance: float
    masking_gap: float
    transfer_skipped: str | None
    restart_row: str

    def __post_init__(self):
        device = self.spread.device
        self.clean = torch.tensor(self.report.clean_correct, device=device)
        self.robust = torch.tensor(self.report.worst_case_correct, device=device)
        self.n = self.report.n_examples
        self.n_clean = int(self.clean.sum())
        self.allowed = self.tolerance * self.n

    def broken_by(self, name: str) -> torch.Tensor:
        row = self.report.row(name)
        return torch.tensor([c is False for c in row.correct], device=self.spread.device)

    def has_row(self, name: str) -> bool:
        return any(r.name == name and not r.error for r in self.report.rows)

    def points(self, count) -> str:
        return f"{100 * int(count) / self.n:.1f} points"

    @property
    def main(self) -> str:
        return self.report.main_attack

    @property
    def k(self) -> int:
        return self.report.battery.pgd_steps

    @property
    def worst(self) -> str:
        return f"{100 * self.report.robust_acc:.1f} %"


def rise_window(steps: int) -> int:
    """How many last steps incomplete optimisation looks at (at least 2, at most all)."""
    return min(steps, max(2, math.ceil(LAST_STEPS_FRACTION * steps)))


def _indicator(key, title, source, trip, *, fired, serious, finding, meaning, advice,
               n, numbers=None, skipped=None):
    return Indicator(key=key, title=title, source=source, count=int(trip.sum()), n=n,
                     fired=bool(fired), serious=bool(serious), finding=finding, meaning=meaning,
                     advice=advice, per_example=[bool(t) for t in trip.tolist()],
                     numbers=numbers or {}, skipped=skipped)


# ----------------------------------------------------------------------------- Pintor et al.

def unavailable_gradients(ev: Evidence) -> Indicator:
    if ev.cut is not None:
        trip = ev.clean.clone()
        saturated = flat = nonfinite = torch.zeros_like(trip)
        finding = (f"The loss has no gradient with respect to the input ({ev.cut}): every "
                   f"gradient-based attack was blind on all {ev.n_clean} correctly classified "
                   f"examples.")
    else:
        nonfinite = ev.clean & ~torch.isfinite(ev.ce_norms)
        trip = ev.clean & ((ev.ce_norms == 0) | nonfinite)
        margin_slope = torch.isfinite(ev.margin_norms) & (ev.margin_norms > 0)
        saturated = trip & ~nonfinite & margin_slope
        flat = trip & ~nonfinite & ~margin_slope
        causes = []
        if saturated.any():
            causes.append(f"{int(saturated.sum())} still have a margin-loss gradient: the softmax "
                          f"saturates")
        if flat.any():
            causes.append(f"{int(flat.sum())} have no margin-loss gradient either: the model is "
                          f"flat around them (a piecewise-constant step such as quantisation or "
                          f"rounding, or a backward pass that returns zero)")
        if nonfinite.any():
            causes.append(f"{int(nonfinite.sum())} have a nan or inf gradient (a backward pass of "
                          f"0·∞, e.g. sqrt or log at 0 in a custom layer): the attacks treat it "
                          f"as absent and make no move")
        finding = (f"{int(trip.sum())} of {ev.n_clean} correctly classified examples have no "
                   f"usable cross-entropy gradient at the clean input ({'; '.join(causes)}); "
                   f"{int((trip & ev.robust).sum())} of them are counted robust after every attack.")
    fired = trip.any()
    if not fired:
        finding = (f"All {ev.n_clean} correctly classified examples have a non-zero "
                   f"cross-entropy gradient at the clean input.")
    if ev.cut is not None:
        advice = ("Make the model differentiable end to end for the attack: replace the blocking "
                  "step (quantisation, a non-differentiable preprocessing, a detach) by a "
                  "differentiable stand-in on the backward pass (BPDA), and lean on black-box "
                  "attacks (Square with more queries) and transfer meanwhile; the white-box rows "
                  "are no evidence.")
    elif fired and bool((saturated == trip).all()):
        advice = (f"The margin-loss and DLR attacks of the battery still see a slope there: report "
                  f"the worst case ({ev.worst}), never a number from cross-entropy attacks alone.")
    elif fired:
        advice = ("Attack through a differentiable stand-in for the layer that kills the gradient "
                  "(BPDA) and with black-box attacks given more queries; treat the examples "
                  "counted robust among these as untested.")
    else:
        advice = "Nothing to do."
    return _indicator(
        "unavailable_gradients", "Unavailable gradients", PINTOR, trip, fired=fired,
        serious=fired and (ev.cut is not None or (trip & ev.robust).any()), finding=finding,
        meaning=("Gradient-based attacks follow the loss gradient; where it is zero or missing "
                 "they do not move, and the example looks robust without having been tested."),
        advice=advice, n=ev.n,
        numbers={"zero_ce_gradient": int(trip.sum()), "saturated_softmax": int(saturated.sum()),
                 "flat_model": int(flat.sum()), "nonfinite_gradient": int(nonfinite.sum()),
                 "counted_robust": int((trip & ev.robust).sum()), "graph_cut": ev.cut})


def unstable_predictions(ev: Evidence) -> Indicator:
    trip = (ev.spread > RANDOMNESS_ALPHA) | ev.flips
    fired = trip.any()
    largest = float(ev.spread.max())
    if fired:
        finding = (f"{int(trip.sum())} of {ev.n} inputs gave different outputs over {ev.repeats} "
                   f"forward passes (largest change of the normalised outputs {largest:.2g}; the "
                   f"predicted class changed on {int(ev.flips.sum())}).")
        advice = (f"This audit scored every example over {ev.report.forward_passes} draws and "
                  f"averaged {ev.report.gradient_draws} per gradient (EOT); to tighten the bound, "
                  f"attack with more draws per step (AutoAttack's version='rand' uses 20) and "
                  f"more steps.")
    else:
        finding = (f"{ev.repeats} forward passes on each input gave the same outputs (largest "
                   f"change {largest:.1g}, threshold {RANDOMNESS_ALPHA:g}).")
        advice = "Nothing to do."
    return _indicator(
        "unstable_predictions", "Unstable predictions", PINTOR, trip, fired=fired, serious=fired,
        finding=finding,
        meaning=("Randomness in the forward pass gives every attack a noisy gradient and every "
                 "evaluation a different answer: the attack climbs a loss that keeps moving, and "
                 "one draw per evaluation would let noise alone break examples."),
        advice=advice, n=ev.n,
        numbers={"largest_change": largest, "class_changed": int(ev.flips.sum())})


def silent_success(ev: Evidence) -> Indicator:
    runs = {name: t["silent"] & ev.clean for name, t in ev.traces.items() if "@" not in name}
    trip = torch.zeros_like(ev.clean)
    for silent in runs.values():
        trip |= silent
    fired = trip.any()
    main_acc = ev.report.accuracy(ev.main)
    # only examples PGD-k counts as broken could be reported robust by its last iterate
    main_silent = int((runs.get(ev.main, torch.zeros_like(trip)) & ev.broken_by(ev.main)).sum())
    per_run = ", ".join(f"{name}: {int(s.sum())}" for name, s in runs.items())
    if fired:
        finding = (f"On {int(trip.sum())} examples a PGD run passed through a misclassified point "
                   f"and ended on a correctly classified one ({per_run}). A PGD-{ev.k} that "
                   f"returns its last iterate would report "
                   f"{100 * main_acc + 100 * main_silent / ev.n:.1f} % instead of "
                   f"{100 * main_acc:.1f} %.")
        advice = ("Keep each example's best iterate (misclassified first, then the highest loss), "
                  "as this audit and lsnotes.attacks do, so the numbers above already count these "
                  "examples as broken; or take smaller steps.")
    else:
        finding = "No PGD run passed through a misclassified point without ending on one."
        advice = "Nothing to do."
    return _indicator(
        "silent_success", "Silent success", PINTOR, trip, fired=fired, serious=False,
        finding=finding,
        meaning=("The attack found an adversarial example and stepped out of it again: with steps "
                 "too large for the loss surface the last iterate is not the best one, and an "
                 "implementation that returns the last iterate reports a failure."),
        advice=advice, n=ev.n, numbers={"per_run": {k: int(v.sum()) for k, v in runs.items()}})


def incomplete_optimisation(ev: Evidence) -> Indicator:
    main = ev.traces.get(ev.main)
    if main is None:
        return _skipped("incomplete_optimisation", "Incomplete optimisation", PINTOR, ev,
                        f"PGD-{ev.k} did not run")
    if ev.cut is not None:
        return _skipped("incomplete_optimisation", "Incomplete optimisation", PINTOR, ev,
                        f"PGD-{ev.k} had no gradient to follow ({ev.cut}): a flat loss is no "
                        f"sign of convergence (see Unavailable gradients)")
    blind = ev.clean & ((ev.ce_norms == 0) | ~torch.isfinite(ev.ce_norms))
    trip = ev.clean & main["ran"] & ~main["broken"] & main["rising"]
    failed = int((ev.clean & main["ran"] & ~main["broken"]).sum())
    if failed and int((blind & main["ran"] & ~main["broken"]).sum()) == failed:
        return _skipped("incomplete_optimisation", "Incomplete optimisation", PINTOR, ev,
                        f"PGD-{ev.k} had a zero or non-finite gradient on every example it failed "
                        f"on: a flat loss there is no sign of convergence (see Unavailable "
                        f"gradients)")
    longer = ev.traces.get(ev.restart_row)
    if longer is not None:
        unconverged = trip & ev.robust & longer["ran"] & longer["rising"] & ~longer["broken"]
    else:
        unconverged = trip & ev.robust
    fired = trip.any()
    # more steps could lower the worst case by at most these examples: serious only above the
    # noise floor (one slow climber in 200 is no evidence the worst case is 2 points too high)
    serious = symptoms.exceeds_noise_floor(unconverged, ev.tolerance)
    window = rise_window(ev.k)
    if fired:
        finding = (f"For {int(trip.sum())} of the {failed} examples PGD-{ev.k} did not break, its "
                   f"best loss so far still gained more than {100 * RISE_THRESHOLD:g} % of its "
                   f"range over the last {window} steps: it stopped before converging. "
                   f"{int(unconverged.sum())} of them stay robust after the whole battery with the "
                   f"best run of the longer restarts ({ev.restart_row}) still climbing too "
                   f"(noise floor {ev.allowed:.1f} examples).")
        advice = ((f"Give the attacks more steps (or APGD more iterations) until the loss "
                   f"flattens; the worst case ({ev.worst}) may still fall.") if serious
                  else (f"Do not report PGD-{ev.k} alone: on the examples still counted robust "
                        f"the battery's longer runs had converged"
                        + (f", but for {ev.points(unconverged.sum())} at most, within the noise "
                           f"floor." if unconverged.any() else ".")))
    else:
        finding = (f"On all {failed} examples PGD-{ev.k} failed to break, its loss had flattened "
                   f"over the last {window} steps.")
        advice = "Nothing to do."
    return _indicator(
        "incomplete_optimisation", "Incomplete optimisation", PINTOR, trip, fired=fired,
        serious=serious, finding=finding,
        meaning=(f"An attack that stops while its loss still climbs has not found the worst point "
                 f"in the ball, so its failure says little (rule: the best loss so far, rescaled "
                 f"to [0, 1], rose by more than {RISE_THRESHOLD:g} over the last "
                 f"{100 * LAST_STEPS_FRACTION:g} % of the steps)."),
        advice=advice, n=ev.n,
        numbers={"window_steps": window, "failed": failed, "unconverged_robust": int(unconverged.sum())})


def transfer_failure(ev: Evidence) -> Indicator:
    title = "Transfer failure"
    meaning = ("Examples made on another model succeed where attacks using this model's own "
               "gradients failed: the gradients hide adversarial examples that exist (gradient "
               "masking; checklist item 8).")
    if not ev.has_row("transfer"):
        reason = ev.transfer_skipped or "no source model was given"
        if any(r.name == "transfer" for r in ev.report.rows):
            reason = f"the transfer attack failed: {ev.report.row('transfer').error}"
        return _skipped("transfer_failure", title, PINTOR, ev, reason, meaning=meaning)
    trip, fired = symptoms.beats_white_box_symptom(ev.clean & ev.white_box_standing,
                                                   ev.broken_by("transfer"), ev.tolerance)
    standing = int((ev.clean & ev.white_box_standing).sum())
    source = ev.report.transfer_source
    if fired:
        finding = (f"Examples crafted on {source} fool this model on {int(trip.sum())} of the "
                   f"{standing} examples every white-box attack failed on "
                   f"({ev.points(trip.sum())}).")
        advice = (f"Report the worst case with transfer included ({ev.worst}) and strengthen the "
                  f"white-box attack (margin or DLR loss, more restarts, a differentiable stand-in "
                  f"for masking layers) before claiming robustness: more examples may fall.")
    else:
        finding = (f"Transfer from {source} broke {int(trip.sum())} of the {standing} examples the "
                   f"white-box attacks missed (noise floor {ev.allowed:.1f}).")
        advice = "Nothing to do."
    return _indicator("transfer_failure", title, PINTOR, trip, fired=fired, serious=fired,
                      finding=finding, meaning=meaning, advice=advice, n=ev.n,
                      numbers={"white_box_survivors": standing})


def unconstrained_failure(ev: Evidence) -> Indicator:
    row, big = ev.unconstrained, ev.report.unconstrained_eps
    title = "Unconstrained-attack failure"
    meaning = ("With a budget that allows any image, an attacker can always reach another class; "
               "an attack that still fails is broken, not the model (checklist item 5: accuracy "
               "must reach zero as ε grows).")
    if row.error:
        return _skipped("unconstrained_failure", title, PINTOR, ev,
                        f"the attack failed: {row.error}", meaning=meaning)
    # at an ε that allows any image success is guaranteed: a single survivor fires
    trip, fired = symptoms.large_eps_symptom(
        ev.clean, torch.tensor([c is True for c in row.correct], device=ev.clean.device), 0.0)
    norm = "L∞" if ev.report.norm == "linf" else "L2"
    if fired:
        finding = (f"At {norm} ε = {big:g}, where the ball holds every image in [0, 1], PGD-{ev.k} "
                   f"still leaves {int(trip.sum())} of {ev.n_clean} correctly classified examples "
                   f"unbroken; {int((trip & ev.robust).sum())} of them are counted robust at "
                   f"ε = {ev.report.eps:g}.")
        advice = ("Fix the attack before trusting any number: it fails where success is "
                  "guaranteed. Try the margin loss, more steps and other starts; for these "
                  "examples being robust at the real ε is no evidence.")
    else:
        finding = (f"At {norm} ε = {big:g} PGD-{ev.k} breaks every correctly classified example, "
                   f"as it must.")
        advice = "Nothing to do."
    return _indicator("unconstrained_failure", title, PINTOR, trip, fired=fired, serious=fired,
                      finding=finding, meaning=meaning, advice=advice, n=ev.n,
                      numbers={"eps": big, "counted_robust": int((trip & ev.robust).sum())})


# ----------------------------------------------------------------------------- the checklist

def single_step_beats_iterative(ev: Evidence) -> Indicator:
    single = ev.report.single_step
    trip, fired = symptoms.single_step_symptom(ev.clean, ev.broken_by(single),
                                               ev.broken_by(ev.main), ev.tolerance)
    fgsm, pgd = ev.report.accuracy(single), ev.report.accuracy(ev.main)
    only_iterative = ev.clean & ev.broken_by(ev.main) & ~ev.broken_by(single)
    finding = (f"The single-step attack breaks {int(trip.sum())} examples PGD-{ev.k} does not, "
               f"PGD-{ev.k} {int(only_iterative.sum())} it does not (accuracy {100 * fgsm:.1f} % "
               f"under it, {100 * pgd:.1f} % under PGD-{ev.k}; it fires when the first count "
               f"exceeds the second by more than the noise floor, {ev.allowed:.1f} examples).")
    return _indicator(
        "single_step_beats_iterative", "Single-step beats iterative", "checklist item 4", trip,
        fired=fired, serious=fired, finding=finding,
        meaning=("An iterative attack starts like the single-step one and takes more, smaller "
                 "steps; if one large step does better on balance, the iterative attack is "
                 "misled by the local gradient. A few examples each attack alone breaks are "
                 "normal: two attacks never fail on exactly the same examples."),
        advice=(f"Do not trust PGD-{ev.k}'s number: report the worst case ({ev.worst}) and look at "
                f"the other indicators for the cause." if fired else "Nothing to do."),
        n=ev.n, numbers={"fgsm_acc": fgsm, "pgd_acc": pgd})


def stronger_attacks_beat_pgd(ev: Evidence, others=()) -> Indicator:
    """``others``: the indicators already computed, named as possible causes of a large gap."""
    pgd = ev.report.accuracy(ev.main)
    standing = ev.clean & ~ev.broken_by(ev.main)
    found = {}
    for row in ev.report.rows:
        if row.name == ev.main or row.error:
            continue
        new = standing & ev.broken_by(row.name)
        if new.any():
            found[row.name] = int(new.sum())
        standing &= ~new
    trip = ev.clean & ~ev.broken_by(ev.main) & ~ev.robust
    gap, fired = symptoms.overestimate_symptom(pgd, ev.report.robust_acc, ev.tolerance)
    large = symptoms.overestimate_symptom(pgd, ev.report.robust_acc, ev.masking_gap)[1]
    who = ", ".join(f"{name} {count}" for name, count in found.items()) or "none"
    finding = (f"PGD-{ev.k} overestimates robustness by {100 * gap:.1f} points: {100 * pgd:.1f} % "
               f"against {ev.worst} for the per-example worst case. Examples it missed were found "
               f"by (in battery order): {who}.")
    if fired:
        advice = f"Report the worst case ({ev.worst}), not PGD-{ev.k} ({100 * pgd:.1f} %)."
        if large:
            causes = [i.title.lower() for i in others if i.fired and i.key in (
                "unavailable_gradients", "transfer_failure", "unconstrained_failure", "aa_square")]
            advice += (f" A gap above {100 * ev.masking_gap:g} points is how gradient masking "
                       f"shows; " + (f"here {', '.join(causes)} fired too." if causes else
                                     f"none of its other signs (zero gradients, transfer or "
                                     f"Square beating white-box, failure at an unbounded ε) fired "
                                     f"here: white-box attacks with other losses, starts or steps "
                                     f"found what PGD-{ev.k} missed."))
    else:
        advice = f"Nothing to do: PGD-{ev.k} was already within {100 * ev.tolerance:g} points."
    return _indicator(
        "stronger_attacks_beat_pgd", "Stronger attacks beat PGD", "checklist items 6-8", trip,
        fired=fired, serious=False, finding=finding,
        meaning=(f"PGD-{ev.k} alone is a weak attack: restarts, a larger step, the margin loss, "
                 f"MultiTargeted, ODI, APGD, Square and transfer find adversarial examples it "
                 f"misses, and how many is the size of its overestimate."),
        advice=advice, n=ev.n, numbers={"gap": gap, "large": large, "found_by": found})


def _skipped(key, title, source, ev, reason, meaning=""):
    nothing = torch.zeros(ev.n, dtype=torch.bool)
    return _indicator(key, title, source, nothing, fired=False, serious=False,
                      finding=f"Not computed: {reason}.", meaning=meaning,
                      advice="Nothing to do." if not meaning else "Run it where possible.",
                      n=ev.n, skipped=reason)


def indicators(ev: Evidence, checks=()) -> list:
    """Pintor et al.'s six and the checklist's two; ``checks``: AutoAttack's, computed first."""
    found = [unavailable_gradients(ev), unstable_predictions(ev), silent_success(ev),
             incomplete_optimisation(ev), transfer_failure(ev), unconstrained_failure(ev),
             single_step_beats_iterative(ev)]
    return found + [stronger_attacks_beat_pgd(ev, found + list(checks))]


# ----------------------------------------------------------------------------- AutoAttack

AUTOATTACK = "AutoAttack's checks"


def autoattack_checks(ev: Evidence) -> list:
    """The checks later AutoAttack releases print (autoattack/checks.py), computed here."""
    checks = []
    random = (ev.spread > RANDOMNESS_ALPHA) | ev.flips
    checks.append(_indicator(
        "aa_randomness", "Randomised defence", AUTOATTACK, random, fired=random.any(),
        serious=False,
        finding=(f"{int(random.sum())} of {ev.n} inputs change their normalised outputs by more "
                 f"than {RANDOMNESS_ALPHA:g} (or their class) over {ev.repeats} calls."),
        meaning="AutoAttack's standard version assumes a deterministic model.",
        advice=("Use AutoAttack's version='rand' (EOT) — see Unstable predictions."
                if random.any() else "Nothing to do."), n=ev.n))
    out = ev.outputs
    probabilities = bool(out.max() < 1 + 1e-5 and out.min() > -1e-5
                         and ((out.sum(1) - 1).abs() < 1e-5).all())
    everyone = torch.full((ev.n,), probabilities, dtype=torch.bool)
    checks.append(_indicator(
        "aa_output_range", "Outputs look like probabilities", AUTOATTACK, everyone,
        fired=probabilities, serious=False,
        finding=("Every output lies in [0, 1] and each row sums to 1: the model seems to return "
                 "probabilities." if probabilities else "The outputs are not probabilities."),
        meaning=("Attacks and their losses expect logits; a softmax inside the model squashes the "
                 "surface the cross-entropy and DLR losses see."),
        advice=("Pass the logits: remove the final softmax for the evaluation."
                if probabilities else "Nothing to do."), n=ev.n))
    zero = (ev.ce_norms == 0) if ev.ce_norms is not None else torch.ones(ev.n, dtype=torch.bool)
    checks.append(_indicator(
        "aa_zero_gradients", "Zero gradients", AUTOATTACK, zero, fired=zero.any(), serious=False,
        finding=f"{int(zero.sum())} of {ev.n} points (clean inputs) have a zero gradient.",
        meaning="Gradient-based attacks cannot start from a point with zero gradient.",
        advice="See Unavailable gradients." if zero.any() else "Nothing to do.", n=ev.n))
    checks.append(_square_check(ev))
    dynamic = torch.full((ev.n,), ev.autograd_calls > 0, dtype=torch.bool)
    checks.append(_indicator(
        "aa_dynamic", "Dynamic defence", AUTOATTACK, dynamic, fired=ev.autograd_calls > 0,
        serious=False,
        finding=(f"One forward pass called autograd's grad/backward {ev.autograd_calls} times."
                 if ev.autograd_calls else "The forward pass does not call autograd."),
        meaning=("A model that runs its own optimisation at inference time (test-time "
                 "adaptation, purification) is not a fixed function; fixed-model attacks may not "
                 "apply."),
        advice=("Design an adaptive attack against the whole procedure."
                if ev.autograd_calls else "Nothing to do."), n=ev.n))
    few = ev.n_classes < 4
    checks.append(_indicator(
        "aa_classes", "Too few classes for targeted DLR", AUTOATTACK,
        torch.full((ev.n,), few, dtype=torch.bool), fired=few, serious=False,
        finding=(f"The model has {ev.n_classes} classes; AutoAttack's parts run: "
                 f"{', '.join(ev.autoattack_parts)}."),
        meaning="The DLR loss needs 3 classes, its targeted version 4.",
        advice="The battery left those parts out." if few else "Nothing to do.", n=ev.n))
    return checks


def _square_check(ev: Evidence) -> Indicator:
    meaning = ("A black-box attack that beats the white-box ones means their gradients mislead "
               "(AutoAttack warns when Square lowers its accuracy by more than 0.2 %).")
    if ev.has_row("square"):  # the quick battery: Square on what every white-box attack left
        missed = ev.clean & ev.white_box_standing
        trip = missed & ev.broken_by("square")
        against = "every white-box attack"
    elif ev.has_row("autoattack") and ev.report.row("autoattack").notes:
        # all of AutoAttack: its Square ran on what its white-box parts left
        notes = ev.report.row("autoattack").notes
        earlier = ev.broken_by(ev.report.single_step) | ev.broken_by(ev.main) | ev.broken_by(f"{ev.main}_margin")
        missed = ev.clean & ~earlier & torch.tensor(
            [n is None or n == "square" for n in notes], device=ev.clean.device)
        trip = missed & torch.tensor([n == "square" for n in notes], device=ev.clean.device)
        against = "FGSM, both PGD-k and AutoAttack's white-box parts"
    else:
        return _skipped("aa_square", "Square beats white-box", AUTOATTACK, ev,
                        "Square did not run", meaning=meaning)
    # AutoAttack's own, stricter threshold (its check, not the checklist's symptom)
    _, fired = symptoms.beats_white_box_symptom(missed, trip, SQUARE_ALPHA)
    return _indicator(
        "aa_square", "Square beats white-box", AUTOATTACK, trip, fired=fired, serious=fired,
        finding=(f"Square breaks {int(trip.sum())} of the {int(missed.sum())} examples {against} "
                 f"failed on ({ev.points(trip.sum())})."),
        meaning=meaning,
        advice=(f"Report the worst case ({ev.worst}); run Square with more queries and restarts, "
                f"or an adaptive attack." if fired else "Nothing to do."), n=ev.n)
