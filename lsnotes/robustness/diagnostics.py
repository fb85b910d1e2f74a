"""The four classic symptoms of gradient masking (Athalye et al., 2018; Carlini et al., 2019, §5),
computed from one set of attacks and an ε sweep; nothing is asserted.

A thin view on the audit's engine: this module only measures (which example each attack left
correct); every verdict is decided by the functions the audit's indicators use
(:mod:`lsnotes.robustness.symptoms`), so the two never disagree on the same measurements.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lsnotes.checks import flag, number_in, positive_int
from lsnotes.robustness import symptoms as shared
from lsnotes.robustness.evaluate import _attack_batched, _check_run, _correct


@dataclass(frozen=True)
class Symptom:
    """One check from Carlini et al. (2019) §5: what was compared and whether it fired."""

    name: str
    triggered: bool
    detail: str
    numbers: dict


@dataclass
class MaskingDiagnostics:
    symptoms: list[Symptom]
    accuracies: dict[str, float]
    eps_sweep: dict[float, float]

    @property
    def triggered(self) -> list[Symptom]:
        return [s for s in self.symptoms if s.triggered]

    @property
    def verdict(self) -> str:
        if not self.triggered:
            return "no masking symptoms found"
        return "gradient-masking symptoms: " + "; ".join(s.detail for s in self.triggered)

    def table(self) -> str:
        lines = ["| check | fired | numbers |", "|---|---|---|"]
        for s in self.symptoms:
            numbers = ", ".join(f"{k} = {v:.3f}" for k, v in s.numbers.items())
            lines.append(f"| {s.name} | {'yes' if s.triggered else 'no'} | {numbers} |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "accuracies": self.accuracies,
                "eps_sweep": {f"{k:g}": v for k, v in self.eps_sweep.items()},
                "symptoms": [dataclasses.asdict(s) for s in self.symptoms]}


def gradient_masking_diagnostics(model, x, y, eps, *, source_model=None, large_eps: float = 0.5,
                                 sweep_points: int = 5, black_box: bool = True,
                                 square_queries: int = 1000, restarts: int = 5,
                                 tolerance: float = 0.02, near_zero: float = 0.05,
                                 seed: int = 0, batch_size: int = 256,
                                 progress: bool = False) -> MaskingDiagnostics:
    """Compute the four classic symptoms of gradient masking; nothing is asserted.

    (a) single-step beats iterative: FGSM breaks more than ``tolerance``·n examples more than
        PGD-20 does, counting those only FGSM breaks against those only PGD-20 breaks (the
        audit's *single-step beats iterative*);
    (b) accuracy does not reach ~0 (≤ ``near_zero``) at ``large_eps`` under PGD-20, or rises with
        ε (the audit's *unconstrained-attack failure*, there at an ε that allows any image);
    (c) transfer from ``source_model`` or black-box Square breaks more than ``tolerance``·n of the
        examples both PGD-20 and PGD-CW failed on (the audit's *transfer failure*);
    (d) robust accuracy rises with more PGD steps (PGD-40 vs PGD-10), or falls by more than
        ``tolerance`` with ``restarts`` restarts or a 4× larger step (vs PGD-20), or ODI (vs PGD-CW)
        (the audit's *stronger attacks beat PGD*).
    Each symptom names the numbers that triggered it; ``verdict`` summarises. The verdicts come
    from :func:`masking_symptoms`, which the audit's indicators share.
    """
    # every argument is checked here, before the first of many attacks runs
    eps = number_in("eps", eps, 0, 1, low_open=True)
    large_eps = number_in("large_eps", large_eps, eps, 1, low_open=True)
    sweep_points = positive_int("sweep_points", sweep_points, 2)
    black_box = flag("black_box", black_box)
    square_queries = positive_int("square_queries", square_queries)
    restarts = positive_int("restarts", restarts, 2)
    tolerance = number_in("tolerance", tolerance, 0, 1)
    near_zero = number_in("near_zero", near_zero, 0, 1)
    y, seed, batch_size = _check_run(model, source_model, x, y, seed, batch_size, progress)

    clean = _correct(model, x, y, batch_size)

    def correct(name, at_eps=eps, attacked=model, **overrides):
        x_adv = _attack_batched(name, attacked, x, y, at_eps, seed=seed, batch_size=batch_size,
                                overrides=overrides, progress=progress)
        return _correct(model, x_adv, y, batch_size, clean)

    measured = {"clean": clean, "fgsm": correct("fgsm"), "pgd10": correct("pgd10"),
                "pgd20": correct("pgd20"), "pgd40": correct("pgd40"), "pgd_cw": correct("pgd_cw"),
                f"pgd20 x{restarts} restarts": correct("pgd20", restarts=restarts),
                "pgd20 step x4": correct("pgd20", step_size=4 * 2 * eps / 20),
                "odi": correct("odi")}
    grid = [eps + (large_eps - eps) * i / (sweep_points - 1) for i in range(sweep_points)]
    sweep = {grid[0]: measured["pgd20"]}
    sweep.update({e: correct("pgd20", at_eps=e) for e in grid[1:]})
    if source_model is not None:
        measured["transfer"] = correct("pgd20", attacked=source_model)
    if black_box:
        measured["square"] = correct("square", n_queries=square_queries)
    symptoms = masking_symptoms(measured, sweep, restarts=restarts, tolerance=tolerance,
                                near_zero=near_zero)
    return MaskingDiagnostics(symptoms, _accuracies(measured), _accuracies(sweep))


def _accuracies(correct: dict) -> dict:
    return {k: v.float().mean().item() for k, v in correct.items()}


def masking_symptoms(correct: dict, sweep: dict, *, restarts: int, tolerance: float = 0.02,
                     near_zero: float = 0.05) -> list[Symptom]:
    """The four symptoms from per-example results, decided by the audit's shared functions.

    ``correct`` maps ``"clean"``, ``"fgsm"``, ``"pgd10"``, ``"pgd20"``, ``"pgd40"``, ``"pgd_cw"``,
    ``"pgd20 x{restarts} restarts"``, ``"pgd20 step x4"``, ``"odi"`` and optionally
    ``"transfer"`` and ``"square"`` to a boolean tensor per example (correct on the clean input
    and after that attack); ``sweep`` maps each ε of the sweep, in increasing order, to the same
    for PGD-20 at that ε.
    """
    clean = correct["clean"]
    accs = _accuracies(correct)
    broken = {name: clean & ~c for name, c in correct.items() if name != "clean"}
    symptoms = []

    trip, fired = shared.single_step_symptom(clean, broken["fgsm"], broken["pgd20"], tolerance)
    symptoms.append(Symptom("single-step stronger than iterative", fired,
                            f"FGSM breaks {int(trip.sum())} examples PGD-20 does not (accuracy "
                            f"{accs['fgsm']:.3f} under FGSM, {accs['pgd20']:.3f} under PGD-20)",
                            {"fgsm": accs["fgsm"], "pgd20": accs["pgd20"],
                             "fgsm_only": trip.float().mean().item()}))

    large_eps = max(sweep)
    sweep_accs = _accuracies(sweep)
    rises = shared.accuracy_rises([sweep_accs[e] for e in sorted(sweep)], tolerance)
    _, at_large = shared.large_eps_symptom(clean, sweep[large_eps], near_zero)
    symptoms.append(Symptom("accuracy does not fall to zero as ε grows", at_large or rises,
                            f"PGD-20 accuracy {sweep_accs[large_eps]:.3f} at ε = {large_eps:g}"
                            + (" and rising somewhere in the sweep" if rises else ""),
                            {f"eps={e:g}": a for e, a in sweep_accs.items()}))

    white_box_standing = correct["pgd20"] & correct["pgd_cw"]
    white_box = white_box_standing.float().mean().item()
    others = {name: shared.beats_white_box_symptom(white_box_standing, broken[name], tolerance)
              for name in ("transfer", "square") if name in correct}
    if others:
        best = max(others, key=lambda name: int(others[name][0].sum()))
        trip, _ = others[best]
        symptoms.append(Symptom("black-box or transfer stronger than white-box",
                                any(fired for _, fired in others.values()),
                                f"{best} breaks {int(trip.sum())} examples PGD-20 and PGD-CW both "
                                f"fail on ({best} accuracy {accs[best]:.3f}, white-box "
                                f"{white_box:.3f})",
                                {**{name: accs[name] for name in others},
                                 "white_box": white_box}))

    # each variant against the plain run with the same loss (ODI uses the margin loss)
    restart_row = f"pgd20 x{restarts} restarts"
    baseline = {restart_row: "pgd20", "pgd20 step x4": "pgd20", "odi": "pgd_cw"}
    drops = {name: shared.overestimate_symptom(accs[base], accs[name], tolerance)
             for name, base in baseline.items()}
    _, fired_steps = shared.overestimate_symptom(accs["pgd40"], accs["pgd10"], tolerance)
    worst = max(drops, key=lambda name: drops[name][0])
    fired_drop = drops[worst][1]
    detail = []
    if fired_steps:
        detail.append(f"PGD-40 accuracy {accs['pgd40']:.3f} > PGD-10 {accs['pgd10']:.3f}")
    if fired_drop:
        detail.append(f"{worst} lowers {baseline[worst]} accuracy from "
                      f"{accs[baseline[worst]]:.3f} to {accs[worst]:.3f}")
    symptoms.append(Symptom("PGD sensitive to steps, restarts, step size or ODI",
                            fired_steps or fired_drop, " and ".join(detail) or "no change",
                            {"pgd10": accs["pgd10"], "pgd40": accs["pgd40"], "pgd20": accs["pgd20"],
                             "pgd_cw": accs["pgd_cw"], **{k: accs[k] for k in drops}}))
    return symptoms
