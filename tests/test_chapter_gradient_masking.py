"""The helpers of the chapter "Is it real robustness?" (lsnotes.chapters.gradient_masking and
gradient_masking_beyond_pgd), on tiny made-up accuracies: each table, each findings list (which
must hold on Fu et al.'s own numbers and fail on numbers that contradict them) and each figure."""

from __future__ import annotations

import math

import pytest
from matplotlib.figure import Figure

from lsnotes.chapters import gradient_masking as gm
from lsnotes.chapters import gradient_masking_beyond_pgd as gm2
from lsnotes import claims as C
from lsnotes.claims import MissingMeasurement
from lsnotes.present import ClaimFailed, Claims, Table
from lsnotes.robustness import MaskingDiagnostics, Symptom
from lsnotes.zoo import book

LS = "LS α=0.9"


def fu_like() -> dict:
    """Our accuracies shaped like Fu et al.'s Table 4, with a CE row and the extra columns."""
    fu = gm.fu_table4_accuracies()
    acc = {LS: dict(fu["LS"]), "PGD-AT": dict(fu["PGD-AT"]), "TRADES": dict(fu["TRADES"]),
           "CE": {k: 0.0 for k in fu["LS"]} | {"clean": 0.95}}
    for name, row in acc.items():
        row.pop("strong", None)
        row["autoattack"] = row["apgd_ce"]
        row["pgd20_on_aa_subset"] = row["pgd20"]
    acc["CE"]["autoattack"] = acc["CE"]["pgd20_on_aa_subset"] = 0.0
    return gm.with_summaries(acc)


# ------------------------------------------------------------------------------ set-up

def test_setup_checks_its_parameters_and_reads_the_plan_from_the_zoo():
    run = gm.setup("quick", 0, "cpu")
    assert run.ls_name == LS and run.n_attack == gm.QUICK_N_ATTACK
    assert run.n_autoattack == gm.QUICK_N_AUTOATTACK and run.n_widget == 64
    zoo_settings = book.attack_settings("quick", "fu")
    assert run.plan.overrides["multitargeted"] == zoo_settings["multitargeted"]
    assert run.plan.autoattack == zoo_settings["autoattack"]
    assert run.plan.prefix["autoattack"] == zoo_settings["autoattack"]
    assert gm.setup("quick", 0, "cpu", n_attack=20, n_autoattack=40).n_autoattack == 20
    with pytest.raises(ValueError, match="ls_alpha"):
        gm.setup("quick", 0, "cpu", ls_alpha=0.33)
    with pytest.raises(ValueError, match="n_attack"):
        gm.setup("quick", 0, "cpu", n_attack=-1)
    with pytest.raises(ValueError, match="widget_restarts"):
        gm.setup("quick", 0, "cpu", widget_restarts=1)
    with pytest.raises(ValueError, match="profile"):
        gm.attack_plan("huge")


def test_small_formatters():
    assert gm.display_name("PGD^20") == "PGD-20" and gm.display_name("FGSM") == "FGSM"
    assert [gm.count_text(n, "symptom") for n in (0, 1, 2)] == [
        "0 symptoms", "1 symptom", "2 symptoms"]
    assert gm.points(0.4213) == "42.1"
    assert gm.steps_text(20) == "20, ε/10" and gm.steps_text(1) == "1, 2ε"
    assert gm.standard_error(100) == "5.0"
    with pytest.raises(ValueError, match="count"):
        gm.count_text(-1, "symptom")


def test_paper_findings_refuse_a_sentence_the_paper_contradicts():
    findings = {"a exceeds b": lambda v: v["a"] > v["b"]}
    claims = gm.paper_findings(findings, {"a": 2, "b": 1}, {"a": 0, "b": 1})
    assert claims.claims == {"a exceeds b": False}
    assert gm.not_reproduced(claims) == "1 of 1"
    with pytest.raises(ClaimFailed, match="paper"):
        gm.paper_findings(findings, {"a": 0, "b": 1}, {"a": 2, "b": 1})
    with pytest.raises(ValueError, match="findings"):
        gm.paper_findings({}, {}, {})


# ------------------------------------------------------------------------------ tables 3 and 4

def test_table3_prints_pgd_k_as_the_book_writes_it():
    run = gm.setup("quick", 0, "cpu")
    table = gm.table3(run.plan, 10)
    text = table.to_markdown()
    assert "^" not in text and "PGD-20 (Fu et al.)" in text
    used = gm.table3_text(run.plan, 10)
    assert used.mt == "3" and used.fu_mt == "18" and used.fu_aa_steps == "100"
    assert used.apgd == "100"  # APGD-CE's registered 100 iterations: Fu et al.'s AA exactly


def test_with_summaries_adds_lowest_strong_and_ce_transfer():
    acc = fu_like()
    assert acc[LS]["lowest"] == min(acc[LS][a] for a in gm.COLUMNS[1:])
    assert acc[LS]["strong"] == acc[LS]["odi"]
    assert acc["CE"]["transfer"] == acc["CE"]["pgd20"] and math.isnan(acc[LS]["transfer"])
    with pytest.raises(ValueError, match="lacks"):
        gm.with_summaries({"CE": {"clean": 1.0}})
    assert isinstance(gm.attack_table(acc), Table)
    assert "PGD-20" in gm.table4(acc, LS).to_markdown()


def test_table4_findings_hold_on_fu_shaped_numbers_and_fail_on_contrary_ones():
    acc = fu_like()
    assert all(gm.table4_findings(acc, LS).claims.values())
    broken = {k: dict(v) for k, v in acc.items()}
    broken[LS]["strong"] = 0.99  # the recent attacks leave LS above adversarial training
    with pytest.raises(ClaimFailed, match="strongest"):
        gm.table4_findings(broken, LS)


def test_own_comparisons_fail_when_ls_does_not_beat_ce():
    acc = fu_like()
    assert gm.own_comparisons(acc, LS).holds("LS beats CE under PGD-20 (the apparent robustness)")
    acc["CE"]["pgd20"] = 0.99
    with pytest.raises(ClaimFailed, match="PGD-20"):
        gm.own_comparisons(acc, LS)
    shown = gm.shown_accuracies(fu_like(), LS)
    assert shown.ls_pgd20 == "74.8 %" and shown.at_loss == "2.1"


def test_table1_findings():
    acc = fu_like()
    acc[LS].update(clean=0.90, fgsm=0.5, pgd20=0.5)
    acc["CE"].update(clean=0.91, fgsm=0.1, pgd20=0.1)
    assert all(gm.table1_findings(acc, LS).claims.values())
    assert "PGD-20" in gm.table1(acc, LS, book.setting("quick")).to_markdown()
    acc[LS]["fgsm"] = 0.15
    with pytest.raises(ClaimFailed, match="10 points"):
        gm.table1_findings(acc, LS)


def test_fu_numbers_come_from_the_papers_json():
    fu = gm.fu_numbers()
    assert fu.t4_ls_odi == "0.15" and fu.t6_ls_pgd == "8.15" and fu.t1_without_max == "0.03"


# ------------------------------------------------------------------------------ beyond PGD

def test_cw_setting_keeps_fu_et_al_s_bound_at_their_scale():
    cw = gm2.cw_setting(8 / 255, gm2.CIFAR10_DIMENSION, quick=False, n_attack=1000)
    assert cw.bound == pytest.approx(140 / 255) and cw.c == 0.1 and cw.n == 1000
    assert gm2.cw_setting(0.1, 784, quick=True, n_attack=100).n == 50
    with pytest.raises(ValueError, match="dimension"):
        gm2.cw_setting(0.1, 0, quick=True, n_attack=100)


def test_table5_findings_and_our_reading():
    names = (LS, "PGD-AT", "TRADES")
    acc = {(m, s): v for m, (z, x) in zip(names, ((0.1, 0.4), (0.42, 0.43), (0.5, 0.51)))
           for s, v in (("zero", z), ("x", x))}
    assert all(gm2.table5_findings(acc, LS).claims.values())
    norm = {k: 3.0 for k in acc}
    clean = {m: 0.9 for m in names}
    assert gm2.cw_claims(acc, norm, clean, 2.0, LS).holds(
        "from x0 = x the attack breaks some LS examples within the bound")
    with pytest.raises(ClaimFailed, match="beyond the bound"):
        gm2.cw_claims(acc, norm, clean, 5.0, LS)
    assert "x0 = 0" in gm2.table5(acc, LS).to_markdown()
    assert gm2.cw_shown(acc, norm, clean, LS).ls_zero == "10.0 %"


def test_tanh_findings_compare_ls_with_the_adversarially_trained_models():
    by_steps = {LS: [0.6, 0.2], "PGD-AT": [0.5, 0.49], "TRADES": [0.5, 0.5], "CE": [0.0, 0.0]}
    by_size = {LS: [0.6, 0.1], "PGD-AT": [0.5, 0.48], "TRADES": [0.5, 0.5], "CE": [0.0, 0.0]}
    claims, shown = gm2.tanh_findings(by_steps, by_size, LS)
    assert all(claims.claims.values()) and shown.ls_drop == "40.0 %"
    by_size["PGD-AT"] = [0.9, 0.0]
    claims, _ = gm2.tanh_findings(by_steps, by_size, LS)
    assert not claims.claims["the step size moves the LS model's accuracy more than PGD-AT's and "
                             "TRADES' (Fu et al.'s Fig. 3a)"]
    figure = gm2.tanh_figure(by_steps, by_size, (5, 40), (0.01, 1.0))
    assert isinstance(figure, Figure) and figure.legends
    assert all(ax.get_legend() is None for ax in figure.axes)  # no legend over the curves


def test_table6_findings():
    acc = fu_like()
    transfer = {"FGSM": {LS: 0.5, "PGD-AT": 0.85, "TRADES": 0.84},
                "PGD": {LS: 0.1, "PGD-AT": 0.85, "TRADES": 0.84},
                "CW": {LS: 0.1, "PGD-AT": 0.85, "TRADES": 0.84}}
    claims = gm2.table6_findings(transfer, acc, LS)
    assert claims.holds("PGD transfers to LS better than FGSM")
    transfer["CW"][LS] = 0.9
    with pytest.raises(ClaimFailed, match="every transferred attack"):
        gm2.table6_findings(transfer, acc, LS)
    assert gm2.transfer_shown(transfer, LS).ls_cw == "90.0 %"
    assert "PGD-CW" in gm2.table6(transfer, LS).to_markdown()


def test_sweep_findings_and_figure():
    alphas = (0.0, 0.1, 0.5, 0.9)
    eps_list = (0.1, 0.2)
    weak = {0.0: 0.1, 0.1: 0.15, 0.5: 0.3, 0.9: 0.4}
    sweep = {(a, e): (weak[a] if e == 0.1 else 0.05, 0.08 if a else 0.09 if e == 0.1 else 0.0)
             for a in alphas for e in eps_list}
    claims, shown = gm2.sweep_findings(sweep, alphas, 0.1, eps_list, 0.9)
    assert all(claims.claims.values()) and shown.above == "0.5, 0.9" and shown.below == "0.1"
    sweep[0.5, 0.1] = (0.6, 0.0)
    claims, _ = gm2.sweep_findings(sweep, alphas, 0.1, eps_list, 0.9)
    assert not claims.holds("PGD-20 accuracy is highest at α = 0.9 of the trained α "
                            "(Fu et al.'s Fig. 2)")
    figure = gm2.sweep_figure(sweep, {a: 0.9 for a in alphas}, alphas, eps_list, 3)
    assert figure.legends and all(ax.get_legend() is None for ax in figure.axes)


def test_symptoms_are_counted_in_words():
    def diagnosed(*fired):
        return MaskingDiagnostics([Symptom(f"s{i}", f, "", {}) for i, f in enumerate(fired)],
                                  {}, {})

    diagnostics = {"CE": diagnosed(False, False), LS: diagnosed(True, False),
                   "PGD-AT": diagnosed(False), "TRADES": diagnosed(False, False)}
    claims, shown = gm.symptom_claims(diagnostics, LS)
    assert all(claims.claims.values()) and shown.ls == "1 symptom" and shown.ce == "0 symptoms"
    markdown = gm.symptom_table(diagnostics).to_markdown()
    assert "**yes**" in markdown and "—" in markdown  # PGD-AT lacks s1
    diagnostics["CE"] = diagnosed(True, True)
    claims, _ = gm.symptom_claims(diagnostics, LS)
    assert not claims.holds("the LS model shows more symptoms than CE")


def test_full_profile_says_whether_a_run_is_recorded():
    acc = fu_like()
    missing = gm2.full_profile(acc, results={})
    assert missing.table is None and "No full-profile run" in missing.note
    recorded = gm2.full_profile(acc, results={"results": {"robust_accuracy": {
        LS: {"pgd20": 0.5}}}})
    assert recorded.table.rows == [[LS, "PGD-20", "74.8 %", "50.0 %"]]
    assert "table below" in recorded.note
    assert gm2.full_profile_hours(book.chapter_setting("gradient_masking", "full")) > 0


# ------------------------------------------------------------------------------ missing inputs

def test_an_unmeasured_accuracy_stops_the_claims_instead_of_failing_quietly():
    acc = fu_like()
    acc[LS]["pgd20"] = math.nan
    with pytest.raises(MissingMeasurement, match="LS beats CE under PGD-20.*NaN"):
        gm.own_comparisons(acc, LS)
    with pytest.raises(MissingMeasurement, match="not measured"):
        gm.table4_findings(acc, LS)
    raw = {name: {k: v for k, v in row.items() if k not in ("lowest", "strong")}
           for name, row in fu_like().items()}
    raw["CE"]["odi"] = math.nan
    with pytest.raises(MissingMeasurement, match="odi"):
        gm.with_summaries(raw)


def test_the_findings_show_what_they_compared():
    claims = gm.table4_findings(fu_like(), LS)
    assert all(isinstance(o, C.Check) for o in claims.outcomes.values())
    assert "0.748" in claims.to_markdown()  # LS's PGD-20 accuracy in a comparison


def test_beyond_pgd_claims_refuse_unmeasured_inputs():
    names = (LS, "PGD-AT", "TRADES")
    acc = {(m, s): 0.4 for m in names for s in ("zero", "x")}
    acc[LS, "zero"] = math.nan
    with pytest.raises(MissingMeasurement):
        gm2.table5_findings(acc, LS)
    acc[LS, "zero"] = 0.1
    norm = {k: 3.0 for k in acc} | {(LS, "zero"): math.nan}  # the attack found nothing
    with pytest.raises(MissingMeasurement):
        gm2.cw_claims(acc, norm, {m: 0.9 for m in names}, 2.0, LS)
    by_steps = {LS: [0.6, None], "PGD-AT": [0.5, 0.49], "TRADES": [0.5, 0.5]}
    with pytest.raises((MissingMeasurement, TypeError)):
        gm2.tanh_findings(by_steps, by_steps, LS)


def test_sweep_says_not_measured_when_no_trained_alpha_lies_above_the_threshold():
    alphas, eps_list = (0.0, 0.1, 0.2), (0.1, 0.2)
    sweep = {(a, e): (0.2, 0.05) for a in alphas for e in eps_list}
    claims, shown = gm2.sweep_findings(sweep, alphas, 0.1, eps_list, 0.2)
    above = [s for s in claims.claims if s.startswith("every α above")]
    assert claims.holds(above[0]) is None and shown.above == "none"
