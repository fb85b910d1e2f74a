"""The four classic symptoms of gradient masking (Athalye et al., 2018; Carlini et al., 2019, §5),
computed from one robustness report and an ε sweep; nothing is asserted."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lsnotes.checks import flag, number_in, positive_int
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

    (a) single-step beats iterative: FGSM accuracy below PGD-20 accuracy (by > ``tolerance``);
    (b) accuracy does not reach ~0 (≤ ``near_zero``) at ``large_eps`` under PGD-20, or rises with ε;
    (c) transfer from ``source_model`` or black-box Square beats white-box PGD-20 / PGD-CW;
    (d) robust accuracy rises with more PGD steps (PGD-40 vs PGD-10), or falls by more than
        ``tolerance`` with ``restarts`` restarts or a 4× larger step (vs PGD-20), or ODI (vs PGD-CW).
    Each symptom names the numbers that triggered it; ``verdict`` summarises.
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

    def acc(name, at_eps=eps, **overrides):
        x_adv = _attack_batched(name, model, x, y, at_eps, seed=seed, batch_size=batch_size,
                                overrides=overrides, progress=progress)
        return _correct(model, x_adv, y, batch_size, clean).float().mean().item()

    accs = {"clean": clean.float().mean().item(),
            "fgsm": acc("fgsm"), "pgd10": acc("pgd10"), "pgd20": acc("pgd20"),
            "pgd40": acc("pgd40"), "pgd_cw": acc("pgd_cw"),
            f"pgd20 x{restarts} restarts": acc("pgd20", restarts=restarts),
            "pgd20 step x4": acc("pgd20", step_size=4 * 2 * eps / 20),
            "odi": acc("odi")}
    symptoms = []
    white_box = min(accs["pgd20"], accs["pgd_cw"])

    fired = accs["fgsm"] < accs["pgd20"] - tolerance
    symptoms.append(Symptom("single-step stronger than iterative", fired,
                            f"FGSM accuracy {accs['fgsm']:.3f} < PGD-20 {accs['pgd20']:.3f}",
                            {"fgsm": accs["fgsm"], "pgd20": accs["pgd20"]}))

    grid = [eps + (large_eps - eps) * i / (sweep_points - 1) for i in range(sweep_points)]
    sweep = {e: (accs["pgd20"] if i == 0 else acc("pgd20", at_eps=e)) for i, e in enumerate(grid)}
    values = list(sweep.values())
    rises = any(b > a + tolerance for a, b in zip(values, values[1:]))
    fired = values[-1] > near_zero or rises
    symptoms.append(Symptom("accuracy does not fall to zero as ε grows", fired,
                            f"PGD-20 accuracy {values[-1]:.3f} at ε = {large_eps:g}"
                            + (" and rising somewhere in the sweep" if rises else ""),
                            {f"eps={e:g}": a for e, a in sweep.items()}))

    other = {}
    if source_model is not None:
        x_adv = _attack_batched("pgd20", source_model, x, y, eps, seed=seed,
                                batch_size=batch_size, overrides={}, progress=progress)
        other["transfer"] = accs["transfer"] = _correct(model, x_adv, y, batch_size, clean).float().mean().item()
    if black_box:
        other["square"] = accs["square"] = acc("square", n_queries=square_queries)
    if other:
        best_name = min(other, key=other.get)
        fired = other[best_name] < white_box - tolerance
        symptoms.append(Symptom("black-box or transfer stronger than white-box", fired,
                                f"{best_name} accuracy {other[best_name]:.3f} < white-box "
                                f"{white_box:.3f}", {**other, "white_box": white_box}))

    # each variant against the plain run with the same loss (ODI uses the margin loss)
    drops = {f"pgd20 x{restarts} restarts": accs["pgd20"] - accs[f"pgd20 x{restarts} restarts"],
             "pgd20 step x4": accs["pgd20"] - accs["pgd20 step x4"],
             "odi": accs["pgd_cw"] - accs["odi"]}
    baseline = {f"pgd20 x{restarts} restarts": "pgd20", "pgd20 step x4": "pgd20", "odi": "pgd_cw"}
    more_steps = accs["pgd40"] - accs["pgd10"]
    worst = max(drops, key=drops.get)
    fired_steps = more_steps > tolerance
    fired_drop = drops[worst] > tolerance
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
    return MaskingDiagnostics(symptoms, accs, sweep)
