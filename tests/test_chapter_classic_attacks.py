"""The classic_attacks chapter's helpers (lsnotes.chapters.classic_attacks), on tiny inputs: each
claim is shown once with inputs for which it holds and once with inputs for which it must fail,
and a claim whose inputs are missing fails loudly."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure

from lsnotes import attacks, papers
from lsnotes.chapters import classic_attacks as ca
from lsnotes.present import ClaimFailed, Table
from tiny_models import blobs, trained_linear

HEADLINE = ["CE", "ALS α=0.5", "BLS α=0.5", "FGSM-AT"]
LS = ["ALS α=0.1", "ALS α=0.5", "BLS α=0.1", "BLS α=0.5"]


def at_eps_rows(**changes):
    rows = {"CE": dict(clean=0.9, fgsm=0.2, bim=0.1),
            "ALS α=0.1": dict(clean=0.9, fgsm=0.3, bim=math.nan),
            "ALS α=0.5": dict(clean=0.88, fgsm=0.35, bim=0.2),
            "BLS α=0.1": dict(clean=0.89, fgsm=0.25, bim=math.nan),
            "BLS α=0.5": dict(clean=0.9, fgsm=0.3, bim=0.15),
            "FGSM-AT": dict(clean=0.85, fgsm=0.6, bim=0.4)}
    for name, row in changes.items():
        rows[name] = {**rows[name], **row}
    return rows


# ------------------------------------------------------------------------------ parameters

def test_chapter_run_validates_and_names_the_models():
    run = ca.chapter_run("quick", 0, "cpu", methods="als")
    assert run.methods == ("als",)
    assert run.headline == ["CE", f"ALS α={run.mid_alpha:g}", "FGSM-AT"]
    assert run.uses("CE") and run.uses("ALS α=0.1") and not run.uses("BLS α=0.1")
    assert run.zoo_eps == f"{run.zoo.eps:g}" and "cnn4" in repr(run)


@pytest.mark.parametrize("kwargs, name", [
    (dict(methods=("nope",)), "methods entry"), (dict(methods=()), "methods"),
    (dict(curve_examples=3), "curve_examples"), (dict(cw_iterations=0), "cw_iterations"),
    (dict(profile="huge"), "profile")])
def test_chapter_run_refuses_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ca.chapter_run(**{"profile": "quick", "device": "cpu", **kwargs})


# ------------------------------------------------------------------------------ measuring

def test_robust_accuracy_is_clean_at_zero_and_falls_under_fgsm():
    model = trained_linear()
    x, y = blobs(64, seed=5)
    clean = ca.robust_accuracy("fgsm", model, x, y, 0.0)
    assert clean == pytest.approx((model(x).argmax(1) == y).float().mean().item())
    assert ca.robust_accuracy("fgsm", model, x, y, 0.3) < clean


def test_after_attack_counts_what_deepfool_leaves():
    model = trained_linear()
    x, y = blobs(32, seed=6)
    out = ca.after_attack(model, x, y, *attacks.deepfool(model, x, y, num_classes=10))
    assert 0 <= out["accuracy"] <= 1 - out["fooled"] + 1e-9 and out["median_l2"] > 0


def test_after_attack_refuses_a_success_that_kept_the_label():
    model = trained_linear()
    x, y = blobs(16, seed=7)
    right = model(x).argmax(1) == y
    with pytest.raises(ValueError, match="fooled"):
        ca.after_attack(model, x, y, x.clone(), torch.ones(16), right)


def test_after_attack_gives_infinity_where_the_attack_gave_up():
    model = trained_linear()
    x, y = blobs(16, seed=7)
    out = ca.after_attack(model, x, y, x.clone(), torch.ones(16), torch.zeros(16, dtype=bool))
    assert math.isinf(out["median_l2"]) and out["fooled"] == 0
    assert ca.size(out["median_l2"]) == "∞" and ca.size(0.51234) == "0.512"


# ------------------------------------------------------------------------------ FGSM and BIM

def test_fgsm_bim_findings_hold_and_quote_the_numbers():
    found = ca.fgsm_bim_findings(at_eps_rows(), HEADLINE, LS)
    assert all(found.claims.claims.values())
    assert found.ce_fgsm == "0.200" and found.n_fgsm_winners == "4 of 4"
    assert found.best_fgsm.startswith("ALS α=0.5") and found.n_bim_winners == "2 of 2"
    assert isinstance(ca.at_eps_table(at_eps_rows(), 0.1), Table)


@pytest.mark.parametrize("changes, broken", [
    ({"ALS α=0.1": dict(fgsm=0.1), "ALS α=0.5": dict(fgsm=0.1), "BLS α=0.1": dict(fgsm=0.1)},
     "under FGSM"),
    ({"ALS α=0.5": dict(bim=0.05), "BLS α=0.5": dict(bim=0.05)}, "under BIM"),
    ({"CE": dict(bim=0.5)}, "BIM is at least as strong"),
    ({"FGSM-AT": dict(bim=0.16)}, "FGSM-AT keeps more"),
])
def test_fgsm_bim_findings_fail_when_their_claim_does_not_hold(changes, broken):
    with pytest.raises(ClaimFailed, match=broken):
        ca.fgsm_bim_findings(at_eps_rows(**changes), HEADLINE, LS)


def test_fgsm_bim_findings_fail_loudly_on_missing_inputs():
    with pytest.raises(ClaimFailed, match="not measured"):
        ca.fgsm_bim_findings(at_eps_rows(**{"BLS α=0.5": dict(bim=math.nan)}), HEADLINE, LS)
    rows = at_eps_rows()
    del rows["FGSM-AT"]
    with pytest.raises(ClaimFailed, match="FGSM-AT"):
        ca.fgsm_bim_findings(rows, HEADLINE, LS)
    degenerate = at_eps_rows(**{n: dict(clean=0.1) for n in LS})
    with pytest.raises(ClaimFailed, match="clean accuracy"):
        ca.fgsm_bim_findings(degenerate, HEADLINE, LS)


# ------------------------------------------------------------------------------ Goibert's tables

def goibert():
    return {a: papers.table("goibert2019", a) for a in ("fgsm", "bim", "deepfool", "cw")}


def test_goibert_cells_keep_ties_and_not_run_cells():
    cells = ca.goibert_cells(goibert()["deepfool"])
    assert len(cells) == 5  # five set-ups, one column
    for s in cells.values():
        assert s["which"] and all(w.split()[0] in ca.GOIBERT_METHODS for w in s["which"])
    kept = ca.goibert_findings(goibert()["fgsm"])
    assert 0 < len(kept) <= 15 and all(isinstance(c["best"], float) for c in kept.values())


def test_paper_reading_holds_on_their_tables_and_fails_on_a_changed_one():
    reading = ca.paper_reading(goibert())
    assert all(reading.claims.claims.values()) and " of " in reading.svhn_above
    changed = dict(goibert())
    changed["fgsm"] = changed["bim"]  # adversarial training does not win most BIM cells
    with pytest.raises(ClaimFailed, match="FGSM: adversarial training"):
        ca.paper_reading(changed)


RESULTS = {"deepfool": {"CE": 0.1, "ALS α=0.5": 0.2, "SBLS α=0.5": 0.2, "SZEGEDY α=0.5": 0.9,
                        "FGSM-AT": 0.15},
           "cw": {"CE": 0.0, "ALS α=0.5": 0.0, "SBLS α=0.5": 0.05, "FGSM-AT": 0.0}}


def test_our_row_takes_the_best_of_goiberts_four_methods_with_ties():
    assert ca.best_of(RESULTS, "deepfool") == "ALS α=0.5"  # Szegedy's LS is not theirs
    assert ca.our_row(RESULTS, "deepfool") == ["0.200", "ALS α=0.5, SBLS α=0.5", "0.100",
                                               "0.150"]
    table = ca.beside_goibert(goibert()["cw"], ca.our_row(RESULTS, "cw"), "ours")
    assert table.rows[-1][0] == "ours" and len(table.rows) == 6


def test_goibert_claims_show_our_outcome_and_need_our_models():
    claims = ca.goibert_claims(goibert(), RESULTS, ("deepfool", "cw"))
    outcome = {s.split(" (Goibert")[0]: v for s, v in claims.claims.items()}
    assert outcome["DeepFool: the best LS model beats adversarial training"] is True
    assert outcome["C&W: SBLS is (among) the best LS methods, above the normal classifier"]
    worse = {**RESULTS, "cw": {**RESULTS["cw"], "FGSM-AT": 0.5}}
    outcome = {s.split(" (Goibert")[0]: v for s, v in
               ca.goibert_claims(goibert(), worse, ("cw",)).claims.items()}
    assert outcome["C&W: the best LS model beats adversarial training"] is False
    with pytest.raises(ClaimFailed, match="bim"):
        ca.goibert_claims(goibert(), RESULTS, ("bim",))
    without_ce = {"cw": {k: v for k, v in RESULTS["cw"].items() if k != "CE"}}
    with pytest.raises(ClaimFailed, match="CE"):
        ca.goibert_claims(goibert(), without_ce, ("cw",))


# ------------------------------------------------------------------------------ minimal attacks

def minimal_rows(**changes):
    def row(acc, l2, fooled=0.95):
        return {"accuracy": acc, "median_l2": l2, "fooled": fooled}
    rows = {"CE": {"deepfool": row(0.05, 1.0), "cw": row(0.0, 1.2)},
            "ALS α=0.5": {"deepfool": row(0.03, 1.5), "cw": row(0.1, 1.4)},
            "BLS α=0.5": {"deepfool": row(0.02, 1.3), "cw": row(0.0, 1.1)},
            "FGSM-AT": {"deepfool": row(0.2, 2.0), "cw": row(0.3, math.inf)}}
    for name, attack_rows in changes.items():
        rows[name] = {**rows[name], **attack_rows}
    return rows


def test_minimal_findings_take_the_most_kept_over_ls_models_only():
    found = ca.minimal_findings(minimal_rows(), n_cw=20)
    assert found.cw_most_kept == "0.100"  # FGSM-AT keeps 0.3, but it is not an LS model
    assert found.cw_extra == "2" and found.at_cw == "∞" and found.n_df_larger == "2 of 2"
    assert isinstance(ca.minimal_table(minimal_rows()), Table)


def test_minimal_findings_fail_when_their_claims_do_not_hold():
    few = {"deepfool": {"accuracy": 0.5, "median_l2": 1.5, "fooled": 0.5}}
    with pytest.raises(ClaimFailed, match="90 %"):
        ca.minimal_findings(minimal_rows(**{"ALS α=0.5": few}), n_cw=20)
    small = {"deepfool": {"accuracy": 0.0, "median_l2": 0.5, "fooled": 1.0}}
    with pytest.raises(ClaimFailed, match="larger DeepFool"):
        ca.minimal_findings(minimal_rows(**{"ALS α=0.5": small, "BLS α=0.5": small}), n_cw=20)
    rows = minimal_rows()
    del rows["CE"]
    with pytest.raises(ClaimFailed, match="CE"):
        ca.minimal_findings(rows, n_cw=20)


# ------------------------------------------------------------------------------ curves, figures

def test_curve_claims_fail_on_a_rising_curve_and_on_no_curve():
    assert ca.curve_claims({"fgsm": {"CE": [0.9, 0.5, 0.2]}}).claims
    with pytest.raises(ClaimFailed, match="fgsm CE"):
        ca.curve_claims({"fgsm": {"CE": [0.5, 0.6, 0.2]}})
    with pytest.raises(ClaimFailed, match="no accuracy"):
        ca.curve_claims({"fgsm": {}})


def test_figures_draw_every_curve_and_one_shared_legend():
    eps_grid = (0.0, 0.1, 0.2)
    sweep = {"CE": [0.9, 0.5, 0.1], "FGSM-AT": [0.8, 0.6, 0.3]}
    sweep |= {f"{m.upper()} α={a:g}": [0.9, 0.6, 0.2] for m in ("als", "bls")
              for a in (0.1, 0.5)}
    fig = ca.fgsm_panels(sweep, ("als", "bls"), (0.1, 0.5), eps_grid)
    assert isinstance(fig, Figure) and len(fig.legends) == 1  # two panels fill the grid
    assert len(fig.axes[0].lines) == 4
    fig = ca.fgsm_panels(sweep, ("als", "bls", "als", "bls"), (0.1, 0.5), eps_grid)
    assert not fig.legends  # the legend sits in the spare panel
    assert [ax.get_legend() is not None for ax in fig.axes] == [False] * 4 + [True, False]
    curves = {"fgsm": {"CE": sweep["CE"]}, "bim": {"FGSM-AT": sweep["FGSM-AT"]}}
    fig = ca.curves_figure(curves, eps_grid, 0.1)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]  # curve + ε marker
    with pytest.raises(ValueError, match="alpha_grid"):
        ca.fgsm_panels(sweep, ("als",), tuple(range(7)), eps_grid)


def test_repository_facts_come_from_the_papers_json():
    facts = ca.repository_facts()
    recorded = papers.paper("goibert2019")["repository"]["facts"]
    assert facts.svhn_eps == recorded["svhn_lenet_fgsm_bim_eps"]["value"]
    assert facts.at_parameter == recorded["adv_training_reg_param_default"]["value"]
    assert "cnn4" in ca.chapter_run("quick", device="cpu").scale
