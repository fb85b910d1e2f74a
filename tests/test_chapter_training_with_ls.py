"""The helpers of book/training_with_ls.md (lsnotes.chapters.training_with_ls and ..._margins):
each on tiny inputs, each claim with inputs for which it must fail."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from matplotlib.figure import Figure

from lsnotes import papers
from lsnotes.chapters import training_with_ls as ch
from lsnotes.chapters import training_with_ls_margins as ch2
from lsnotes.present import ClaimFailed, Table
from lsnotes.zoo import book

GRID = (0.1, 0.5, 0.9)
METHODS = ("szegedy", "sls", "als", "bls", "sbls")
K = 10


def result(seconds=(1.0, 2.0), from_cache=True, key=""):
    return SimpleNamespace(history=[{"seconds": s} for s in seconds], from_cache=from_cache,
                           key=key, model=None)


def healthy_accuracy():
    """Accuracies shaped like the quick run: labels against y collapse, the rest stay near CE."""
    acc = {ch.CE_KEY: 0.80}
    for m in METHODS:
        for a in GRID:
            acc[m, a, 1.0] = 0.79
    acc["sls", 0.9, 1.0] = acc["als", 0.9, 1.0] = acc["sbls", 0.9, 1.0] = 0.1
    acc["sbls", 0.5, 1.0] = 0.2
    acc["als", 0.5, 1.0] = 0.75
    for t in (0.1, 10.0):
        acc["bls", 0.5, t] = 0.79
    return acc


def favouring(keys):
    def favours(method, alpha):
        if method == "szegedy":
            return True
        if method == "sls":
            return 1 - alpha > alpha / (K - 1)
        return 1 - alpha > alpha
    return [k for k in keys if k != ch.CE_KEY and favours(*k[:2])]


# ----------------------------------------------------------------------------- keys and labels

def test_keyed_reads_the_declaration_and_refuses_a_mismatch():
    configs = book.chapter_models("training_with_ls", "quick", device="cpu")["quick"]
    trained = {name: result(key=c.key()) for name, c in configs.items()}
    with pytest.raises(ValueError, match="adversarially trained"):
        ch.keyed(trained, configs)  # FGSM-AT would overwrite CE
    del configs["FGSM-AT"], trained["FGSM-AT"]
    models = ch.keyed(trained, configs)
    assert list(models)[0] == ch.CE_KEY and ("bls", 0.5, 0.1) in models
    assert len(models) == len(configs)
    wrong = dict(trained)
    first = next(iter(wrong))
    wrong[first] = result(key="another-model")
    with pytest.raises(ValueError, match="trained"):
        ch.keyed(wrong, configs)
    with pytest.raises(ValueError, match="same labels"):
        ch.keyed({first: trained[first]}, configs)


def test_labels_and_recorded_time():
    assert ch.label(ch.CE_KEY) == "CE"
    assert ch.label(("sls", 0.5, 1.0)) == "SLS α=0.5"
    assert ch.label(("bls", 0.5, 10.0)) == "BLS α=0.5, T=10"
    assert ch.recorded_time(result((1.5, 2.5))) == 4.0
    assert "2 trained now" in ch.readiness({1: result(from_cache=False)}, result(from_cache=False))


# ----------------------------------------------------------------------------- clean accuracy

def test_clean_accuracy_claims_hold_on_a_healthy_run_and_fail_on_a_broken_one():
    acc = healthy_accuracy()
    clean = ch.clean_accuracy_claims(acc, favouring(acc), METHODS)
    assert all(clean.claims.claims.values())
    assert str(clean.sbls_tie) == "0.200" and "SLS α=0.9" in clean.against_y
    broken = {**acc, ("szegedy", 0.5, 1.0): 0.5}  # a favouring label that lost 30 points
    with pytest.raises(ClaimFailed, match="within 3 points"):
        ch.clean_accuracy_claims(broken, favouring(broken), METHODS)
    kept = {**acc, ("sbls", 0.5, 1.0): 0.79}  # SBLS's tie no longer collapses
    with pytest.raises(ClaimFailed, match="SBLS"):
        ch.clean_accuracy_claims(kept, favouring(kept), METHODS)
    with pytest.raises(ValueError, match="favours_y"):
        ch.clean_accuracy_claims(acc, [], METHODS)


def test_clean_accuracy_figure_and_table():
    acc = healthy_accuracy()
    assert isinstance(ch.draw_clean_accuracy(acc, METHODS, GRID, 0.7), Figure)
    results = {k: result() for k in acc}
    table = ch.clean_table(acc, results, 0.7, result())
    assert table.rows[-1][0] == "FGSM-AT" and table.align["clean accuracy"] == "right"


# ----------------------------------------------------------------------------- Goibert et al.

def goibert():
    return papers.table("goibert2019", "clean")


def test_goibert_per_setup_finds_the_best_ls_row_and_the_references():
    summary = ch.goibert_per_setup(goibert(), "accuracy")
    assert len(summary) == 5
    for setup, s in summary.items():
        ls = [r["accuracy"] for r in goibert().to_records(parsed=True)
              if r["set-up"] == setup and r["method"] not in ch.REFERENCE_ROWS
              and r["accuracy"] is not None]
        assert float(s["best"]) == max(ls) and s["which"]
        assert s["Normal classifier"] is not None
    with pytest.raises(ValueError, match="column"):
        ch.goibert_per_setup(goibert(), "nonsense")


def lowered(table, method, factor):
    """The table with every ``method`` row's accuracy scaled (a counter-example)."""
    rows = tuple(dataclasses.replace(r, values=tuple(
        f"{float(v) * factor:.4f}" if v is not None and r.key[0] == method else v
        for v in r.values)) for r in table.rows)
    return dataclasses.replace(table, rows=rows)


def test_goibert_findings_hold_on_their_table_and_fail_on_a_changed_one():
    findings = ch.goibert_clean_findings(goibert()).claims
    assert findings.claims[findings.asserted[0]]
    assert "The paper reports" in ch.goibert_clean_findings(goibert()).to_markdown()
    with pytest.raises(ClaimFailed, match="ALS, SLS and BLS"):
        ch.goibert_clean_findings(lowered(goibert(), "BLS", 0.5))


def test_goibert_ours_reports_without_asserting():
    acc = healthy_accuracy()
    block = ch.goibert_clean_ours(acc, METHODS, GRID, 0.9, 500, scale="quick")
    assert block.title == "Our run (quick)"
    ours = block.claims
    assert not ours.asserted
    assert list(ours.claims.values()) == [False, False, False]
    assert ch.best_goibert_model(acc, METHODS, GRID)[0] in ch.GOIBERT_METHODS
    with pytest.raises(ValueError, match="methods"):
        ch.best_goibert_model(acc, ("szegedy",), GRID)
    table = ch.goibert_clean_table(ch.goibert_per_setup(goibert(), "accuracy"), "ours", acc,
                                   ("als", 0.1, 1.0), 0.7)
    assert isinstance(table, Table) and table.align["best LS"] == "right"


# ----------------------------------------------------------------------------- logits and Fu

def summary_like(range_of):
    out = {}
    for key, r in range_of.items():
        out[key] = {"range": r, "mean_gap": r * 0.9, "margin": r * 0.8}
    return out


def squeezed_summary():
    ranges = {ch.CE_KEY: 14.0}
    for m in METHODS:
        for a in GRID:
            m_star = ch.m_star("szegedy", a, K) if m == "szegedy" else 2.0
            ranges[m, a, 1.0] = m_star / 0.9 if m == "szegedy" else m_star
    return summary_like(ranges)


def test_m_star_and_the_logit_table():
    assert ch.m_star("ce", 0.0, K) != ch.m_star("ce", 0.0, K)  # NaN: no closed form
    assert ch.m_star("szegedy", 0.1, K) > ch.m_star("szegedy", 0.9, K) > 0
    table = ch.logit_table(squeezed_summary(), K)
    assert table.rows[0][3] == "—"


def test_squeeze_claims_fail_when_a_model_is_not_squeezed():
    summary = squeezed_summary()
    keys = list(summary)
    assert all(ch.squeeze_claims(summary, favouring(keys), METHODS, GRID, K).claims.claims.values())
    wide = {**summary, ("sls", 0.1, 1.0): {"range": 20.0, "mean_gap": 1, "margin": 1}}
    with pytest.raises(ClaimFailed, match="smaller median logit range"):
        ch.squeeze_claims(wide, favouring(keys), METHODS, GRID, K)


def fu():
    return papers.table("fu2020", "table2")


def test_fu_findings_hold_on_their_table_and_fail_on_a_changed_one():
    findings = ch.fu_table2_findings(fu(), K)
    assert all(findings.claims.claims.values()) and str(findings.ce_width) == "20.0"
    rows = list(fu().rows)
    rows[-1] = dataclasses.replace(rows[-1], values=("-5.0", "15"))  # α = 0.9 as wide as α = 0
    with pytest.raises(ClaimFailed, match="shrinks"):
        ch.fu_table2_findings(dataclasses.replace(fu(), rows=tuple(rows)), K)
    with pytest.raises(ValueError, match="α = 0"):
        ch.fu_table2_findings(dataclasses.replace(fu(), rows=tuple(rows[1:])), K)


def test_fu_ours_holds_on_matching_ranges_and_fails_on_growing_ones():
    widths = {a: hi - lo for a, (lo, hi) in ch.fu_ranges(fu()).items()}
    summary = summary_like({ch.CE_KEY: 8.0, **{("szegedy", a, 1.0): widths[a] for a in GRID}})
    ours = ch.fu_table2_ours(fu(), summary, METHODS, K)
    assert "Our run" in ours.block.to_markdown() and "0 %" in ours.block.to_markdown()
    assert ours.ours_at == [0.0, *GRID] and str(ours.widest_percent) == "0"
    growing = summary_like({ch.CE_KEY: 8.0, **{("szegedy", a, 1.0): 1 + a for a in GRID}})
    with pytest.raises(ClaimFailed, match="shrinks"):
        ch.fu_table2_ours(fu(), growing, METHODS, K)
    table = ch.fu_table2_beside(fu(), summary, K)
    assert table.rows[0][4] == "8.00" and table.rows[2][4] == "—"  # α = 0.2: not on our grid
    assert isinstance(ch.draw_gap_and_width(squeezed_summary(), METHODS, GRID, fu(), K), Figure)


# ----------------------------------------------------------------------------- second half

def per_example(n=40):
    g = torch.Generator().manual_seed(0)
    out = {ch.CE_KEY: {"margin": 4 + torch.randn(n, generator=g)}}
    for m in METHODS:
        for a in GRID:
            out[m, a, 1.0] = {"margin": 1 + 0.3 * torch.randn(n, generator=g)}
    return out


def test_margin_panels_are_one_per_method_and_the_widget_redraws():
    fig = ch2.margin_panels(per_example(), METHODS, GRID, K)
    assert sum(ax.get_visible() for ax in fig.axes) == len(METHODS)
    explorer = ch2.margin_explorer(per_example(), METHODS, GRID, K)
    assert explorer.set(method="sls", alpha=0.1) != explorer.set(method="sls", alpha=0.9)


def test_gradient_medians_keep_correct_examples_and_the_claim_can_fail():
    gap = torch.tensor([1.0, 2.0, -1.0])
    stats = {ch.CE_KEY: (gap, torch.tensor([4.0, 4.0, 100.0])),
             ("sls", 0.5, 1.0): (gap, torch.tensor([1.0, 1.0, 100.0]))}
    medians = ch2.gradient_medians(stats)
    assert medians.grad[ch.CE_KEY] == 4.0  # the misclassified example is left out
    assert ch2.gradient_claims(medians).claims.claims
    assert isinstance(ch2.draw_gradient_densities(medians, 0.1), Figure)
    steeper = ch2.gradient_medians({**stats, ("sls", 0.5, 1.0): (gap, torch.tensor([9.0] * 3))})
    with pytest.raises(ClaimFailed, match="smaller median margin gradient"):
        ch2.gradient_claims(steeper)
    with pytest.raises(ValueError, match="correctly classified"):
        ch2.gradient_medians({ch.CE_KEY: (-gap.abs(), gap)})


def calibration_of(acc, confidence):
    return {k: {"ece": abs(acc[k] - confidence[k]), "mean_confidence": confidence[k],
                "acc": torch.zeros(2), "conf": torch.zeros(2), "count": torch.ones(2)}
            for k in acc}


def test_calibration_claims_fail_on_an_over_confident_ce():
    acc = {ch.CE_KEY: 0.8, ("szegedy", 0.9, 1.0): 0.8}
    good = calibration_of(acc, {ch.CE_KEY: 0.82, ("szegedy", 0.9, 1.0): 0.3})
    claims = ch2.calibration_claims(acc, good, [("szegedy", 0.9, 1.0)], GRID, quick=True)
    assert claims.claims.asserted == list(claims.claims.claims)
    over = calibration_of(acc, {ch.CE_KEY: 0.99, ("szegedy", 0.9, 1.0): 0.3})
    with pytest.raises(ClaimFailed, match="over-confident"):
        ch2.calibration_claims(acc, over, [("szegedy", 0.9, 1.0)], GRID, quick=True)
    assert isinstance(ch2.calibration_table(acc, good), Table)
    assert isinstance(ch2.draw_reliability(good, list(acc), 0.1), Figure)


def test_results_record_and_the_full_profile_note():
    acc = {ch.CE_KEY: 0.8}
    cal = calibration_of(acc, {ch.CE_KEY: 0.8})
    medians = SimpleNamespace(grad={ch.CE_KEY: 1.0}, radius={ch.CE_KEY: 0.1})
    record = ch2.results_record(acc, summary_like({ch.CE_KEY: 5.0}), cal,
                                {ch.CE_KEY: result()}, medians, 0.7, result(), K)
    models = record["models"]
    assert models["ce/alpha=0/T=1"]["median_grad_l1"] == 1.0 and "acc" not in models["fgsm_at"]
    full = book.chapter_setting("training_with_ls", "full")
    assert "has not been recorded" in ch2.full_profile(None, full, 17)
    shown = ch2.full_profile({"results": record}, full, 17)
    assert isinstance(shown, Table) and shown.align["clean accuracy"] == "right"


def test_a_claim_whose_method_was_not_trained_is_not_measured_not_false():
    acc = {k: v for k, v in healthy_accuracy().items() if k[0] != "sbls"}
    methods = tuple(m for m in METHODS if m != "sbls")
    clean = ch.clean_accuracy_claims(acc, favouring(acc), methods).claims
    sbls = next(s for s in clean.claims if "SBLS (tie" in s)
    assert clean.claims[sbls] is None and sbls not in clean.asserted
