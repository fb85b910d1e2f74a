"""Property tests of the audit's Python API (issue 20, item 5): on tiny random models and inputs,
with any valid settings, :func:`lsnotes.robustness.audit` never crashes, never reports a robust
accuracy above the clean accuracy, never reports a non-finite number, and refuses every invalid
setting with a ValueError that names it. ``make test`` runs few derandomised examples,
``make fuzz`` many fresh ones."""

from __future__ import annotations

import json
import math

import pytest
import torch
from fuzzing import examples
from hypothesis import given, settings, strategies as st
from torch import nn

from lsnotes import robustness
from lsnotes.robustness.checklist import unconstrained_eps
from tiny_models import SHAPE

PIXELS = math.prod(SHAPE)


def random_model(seed: int, n_classes: int, hidden: int, scale: float) -> nn.Module:
    """An untrained linear model or one-hidden-layer ReLU network with random weights."""
    torch.manual_seed(seed)
    if hidden:
        layers = [nn.Flatten(), nn.Linear(PIXELS, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)]
    else:
        layers = [nn.Flatten(), nn.Linear(PIXELS, n_classes)]
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def random_data(seed: int, n: int, n_classes: int, model=None):
    """Images in [0, 1]; labels random, or (half of them) the model's own predictions so that
    some examples are correctly classified and the attacks have work to do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *SHAPE, generator=g)
    y = torch.randint(0, n_classes, (n,), generator=g)
    if model is not None:
        with torch.no_grad():
            y[: n // 2 + 1] = model(x[: n // 2 + 1]).argmax(1)
    return x, y


batteries = st.builds(
    robustness.Battery, name=st.just("fuzz"), pgd_steps=st.integers(1, 4),
    pgd_step_factor=st.sampled_from([0.1, 1.0, 5.0]), restarts=st.integers(1, 2),
    restart_steps=st.integers(1, 4), restart_step_factor=st.sampled_from([1.0, 4.0]),
    multitargeted_targets=st.one_of(st.none(), st.integers(1, 3)), odi_restarts=st.integers(1, 2),
    apgd_steps=st.integers(1, 4), square_queries=st.integers(1, 10),
    sweep=st.lists(st.sampled_from([0.25, 0.5, 2.0, 1e3]), max_size=2).map(tuple),
    repeats=st.integers(1, 3), escalation_queries=st.integers(1, 10))


def finite_numbers(value) -> bool:
    """Every number anywhere in a JSON-like value is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(finite_numbers(v) for v in value)
    return True


@settings(max_examples=examples(6), deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 10), n_classes=st.sampled_from([2, 3, 10]),
       hidden=st.sampled_from([0, 8]), scale=st.sampled_from([0.0, 1.0, 50.0]),
       norm=st.sampled_from(["linf", "l2"]), eps_fraction=st.floats(1e-4, 1.0),
       battery=batteries, with_source=st.booleans(), tolerance=st.floats(0, 1),
       masking_gap=st.floats(0, 1), batch_size=st.integers(1, 12))
def test_audit_on_random_tiny_models_is_sane(seed, n, n_classes, hidden, scale, norm,
                                             eps_fraction, battery, with_source, tolerance,
                                             masking_gap, batch_size):
    model = random_model(seed, n_classes, hidden, scale)
    x, y = random_data(seed, n, n_classes, model)
    eps = eps_fraction * unconstrained_eps(norm, x)
    source = random_model(seed + 1, n_classes, 0, 1.0) if with_source else None
    report = robustness.audit(model, x, y, eps, norm=norm, battery=battery, source_model=source,
                              seed=seed, tolerance=tolerance, masking_gap=masking_gap,
                              batch_size=batch_size)
    assert 0 <= report.robust_acc <= report.clean_acc <= 1
    for row in report.rows:
        accuracy = row.accuracy(report.clean_correct)
        assert accuracy is None or accuracy <= report.clean_acc
    assert all(a is None or 0 <= a <= report.clean_acc for e, a in report.eps_sweep.items() if e > 0)
    info = report.to_dict()
    assert finite_numbers(info)
    json.dumps(info, allow_nan=False)   # raises on nan or inf anywhere


MODEL = random_model(0, 10, 0, 1.0)
X, Y = random_data(0, 4, 10, MODEL)
not_a_number = st.sampled_from([float("nan"), float("inf"), -float("inf")])
BAD = {
    "eps": st.one_of(not_a_number, st.floats(max_value=0.0), st.floats(1.0001, 1e30)),
    "norm": st.text(max_size=8).filter(lambda s: s not in ("linf", "l2")),
    "seed": st.one_of(st.integers(max_value=-1), not_a_number, st.text(max_size=3)),
    "tolerance": st.one_of(not_a_number, st.floats(max_value=-1e-9), st.floats(1.0001, 1e30)),
    "masking_gap": st.one_of(not_a_number, st.floats(max_value=-1e-9), st.floats(1.0001, 1e30)),
    "batch_size": st.one_of(st.integers(max_value=0), st.floats(0.5, 3.5), st.text(max_size=3)),
    "battery": st.one_of(st.none().map(lambda _: "quick"), st.integers(), st.dictionaries(
        st.text(max_size=3), st.integers(), max_size=2)),
}


@settings(max_examples=examples(30), deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(BAD)))
def test_audit_refuses_invalid_settings_naming_the_parameter(data, name):
    value = data.draw(BAD[name], label=name)
    with pytest.raises(ValueError, match=name):
        robustness.audit(MODEL, X, Y, **{"eps": 0.1, name: value})
