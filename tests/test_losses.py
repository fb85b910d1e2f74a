"""lsnotes.losses: smoothed labels, Theorem 1 (two independent forms agree), validation."""

from __future__ import annotations

import math

import pytest
import torch
from fuzzing import examples
from hypothesis import given, settings, strategies as st

from lsnotes import losses as L

SMOOTHED = tuple(m for m in L.METHODS if m != "ce")


def _random_logits(seed: int, batch: int, num_classes: int, scale: float, ties: bool):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, num_classes, generator=gen, dtype=torch.float64) * scale
    if ties:  # round onto a coarse grid so equal logits (ties) are common
        z = torch.round(z / scale * 2) * scale / 2
    y = torch.randint(0, num_classes, (batch,), generator=gen)
    return z, y


@settings(max_examples=examples(60), deadline=None)
@given(seed=st.integers(0, 2**31 - 1),
       num_classes=st.sampled_from([2, 3, 7, 10, 100, 1000]),
       batch=st.integers(1, 6),
       scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]),
       ties=st.booleans(),
       method=st.sampled_from(L.METHODS),
       alpha=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       temperature=st.sampled_from([0.1, 1.0, 10.0]))
def test_theorem1_values_and_gradients_agree(seed, num_classes, batch, scale, ties, method,
                                            alpha, temperature):
    z, y = _random_logits(seed, batch, num_classes, scale, ties)
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    smoothed = L.smoothed_cross_entropy(z1, y, method, alpha, temperature, reduction="none")
    penalised = L.penalty_loss(z2, y, method, alpha, temperature, reduction="none")
    # Terms of size up to ~K * 1e4 cancel, so compare relative to the logit magnitude.
    tol = 1e-9 * (1.0 + z.abs().max().item())
    torch.testing.assert_close(smoothed, penalised, rtol=1e-9, atol=tol)
    smoothed.sum().backward()
    penalised.sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-9, atol=1e-9)
    # Both gradients equal softmax(z) - q: r carries no gradient.
    q = L.smoothed_labels(z, y, method, alpha, temperature)
    torch.testing.assert_close(z1.grad, torch.softmax(z, 1) - q, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.7, 1.0])
def test_szegedy_equals_torch_label_smoothing(alpha):
    z, y = _random_logits(1, 16, 10, 3.0, False)
    ours = L.smoothed_cross_entropy(z, y, "szegedy", alpha)
    theirs = torch.nn.CrossEntropyLoss(label_smoothing=alpha)(z, y)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", L.METHODS)
def test_rows_are_distributions_and_detached(method):
    z, y = _random_logits(2, 8, 5, 2.0, True)
    z.requires_grad_(True)
    r = L.smoothing_distribution(z, y, method, temperature=0.5)
    assert not r.requires_grad
    assert (r >= 0).all()
    torch.testing.assert_close(r.sum(1), torch.ones(8, dtype=r.dtype))
    q = L.smoothed_labels(z, y, method, 0.3, temperature=0.5)
    torch.testing.assert_close(q.sum(1), torch.ones(8, dtype=q.dtype))


def test_supports():
    z = torch.tensor([[3.0, -1.0, 0.5, 2.0], [0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([0, 3])
    r = lambda m, **kw: L.smoothing_distribution(z, y, m, **kw)  # noqa: E731
    torch.testing.assert_close(r("ce"), torch.eye(4, dtype=z.dtype)[[0, 3]])
    torch.testing.assert_close(r("szegedy"), torch.full((2, 4), 0.25, dtype=z.dtype))
    third = 1 / 3
    torch.testing.assert_close(r("sls"), torch.tensor([[0, third, third, third],
                                                       [third, third, third, 0]], dtype=z.dtype))
    torch.testing.assert_close(r("als"), torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0.]], dtype=z.dtype))
    torch.testing.assert_close(r("sbls"), torch.tensor([[0, 0, 0, 1], [0, 0, 1, 0.]], dtype=z.dtype))
    bls = r("bls", temperature=1.0)
    torch.testing.assert_close(bls, torch.softmax(-z, 1))
    assert (bls > 0).all()  # BLS ranges over all K classes, the true one included


def test_als_when_true_class_is_smallest():
    z = torch.tensor([[-5.0, 1.0, 2.0]])
    r = L.smoothing_distribution(z, torch.tensor([0]), "als")
    torch.testing.assert_close(r, torch.tensor([[1.0, 0.0, 0.0]]))


def test_ties_split_equally():
    z = torch.tensor([[1.0, -2.0, 4.0, -2.0, -2.0, 4.0]])
    y = torch.tensor([0])
    als = L.smoothing_distribution(z, y, "als")
    torch.testing.assert_close(als, torch.tensor([[0, 1 / 3, 0, 1 / 3, 1 / 3, 0]]))
    sbls = L.smoothing_distribution(z, y, "sbls")
    torch.testing.assert_close(sbls, torch.tensor([[0, 0, 0.5, 0, 0, 0.5]]))
    # A tie between the true logit and a wrong one: SBLS ignores the true class.
    sbls_true_tied = L.smoothing_distribution(z, torch.tensor([2]), "sbls")
    torch.testing.assert_close(sbls_true_tied, torch.tensor([[0, 0, 0, 0, 0, 1.0]]))


def test_bls_limits():
    z, y = _random_logits(3, 32, 10, 1.0, False)
    torch.testing.assert_close(L.smoothing_distribution(z, y, "bls", temperature=1e-4),
                               L.smoothing_distribution(z, y, "als"))
    hot = L.smoothing_distribution(z, y, "bls", temperature=1e9)
    torch.testing.assert_close(hot, L.smoothing_distribution(z, y, "szegedy"))
    # ...which is uniform over K, not the K-1 SLS label.
    assert (hot - L.smoothing_distribution(z, y, "sls")).abs().max() > 0.05
    # Ties at T -> 0 share the mass equally, as ALS does.
    tied = torch.tensor([[0.0, -1.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(L.smoothing_distribution(tied, torch.tensor([0]), "bls",
                                                        temperature=1e-3),
                               torch.tensor([[0, 0.5, 0.5]], dtype=torch.float64))


def test_ce_ignores_alpha_and_reductions():
    z, y = _random_logits(4, 5, 3, 1.0, False)
    plain = torch.nn.functional.cross_entropy(z, y, reduction="none")
    for alpha in (0.0, 0.9):
        torch.testing.assert_close(L.smoothed_cross_entropy(z, y, "ce", alpha, reduction="none"), plain)
        torch.testing.assert_close(L.penalty_loss(z, y, "ce", alpha, reduction="sum"), plain.sum())
    torch.testing.assert_close(L.loss_function("ce")(z, y), plain.mean())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_any_float_dtype(dtype):
    z, y = _random_logits(5, 4, 6, 1.0, False)
    z = z.to(dtype).requires_grad_(True)
    for method in L.METHODS:
        loss = L.loss_function(method, 0.2, 2.0)(z, y)
        assert loss.dtype == dtype and torch.isfinite(loss)
        loss.backward()
        alt = L.penalty_loss(z.detach(), y, method, 0.2, 2.0)
        loss = loss.detach()
        assert abs(loss.item() - alt.item()) < 0.05 * (1 + abs(loss.item()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    z, y = _random_logits(6, 8, 10, 2.0, True)
    for method in L.METHODS:
        cpu = L.penalty_loss(z, y, method, 0.3)
        gpu = L.smoothed_cross_entropy(z.cuda(), y.cuda(), method, 0.3)
        torch.testing.assert_close(gpu.cpu(), cpu)


def test_induced_penalty_matches_code():
    import sympy as sp

    z_values = [0.3, -1.2, 2.0, 0.7]
    symbols = sp.symbols("z0:4")
    y, alpha, temperature = 2, 0.4, 0.8
    z = torch.tensor([z_values], dtype=torch.float64)
    labels = torch.tensor([y])
    cross_entropy = torch.nn.functional.cross_entropy(z, labels).item()
    for method in L.METHODS:
        row = L.induced_penalty(method)
        assert row.method == method and row.penalty_latex and row.smoothing_latex
        expression = row.sympy_penalty(symbols, y, alpha, temperature)
        symbolic = float(expression.subs(dict(zip(symbols, z_values))))
        numeric = L.penalty_loss(z, labels, method, alpha, temperature).item() - cross_entropy
        assert math.isclose(symbolic, numeric, rel_tol=1e-9, abs_tol=1e-12), method


def test_equilibrium_margin_minimises_loss():
    for convention, method in (("szegedy", "szegedy"), ("sls", "sls")):
        for num_classes in (2, 10, 100):
            for alpha in (0.05, 0.3, 0.6):
                m = L.equilibrium_margin(alpha, num_classes, convention)
                margins = torch.tensor([m - 1e-3, m, m + 1e-3], dtype=torch.float64)
                z = torch.zeros(3, num_classes, dtype=torch.float64)
                z[:, 0] = margins
                loss = L.smoothed_cross_entropy(z, torch.zeros(3, dtype=torch.long), method,
                                                alpha, reduction="none")
                assert loss[1] < loss[0] and loss[1] < loss[2]
    assert L.equilibrium_margin(0.1, 10) == pytest.approx(math.log(91))
    assert L.equilibrium_margin(0.0, 10) == math.inf
    assert L.equilibrium_margin(0.9, 10, "sls") == pytest.approx(0.0, abs=1e-12)


def test_equilibrium_margin_decreases_with_alpha():
    margins = [L.equilibrium_margin(a / 10, 10) for a in range(1, 10)]
    assert all(a > b for a, b in zip(margins, margins[1:]))


BAD_CALLS = [
    ("alpha", lambda z, y: L.smoothed_cross_entropy(z, y, "sls", alpha=1.5)),
    ("alpha", lambda z, y: L.penalty_loss(z, y, "sls", alpha=-0.1)),
    ("alpha", lambda z, y: L.smoothed_labels(z, y, "sls", alpha=float("nan"))),
    ("temperature", lambda z, y: L.smoothing_distribution(z, y, "bls", temperature=0.0)),
    ("temperature", lambda z, y: L.loss_function("bls", 0.1, temperature=-1.0)),
    ("method", lambda z, y: L.smoothing_distribution(z, y, "mixup")),
    ("method", lambda z, y: L.loss_function("LS")),
    ("method", lambda z, y: L.induced_penalty("foo")),
    ("reduction", lambda z, y: L.penalty_loss(z, y, "sls", 0.1, reduction="avg")),
    ("reduction", lambda z, y: L.smoothed_cross_entropy(z, y, "sls", 0.1, reduction="max")),
    ("labels", lambda z, y: L.penalty_loss(z, y + 10, "sls", 0.1)),
    ("labels", lambda z, y: L.penalty_loss(z, y - 10, "sls", 0.1)),
    ("labels", lambda z, y: L.penalty_loss(z, y.float(), "sls", 0.1)),
    ("labels", lambda z, y: L.penalty_loss(z, y[:2], "sls", 0.1)),
    ("labels", lambda z, y: L.penalty_loss(z, y[:, None], "sls", 0.1)),
    ("labels", lambda z, y: L.penalty_loss(z, y.tolist(), "sls", 0.1)),
    ("logits", lambda z, y: L.penalty_loss(z[:, :1], y * 0, "sls", 0.1)),
    ("logits", lambda z, y: L.penalty_loss(z[0], y, "sls", 0.1)),
    ("logits", lambda z, y: L.penalty_loss(z.long(), y, "sls", 0.1)),
    ("logits", lambda z, y: L.penalty_loss(z.numpy(), y, "sls", 0.1)),
    ("logits", lambda z, y: L.penalty_loss(torch.where(z > 0, float("nan"), z), y, "sls", 0.1)),
    ("logits", lambda z, y: L.smoothed_cross_entropy(z + float("inf"), y, "als", 0.1)),
    ("num_classes", lambda z, y: L.equilibrium_margin(0.1, 1)),
    ("convention", lambda z, y: L.equilibrium_margin(0.1, 10, "k")),
    ("alpha", lambda z, y: L.equilibrium_margin(2.0, 10)),
    # an empty batch has no mean (it used to come back as NaN), whichever entry point
    ("empty batch", lambda z, y: L.smoothed_cross_entropy(z[:0], y[:0], "sls", 0.1)),
    ("empty batch", lambda z, y: L.penalty_loss(z[:0], y[:0], "als", 0.1, reduction="none")),
    ("empty batch", lambda z, y: L.loss_function("ce")(z[:0], y[:0])),
    ("empty batch", lambda z, y: L.loss_function("ce", check_values=False)(z[:0], y[:0])),
    ("alpha", lambda z, y: L.loss_function("sls", float("inf"))),
    ("temperature", lambda z, y: L.loss_function("bls", 0.1, temperature=float("inf"))),
    ("check_values", lambda z, y: L.loss_function("sls", 0.1, check_values="no")),
    # the trainer's unchecked loss still checks what costs no host synchronisation
    ("labels", lambda z, y: L.loss_function("sls", 0.1, check_values=False)(z, y.float())),
    ("logits", lambda z, y: L.loss_function("sls", 0.1, check_values=False)(z[0], y)),
    # a direct call checks values in full
    ("logits", lambda z, y: L.loss_function("sls", 0.1)(z * float("nan"), y)),
    ("labels", lambda z, y: L.loss_function("sls", 0.1)(z, y + 10)),
]


@pytest.mark.parametrize("argument, call", BAD_CALLS, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD_CALLS)])
def test_invalid_arguments_raise(argument, call):
    z, y = _random_logits(7, 4, 5, 1.0, False)
    with pytest.raises(ValueError, match=argument):
        call(z, y)


def test_int32_labels_are_class_indices_like_int64():
    z, y = _random_logits(3, 6, 5, 1.0, False)
    for method in L.METHODS:
        assert torch.equal(L.smoothed_cross_entropy(z, y.int(), method, 0.2),
                           L.smoothed_cross_entropy(z, y, method, 0.2))
        assert torch.equal(L.loss_function(method, 0.2, check_values=False)(z, y.int()),
                           L.loss_function(method, 0.2)(z, y))
