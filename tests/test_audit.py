"""``lsnotes.audit``: the traced PGD, every indicator on a defence built to trip it and on one that
must not, the reports, and the ``lsnotes audit`` command (including every kind of bad input)."""

from __future__ import annotations

import html
import json
import re

import pytest
import torch
from torch import nn

from audit_models import (Noisy, Probabilities, Quantised, Saturating, SelfAttacking, flat_images,
                          hump, slab, trained_binary_linear)
from lsnotes import attacks, cli, robustness
from lsnotes.robustness import checklist, symptoms
from tiny_models import blobs, trained_linear

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = 0.15
# small enough that one audit of a tiny model takes about a second
TEST = robustness.Battery("test", pgd_steps=10, restart_steps=10, multitargeted_targets=2,
                     odi_restarts=1, square_queries=50, sweep=(2.0,))
# PGD and its restarts cut short: 5 steps of a twentieth of the usual size
CUT_SHORT = robustness.Battery("cut short", pgd_steps=5, pgd_step_factor=0.05, restart_steps=5,
                          restart_step_factor=0.05, multitargeted_targets=2, odi_restarts=1,
                          square_queries=50, sweep=(2.0,))
# steps of 4ε/k: sign PGD reaches the corner of the ball in half its steps
CONVERGED = robustness.Battery("converged", pgd_steps=10, pgd_step_factor=2.0, restart_steps=10,
                          multitargeted_targets=1, odi_restarts=1, square_queries=50, sweep=(2.0,))


@pytest.fixture(scope="module")
def data():
    return blobs(40, seed=2)


@pytest.fixture(scope="module")
def binary():
    model = trained_binary_linear()
    x, y = blobs(200, seed=3)
    keep = y < 2
    return model, x[keep][:40], y[keep][:40]


@pytest.fixture(scope="module")
def audits(linear, data, binary):
    """One audit per test model, computed once for the module."""
    x, y = data
    other = trained_linear(seed=5)
    flat_x, flat_y = flat_images(24)
    binary_model, binary_x, binary_y = binary
    runs = {
        "linear": lambda: robustness.audit(linear, x, y, EPS, battery=TEST, source_model=other,
                                      source_name="another linear model"),
        "quantised": lambda: robustness.audit(Quantised(linear), x, y, EPS, battery=TEST,
                                         source_model=linear, source_name="the linear model"),
        "noisy": lambda: robustness.audit(Noisy(linear), x, y, EPS, battery=TEST),
        "saturating": lambda: robustness.audit(Saturating(linear), x, y, EPS, battery=TEST,
                                          source_model=other, source_name="another linear model"),
        "binary": lambda: robustness.audit(binary_model, binary_x, binary_y, EPS, battery=TEST),
        "binary converged": lambda: robustness.audit(binary_model, binary_x, binary_y, EPS,
                                                battery=CONVERGED),
        "cut short": lambda: robustness.audit(linear, x, y, EPS, battery=CUT_SHORT),
        "hump": lambda: robustness.audit(hump(0.5, 0.1), flat_x, flat_y, 0.1, battery=TEST),
        "slab": lambda: robustness.audit(slab(0.5, 0.1), flat_x, flat_y, 0.1,
                                    battery=robustness.Battery("large steps", pgd_steps=10,
                                                          restart_steps=10, restart_step_factor=2,
                                                          multitargeted_targets=1, odi_restarts=1,
                                                          square_queries=50, sweep=(2.0,))),
        "quantised, 300 queries": lambda: robustness.audit(
            Quantised(linear), x, y, EPS, battery=robustness.Battery(
                "more queries", pgd_steps=10, restart_steps=10, multitargeted_targets=2,
                odi_restarts=1, square_queries=300, sweep=(2.0,))),
        "probabilities": lambda: robustness.audit(Probabilities(linear), x, y, EPS, battery=TEST),
        "dynamic": lambda: robustness.audit(SelfAttacking(linear), x, y, EPS, battery=TEST),
    }
    done = {}

    def get(name):
        if name not in done:
            done[name] = runs[name]()
        return done[name]
    return get


# ----------------------------------------------------------------------------- traced PGD

@pytest.mark.parametrize("norm,loss,restarts,eps", [("linf", "ce", 1, 0.15), ("linf", "cw", 3, 0.1),
                                                    ("l2", "ce", 2, 1.0)])
def test_traced_pgd_returns_what_attacks_pgd_returns(linear, data, norm, loss, restarts, eps):
    x, y = data
    traced = robustness.traced_pgd(linear, x, y, eps, steps=7, norm=norm, loss=loss, restarts=restarts,
                              generator=torch.Generator().manual_seed(4))
    plain = attacks.pgd(linear, x, y, eps, steps=7, norm=norm, loss=loss, restarts=restarts,
                        generator=torch.Generator().manual_seed(4))
    assert torch.equal(traced.x_adv, plain)
    assert traced.losses.shape == traced.wrong.shape == (restarts, 8, len(x))


def test_traced_pgd_records_each_iterate(linear, data):
    x, y = data
    trace = robustness.traced_pgd(linear, x, y, EPS, steps=5, generator=torch.Generator().manual_seed(0))
    # the best iterate is misclassified exactly where some iterate was
    assert torch.equal(trace.broken, linear(trace.x_adv).argmax(1) != y)
    # and its loss is the highest of the run where no iterate was misclassified
    never = ~trace.broken
    best = attacks.attack_loss(linear(trace.x_adv), y)
    assert torch.allclose(best[never], trace.losses[0].max(0).values[never])


def test_still_rising_and_silent_success_read_the_trace():
    steps = torch.arange(11.0)[:, None]
    rising = torch.cat([steps, steps.clamp(max=4)], 1)       # climbing to the end / flat after 4
    wrong = torch.zeros(1, 11, 2, dtype=torch.bool)
    wrong[0, 3, 0] = True                                    # example 0: misclassified once, mid-run
    wrong[0, 5:, 1] = True                                   # example 1: misclassified to the end
    trace = robustness.PGDTrace(torch.zeros(2, 1), rising[None], wrong)
    assert trace.still_rising().tolist() == [True, False]
    assert trace.silent_success().tolist() == [True, False]


def test_still_rising_reads_each_example_s_best_run():
    steps = torch.arange(11.0)[:, None]
    climbing_low = steps / 10                      # rises to the end, but only to 1
    flat_high = (2 * steps).clamp(max=8)           # reaches 8, flat over the last steps
    trace = robustness.PGDTrace(torch.zeros(2, 1), torch.stack([
        torch.cat([climbing_low, flat_high], 1), torch.cat([flat_high, climbing_low], 1)]),
        torch.zeros(2, 11, 2, dtype=torch.bool))
    # the run that climbs is left behind by one that converged higher: not incomplete
    assert trace.still_rising().tolist() == [False, False]
    rising = robustness.PGDTrace(torch.zeros(2, 1), (steps * torch.ones(1, 2))[None],
                                 torch.zeros(1, 11, 2, dtype=torch.bool))
    assert rising.still_rising().tolist() == [True, True]


@pytest.mark.parametrize("only_single, only_iterative, fires", [
    (6, 10, False),   # each attack alone breaks a few: the iterative one wins on balance
    (6, 0, True),     # the single step wins by 6 > 4 examples (2 % of 200)
    (6, 2, False),    # it wins by 4: within the noise floor
    (0, 0, False)])
def test_single_step_beats_iterative_on_balance_above_the_noise_floor(only_single,
                                                                      only_iterative, fires):
    n = 200
    single = torch.zeros(n, dtype=torch.bool)
    iterative = torch.zeros(n, dtype=torch.bool)
    single[:only_single] = True
    iterative[100:100 + only_iterative] = True
    both = torch.arange(n) >= 150                  # broken by both: no say either way
    trip, fired = symptoms.single_step_symptom(torch.ones(n, dtype=torch.bool),
                                               single | both, iterative | both, 0.02)
    assert int(trip.sum()) == only_single and fired == fires


# ----------------------------------------------------------------------------- indicators

def fired(report, key):
    return report.indicator(key).fired


def test_unavailable_gradients_fires_on_a_quantising_input_layer(audits):
    report = audits("quantised")
    ind = report.indicator("unavailable_gradients")
    assert ind.fired and ind.serious and ind.count == sum(report.clean_correct)
    assert report.indicator("aa_zero_gradients").fired
    assert not fired(audits("linear"), "unavailable_gradients")
    assert not fired(audits("linear"), "aa_zero_gradients")


def test_unavailable_gradients_names_a_saturated_softmax(audits):
    ind = audits("saturating").indicator("unavailable_gradients")
    # the cross-entropy gradient underflows; the margin still has a slope everywhere
    assert ind.fired and ind.numbers["saturated_softmax"] == ind.count > 0


def test_unstable_predictions_fires_on_a_noisy_forward_pass(audits):
    report = audits("noisy")
    assert report.indicator("unstable_predictions").serious
    assert report.indicator("aa_randomness").fired
    assert report.serious
    assert not fired(audits("linear"), "unstable_predictions")
    assert not fired(audits("linear"), "aa_randomness")


def test_silent_success_fires_when_large_steps_jump_out_of_a_thin_slab(audits):
    report = audits("slab")
    ind = report.indicator("silent_success")
    assert ind.fired and ind.count > 0
    assert not ind.serious  # the audit keeps the best iterate, so it counted them as broken
    assert report.robust_acc == 0.0
    # on a binary linear model the loss along the path only rises: once wrong, always wrong
    assert not fired(audits("binary"), "silent_success")


def test_incomplete_optimisation_fires_when_the_attack_is_cut_short(audits):
    ind = audits("cut short").indicator("incomplete_optimisation")
    assert ind.fired and ind.serious and ind.count > 0
    assert not fired(audits("binary converged"), "incomplete_optimisation")


def test_transfer_failure_fires_when_the_unquantised_model_transfers(audits):
    report = audits("quantised")
    ind = report.indicator("transfer_failure")
    assert ind.fired and ind.serious and ind.count > 0
    # every example transfer broke is counted broken in the worst case
    assert not any(t and w for t, w in zip(ind.per_example, report.worst_case_correct))
    assert not fired(audits("linear"), "transfer_failure")
    skipped = audits("noisy").indicator("transfer_failure")
    assert skipped.status == "skipped" and "no source model" in skipped.finding


def test_unconstrained_failure_fires_when_gradients_are_gone(audits):
    assert audits("quantised").indicator("unconstrained_failure").serious
    assert audits("linear").eps_sweep[1.0] == 0.0
    assert not fired(audits("linear"), "unconstrained_failure")


def test_single_step_beats_iterative_on_a_deceptive_hump(audits):
    report = audits("hump")
    ind = report.indicator("single_step_beats_iterative")
    assert ind.fired and ind.serious
    assert report.accuracy("fgsm") == 0.0 and report.accuracy("pgd10") == 1.0
    assert not fired(audits("linear"), "single_step_beats_iterative")


def test_stronger_attacks_reveal_a_saturated_model(audits):
    """PGD on cross-entropy is stuck on the saturated model; the margin loss finds the rest."""
    report = audits("saturating")
    ind = report.indicator("stronger_attacks_beat_pgd")
    assert ind.fired and ind.numbers["large"]
    assert report.accuracy("pgd10") - report.robust_acc == pytest.approx(ind.numbers["gap"])
    assert ind.numbers["found_by"]["pgd10_margin"] > 0
    assert f"{100 * ind.numbers['gap']:.1f} points" in ind.finding
    # on a binary linear model CE and margin share one direction: PGD is already the best
    assert not fired(audits("binary"), "stronger_attacks_beat_pgd")


def test_autoattack_checks_for_probabilities_dynamic_defences_and_few_classes(audits):
    assert audits("probabilities").indicator("aa_output_range").fired
    assert audits("dynamic").indicator("aa_dynamic").fired
    assert audits("binary").indicator("aa_classes").fired
    for key in ("aa_output_range", "aa_dynamic", "aa_classes"):
        assert not fired(audits("linear"), key)


def test_square_beats_white_box_attacks_blind_to_a_quantised_input(audits):
    report = audits("quantised, 300 queries")
    check = report.indicator("aa_square")
    assert check.fired and check.serious and report.newly_broken()["square"] == check.count > 0
    assert not fired(audits("linear"), "aa_square")


def test_sound_models_trip_nothing_serious(audits):
    for name in ("linear", "binary", "binary converged"):
        assert audits(name).serious == [], name
        assert audits(name).verdict.startswith("No serious indicator")


# ----------------------------------------------------------------------------- the report

def test_worst_case_is_per_example_over_every_attack(audits, data):
    report = audits("linear")
    _, y = data
    columns = [report.clean_correct] + [r.correct for r in report.rows]
    expected = [all(c is not False for c in column) for column in zip(*columns)]
    assert report.worst_case_correct == expected
    assert report.robust_acc <= min(a for a in (report.accuracy(r.name) for r in report.rows)
                                    if a is not None)
    # stronger attacks ran only on survivors: None where an earlier attack had already won
    cascade = report.row("multitargeted")
    assert cascade.scope == "survivors" and None in cascade.correct
    assert report.labels == y.tolist()
    assert sum(report.newly_broken().values()) == report.n_examples - sum(report.worst_case_correct)


def test_audit_leaves_the_model_and_the_global_rng_alone(linear, data):
    x, y = data
    before = {k: v.clone() for k, v in linear.state_dict().items()}
    rng = torch.get_rng_state()
    linear.train()
    first = robustness.audit(linear, x[:12], y[:12], EPS, battery=TEST)
    assert linear.training
    linear.eval()
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in linear.state_dict().items())
    again = robustness.audit(linear, x[:12], y[:12], EPS, battery=TEST)
    assert first.to_dict()["extra"]["per_example"] == again.to_dict()["extra"]["per_example"]


def test_json_is_robustbench_shaped_with_the_indicators(audits, tmp_path):
    report = audits("quantised")
    info = json.loads(report.save_json(tmp_path / "r.json").read_text())
    for key in ("name", "architecture", "dataset", "threat_model", "eps", "clean_acc",
                "autoattack_acc", "additional_data", "number_forward_passes"):
        assert key in info
    assert info["autoattack_acc"] is None  # the test battery runs APGD, not all of AutoAttack
    extra = info["extra"]
    assert extra["worst_case_acc"] == f"{100 * report.robust_acc:.2f}"
    assert len(extra["per_example"]["worst_case"]) == report.n_examples
    indicators = {i["key"]: i for i in extra["audit"]["indicators"]}
    assert set(indicators) >= {"unavailable_gradients", "unstable_predictions", "silent_success",
                               "incomplete_optimisation", "transfer_failure",
                               "unconstrained_failure"}
    assert indicators["unavailable_gradients"]["status"] == "serious"
    assert len(indicators["transfer_failure"]["per_example"]) == report.n_examples
    assert "unavailable_gradients" in extra["audit"]["serious"]


def test_html_is_one_self_contained_page(audits, tmp_path):
    report = audits("quantised")
    page = robustness.save_html(report, tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"https?://", page)
    assert "<script" not in page and "<link" not in page
    assert page.count("data:image/png;base64,") == 1
    for text in ("Unavailable gradients", "Transfer failure", report.verdict[:40],
                 f"{100 * report.robust_acc:.1f}"):
        assert html.escape(text) in page


def test_l2_audit_sweeps_to_the_diameter_of_the_cube(linear, data):
    x, y = data
    report = robustness.audit(linear, x[:16], y[:16], 1.0, norm="l2", battery=TEST)
    assert report.unconstrained_eps == 6.0                  # √36 pixels: any image is in reach
    assert report.eps_sweep[6.0] == 0.0 and not report.serious
    assert report.to_dict()["threat_model"] == "L2"
    assert report.row("fgm").description.startswith("FGM (L2)")


def test_audit_rejects_bad_arguments(linear, data):
    x, y = data
    for kwargs, message in [({"eps": 0.0}, "eps"), ({"eps": 1.5}, "eps"),
                            ({"eps": 0.1, "norm": "l3"}, "norm"),
                            ({"eps": 0.1, "battery": "quick"}, "battery"),
                            ({"eps": 0.1, "seed": -1}, "seed")]:
        with pytest.raises(ValueError, match=message):
            robustness.audit(linear, x, y, **kwargs)
    with pytest.raises(ValueError, match="shape"):
        robustness.audit(nn.Sequential(nn.Flatten(), nn.Linear(36, 1)), x, y, 0.1)
    with pytest.raises(ValueError, match="non-finite"):
        robustness.audit(Saturating(linear, scale=float("inf")), x, y, 0.1)


# ----------------------------------------------------------------------------- the command

MODEL_FILE = """
import torch
from torch import nn


def build():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


def five_classes():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 5))


def not_finite():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10), Nan())


class Nan(nn.Module):
    def forward(self, x):
        return x * float("nan")


def broken():
    raise RuntimeError("cannot build today")


NOT_CALLABLE = 3
"""


@pytest.fixture(scope="module")
def reader_model(tmp_path_factory):
    """A model defined outside the package, and weights trained and saved as a reader would."""
    from lsnotes.data import load_subset

    folder = tmp_path_factory.mktemp("reader")
    (folder / "my_models.py").write_text(MODEL_FILE)
    (folder / "syntax_error.py").write_text("def build(:\n")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, y = load_subset("fashion-mnist", "train", 500, seed=1)
    for _ in range(30):
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), model.parameters())
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= 0.5 * g
    torch.save(model.state_dict(), folder / "weights.pt")
    torch.save(nn.Linear(3, 3).state_dict(), folder / "other.pt")
    torch.save([1, 2, 3], folder / "list.pt")
    return folder


def test_cli_audits_a_model_from_a_file_outside_the_package(reader_model, tmp_path, capsys):
    out = tmp_path / "report"
    code = cli.main(["audit", "--model", f"{reader_model / 'my_models.py'}:build",
                     "--weights", str(reader_model / "weights.pt"), "--dataset", "fashion-mnist",
                     "--eps", "0.1", "--n", "20", "--quick", "--no-transfer", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    info = json.loads((out / "report.json").read_text())
    assert info["dataset"] == "fashion-mnist" and info["threat_model"] == "Linf"
    assert info["eps"] == "0.1" and info["extra"]["n_examples"] == 20
    assert float(info["clean_acc"]) > 50  # the saved weights were loaded
    assert info["extra"]["audit"]["battery"]["name"] == "quick"
    transfer = next(i for i in info["extra"]["audit"]["indicators"] if i["key"] == "transfer_failure")
    assert transfer["status"] == "skipped" and "--no-transfer" in transfer["skipped"]
    labels = info["extra"]["per_example"]["label"]
    assert sorted(labels.count(k) for k in range(10)) == [2] * 10   # class-balanced
    page = (out / "report.html").read_text()
    assert not re.search(r"https?://", page)
    assert "pgd20" in printed and "wrote" in printed


@pytest.mark.parametrize("args,message", [
    (["--model", "no_such_module_xyz:build"], "cannot import 'no_such_module_xyz'"),
    (["--model", "{dir}/syntax_error.py:build"], "cannot import .*SyntaxError"),
    (["--model", "{dir}/missing.py:build"], "no such file"),
    (["--model", "{dir}/my_models.py"], "MODULE:CALLABLE"),
    (["--model", "{dir}/my_models.py:nothing"], "has no attribute 'nothing'"),
    (["--model", "{dir}/my_models.py:NOT_CALLABLE"], "is not callable"),
    (["--model", "{dir}/my_models.py:broken"], "calling broken\\(\\) failed: RuntimeError"),
    (["--weights", "{dir}/other.pt"], "does not fit the model: missing 2: 1.weight"),
    (["--weights", "{dir}/list.pt"], "holds a list, not a state dict"),
    (["--weights", "{dir}/none.pt"], "no such file"),
    (["--model", "{dir}/my_models.py:five_classes", "--weights", None], "shape \\(8, 5\\).*\\(8, 10\\)"),
    (["--model", "{dir}/my_models.py:not_finite", "--weights", None], "non-finite"),
    (["--dataset", "imagenet"], "--dataset must be one of"),
    (["--eps", "abc"], "--eps must be a number"),
    (["--eps", "1.5"], r"--eps must be a finite number in \(0, 1\]"),
    (["--eps", "0"], r"--eps must be a finite number in \(0, 1\]"),
    (["--norm", "l3"], "--norm must be one of"),
    (["--norm", "l2", "--eps", None], "--eps is required with --norm l2"),
    (["--n", "0"], "--n must be an integer >= 1"),
    (["--n", "ten"], "--n must be an integer"),
])
def test_cli_bad_input_is_one_line_and_exit_2(reader_model, args, message, capsys, tmp_path):
    given = {"--model": "{dir}/my_models.py:build", "--weights": "{dir}/weights.pt",
             "--dataset": "fashion-mnist", "--eps": "0.1", "--n": "10"}
    given.update(dict(zip(args[::2], args[1::2])))
    argv = ["audit", "--quick", "--no-transfer", "--out", str(tmp_path)]
    for flag, value in given.items():
        if value is not None:
            argv += [flag, value.replace("{dir}", str(reader_model))]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(message, err), err
    assert not (tmp_path / "report.json").exists()


def test_cli_dataset_not_on_disk_is_one_line(reader_model, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LSNOTES_DATA", str(tmp_path / "empty"))
    assert cli.main(["audit", "--model", f"{reader_model}/my_models.py:build", "--dataset",
                     "svhn", "--n", "10", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--dataset svhn: dataset 'svhn'" in err, err


def test_transfer_source_says_why_when_we_have_no_model(tmp_path, monkeypatch):
    from lsnotes.robustness.book_models import transfer_source

    monkeypatch.setenv("LSNOTES_CACHE", str(tmp_path))   # an empty model cache
    model, name, reason = transfer_source("svhn", "cpu", progress=False)
    assert model is None and "trains no svhn model" in reason
    model, name, reason = transfer_source("cifar10", "cpu", progress=False)
    assert model is None and "not in the model cache" in reason


# ----------------------------------------------------------------------------- the zoo (slow)

@pytest.fixture(scope="module")
def book_zoo():
    from lsnotes import zoo as book_zoo

    x, y = book_zoo.eval_examples("quick", 0, "cpu", n=40)
    source = book_zoo.trained("quick", "ce", 0.0).model
    return book_zoo, x, y, source


@pytest.mark.slow
def test_label_smoothing_09_pgd_overestimates_and_stronger_attacks_reveal_it(book_zoo):
    zoo, x, y, source = book_zoo
    model = zoo.trained("quick", "szegedy", 0.9).model
    report = robustness.audit(model, x, y, 0.1, quick=True, source_model=source, source_name="CE")
    ind = report.indicator("stronger_attacks_beat_pgd")
    assert ind.fired and ind.numbers["large"], ind.finding
    assert ind.numbers["found_by"], ind.finding


@pytest.mark.slow
def test_adversarially_trained_model_trips_nothing_serious(book_zoo):
    zoo, x, y, source = book_zoo
    model = zoo.trained("quick", "ce", 0.0, adversarial="pgd").model
    report = robustness.audit(model, x, y, 0.1, quick=True, source_model=source, source_name="CE")
    assert report.serious == [], report.verdicts
    assert report.robust_acc > 0.2


@pytest.mark.slow
def test_full_autoattack_gives_robustbench_its_autoattack_accuracy(linear, data):
    x, y = data
    battery = robustness.Battery("standard", pgd_steps=10, restart_steps=10, multitargeted_targets=2,
                            odi_restarts=1, autoattack="standard", sweep=())
    report = robustness.audit(linear, x[:20], y[:20], EPS, battery=battery)
    aa = report.row("autoattack")
    assert aa.scope == "all" and "square" not in [r.name for r in report.rows]
    direct, broken_by = attacks.autoattack(linear, x[:20], y[:20], EPS,
                                           generator=checklist.audit_generator("autoattack", 0))
    assert aa.correct == [None if b == "clean" else b is None for b in broken_by]
    assert aa.notes == [None if b == "clean" else b for b in broken_by]
    assert report.to_dict()["autoattack_acc"] == f"{100 * report.autoattack_acc:.2f}"
    assert report.robust_acc <= report.autoattack_acc
    assert report.indicator("aa_square").status != "skipped"


def test_the_chapter_says_what_is_missing_instead_of_failing(tmp_path, monkeypatch):
    from lsnotes.robustness import book_models

    monkeypatch.setenv("LSNOTES_CACHE", str(tmp_path))   # an empty model cache
    models = book_models.inventory("quick")
    assert all(m.requested for m in models) and len(models) == 19
    assert set(book_models.representatives(models, "quick")) == {"CE", "LS", "FGSM-AT", "PGD-AT"}
    x, y = blobs(4, seed=0)
    reports, missing = book_models.audit_representatives("quick", 0, "cpu", x, y, 0.1,
                                                       names=["LS", "PGD-AT"])
    assert reports == {} and missing == ["LS", "PGD-AT"]
    story = book_models.story(reports, "quick", missing)
    assert "not in the model cache" in story["ls_sentence"] and story["fgsm_at_sentence"] == ""
    assert book_models.accuracy_table(models, x, y, 0.1) == ([], [m.label for m in models])
    assert book_models.recorded_view(None) is None
    with pytest.raises(ValueError, match="names entry"):
        book_models.audit_representatives("quick", 0, "cpu", x, y, 0.1, names=["ResNet"])


def test_the_chapter_story_reports_the_audits_numbers(audits):
    from lsnotes.robustness import book_models

    saturating = audits("saturating")
    story = book_models.story({"LS": saturating, "PGD-AT": audits("linear")}, "quick")
    gap = saturating.indicator("stronger_attacks_beat_pgd").numbers["gap"]
    assert f"overestimates its robustness by {100 * gap:.0f} points" in story["ls_sentence"]
    assert "the margin loss (" in story["ls_sentence"]
    assert "no serious indicator" in story["at_sentence"]
    table = book_models.summary_table({"LS": saturating}).to_markdown()
    assert f"{saturating.robust_acc:.2f}" in table and "Unavailable gradients" in table
