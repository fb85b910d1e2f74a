"""The helpers of book/soft_labels_at.md (lsnotes.chapters.soft_labels_at): each on tiny inputs,
each claim with inputs for which it must fail."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from matplotlib.figure import Figure

from lsnotes import papers
from lsnotes.chapters import soft_labels_at as ch
from lsnotes.present import ClaimFailed, Table
from lsnotes.zoo import book
from tiny_models import blobs, trained_linear


def test_knobs_check_the_parameters_before_any_work():
    knobs = ch.knobs("quick", None, None, None, 64)
    assert knobs.eval_size == knobs.setting.eval_size == knobs.autoattack_size
    assert knobs.autoattack_name == "APGD-CE + APGD-DLR" and not knobs.full_autoattack
    assert ch.knobs("quick", 100, 20, True, 10).autoattack_kw == {}
    with pytest.raises(ValueError, match="eval_size"):
        ch.knobs("quick", 10 ** 6, None, None, 64)
    with pytest.raises(ValueError, match="slider_batch"):
        ch.knobs("quick", None, None, None, 5)
    with pytest.raises(ValueError, match="full_autoattack"):
        ch.knobs("quick", None, None, "yes", 64)


def run(robust=(0.3, 0.4), train_acc=(0.35, 0.45)):
    history = [{"epoch": i + 1, "robust_acc": r, "train_acc": t, "test_acc": 0.7}
               for i, (r, t) in enumerate(zip(robust, train_acc))]
    return SimpleNamespace(history=history, model=None, key="")


def test_by_mode_keys_the_declaration_and_needs_the_robust_history():
    configs = book.chapter_models("soft_labels_at", "quick", device="cpu")["quick"]
    runs = ch.by_mode({name: run() for name in configs}, configs)
    assert list(runs.models) == ["pgd", "sglr"] and runs.names["sglr"] == "SGLR"
    assert "SGLR refines from epoch" in ch.describe(runs.configs["sglr"], 100)
    bare = {name: SimpleNamespace(history=[{"epoch": 1}], model=None) for name in configs}
    with pytest.raises(ValueError, match="robust accuracy"):
        ch.by_mode(bare, configs)


def test_the_start_table_puts_the_script_beside_each_profile():
    table = ch.start_table(200)
    assert table.rows[0] == ["Yu et al.'s script", 200, 91]
    assert all(side == "right" for c, side in table.align.items() if c != "training")


def test_refinement_claims_fail_when_sglr_starts_at_another_fraction():
    config = book.config("quick", adversarial="sglr")
    same = [{"loss": 1.0}, {"loss": 0.5}]
    differs = [{"loss": 1.0}, {"loss": 0.6}]
    claims = ch.refinement_claims(same, differs, config, 90, 200, on_cpu=True)
    assert all(claims.claims.claims.values())
    late = dataclasses.replace(config, sglr_start_epoch=config.epochs)
    if abs((config.epochs - 1) - 0.45 * config.epochs) > 0.5:
        with pytest.raises(ClaimFailed, match="same fraction"):
            ch.refinement_claims(same, differs, late, 90, 200, on_cpu=True)
    with pytest.raises(ClaimFailed, match="same fraction"):
        ch.refinement_claims(same, differs, config, 10, 200, on_cpu=True)
    with pytest.raises(ClaimFailed, match="identical"):
        ch.refinement_claims(same, [{"loss": 2.0}, {"loss": 0.6}], config, 90, 200, on_cpu=True)
    # off the CPU only the fraction is asserted
    ch.refinement_claims(same, same, config, 90, 200, on_cpu=False)
    with pytest.raises(ValueError, match="two epochs"):
        ch.refinement_claims(same[:1], differs, config, 90, 200, on_cpu=True)


def test_best_vs_last_and_the_overfitting_claims():
    histories = {"pgd": run().history, "sglr": run((0.4, 0.39)).history}
    monitor = ch.best_vs_last(histories, 200, quick=True)
    assert monitor.table["sglr"]["best_epoch"] == 1 and str(monitor.shown.pgd_best) == "40.0 %"
    overfit = {"pgd": run((0.6, 0.3), (0.6, 0.9)).history}
    with pytest.raises(ClaimFailed, match="two standard errors"):
        ch.best_vs_last(overfit, 200, quick=True)
    assert not ch.best_vs_last(overfit, 200, quick=False).claims.asserted
    with pytest.raises(ValueError, match="monitor_size"):
        ch.best_vs_last(histories, 0, quick=True)
    assert isinstance(ch.draw_history(histories, {"pgd": "PGD-AT", "sglr": "SGLR"}, 2, 0.1),
                      Figure)


def final_of(autoattack=0.4, sglr_clean=0.71):
    return {"pgd": {"clean": 0.7, "pgd20": 0.45, "clean_aa_subset": 0.7,
                    "pgd20_aa_subset": 0.44, "autoattack": autoattack},
            "sglr": {"clean": sglr_clean, "pgd20": 0.46, "clean_aa_subset": 0.7,
                     "pgd20_aa_subset": 0.45, "autoattack": 0.42}}


def test_final_claims_fail_when_autoattack_takes_much_more_or_sglr_departs():
    shown = ch.final_claims(final_of(), "AA", 48)
    assert all(shown.claims.claims.values()) and str(shown.delta_clean) == "+1.0"
    with pytest.raises(ClaimFailed, match="at most 5 points"):
        ch.final_claims(final_of(autoattack=0.3), "AA", 48)
    with pytest.raises(ClaimFailed, match="within 5 points of PGD-AT"):
        ch.final_claims(final_of(sglr_clean=0.9), "AA", 48)
    with pytest.raises(ValueError, match="sglr"):
        ch.final_claims({"pgd": final_of()["pgd"]}, "AA", 48)
    table = ch.final_table(final_of(), {"pgd": "PGD-AT", "sglr": "SGLR"}, "AA")
    assert all(side == "right" for c, side in table.align.items() if c != "model")


def yu():
    return papers.table("yu2024", "resnet18_cifar10")


def test_yu_beside_keeps_every_number_column_right_aligned():
    table = ch.yu_beside(yu(), final_of(), ours="ours, quick")
    assert [r[0] for r in table.rows[:2]] == ["AT (Yu et al.)", "PGD-AT (ours, quick)"]
    assert table.rows[5][1:] == ["—", "—", "—"]  # TRADES: not run at this scale
    assert all(side == "right" for c, side in table.align.items() if c != "method")


def test_yu_findings_hold_on_their_numbers_and_fail_on_changed_ones():
    assert all(ch.yu_findings(yu()).claims.claims.values())
    assert ch.yu_findings(yu()).title.startswith("The paper reports")
    rows = tuple(dataclasses.replace(r, values=("83.0", "40.0", "39.0")) if r.key == ("AT+SGLS",)
                 else r for r in yu().rows)
    with pytest.raises(ClaimFailed, match="raises PGD accuracy"):
        ch.yu_findings(dataclasses.replace(yu(), rows=rows))
    ours = ch.yu_ours(final_of()).claims
    assert not ours.asserted and ours.claims["label refinement raises PGD accuracy over AT"]


def test_the_eps_explorer_and_its_claim():
    model = trained_linear(steps=60)
    x, y = blobs(24, seed=5)
    names = {"pgd": "PGD-AT", "sglr": "SGLR"}
    explorer = ch.eps_explorer({"pgd": model, "sglr": model}, names, x, y, (0.0, 0.05, 0.5),
                               0.05, seed=0)
    assert explorer.grid_accuracy["pgd"][0] >= explorer.grid_accuracy["pgd"][-1]
    assert explorer.view.set(eps=0.01) != explorer.view.set(eps=0.5)
    holds = ch.slider_claims(explorer, 0.05)
    assert holds.claims.asserted
    flat = SimpleNamespace(grid_accuracy={"pgd": [0.9, 0.8, 0.7]}, eps_grid=[0.0, 0.05, 0.5])
    with pytest.raises(ClaimFailed, match="less than half"):
        ch.slider_claims(flat, 0.05)
    with pytest.raises(ValueError, match="train_eps"):
        ch.eps_explorer({"pgd": model}, names, x, y, (0.0, 0.5), 0.05, seed=0)


def test_the_full_profile_note_and_table():
    names = {"pgd": "PGD-AT", "sglr": "SGLR"}
    assert "has not been recorded" in ch.full_profile(None, names)
    recorded = {"results": {"final": final_of(), "best_vs_last_monitor": {
        m: {"best": 0.5, "best_epoch": 3, "last": 0.4} for m in names}}}
    table = ch.full_profile(recorded, names)
    assert isinstance(table, Table)
    assert all(side == "right" for c, side in table.align.items() if not c.startswith("model"))
