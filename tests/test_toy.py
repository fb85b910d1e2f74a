"""The exact toy-problem formulas against quadrature, Monte-Carlo, learning and sympy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from lsnotes import toy

GAMMAS = (0.5, 0.6, 2 / 3)


def _quad(label, integrand, b):
    """∫ f_label(x) integrand(x + b) dx by adaptive quadrature, split at the kinks."""
    points = sorted({-1.0, 0.0, 1.0 if label == 1 else 0.0} | ({-b} if -1 < -b < 1 else set()))
    return sum(integrate.quad(lambda x: toy.class_density(x, label) * integrand(x + b), lo, hi,
                              epsabs=1e-13, epsrel=1e-13)[0]
               for lo, hi in zip(points[:-1], points[1:]) if hi > lo)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("b", [-1.5, -0.4, 0.0, 0.3, 0.83, 2.0])
def test_closed_forms_match_quadrature(gamma, b):
    softplus = lambda u: np.logaddexp(0.0, u)
    sigmoid = lambda u: 1.0 / (1.0 + np.exp(-u))
    ce = gamma * _quad(1, lambda u: softplus(-u), b) + (1 - gamma) * _quad(-1, softplus, b)
    assert toy.ce_risk(b, gamma) == pytest.approx(ce, abs=1e-11)
    slope = -gamma * _quad(1, lambda u: sigmoid(-u), b) + (1 - gamma) * _quad(-1, sigmoid, b)
    assert toy.ce_risk_derivative(b, gamma) == pytest.approx(slope, abs=1e-11)
    margin = (gamma * _quad(1, lambda u: max(u, 0.0), b)
              + (1 - gamma) * _quad(-1, lambda u: max(-u, 0.0), b))
    assert toy.correct_margin(b, gamma) == pytest.approx(margin, abs=1e-11)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_risk_derivatives_are_derivatives(gamma):
    h = 1e-5
    for b in (-0.7, 0.2, 0.6, 1.3):
        for alpha in (0.0, 0.3, 1.0):
            numeric = (toy.als_risk(b + h, alpha, gamma) - toy.als_risk(b - h, alpha, gamma)) / (2 * h)
            assert toy.als_risk_derivative(b, alpha, gamma) == pytest.approx(numeric, abs=1e-8)
            numeric = (toy.als_risk_derivative(b + h, alpha, gamma)
                       - toy.als_risk_derivative(b - h, alpha, gamma)) / (2 * h)
            assert toy.als_risk_curvature(b, alpha, gamma) == pytest.approx(numeric, abs=1e-6)
            numeric = (toy.sls_risk(b + h, alpha, gamma) - toy.sls_risk(b - h, alpha, gamma)) / (2 * h)
            assert toy.sls_risk_derivative(b, alpha, gamma) == pytest.approx(numeric, abs=1e-8)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_minimisers_are_roots_and_minima(gamma):
    alphas = np.array([0.0, 0.1, 0.5, 1.0])
    als = toy.als_bias(alphas, gamma)
    sls = toy.sls_bias(alphas, gamma)
    assert als[0] == sls[0] == toy.ce_bias(gamma)
    for alpha, b_als, b_sls in zip(alphas, als, sls):
        assert abs(toy.als_risk_derivative(b_als, alpha, gamma)) < 1e-12
        assert abs(toy.sls_risk_derivative(b_sls, alpha, gamma)) < 1e-12
        for step in (-1e-3, 1e-3):
            assert toy.als_risk(b_als + step, alpha, gamma) > toy.als_risk(b_als, alpha, gamma)
            assert toy.sls_risk(b_sls + step, alpha, gamma) > toy.sls_risk(b_sls, alpha, gamma)
    grid = np.linspace(-3, 3, 601)
    assert np.all(toy.als_risk_curvature(grid, 0.7, gamma) > 0)  # strictly convex: unique root


def test_known_values_at_two_thirds():
    # Posterior on [-1, 0] is exactly 1/2: every boundary in [-1, 0] has accuracy 2/3.
    assert toy.posterior(-0.5) == pytest.approx(0.5)
    assert toy.bayes_boundary() == 0.0
    assert toy.accuracy(toy.als_bias(np.linspace(0, 1, 5)), 0.0) == pytest.approx(2 / 3)
    assert toy.bayes_accuracy(0.25) == pytest.approx(2 / 3 * 0.75 ** 2)
    assert toy.squeeze_limit_bias(2 / 3) == pytest.approx(0.0, abs=1e-15)
    assert np.all(np.diff(toy.als_bias(np.linspace(0, 1, 11))) < 0)  # α pulls b towards Bayes


def test_accuracy_piecewise_edges():
    # Boundary far left: every +1 point is correct, every -1 point wrong, whatever eps allows.
    assert toy.accuracy(5.0, 0.0, 0.6) == pytest.approx(0.6)
    assert toy.accuracy(-5.0, 0.0, 0.6) == pytest.approx(0.4)
    assert toy.accuracy(0.0, 1.0, 0.6) == 0.0
    eps = np.linspace(0, 1, 7)
    assert np.all(np.diff(toy.accuracy(0.4, eps)) <= 0)


@pytest.mark.parametrize("gamma", [0.5, 2 / 3])
def test_monte_carlo_agrees_with_formulas(gamma):
    n = 10 ** 6
    x, y = toy.sample(n, gamma, np.random.default_rng(123))
    for b in (-0.5, 0.0, float(toy.als_bias(0.5, gamma)), toy.ce_bias(gamma), 1.2):
        for eps in (0.0, 0.1, 0.3, 0.7, 1.0):
            exact = toy.accuracy(b, eps, gamma)
            standard_error = math.sqrt(exact * (1 - exact) / n)
            # 5 binomial standard errors: a false alarm has probability below 1e-6 per check.
            assert abs(toy.empirical_accuracy(x, y, b, eps) - exact) <= 5 * standard_error + 1e-12


@pytest.mark.parametrize("method, alpha", [("als", 0.0), ("als", 0.5), ("als", 1.0), ("sls", 0.3)])
def test_gradient_descent_with_package_loss_lands_on_minimiser(method, alpha):
    gamma = 2 / 3
    n = 20_000
    x, y = toy.sample(n, gamma, np.random.default_rng(7))
    learned = toy.fit_bias(x, y, method, alpha, steps=60, tolerance=1e-7)
    exact = toy.als_bias(alpha, gamma) if method == "als" else toy.sls_bias(alpha, gamma)
    # Sampling error of the empirical minimiser is O(1/sqrt(n)); the sandwich formula gives it.
    tolerance = 5 * toy.als_bias_standard_error(alpha, n, gamma) if method == "als" else 0.05
    assert abs(learned - exact) < tolerance


def test_standard_error_matches_replications():
    """The sandwich standard error of b̂ agrees with the spread over replications (20 %)."""
    gamma, alpha, n = 2 / 3, 0.5, 4_000
    rng = np.random.default_rng(0)
    from scipy import optimize

    estimates = []
    for _ in range(200):
        x, y = toy.sample(n, gamma, rng)
        labels = y == 1

        def empirical_slope(b):  # mean per-sample gradient of the ALS loss
            u = x + b
            sig = 1 / (1 + np.exp(-u))
            return np.mean(sig - labels + alpha * y * (y * u > 0))

        estimates.append(optimize.brentq(empirical_slope, -3, 3, xtol=1e-10))
    predicted = toy.als_bias_standard_error(alpha, n, gamma)
    assert np.std(estimates) == pytest.approx(predicted, rel=0.2)
    assert np.mean(estimates) == pytest.approx(toy.als_bias(alpha, gamma), abs=4 * predicted / math.sqrt(200) + 2e-3)


def test_sympy_first_order_condition_matches_root():
    import mpmath
    import sympy as sp

    x, b, a, g = sp.symbols("x b alpha gamma", real=True)
    softplus = lambda t: sp.log(1 + sp.exp(t))
    # Boundary -b inside (-1, 0): the four ALS label cases become these integrals.
    ce = (g * (sp.Integral((1 + x) * softplus(-(x + b)), (x, -1, 0))
               + sp.Integral((1 - x) * softplus(-(x + b)), (x, 0, 1)))
          + (1 - g) * sp.Integral(2 * (1 + x) * softplus(x + b), (x, -1, 0)))
    squeeze = (g * (sp.Integral((1 + x) * (x + b), (x, -b, 0)) + sp.Integral((1 - x) * (x + b), (x, 0, 1)))
               + (1 - g) * sp.Integral(2 * (1 + x) * (-(x + b)), (x, -1, -b)))
    first_order = sp.diff(ce + a * squeeze, b)
    squeeze_slope = sp.diff(squeeze, b).doit()
    assert sp.simplify(squeeze_slope - (g * (1 - (1 - b) ** 2 / 2) - (1 - g) * (1 - b) ** 2)) == 0
    for gamma, alpha in ((sp.Rational(2, 3), sp.Rational(1, 2)), (sp.Rational(3, 5), sp.Rational(1, 5))):
        condition = sp.lambdify(b, first_order.subs({g: gamma, a: alpha}), modules="mpmath")
        root = mpmath.findroot(condition, 0.3)
        assert float(root) == pytest.approx(toy.als_bias(float(alpha), float(gamma)), abs=1e-10)


@pytest.mark.parametrize("call, message", [
    (lambda: toy.als_bias(1.5), "alpha"),
    (lambda: toy.als_bias(0.2, gamma=0.9), "gamma"),
    (lambda: toy.accuracy(0.0, eps=-0.1), "eps"),
    (lambda: toy.accuracy(np.nan, eps=0.1), "b"),
    (lambda: toy.accuracy(0.0, eps=np.array([0.1, 2.0])), "eps"),
    (lambda: toy.sample(0), "n"),
    (lambda: toy.sls_bias(-0.1, 0.6), "alpha"),
    (lambda: toy.ce_bias("high"), "gamma"),
    (lambda: toy.accuracy(0.0, eps="0.1"), "eps"),
    # no data, or 0/1 labels where the toy's classes are -1/+1 (a wrong number, silently, before)
    (lambda: toy.fit_bias([], []), "x must be a non-empty"),
    (lambda: toy.fit_bias(np.array([0.1, 0.2]), np.array([0, 1])), "y must hold labels -1 or \\+1"),
    (lambda: toy.empirical_accuracy(np.array([0.1, -0.2]), np.array([1, 0]), 0.0), "y must hold labels"),
    (lambda: toy.empirical_accuracy(np.array([0.1, -0.2]), np.array([1, -1, 1]), 0.0), "y must have"),
    (lambda: toy.attack(np.array([0.1, np.nan]), np.array([1, -1]), 0.0, 0.1), "x"),
    (lambda: toy.fit_bias(np.array([0.1, -0.2]), np.array([1, -1]), method="mixup"), "method"),
    (lambda: toy.sample(5, generator=-1), "generator"),
    (lambda: toy.class_density([0.1, np.inf], +1), "x"),
])
def test_invalid_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_vectorised_over_arrays():
    eps = np.linspace(0, 1, 5)
    values = toy.accuracy(0.3, eps)
    assert values.shape == (5,)
    assert values[2] == pytest.approx(toy.accuracy(0.3, 0.5))
    grid = toy.accuracy(np.array([0.1, 0.2])[:, None], eps[None, :])
    assert grid.shape == (2, 5)
