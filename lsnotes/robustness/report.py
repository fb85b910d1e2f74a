"""The result of :func:`lsnotes.robustness.audit`: per-attack, per-example results, indicators and
verdicts, as RobustBench-shaped JSON (:meth:`AuditReport.to_dict`) or an HTML page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from lsnotes.robustness.evaluate import library_versions, model_info, percent_string, save_json

SERIOUS_WHEN = {
    "unavailable_gradients": "it trips on an example the worst case still counts as robust",
    "unstable_predictions": "it fires: attacks on a random model see only an estimate of its "
                            "gradient, so the worst case is an upper bound",
    "silent_success": "never here: this audit keeps each example's best iterate",
    "incomplete_optimisation": "it trips, with the longer restart run still climbing too, on "
                               "more examples the worst case still counts as robust than the "
                               "noise floor (tolerance·n)",
    "transfer_failure": "it fires: the model's own gradients hide adversarial examples",
    "unconstrained_failure": "it fires: the attack, not the model, fails",
    "single_step_beats_iterative": "it fires (the single step breaks more examples than the "
                                   "iterative attack, by more than the noise floor): the "
                                   "iterative attack is stuck",
    "stronger_attacks_beat_pgd": "never: the worst case already counts what they found",
}


@dataclass
class AttackRow:
    """One attack of the battery: per example, is the model still correct afterwards?

    ``correct[i]`` is None where the attack did not run on example i: it was already misclassified
    (``scope == "all"``) or already broken by an earlier attack (``scope == "survivors"``).
    """

    name: str
    description: str
    scope: str
    correct: list
    seconds: float
    error: str | None = None
    notes: list | None = None    # per example, e.g. which part of AutoAttack broke it
    nonfinite_gradients: int = 0  # warnings that examples met nan/inf gradients (no move made)

    @property
    def status(self) -> str:
        """``"failed"`` (it raised: ``error`` says why), ``"ran on survivors"`` (no accuracy of
        its own: it only attacked what earlier attacks left) or ``"ran"``."""
        if self.error:
            return "failed"
        return "ran on survivors" if self.scope != "all" else "ran"

    def accuracy(self, clean_correct) -> float | None:
        """Accuracy under this attack alone; None for attacks run only on survivors."""
        if self.scope != "all" or self.error:
            return None
        return sum(bool(c) and (r is not False) for c, r in zip(clean_correct, self.correct)) \
            / len(clean_correct)


@dataclass
class Indicator:
    """One indicator or check: how many examples trip it, what that means, what to do."""

    key: str
    title: str
    source: str
    count: int
    n: int
    fired: bool
    serious: bool
    finding: str
    meaning: str
    advice: str
    per_example: list | None = None
    numbers: dict = field(default_factory=dict)
    skipped: str | None = None

    @property
    def status(self) -> str:
        if self.skipped:
            return "skipped"
        return "serious" if self.serious else "warning" if self.fired else "ok"


@dataclass
class AuditReport:
    """Everything :func:`audit` measured; :meth:`to_dict` is RobustBench's ``model_info`` plus
    the audit under ``extra["audit"]``."""

    model_name: str
    architecture: str
    dataset: str
    eps: float
    norm: str
    battery: Battery
    seed: int
    device: str
    labels: list
    clean_correct: list
    rows: list
    eps_sweep: dict
    unconstrained_eps: float
    indicators: list
    autoattack_checks: list
    transfer_source: str | None
    seconds: float
    main_attack: str
    single_step: str = "fgsm"        # the single-step row: FGSM (L∞) or FGM (L2)
    escalation_note: str | None = None  # the BPDA view found no gradient: what to do
    forward_passes: int = 1          # per prediction: > 1 for a random model scored by EOT
    gradient_draws: int = 1          # per attack gradient: > 1 for a random model (EOT)

    @property
    def randomised(self) -> bool:
        return self.forward_passes > 1

    @property
    def n_examples(self) -> int:
        return len(self.clean_correct)

    @property
    def clean_acc(self) -> float:
        return sum(self.clean_correct) / self.n_examples

    def row(self, name: str) -> AttackRow:
        return next(r for r in self.rows if r.name == name)

    def accuracy(self, name: str) -> float | None:
        return self.row(name).accuracy(self.clean_correct)

    @property
    def autoattack_acc(self) -> float | None:
        """Accuracy under all of AutoAttack where the battery ran it on every example, else None."""
        row = next((r for r in self.rows if r.name == "autoattack" and not r.error), None)
        return row.accuracy(self.clean_correct) if row is not None else None

    @property
    def autoattack_note(self) -> str | None:
        """Why ``autoattack_acc`` is null, and which of AutoAttack's attacks ran instead."""
        if self.autoattack_acc is not None:
            return None
        parts = [r.name for r in self.rows if r.name in ("apgd_ce", "apgd_t", "apgd_dlr",
                                                         "square") and not r.error]
        return (f"null: this battery ran only part of AutoAttack ({', '.join(parts) or 'none'}), "
                f"and only on the examples earlier attacks left standing, so there is no "
                f"accuracy under AutoAttack alone; worst_case_acc counts what they found")

    @property
    def worst_case_correct(self) -> list:
        """Correct on the clean input and under every attack that ran on it; for a random model,
        correct on the clean input and on its strongest adversarial example rescored with fresh
        draws (the ``eot_rescored`` row)."""
        rows = [r for r in self.rows if r.name == "eot_rescored"] or self.rows
        return [bool(c) and all(r.correct[i] is not False for r in rows)
                for i, c in enumerate(self.clean_correct)]

    @property
    def robust_acc(self) -> float:
        """The per-example worst case over every attack at ε: the number to report."""
        return sum(self.worst_case_correct) / self.n_examples

    def newly_broken(self) -> dict:
        """Per row, the examples it broke that no earlier row did (the cascade's attribution)."""
        standing = list(self.clean_correct)
        counts = {}
        for r in self.rows:
            broken = [i for i, s in enumerate(standing) if s and r.correct[i] is False]
            counts[r.name] = len(broken)
            for i in broken:
                standing[i] = False
        return counts

    def indicator(self, key: str) -> Indicator:
        return next(i for i in self.indicators + self.autoattack_checks if i.key == key)

    @property
    def serious(self) -> list:
        return [i for i in self.indicators + self.autoattack_checks if i.serious]

    @property
    def headline(self) -> str:
        """The number to report, worded as an upper bound while a serious indicator stands."""
        worst = f"{100 * self.robust_acc:.1f} %"
        if self.serious:
            return f"robust accuracy at most {worst} (an upper bound while serious indicators stand)"
        return f"robust accuracy {worst}"

    @property
    def verdict(self) -> str:
        n_attacks = sum(1 for r in self.rows if not r.error)
        worst = f"{100 * self.robust_acc:.1f} %"
        if self.randomised:
            others = "; ".join(i.title for i in self.serious if i.key != "unstable_predictions")
            return (f"The model is random: its outputs change between calls on the same input. "
                    f"{self.eot_rule} Robust accuracy is at most {worst} (per-example worst case "
                    f"over {n_attacks} attacks) and may be lower: an attack averaging more draws "
                    f"per step, or running longer, may break examples these did not; noise alone "
                    f"does not lower this number."
                    + (f" Other serious indicators: {others}." if others else ""))
        if self.serious:
            titles = "; ".join(i.title for i in self.serious)
            return (f"Do not trust a single attack's number here. Robust accuracy is at most "
                    f"{worst} (per-example worst case over {n_attacks} attacks) and may be lower: "
                    f"serious indicators of attack failure: {titles}."
                    + (f" {self.escalation_note}" if self.escalation_note else ""))
        warned = [i.title for i in self.indicators + self.autoattack_checks if i.fired]
        return (f"No serious indicator of attack failure. Robust accuracy {worst} (per-example "
                f"worst case over {n_attacks} attacks) is this battery's best estimate: an upper "
                f"bound, not a certificate." + (f" Warnings: {'; '.join(warned)}." if warned else ""))

    @property
    def eot_rule(self) -> str:
        """How a random model's examples are scored and attacked (empty for a deterministic one)."""
        if not self.randomised:
            return ""
        return (f"Every accuracy is scored by expectation over the randomness: an example counts "
                f"as correct (clean, or under an attack's final example) only if the class with "
                f"the highest probability averaged over {self.forward_passes} fresh forward "
                f"passes is its label; the attacks followed gradients averaged over "
                f"{self.gradient_draws} passes (EOT).")

    @property
    def verdicts(self) -> list:
        """The verdict, then what to do about each fired indicator, with its numbers."""
        lines = [self.verdict]
        for ind in self.indicators + self.autoattack_checks:
            if ind.fired:
                lines.append(f"{ind.title}: {ind.finding} What to do: {ind.advice}")
        return lines

    def table(self) -> list:
        """One dict per row: attack, scope, accuracy alone, newly broken, worst case so far."""
        new = self.newly_broken()
        standing = list(self.clean_correct)
        # the clean row breaks nothing: the misclassified are counted apart, not as "broken"
        rows = [{"attack": "clean", "description": "no attack", "scope": "all",
                 "accuracy": self.clean_acc, "newly_broken": None,
                 "misclassified": self.n_examples - sum(standing),
                 "worst_case_after": self.clean_acc, "seconds": 0.0, "error": None}]
        for r in self.rows:
            standing = [s and r.correct[i] is not False for i, s in enumerate(standing)]
            after = sum(standing) / self.n_examples
            if r.name == "eot_rescored":  # replaces the per-draw cascade above it
                after = self.robust_acc
            rows.append({"attack": r.name, "description": r.description, "scope": r.scope,
                         "accuracy": r.accuracy(self.clean_correct), "newly_broken": new[r.name],
                         "worst_case_after": after,
                         "seconds": round(r.seconds, 3), "error": r.error, "status": r.status,
                         "nonfinite_gradients": r.nonfinite_gradients})
        return rows

    def text_table(self) -> str:
        lines = [f"{self.model_name}: {self.dataset}, {self.norm} ε = {self.eps:g}, "
                 f"{self.n_examples} examples, {self.battery.name} battery",
                 f"{'attack':<34} {'scope':<9} {'acc %':>6} {'new':>4} {'worst %':>7} {'s':>6}"]
        for r in self.table():
            acc = "—" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}"
            new = "—" if r["newly_broken"] is None else r["newly_broken"]
            lines.append(f"{r['attack'][:34]:<34} {r['scope']:<9} {acc:>6} {new:>4} "
                         f"{100 * r['worst_case_after']:>7.1f} {r['seconds']:>6.1f}"
                         + (f"  (failed: {r['error']})" if r["error"] else ""))
        lines.append(f"clean accuracy {100 * self.clean_acc:.1f} %; {self.headline}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def indicator_dict(ind):
            out = asdict(ind)
            out["status"] = ind.status
            return out

        info = model_info(
            name=self.model_name, architecture=self.architecture, dataset=self.dataset,
            norm=self.norm, eps=self.eps, clean_acc=self.clean_acc,
            autoattack_acc=self.autoattack_acc,
            extra={
                "attacks": {r.name: percent_string(r.accuracy(self.clean_correct))
                            for r in self.rows},
                # null above means either; this says which: "ran", "ran on survivors", "failed"
                "attack_status": {r.name: r.status for r in self.rows},
                "attack_errors": {r.name: r.error for r in self.rows if r.error},
                "worst_case_acc": percent_string(self.robust_acc),
                "seconds": {r.name: round(r.seconds, 3) for r in self.rows},
                "n_examples": self.n_examples,
                "seed": self.seed,
                "device": self.device,
                "versions": library_versions(),
                "per_example": {"label": self.labels, "clean": self.clean_correct,
                                **{r.name: r.correct for r in self.rows},
                                "worst_case": self.worst_case_correct},
                "audit": {
                    "verdict": self.verdict,
                    "headline": self.headline,
                    "verdicts": self.verdicts,
                    "serious": [i.key for i in self.serious],
                    "battery": asdict(self.battery),
                    "main_attack": self.main_attack,
                    "table": self.table(),
                    "notes": {r.name: r.notes for r in self.rows if r.notes},
                    "eps_sweep": {f"{e:g}": a for e, a in self.eps_sweep.items()},
                    "unconstrained_eps": self.unconstrained_eps,
                    "transfer_source": self.transfer_source,
                    "indicators": [indicator_dict(i) for i in self.indicators],
                    "autoattack_checks": [indicator_dict(i) for i in self.autoattack_checks],
                    "serious_when": SERIOUS_WHEN,
                    "seconds_total": round(self.seconds, 3),
                    "eot_rule": self.eot_rule or None,
                    "autoattack_acc_note": self.autoattack_note,
                    "escalation_note": self.escalation_note,
                    "gradient_draws": self.gradient_draws,
                },
            })
        info["number_forward_passes"] = self.forward_passes  # RobustBench: passes per prediction
        return info

    def save_json(self, path) -> Path:
        """Write :meth:`to_dict` as JSON (atomically: a reader never sees half a report)."""
        return save_json(self.to_dict(), path)




