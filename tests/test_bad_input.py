"""Bad input anywhere in the public API is refused up front with a ValueError that starts with
the parameter's name: hypothesis throws NaN, infinities, negatives, wrong types, empty tensors,
wrong dtypes and shapes, and labels beyond the model's classes at every function below."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from fuzzing import examples
from hypothesis import HealthCheck, given, settings, strategies as st

from lsnotes import attacks, checks, data, losses, robustness, toy, train
from tiny_models import N_CLASSES, blobs, trained_linear

MODEL = trained_linear(steps=20)
X, Y = blobs(6, seed=3)
LOGITS = torch.randn(6, 4)
LABELS = torch.tensor([0, 1, 2, 3, 0, 1])
SAMPLE = toy.sample(50, generator=0)


@dataclass(frozen=True)
class Case:
    param: str
    kind: str                        # which bad values apply (see BAD)
    call: Callable[[object], object]

    def __repr__(self):              # what hypothesis prints for a failing example
        return f"Case({self.param}, {self.kind}, {self.call.__qualname__})"


NOT_NUMBERS = ["0.1", [0.1], True, object(), torch.ones(2)]   # (None means "the default" in places)
NON_FINITE = [math.nan, math.inf, -math.inf]
negative = st.floats(max_value=-1e-6, allow_nan=False, allow_infinity=False)
not_integer = st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != int(v))

BAD = {
    # a number >= 0 (a budget, a tolerance)
    "non_negative": st.sampled_from(NOT_NUMBERS + NON_FINITE) | negative,
    # a number > 0 (a learning rate, a temperature)
    "positive": st.sampled_from(NOT_NUMBERS + NON_FINITE + [0.0]) | negative,
    # a number in [0, 1] (α, an L∞ ε)
    "unit": st.sampled_from(NOT_NUMBERS + NON_FINITE) | negative | st.floats(1.000001, 1e300),
    # the toy's vectorised arguments: a number in [0, 1] or an array of them
    "unit_array": st.sampled_from(["0.1", True, object(), [0.1, math.nan], np.array([0.5, 2.0])]
                                  + NON_FINITE) | negative | st.floats(1.000001, 1e300),
    # an integer >= 1 (steps, sizes) or >= 0 (seeds)
    "count": st.sampled_from(NOT_NUMBERS + NON_FINITE + [0, 2.0]) | st.integers(-10**6, -1) | not_integer,
    "seed": st.sampled_from(NOT_NUMBERS[:2] + NON_FINITE + [2.0, True]) | st.integers(-10**6, -1) | not_integer,
    # a batch of images for MODEL (float32, (N, 1, 6, 6), pixels in [0, 1])
    "x": st.one_of(
        st.sampled_from([X[:0], X.double(), X.half(), X[:, :, :5], X.flatten(), (X * 255).long(),
                         X.numpy(), X.tolist(), torch.empty(6, 0)]),
        st.tuples(st.integers(0, X.numel() - 1),
                  st.sampled_from([math.nan, math.inf, -math.inf]) | st.floats(1.0001, 1e30)
                  | st.floats(-1e30, -1e-6)).map(lambda spot: X.flatten().index_put(
                      (torch.tensor(spot[0]),), torch.tensor(spot[1])).view_as(X))),
    # labels for MODEL's 10 classes, one per example of X
    "y": st.one_of(
        st.sampled_from([Y.float(), Y.bool(), Y[:-1], Y[:, None], Y.tolist(), Y.numpy(), Y.to(torch.complex64)]),
        st.tuples(st.integers(0, len(Y) - 1), st.integers(N_CLASSES, 10**6) | st.integers(-10**6, -1))
        .map(lambda spot: Y.index_put((torch.tensor(spot[0]),), torch.tensor(spot[1])))),
    # logits for the losses: (B, K) finite floats
    "logits": st.one_of(
        st.sampled_from([LOGITS[:0], LOGITS[:, :1], LOGITS.flatten(), LOGITS.long(), LOGITS.tolist()]),
        st.tuples(st.integers(0, LOGITS.numel() - 1), st.sampled_from(NON_FINITE))
        .map(lambda spot: LOGITS.flatten().index_put((torch.tensor(spot[0]),),
                                                     torch.tensor(spot[1])).view_as(LOGITS))),
    # class labels for LOGITS (4 classes)
    "labels": st.one_of(
        st.sampled_from([LABELS.float(), LABELS.bool(), LABELS[:-1], LABELS.tolist()]),
        st.tuples(st.integers(0, len(LABELS) - 1), st.integers(4, 10**6) | st.integers(-10**6, -1))
        .map(lambda spot: LABELS.index_put((torch.tensor(spot[0]),), torch.tensor(spot[1])))),
    # toy labels are ±1 (not 0/1), one per point
    "toy_y": st.sampled_from([np.where(SAMPLE[1] == 1, 1, 0), SAMPLE[1][:-1], SAMPLE[1] * 2,
                              SAMPLE[1].astype(bool), np.array([])]),
    "toy_x": st.sampled_from([np.array([]), SAMPLE[0][:, None], np.full(50, np.nan), "x"]),
    "device": st.sampled_from(["cpu:abc", "auto:0", "tpu", "cuda:-1", "", 0, "cpu:"]),
}

CHEAP = dict(steps=1)
CASES = [
    # attacks
    Case("eps", "unit", lambda v: attacks.pgd(MODEL, X, Y, v, **CHEAP)),
    Case("eps", "non_negative", lambda v: attacks.pgd(MODEL, X, Y, v, norm="l2", **CHEAP)),
    Case("steps", "count", lambda v: attacks.pgd(MODEL, X, Y, 0.1, steps=v)),
    Case("restarts", "count", lambda v: attacks.pgd(MODEL, X, Y, 0.1, restarts=v, **CHEAP)),
    Case("step_size", "non_negative", lambda v: attacks.pgd(MODEL, X, Y, 0.1, step_size=v, **CHEAP)),
    Case("x", "x", lambda v: attacks.pgd(MODEL, v, Y, 0.1, **CHEAP)),
    Case("y", "y", lambda v: attacks.pgd(MODEL, X, v, 0.1, **CHEAP)),
    Case("target", "y", lambda v: attacks.pgd(MODEL, X, Y, 0.1, target=v, **CHEAP)),
    Case("eps", "unit", lambda v: attacks.fgsm(MODEL, X, Y, v)),
    Case("y", "y", lambda v: attacks.bim(MODEL, X, v, 0.1, steps=1)),
    Case("restarts", "count", lambda v: attacks.multitargeted(MODEL, X, Y, 0.1, restarts=v, **CHEAP)),
    Case("y", "y", lambda v: attacks.multitargeted(MODEL, X, v, 0.1, restarts=1, **CHEAP)),
    Case("odi_steps", "count", lambda v: attacks.odi(MODEL, X, Y, 0.1, odi_steps=v, restarts=1, **CHEAP)),
    Case("odi_step_size", "non_negative",
         lambda v: attacks.odi(MODEL, X, Y, 0.1, odi_step_size=v, restarts=1, **CHEAP)),
    Case("x", "x", lambda v: attacks.odi(MODEL, v, Y, 0.1, restarts=1, **CHEAP)),
    Case("step_size", "non_negative", lambda v: attacks.tanh_linf(MODEL, X, Y, 0.1, step_size=v, **CHEAP)),
    Case("x", "x", lambda v: attacks.tanh_linf(MODEL, v, Y, 0.1, **CHEAP)),
    Case("overshoot", "non_negative", lambda v: attacks.deepfool(MODEL, X, Y, overshoot=v, max_iter=1)),
    Case("max_iter", "count", lambda v: attacks.deepfool(MODEL, X, Y, max_iter=v)),
    Case("x", "x", lambda v: attacks.deepfool(MODEL, v, Y, max_iter=1)),
    Case("y", "y", lambda v: attacks.deepfool(MODEL, X, v, max_iter=1)),
    Case("lr", "positive", lambda v: attacks.carlini_wagner_l2(MODEL, X, Y, lr=v, binary_steps=1, max_iter=1)),
    Case("kappa", "non_negative",
         lambda v: attacks.carlini_wagner_l2(MODEL, X, Y, kappa=v, binary_steps=1, max_iter=1)),
    Case("c_init", "positive",
         lambda v: attacks.carlini_wagner_l2(MODEL, X, Y, c_init=v, binary_steps=1, max_iter=1)),
    Case("y", "y", lambda v: attacks.carlini_wagner_l2(MODEL, X, v, binary_steps=1, max_iter=1)),
    Case("p_init", "positive", lambda v: attacks.square(MODEL, X, Y, 0.1, p_init=v, n_queries=1)),
    Case("n_queries", "count", lambda v: attacks.square(MODEL, X, Y, 0.1, n_queries=v)),
    Case("seed", "seed", lambda v: attacks.apgd_ce(MODEL, X, Y, 0.1, seed=v, steps=1)),
    Case("x", "x", lambda v: attacks.apgd_ce(MODEL, v, Y, 0.1, steps=1)),
    Case("y", "y", lambda v: attacks.autoattack(MODEL, X, v, 0.1, version="custom",
                                                attacks_to_run=["apgd-ce"])),
    Case("batch_size", "count", lambda v: attacks.autoattack(MODEL, X, Y, 0.1, batch_size=v,
                                                             version="custom", attacks_to_run=["apgd-ce"])),
    Case("eps", "unit", lambda v: attacks.run_attack("deepfool", MODEL, X, Y, v, max_iter=1)),
    Case("eps", "non_negative", lambda v: attacks.project(X, X, v, "l2")),
    Case("eps", "non_negative", lambda v: attacks.linf_bounds(X, v)),
    # losses
    Case("logits", "logits", lambda v: losses.smoothed_cross_entropy(v, LABELS, "sls", 0.1)),
    Case("labels", "labels", lambda v: losses.smoothed_cross_entropy(LOGITS, v, "sls", 0.1)),
    Case("logits", "logits", lambda v: losses.penalty_loss(v, LABELS, "als", 0.1)),
    Case("labels", "labels", lambda v: losses.loss_function("bls", 0.1)(LOGITS, v)),
    Case("alpha", "unit", lambda v: losses.smoothed_labels(LOGITS, LABELS, "sls", v)),
    Case("temperature", "positive", lambda v: losses.smoothing_distribution(LOGITS, LABELS, "bls", v)),
    Case("num_classes", "count", lambda v: losses.equilibrium_margin(0.1, v)),
    # the toy problem
    Case("gamma", "non_negative", lambda v: toy.accuracy(0.0, 0.1, v)),
    Case("eps", "unit_array", lambda v: toy.accuracy(0.0, v)),
    Case("n", "count", lambda v: toy.sample(v)),
    Case("y", "toy_y", lambda v: toy.empirical_accuracy(SAMPLE[0], v, 0.0)),
    Case("y", "toy_y", lambda v: toy.fit_bias(SAMPLE[0], v)),
    Case("x", "toy_x", lambda v: toy.fit_bias(v, SAMPLE[1])),
    Case("tolerance", "positive", lambda v: toy.fit_bias(*SAMPLE, tolerance=v, steps=1)),
    # training, evaluation, data, checks
    Case("lr", "positive", lambda v: train.TrainConfig(lr=v)),
    Case("weight_decay", "non_negative", lambda v: train.TrainConfig(weight_decay=v)),
    Case("eps", "unit", lambda v: train.TrainConfig(eps=v)),
    Case("epochs", "count", lambda v: train.TrainConfig(epochs=v)),
    Case("seed", "seed", lambda v: train.TrainConfig(seed=v)),
    Case("device", "device", lambda v: train.TrainConfig(device=v)),
    Case("device", "device", lambda v: checks.resolve_device(v)),
    Case("eps", "unit", lambda v: train.robust_accuracy(MODEL, X, Y, v, steps=1)),
    Case("y", "y", lambda v: train.accuracy(MODEL, X, v)),
    Case("eps", "unit", lambda v: robustness.robustness_report(MODEL, X, Y, v, ("fgsm",))),
    Case("x", "x", lambda v: robustness.robustness_report(MODEL, v, Y, 0.1, ("fgsm",))),
    Case("square_queries", "count",
         lambda v: robustness.gradient_masking_diagnostics(MODEL, X, Y, 0.1, square_queries=v)),
    Case("seed", "seed", lambda v: robustness.gradient_masking_diagnostics(MODEL, X, Y, 0.1, seed=v)),
    Case("n", "count", lambda v: data.subset_indices(Y, v)),
    Case("seed", "seed", lambda v: data.subset_indices(Y, 3, v)),
    Case("batch_size", "count", lambda v: data.DeviceLoader(X, Y, v, device="cpu")),
]


@st.composite
def case_and_bad_value(draw):
    case = draw(st.sampled_from(CASES))
    return case, draw(BAD[case.kind])


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_and_bad_value())
def test_bad_input_is_refused_by_name(case_and_value):
    case, value = case_and_value
    with pytest.raises(ValueError) as refused:
        case.call(value)
    message = str(refused.value)
    assert message.startswith(f"{case.param} "), (case, value, message)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.param}-{c.kind}")
def test_every_case_accepts_a_good_value(case):
    """The other half: each call above succeeds with a value from its allowed range, so a
    refusal in the property test is the bad value's doing."""
    good = {"non_negative": 0.05, "positive": 0.5, "unit": 0.05, "unit_array": [0.0, 0.1], "count": 2, "seed": 3, "x": X,
            "y": (Y + 1) % N_CLASSES if case.param == "target" else Y, "logits": LOGITS,
            "labels": LABELS, "toy_y": SAMPLE[1], "toy_x": SAMPLE[0], "device": "cpu"}[case.kind]
    if case.param == "gamma":
        good = 0.6
    case.call(good)


def test_audit_refuses_bad_settings_before_any_work():
    import math as _math

    from lsnotes import robustness
    from tiny_models import blobs, trained_linear

    model = trained_linear(steps=5)
    x, y = blobs(8, seed=0)
    for call, name in [
        (lambda: robustness.Battery("b", pgd_steps=0), "pgd_steps"),
        (lambda: robustness.Battery("b", sweep=(_math.nan,)), "sweep"),
        (lambda: robustness.audit(model, x, y, 1e6, norm="l2"), "eps"),
        (lambda: robustness.audit(model, x.double(), y, 0.1), "dtype"),
        (lambda: robustness.audit(model, x, y, 0.1, bpda_layer="nope"), "bpda_layer"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()


def test_audit_cli_refuses_bad_paths_in_one_line(tmp_path, capsys):
    from lsnotes.cli import main

    existing = tmp_path / "file.txt"
    existing.write_text("x")
    model_file = tmp_path / "m.py"
    model_file.write_text("import torch\ndef build():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))\n")
    for argv, words in [
        (["audit", "--model", "/etc/passwd:x", "--dataset", "mnist", "--out", str(tmp_path / "o")],
         "not a Python source file"),
        (["audit", "--model", f"{model_file}:build", "--dataset", "mnist", "--out", str(existing)],
         "existing file"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and len(err.splitlines()) == 1, err


def test_the_report_pair_is_replaced_as_a_whole(tmp_path, monkeypatch):
    from lsnotes.robustness import cli

    class Fake:
        def __init__(self, tag):
            self.tag = tag

        def save_json(self, path):
            path.write_text(self.tag)

    monkeypatch.setattr(cli, "save_html", lambda report, path: path.write_text(report.tag))
    cli.save_report_pair(Fake("one"), tmp_path / "out")
    cli.save_report_pair(Fake("two"), tmp_path / "out")
    texts = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert texts == {"report.json": "two", "report.html": "two"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("make, name", [
    (lambda: train.TrainConfig(dataset="fashion-mnist", model="linear", lr=1e39), "lr"),
    (lambda: train.TrainConfig(dataset="fashion-mnist", model="linear", weight_decay=1e39),
     "weight_decay"),
    (lambda: __import__("lsnotes.models").models.build_model("linear", mean=[float("nan")]),
     "mean"),
    (lambda: __import__("lsnotes.models").models.build_model("linear", std=[0.0]), "std"),
])
def test_settings_beyond_float32_or_not_finite_are_refused_when_made(make, name):
    with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
        make()


def test_a_throughput_file_with_a_negative_rate_is_refused(tmp_path):
    from lsnotes.zoo import schedule

    path = tmp_path / "gpu.json"
    path.write_text('{"training_epoch": [{"dataset": "mnist", "model": "linear", '
                    '"images_per_s": -5}]}')
    with pytest.raises(ValueError, match="--throughput"):
        schedule.load_throughput(path)


@pytest.mark.parametrize("command", ["run-book", "build-book"])
def test_book_out_naming_a_file_is_refused_before_any_chapter_runs(command, tmp_path, capsys):
    from lsnotes import cli

    target = tmp_path / "a-file"
    target.write_text("keep me")
    assert cli.main([command, "--out", str(target)]) == 2
    assert "--out must name a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"
