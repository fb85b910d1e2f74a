"""The triangular toy problem of Goibert & Dohmatob (2019), solved exactly.

Labels ``Y ∈ {−1, +1}`` with ``P(Y = +1) = γ``, ``γ ∈ [1/2, 2/3]``; ``X | Y = +1`` has the
triangular density ``1 − |x|`` on ``[−1, 1]`` and ``X | Y = −1`` the density ``2(1 + x)`` on
``[−1, 0]``. The model has two logits, ``z₋₁ = 0`` and ``z₊₁ = x + b``: it predicts +1 iff
``x > −b``, so its decision boundary sits at ``x = −b``. An L∞ attack of budget ε moves a point
by ε towards that boundary, which for a threshold in one dimension is the optimal attack.

Every quantity is an integral of a piecewise-linear density against ``1``, ``u``, ``σ(u)`` or
``softplus(u)`` with ``u = x + b``, so it has a closed form (dilogarithm and trilogarithm for the
last two). The minimisers ``b`` of the population risks are roots of closed-form first-order
conditions, found with Brent's method to ``1e-14``.

For two classes, ALS puts α on the arg-min logit, which is the *wrong* class when the point is
correctly classified and the true class itself otherwise, so by Theorem 1

    ALS risk(b) = CE risk(b) + α E[|X + b| · 1{correctly classified}],
    d/db        = CE'(b)    + α (γ P₊(X > −b) − (1 − γ) P₋(X < −b)),

and SLS (α on the one wrong class) adds ``α E[Y (X + b)]`` to the cross-entropy.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
from scipy import optimize, special

from . import checks

GAMMA_RANGE = (0.5, 2.0 / 3.0)
DEFAULT_GAMMA = 2.0 / 3.0

# Each class density as pieces (low, high, p, q): density p + q·x on [low, high].
_PIECES = {
    +1: ((-1.0, 0.0, 1.0, 1.0), (0.0, 1.0, 1.0, -1.0)),
    -1: ((-1.0, 0.0, 2.0, 2.0),),
}
_MEAN = {+1: 0.0, -1: -1.0 / 3.0}
# Beyond this |b| every risk derivative has its limiting sign (see _find_root).
_BRACKET = 12.0


# ----------------------------------------------------------------------------- validation
def _check_gamma(gamma) -> float:
    return checks.number_in("gamma", gamma, *GAMMA_RANGE)


def _check_array(name, value, low=-math.inf, high=math.inf):
    """Validate a scalar or array elementwise with :func:`checks.number_in`; return an array."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):  # ragged nesting
        raise ValueError(f"{name} must be a number or an array of numbers; got {value!r}") from None
    if array.dtype.kind not in "fiu":  # not bools, strings or objects
        raise ValueError(f"{name} must be a number or an array of numbers; got {value!r}")
    array = np.asarray(array, dtype=float)
    bad = ~np.isfinite(array) | (array < low) | (array > high)
    if bad.any():
        checks.number_in(name, array[bad].flat[0], low, high)
    return array


def _check_eps(eps):
    return _check_array("eps", eps, 0.0, 1.0)


def _check_alpha(alpha):
    return _check_array("alpha", alpha, 0.0, 1.0)


def _check_bias(b):
    return _check_array("b", b)


def _check_sample(x, y) -> tuple[np.ndarray, np.ndarray]:
    """A non-empty sample: finite points x and labels y in {−1, +1} of the same length."""
    x = _check_array("x", x)
    try:
        y = np.asarray(y)
    except (TypeError, ValueError):
        raise ValueError(f"y must be an array of labels -1 or +1; got {y!r}") from None
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be a non-empty 1-d array of points; got shape {x.shape}")
    if y.shape != x.shape:
        raise ValueError(f"y must have x's shape {x.shape}; got {y.shape}")
    if y.dtype.kind not in "iuf" or y.dtype == bool or not np.isin(y, (-1, 1)).all():
        raise ValueError("y must hold labels -1 or +1 (not 0/1: the toy's classes are ±1); "
                         f"got values {np.unique(y)[:5].tolist()}")
    return x, y.astype(int)


def _scalar_or_array(array):
    return float(array) if np.ndim(array) == 0 else array


# ----------------------------------------------------------------------------- integrals
def _softplus(u):
    return np.logaddexp(0.0, u)


def _dilog_neg_exp(u):
    """Li₂(−eᵘ), via scipy's Spence function: Li₂(z) = spence(1 − z)."""
    return special.spence(1.0 + np.exp(u))


def _trilog_neg_exp(u):
    """Li₃(−eᵘ) (mpmath; scipy has no trilogarithm)."""
    return np.vectorize(lambda v: float(mpmath.polylog(3, -mpmath.e ** v)), otypes=[float])(u)


# Antiderivatives in u of g(u) and of u·g(u) for the four integrands g the toy needs.
def _antiderivatives(kind, u):
    if kind == "one":
        return u, u * u / 2.0
    if kind == "u":
        return u * u / 2.0, u ** 3 / 3.0
    if kind == "sigmoid":  # ∫σ = softplus, ∫uσ = u·softplus(u) + Li₂(−eᵘ)
        softplus = _softplus(u)
        return softplus, u * softplus + _dilog_neg_exp(u)
    if kind == "sigmoid_prime":  # ∫σ' = σ, ∫uσ' = uσ − softplus (by parts)
        sigmoid = special.expit(u)
        return sigmoid, u * sigmoid - _softplus(u)
    if kind == "softplus":  # ∫softplus = −Li₂(−eᵘ), ∫u·softplus = −u Li₂(−eᵘ) + Li₃(−eᵘ)
        dilog = _dilog_neg_exp(u)
        return -dilog, -u * dilog + _trilog_neg_exp(u)
    raise ValueError("kind must be one of 'one', 'u', 'sigmoid', 'sigmoid_prime', 'softplus'; "
                     f"got {kind!r}")


def _integral(label, kind, b, low=-np.inf, high=np.inf):
    """∫_{low}^{high} f_label(x) g(x + b) dx for g named by ``kind``, in closed form.

    Broadcasts over arrays ``b``, ``low``, ``high``. With ``u = x + b`` the density
    ``p + q x`` becomes ``(p − q b) + q u``, so each piece needs the antiderivatives of g and u·g.
    """
    b, low, high = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (b, low, high)))
    total = np.zeros(b.shape)
    for piece_low, piece_high, p, q in _PIECES[label]:
        lo = np.clip(low, piece_low, piece_high)
        hi = np.clip(high, piece_low, piece_high)
        lo = np.minimum(lo, hi)  # empty interval when low > high
        g_hi, ug_hi = _antiderivatives(kind, hi + b)
        g_lo, ug_lo = _antiderivatives(kind, lo + b)
        total = total + (p - q * b) * (g_hi - g_lo) + q * (ug_hi - ug_lo)
    return total


def class_density(x, label):
    """Density of ``X | Y = label`` at ``x`` (label ±1)."""
    checks.choice("label", label, (-1, +1))
    x = _check_array("x", x)
    if label == +1:
        return np.clip(1.0 - np.abs(x), 0.0, None)
    return np.where((x >= -1.0) & (x <= 0.0), 2.0 * (1.0 + x), 0.0)


def survival(s, label):
    """``P(X > s | Y = label)``, exact piecewise polynomial valid for every real s."""
    checks.choice("label", label, (-1, +1))
    return _integral(label, "one", 0.0, low=_check_array("s", s))


def cdf(s, label):
    """``P(X < s | Y = label)``."""
    checks.choice("label", label, (-1, +1))
    return _integral(label, "one", 0.0, high=_check_array("s", s))


# ----------------------------------------------------------------------------- accuracy
def accuracy(b, eps=0.0, gamma=DEFAULT_GAMMA):
    """Standard (ε = 0) or adversarial accuracy of the boundary ``x = −b`` under the optimal attack.

    A point survives the attack iff it is correct with margin over ε: ``Y (X + b) > ε``, so

        acc(b, ε) = γ P₊(X > −b + ε) + (1 − γ) P₋(X < −b − ε),

    valid for every real b and ε ∈ [0, 1] (the CDFs are clipped piecewise polynomials).
    """
    gamma = _check_gamma(gamma)
    b, eps = _check_bias(b), _check_eps(eps)
    return _scalar_or_array(gamma * survival(-b + eps, +1) + (1 - gamma) * cdf(-b - eps, -1))


def posterior(x, gamma=DEFAULT_GAMMA):
    """``P(Y = +1 | X = x)`` (NaN outside the support [−1, 1])."""
    gamma = _check_gamma(gamma)
    x = _check_array("x", x)
    plus = gamma * class_density(x, +1)
    minus = (1 - gamma) * class_density(x, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _scalar_or_array(np.where(plus + minus > 0, plus / (plus + minus), np.nan))


def bayes_boundary(gamma=DEFAULT_GAMMA):
    """Decision boundary (x-position) of the Bayes classifier: 0 for every γ ∈ [1/2, 2/3].

    On [−1, 0] both class densities are proportional to ``1 + x``: the posterior of +1 is the
    constant ``γ / (γ + 2(1 − γ))``, below 1/2 for γ < 2/3 (predict −1) and equal to 1/2 at
    γ = 2/3, where every boundary in [−1, 0] is Bayes-optimal; there we keep ``x = 0``, the
    limit γ → 2/3⁻. On (0, 1] only class +1 has mass. The classifier is "predict +1 iff x > 0",
    i.e. ``b = 0`` in the model's parametrisation.
    """
    gamma = _check_gamma(gamma)
    posterior_on_left = gamma / (gamma + 2.0 * (1.0 - gamma))
    assert posterior_on_left <= 0.5 + 1e-12  # γ ≤ 2/3: the left half goes to class −1
    return 0.0


def bayes_accuracy(eps=0.0, gamma=DEFAULT_GAMMA):
    """Accuracy of the Bayes classifier under the optimal ε-attack:
    ``(γ/2 + 1 − γ)(1 − ε)²`` for ε ∈ [0, 1]."""
    return accuracy(-bayes_boundary(gamma), eps, gamma)


# ----------------------------------------------------------------------------- risks
def _expect(label, kind, b):
    return _integral(label, kind, b)


def ce_risk(b, gamma=DEFAULT_GAMMA):
    """Population cross-entropy ``γ E₊[softplus(−(X+b))] + (1−γ) E₋[softplus(X+b)]``.

    Uses ``softplus(−u) = softplus(u) − u`` and ``E₊[X] = 0``.
    """
    gamma = _check_gamma(gamma)
    b = _check_bias(b)
    plus = _expect(+1, "softplus", b) - (_MEAN[+1] + b)
    minus = _expect(-1, "softplus", b)
    return _scalar_or_array(gamma * plus + (1 - gamma) * minus)


def ce_risk_derivative(b, gamma=DEFAULT_GAMMA):
    """``d/db`` CE risk ``= (1−γ) E₋[σ(X+b)] − γ E₊[1 − σ(X+b)]`` (strictly increasing in b)."""
    gamma = _check_gamma(gamma)
    b = _check_bias(b)
    return _scalar_or_array((1 - gamma) * _expect(-1, "sigmoid", b)
                            - gamma * (1.0 - _expect(+1, "sigmoid", b)))


def correct_margin(b, gamma=DEFAULT_GAMMA):
    """ALS's squeezing term ``E[|X + b| · 1{correct}]`` (polynomial in b on each piece)."""
    gamma = _check_gamma(gamma)
    b = _check_bias(b)
    plus = _integral(+1, "u", b, low=-b)
    minus = -_integral(-1, "u", b, high=-b)
    return _scalar_or_array(gamma * plus + (1 - gamma) * minus)


def correct_margin_derivative(b, gamma=DEFAULT_GAMMA):
    """``d/db E[|X+b| 1{correct}] = γ P₊(X > −b) − (1−γ) P₋(X < −b)`` (non-decreasing in b).

    The integrand vanishes on the boundary, so Leibniz's rule leaves only the masses.
    """
    gamma = _check_gamma(gamma)
    b = _check_bias(b)
    return _scalar_or_array(gamma * survival(-b, +1) - (1 - gamma) * cdf(-b, -1))


def als_risk(b, alpha, gamma=DEFAULT_GAMMA):
    """Population ALS risk (the cross-entropy against the ALS label that training minimises)."""
    alpha = _check_alpha(alpha)
    return ce_risk(b, gamma) + alpha * correct_margin(b, gamma)


def als_risk_derivative(b, alpha, gamma=DEFAULT_GAMMA):
    """First-order condition of the ALS risk: ``CE'(b) + α (γ P₊(X>−b) − (1−γ) P₋(X<−b))``."""
    alpha = _check_alpha(alpha)
    return ce_risk_derivative(b, gamma) + alpha * correct_margin_derivative(b, gamma)


def als_risk_curvature(b, alpha, gamma=DEFAULT_GAMMA):
    """Second derivative of the ALS risk: ``E[σ'(X+b)] + α (γ f₊(−b) + (1−γ) f₋(−b)) > 0``.

    Positive for every b and α ≥ 0, so the ALS risk is strictly convex and ``b_α`` unique.
    (At b = 0 the density f₋ jumps; the value there is the one-sided limit from b > 0.)
    """
    alpha = _check_alpha(alpha)
    gamma = _check_gamma(gamma)
    b = _check_bias(b)
    sigmoid_slope = gamma * _expect(+1, "sigmoid_prime", b) + (1 - gamma) * _expect(-1, "sigmoid_prime", b)
    density_at_boundary = gamma * class_density(-b, +1) + (1 - gamma) * class_density(-b, -1)
    return _scalar_or_array(sigmoid_slope + alpha * density_at_boundary)


def als_bias_standard_error(alpha, n, gamma=DEFAULT_GAMMA) -> float:
    """Asymptotic standard deviation of the *empirical* ALS minimiser from n samples.

    The M-estimator sandwich: ``sd = sqrt(E[g²] / n) / R''(b_α)``, where
    ``g = σ(X+b) − 1{Y=+1} + α Y 1{Y(X+b) > 0}`` is the per-sample gradient (mean zero at b_α).
    ``E[g²]`` is exact, using ``σ² = σ − σ'``:
    for Y = +1, ``g² = 1 − σ − σ' + (α² − 2α(1 − σ)) 1{u > 0}``;
    for Y = −1, ``g² = σ − σ' + (α² − 2ασ) 1{u < 0}``.
    """
    alpha = float(_check_alpha(alpha))
    n = checks.positive_int("n", n)
    gamma = _check_gamma(gamma)
    b = als_bias(alpha, gamma)
    t = -b  # the decision boundary

    def part(label, kind, low=-np.inf, high=np.inf):
        return float(_integral(label, kind, b, low, high))

    plus = (1.0 - part(+1, "sigmoid") - part(+1, "sigmoid_prime")
            + alpha ** 2 * part(+1, "one", low=t)
            - 2 * alpha * (part(+1, "one", low=t) - part(+1, "sigmoid", low=t)))
    minus = (part(-1, "sigmoid") - part(-1, "sigmoid_prime")
             + alpha ** 2 * part(-1, "one", high=t) - 2 * alpha * part(-1, "sigmoid", high=t))
    second_moment = gamma * plus + (1 - gamma) * minus
    return math.sqrt(second_moment / n) / float(als_risk_curvature(b, alpha, gamma))


def sls_risk(b, alpha, gamma=DEFAULT_GAMMA):
    """Population SLS risk: ``CE(b) + α E[Y (X + b)] = CE(b) + α ((2γ−1) b + (1−γ)/3)``."""
    alpha = _check_alpha(alpha)
    gamma = _check_gamma(gamma)
    b = _check_bias(b)
    signed_logit = gamma * (_MEAN[+1] + b) - (1 - gamma) * (_MEAN[-1] + b)
    return ce_risk(b, gamma) + alpha * signed_logit


def sls_risk_derivative(b, alpha, gamma=DEFAULT_GAMMA):
    alpha = _check_alpha(alpha)
    gamma = _check_gamma(gamma)
    return ce_risk_derivative(b, gamma) + alpha * (2 * gamma - 1)


# ----------------------------------------------------------------------------- minimisers
def _find_root(derivative) -> float:
    """Root of an increasing risk derivative, to 1e-14 in b.

    Every derivative here tends to ``−γ − α(1−γ) < 0`` (ALS), ``−γ + α(2γ−1) < 0`` (SLS, since
    α ≤ 1 < γ/(2γ−1)) as b → −∞ and to a positive limit as b → +∞; ``_BRACKET`` is far enough
    out that the sigmoid has saturated to ~1e-5.
    """
    low, high = -_BRACKET, _BRACKET
    f_low, f_high = derivative(low), derivative(high)
    if not (f_low < 0 < f_high):
        raise RuntimeError(f"risk derivative does not change sign on [{low}, {high}]: "
                           f"{f_low:.3g}, {f_high:.3g}")
    return optimize.brentq(derivative, low, high, xtol=1e-14, rtol=4 * np.finfo(float).eps,
                           maxiter=200)


def ce_bias(gamma=DEFAULT_GAMMA) -> float:
    """Minimiser of the cross-entropy risk (α = 0)."""
    gamma = _check_gamma(gamma)
    return _find_root(lambda b: ce_risk_derivative(b, gamma))


def als_bias(alpha, gamma=DEFAULT_GAMMA):
    """The unique minimiser ``b_α`` of the population ALS risk (vectorised over α).

    The risk is strictly convex (its curvature, :func:`als_risk_curvature`, is positive), so the
    root of :func:`als_risk_derivative` is the unique minimiser.
    """
    gamma = _check_gamma(gamma)
    alpha = _check_alpha(alpha)
    roots = np.vectorize(lambda a: _find_root(lambda b: als_risk_derivative(b, a, gamma)),
                         otypes=[float])(alpha)
    return _scalar_or_array(roots)


def sls_bias(alpha, gamma=DEFAULT_GAMMA):
    """Minimiser of the population SLS risk (α on the one wrong class), vectorised over α."""
    gamma = _check_gamma(gamma)
    alpha = _check_alpha(alpha)
    roots = np.vectorize(lambda a: _find_root(lambda b: sls_risk_derivative(b, a, gamma)),
                         otypes=[float])(alpha)
    return _scalar_or_array(roots)


def squeeze_limit_bias(gamma=DEFAULT_GAMMA) -> float:
    """Where the ALS penalty alone is stationary: ``γ P₊(X > −b) = (1−γ) P₋(X < −b)``.

    For b ∈ [0, 1] this reads ``(1 − b)² = 2γ / (2 − γ)``; b_α tends to it as α → ∞ (and it is
    the Bayes boundary b = 0 exactly at γ = 2/3).
    """
    gamma = _check_gamma(gamma)
    return 1.0 - math.sqrt(2.0 * gamma / (2.0 - gamma))


# ----------------------------------------------------------------------------- sampling
def sample(n, gamma=DEFAULT_GAMMA, generator=None):
    """Draw ``n`` points ``(x, y)`` (float64, int ±1) from the toy distribution.

    ``generator`` is a :class:`numpy.random.Generator`, an int seed, or ``None`` (fresh entropy).
    """
    n = checks.positive_int("n", n)
    gamma = _check_gamma(gamma)
    if generator is not None and not isinstance(generator, np.random.Generator):
        generator = checks.non_negative_int("generator", generator)
    rng = np.random.default_rng(generator)
    y = np.where(rng.random(n) < gamma, 1, -1)
    x = np.where(y == 1, rng.triangular(-1.0, 0.0, 1.0, n), rng.triangular(-1.0, 0.0, 0.0, n))
    return x, y


def predict(x, b):
    """The model's label: +1 iff ``x + b > 0``."""
    return np.where(_check_array("x", x) + _check_bias(b) > 0, 1, -1)


def attack(x, y, b, eps):
    """Optimal L∞ attack of budget ε on the threshold model: ``x − ε y``.

    A correctly classified point moves by ε towards the boundary ``x = −b`` (x − ε if predicted
    +1, x + ε otherwise) and flips iff its margin ``y (x + b)`` is at most ε; a misclassified
    point is pushed further away (moving it towards the boundary could only rescue it).
    """
    x, y = _check_sample(x, y)
    _check_bias(b)
    eps = float(_check_eps(eps))
    return x - eps * y


def empirical_accuracy(x, y, b, eps=0.0):
    """Fraction of sampled points (labels ±1) whose attacked copy is still classified correctly."""
    x, y = _check_sample(x, y)
    return float(np.mean(predict(attack(x, y, b, eps), b) == y))


# ----------------------------------------------------------------------------- learning
def fit_bias(x, y, method="als", alpha=0.0, *, steps=200, learning_rate=None, initial_bias=0.0,
             tolerance=1e-8):
    """Learn b by full-batch gradient descent on sampled ``(x, y)`` with :mod:`lsnotes.losses`.

    Logits are ``[0, x + b]`` (column 0 = class −1, column 1 = class +1). The empirical risk
    is convex in b with curvature at most ``L = 1/4 + α (γ + 2(1−γ)) ≤ 1/4 + 1.5 α`` (σ' ≤ 1/4;
    the weighted densities at the boundary sum to at most 2 − γ ≤ 3/2), so the default step
    ``1.8 / L`` (< 2/L) is stable and contracts the error by ``|1 − 1.8 R''/L|`` ≈ 0.35–0.55 per
    step for α ∈ [0, 1]: a few dozen steps reach the empirical minimiser far below its ~1/√n
    sampling error. Stops once a step is below ``tolerance``.
    """
    import torch

    from . import losses

    x, y = _check_sample(x, y)
    checks.choice("method", method, losses.METHODS)
    steps = checks.positive_int("steps", steps)
    alpha = float(_check_alpha(alpha))
    curvature_bound = 0.25 + 1.5 * alpha
    if learning_rate is None:
        learning_rate = 1.8 / curvature_bound
    learning_rate = checks.number_in("learning_rate", learning_rate, 0.0, 2.0 / curvature_bound,
                                     low_open=True, high_open=True)
    initial_bias = checks.number_in("initial_bias", initial_bias)
    tolerance = checks.number_in("tolerance", tolerance, 0.0, 1.0, low_open=True)
    x = torch.as_tensor(x)
    labels = torch.as_tensor(y == 1).long()
    zeros = torch.zeros_like(x)
    b = torch.tensor(initial_bias, dtype=x.dtype, requires_grad=True)
    for _ in range(steps):
        logits = torch.stack([zeros, x + b], dim=1)
        loss = losses.smoothed_cross_entropy(logits, labels, method, alpha)
        (gradient,) = torch.autograd.grad(loss, b)
        step = learning_rate * float(gradient)
        with torch.no_grad():
            b -= step
        if abs(step) < tolerance:
            break
    return float(b.detach())
