"""One engine: the chapters' gradient-masking diagnostics and the audit's indicators reach the same
verdict on the same measurements, because both call the functions in
:mod:`lsnotes.robustness.symptoms` that decide each shared symptom."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from fuzzing import examples
from lsnotes.robustness import indicators, symptoms
from lsnotes.robustness.checklist import Battery
from lsnotes.robustness.diagnostics import masking_symptoms
from lsnotes.robustness.report import AttackRow, AuditReport

SINGLE = "single-step stronger than iterative"
LARGE = "accuracy does not fall to zero as ε grows"
TRANSFER = "black-box or transfer stronger than white-box"
SENSITIVE = "PGD sensitive to steps, restarts, step size or ODI"


def row(name, correct, clean):
    """An attack run on every example, as the audit records it (None: misclassified already)."""
    return AttackRow(name, name, "all", [bool(r) if c else None for c, r in zip(clean, correct)],
                     0.0)


def both_paths(clean, fgsm, pgd20, pgd_cw, transfer, at_large, tolerance):
    """The same per-example results (correct after each attack) through the diagnostics and
    through the audit's indicators; returns ({symptom: fired}, {symptom: fired})."""
    clean = clean.clone()
    fgsm, pgd20, pgd_cw, transfer, at_large = (m & clean for m in (fgsm, pgd20, pgd_cw, transfer,
                                                                    at_large))
    n = len(clean)
    rows = [row(name, mask.tolist(), clean.tolist()) for name, mask in
            (("fgsm", fgsm), ("pgd20", pgd20), ("pgd_cw", pgd_cw), ("transfer", transfer))]
    report = AuditReport(
        model_name="m", architecture="a", dataset="d", eps=0.1, norm="linf",
        battery=Battery("test"), seed=0, device="cpu", labels=[0] * n,
        clean_correct=clean.tolist(), rows=rows, eps_sweep={}, unconstrained_eps=1.0,
        indicators=[], autoattack_checks=[], transfer_source="source", seconds=0.0,
        main_attack="pgd20", single_step="fgsm")
    worst = torch.tensor(report.worst_case_correct)
    evidence = indicators.Evidence(
        report=report, traces={}, ce_norms=torch.ones(n), cut=None, margin_norms=torch.ones(n),
        spread=torch.zeros(n), flips=torch.zeros(n, dtype=torch.bool), repeats=2,
        outputs=torch.zeros(n, 10), autograd_calls=0,
        unconstrained=row("pgd20@big", at_large.tolist(), clean.tolist()),
        white_box_standing=clean & pgd20 & pgd_cw, n_classes=10, autoattack_parts=[],
        tolerance=tolerance, masking_gap=0.1, transfer_skipped=None, restart_row="pgd20_restarts")
    audit = {SINGLE: indicators.single_step_beats_iterative(evidence).fired,
             LARGE: indicators.unconstrained_failure(evidence).fired,
             TRANSFER: indicators.transfer_failure(evidence).fired,
             SENSITIVE: indicators.stronger_attacks_beat_pgd(evidence).fired}
    # the diagnostics' stronger runs: restarts that find what the audit's worst case found,
    # nothing else (PGD-40 = PGD-10, the larger step = PGD-20, ODI = PGD-CW)
    measured = {"clean": clean, "fgsm": fgsm, "pgd10": pgd20, "pgd20": pgd20, "pgd40": pgd20,
                "pgd_cw": pgd_cw, "pgd20 x2 restarts": worst, "pgd20 step x4": pgd20,
                "odi": pgd_cw, "transfer": transfer}
    # the audit's ε is unconstrained: success is guaranteed there, so near zero means zero
    symptoms = masking_symptoms(measured, {1.0: at_large}, restarts=2, tolerance=tolerance,
                                near_zero=0.0)
    return {s.name: s.triggered for s in symptoms}, audit


masks = st.integers(2, 40).flatmap(lambda n: st.lists(
    st.lists(st.booleans(), min_size=n, max_size=n), min_size=6, max_size=6))


@settings(max_examples=examples(60), deadline=None)
@given(masks=masks, tolerance=st.sampled_from([0.0, 0.02, 0.1, 0.3]))
def test_diagnostics_and_audit_agree_on_the_same_measurements(masks, tolerance):
    diagnosed, audited = both_paths(*(torch.tensor(m) for m in masks), tolerance)
    assert diagnosed == audited


def test_the_agreement_test_sees_each_symptom_fire():
    """Hand-made measurements on which each shared symptom fires in both paths (so the property
    above compares verdicts that can differ, not two constant False)."""
    n = 10
    every = torch.ones(n, dtype=torch.bool)
    half = torch.arange(n) < 5
    diagnosed, audited = both_paths(clean=every, fgsm=half, pgd20=every, pgd_cw=every,
                                    transfer=half, at_large=half, tolerance=0.02)
    assert diagnosed == audited == dict.fromkeys((SINGLE, LARGE, TRANSFER, SENSITIVE), True)
    diagnosed, audited = both_paths(every, every, every, every, every, ~every, 0.02)
    assert diagnosed == audited == dict.fromkeys((SINGLE, LARGE, TRANSFER, SENSITIVE), False)


@pytest.mark.parametrize("shared, symptom", [
    ("single_step_symptom", SINGLE), ("large_eps_symptom", LARGE),
    ("beats_white_box_symptom", TRANSFER), ("overestimate_symptom", SENSITIVE)])
def test_both_paths_decide_through_the_one_shared_function(shared, symptom, monkeypatch):
    """Replace one shared decision by one that always fires: if either path had a copy of its
    own, the two would now disagree."""
    original = getattr(symptoms, shared)

    def always(*args):
        measured, _ = original(*args)
        return measured, True

    monkeypatch.setattr(symptoms, shared, always)
    n = 8
    every = torch.ones(n, dtype=torch.bool)
    diagnosed, audited = both_paths(every, every, every, every, every, ~every, 0.02)
    assert diagnosed[symptom] and audited[symptom]
    assert diagnosed == audited
