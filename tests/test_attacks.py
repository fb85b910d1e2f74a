"""Attack invariants, argument checks, and cross-checks against independent implementations."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import math
from pathlib import Path

import pytest
import torch
from fuzzing import examples
from hypothesis import given, settings, strategies as st
from torch import nn

from lsnotes import attacks
from tiny_models import N_CLASSES, blobs, trained_linear


# settings that keep every registered attack well under a second on a tiny model
CHEAP = {
    "multitargeted": {"restarts": 3, "steps": 5},
    "odi": {"restarts": 2, "steps": 5},
    "apgd_ce": {"steps": 10},
    "autoattack": {"version": "custom", "attacks_to_run": ["apgd-ce"]},
    "deepfool": {"max_iter": 10},
    "cw_l2": {"binary_steps": 2, "max_iter": 10},
    "tanh_linf": {"steps": 5},
    "square": {"n_queries": 30},
}




@pytest.fixture(scope="module")
def data():
    return blobs(24, seed=2)


def random_bn_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(3 * 36, N_CLASSES))


def snapshot(model):
    return copy.deepcopy(model.state_dict()), [(p.requires_grad, p.grad) for p in model.parameters()]


@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_every_attack_keeps_the_contract(name, data):
    model = random_bn_net()
    model.train()                       # the attack must hand it back in train mode
    model[0].weight.requires_grad_(False)  # and keep a frozen flag frozen
    state, flags = snapshot(model)
    x, y = data
    eps = 0.05
    rng_before = torch.get_rng_state()
    x_adv = attacks.run_attack(name, model, x, y, eps, generator=torch.Generator().manual_seed(1),
                               **CHEAP.get(name, {}))
    assert torch.equal(torch.get_rng_state(), rng_before), "global RNG was touched"
    assert model.training
    after_state, after_flags = snapshot(model)
    assert after_flags == flags         # requires_grad restored, .grad still None
    for key in state:                   # weights and batch-norm statistics unchanged
        assert torch.equal(state[key], after_state[key]), key
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert ((x_adv - x).abs() <= eps).all()
    assert ((x_adv.double() - x.double()).abs() <= eps).all()


@settings(max_examples=examples(15), deadline=None)
@given(eps=st.floats(0, 0.6), steps=st.integers(1, 4), n=st.integers(1, 5),
       norm=st.sampled_from(["linf", "l2"]), loss=st.sampled_from(["ce", "cw"]),
       seed=st.integers(0, 2**16), restarts=st.integers(1, 2))
def test_pgd_stays_in_the_ball_for_any_settings(eps, steps, n, norm, loss, seed, restarts):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(7, 4))
    x = torch.rand(n, 7)
    x[x < 0.2] = 0.0                    # pixels on the box edges
    x[x > 0.8] = 1.0
    y = torch.randint(0, 4, (n,))
    x_adv = attacks.pgd(model, x, y, eps, steps=steps, norm=norm, loss=loss, restarts=restarts,
                        step_size=3 * eps, generator=torch.Generator().manual_seed(seed))
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    if norm == "linf":
        assert ((x_adv - x).abs() <= eps).all()
        assert ((x_adv.double() - x.double()).abs() <= eps).all()
    else:
        assert ((x_adv - x).flatten(1).norm(dim=1) <= eps).all()


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: attacks.pgd(m, x, y, -0.1), "eps"),
    (lambda m, x, y: attacks.pgd(m, x, y, 0.1, steps=0), "steps"),
    (lambda m, x, y: attacks.pgd(m, x * 2, y, 0.1), "[0, 1]"),
    (lambda m, x, y: attacks.pgd(m, x, y[:-1], 0.1), "shape"),
    (lambda m, x, y: attacks.pgd(m, x, y, 0.1, norm="l1"), "norm"),
    (lambda m, x, y: attacks.pgd(m, x, y + 100, 0.1), "outputs"),
    (lambda m, x, y: attacks.fgsm(m, x, y.float(), 0.1), "integer"),
    (lambda m, x, y: attacks.run_attack("pgd7", m, x, y, 0.1), "attack"),
    (lambda m, x, y: attacks.run_attack("pgd20", m, x, y, 0.1, stepz=3), "stepz"),
    (lambda m, x, y: attacks.carlini_wagner_l2(m, x, y, x0="one"), "x0"),
    (lambda m, x, y: attacks.deepfool(m, x, max_iter=0), "max_iter"),
    (lambda m, x, y: attacks.autoattack(m, x, y, 0.1, version="custom"), "attacks_to_run"),
    # budgets: infinite, NaN, beyond the pixel box
    (lambda m, x, y: attacks.pgd(m, x, y, math.inf, norm="l2"), "eps"),
    (lambda m, x, y: attacks.pgd(m, x, y, math.nan), "eps"),
    (lambda m, x, y: attacks.pgd(m, x, y, 5.0), "eps must be a finite number in [0.0, 1.0]"),
    (lambda m, x, y: attacks.pgd(m, x, y, 7.0, norm="l2"), r"eps must be a finite number in [0.0, 6.0]"),
    (lambda m, x, y: attacks.pgd(m, x, y, 0.1, step_size=math.inf), "step_size"),
    (lambda m, x, y: attacks.square(m, x, y, 0.1, p_init=math.nan), "p_init"),
    (lambda m, x, y: attacks.square(m, x, y, 0.1, p_init=0.0), "p_init"),
    (lambda m, x, y: attacks.apgd_ce(m, x, y, 0.1, seed=-1), "seed"),
    # labels and targets beyond the model's classes, or not labels at all
    (lambda m, x, y: attacks.pgd(m, x, y.clamp(max=N_CLASSES - 1) + 1, 0.1), "y holds class 10"),
    (lambda m, x, y: attacks.deepfool(m, x, y + N_CLASSES), "y holds class"),
    (lambda m, x, y: attacks.carlini_wagner_l2(m, x, y + N_CLASSES), "y holds class"),
    (lambda m, x, y: attacks.square(m, x, y + N_CLASSES, 0.1), "y holds class"),
    (lambda m, x, y: attacks.pgd(m, x, y, 0.1, target=(y + 1) % N_CLASSES + N_CLASSES), "target holds class"),
    (lambda m, x, y: attacks.pgd(m, x, y, 0.1, target=y), "target must differ from y"),
    (lambda m, x, y: attacks.pgd(m, x, y, 0.1, target=(y + 1).float()), "target must be an integer"),
    (lambda m, x, y: attacks.pgd(m, x, y.bool(), 0.1), "y must be an integer"),
    (lambda m, x, y: attacks.pgd(m, x, y - 1, 0.1), "y must hold class indices >= 0"),
    # images of another dtype or shape than the model takes, empty batches
    (lambda m, x, y: attacks.pgd(m, x.double(), y, 0.1), "x must have the model's dtype torch.float32"),
    (lambda m, x, y: attacks.run_attack("odi", m, x.double(), y, 0.1), "dtype"),
    (lambda m, x, y: attacks.pgd(m, x[:, :, :5], y, 0.1), "does not fit the model"),
    (lambda m, x, y: attacks.deepfool(m, x[:, :, :5]), "does not fit the model"),
    (lambda m, x, y: attacks.autoattack(m, x[:, :, :5], y, 0.1), "does not fit the model"),
    (lambda m, x, y: attacks.pgd(m, x[:0], y[:0], 0.1), "N >= 1"),
    (lambda m, x, y: attacks.pgd(m, x.flatten(), y, 0.1), "shape"),
    (lambda m, x, y: attacks.pgd(m, x.half(), y, 0.1), "dtype"),
    (lambda m, x, y: attacks.pgd(lambda t: t, x, y, 0.1), "model must be a torch.nn.Module"),
    (lambda m, x, y: attacks.maximise_in_ball(m, x, lambda z: z.sum(), 0.1, 1, 0.1, True, "seed"),
     "generator"),
    (lambda m, x, y: attacks.maximise_in_ball(m, x, lambda z: z.sum(), math.inf, 1, 0.1, True, None),
     "eps"),
])
def test_bad_arguments_raise_clear_errors(call, message, linear, data):
    x, y = data
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call(linear, x, y)


@pytest.fixture(scope="module")
def half_trained():
    """A linear model stopped early: it gets 7 of the 24 test blobs wrong."""
    return trained_linear(steps=5)


def _call_with_registered_settings(name, model, x, y, eps):
    """The registered function itself (not the registry's clipped wrapper), with the registered
    settings made cheap: its full result, success flags included where it returns them."""
    spec = attacks.ATTACKS[name]
    fn = spec.accepts
    parameters = inspect.signature(fn).parameters
    kwargs = {**spec.defaults, **CHEAP.get(name, {})}
    if "generator" in parameters:
        kwargs["generator"] = torch.Generator().manual_seed(1)
    args = (model, x, y, eps) if "eps" in parameters else (model, x, y)
    return fn(*args, **kwargs)


def success_flags(name, result):
    """(x_adv, flags) for attacks that report success, (x_adv, None) for those that do not."""
    if name == "autoattack":
        x_adv, broken_by = result
        return x_adv, torch.tensor([b is not None for b in broken_by])
    if isinstance(result, tuple):            # DeepFool, C&W: (x_adv, norms, success)
        return result[0], result[2]
    return result, None


@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_success_means_misclassified_with_respect_to_y(name, half_trained, data):
    x, y = data
    clean_wrong = half_trained(x).argmax(1) != y
    assert 0 < clean_wrong.sum() < len(y)    # the model gets some examples wrong, not all
    result = _call_with_registered_settings(name, half_trained, x, y, 0.1)
    x_adv, flags = success_flags(name, result)
    misclassified = half_trained(x_adv).argmax(1) != y
    if flags is not None:
        assert torch.equal(flags, misclassified), (flags, misclassified)
        assert flags[clean_wrong].all()      # already wrong: nothing to do, and a success
    if name == "deepfool":                   # those examples come back untouched
        assert torch.equal(x_adv[clean_wrong], x[clean_wrong])


def test_deepfool_without_labels_leaves_the_clean_prediction(half_trained, data):
    x, y = data
    prediction = half_trained(x).argmax(1)
    x_adv, _, success = attacks.deepfool(half_trained, x)      # the form classic_attacks uses
    assert torch.equal(success, half_trained(x_adv).argmax(1) != prediction)
    with_labels = attacks.deepfool(half_trained, x, prediction)
    assert torch.equal(x_adv, with_labels[0]) and torch.equal(success, with_labels[2])


@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_int32_labels_give_the_same_result_as_int64(name, linear, data):
    x, y = data
    runs = [attacks.run_attack(name, linear, x, labels, 0.05, generator=torch.Generator().manual_seed(1),
                               **CHEAP.get(name, {})) for labels in (y, y.int())]
    assert torch.equal(runs[0], runs[1])


def reference_pgd(model, x, y, eps, steps, step_size):
    """A textbook L∞ PGD loop written independently of lsnotes (no random start, last iterate)."""
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x_adv), y)
        grad, = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


def test_pgd_matches_torchattacks_and_a_textbook_loop(linear, data):
    import torchattacks

    x, y = data
    eps, steps, alpha = 0.1, 10, 0.02
    ours = attacks.pgd(linear, x, y, eps, steps=steps, step_size=alpha, random_start=False,
                       keep_best=False)
    theirs = torchattacks.PGD(linear, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    textbook = reference_pgd(linear, x, y, eps, steps, alpha)
    # projections are written differently (clip of δ vs clip of x), so allow float rounding
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours, textbook, atol=1e-6, rtol=0)


def test_restarts_and_best_iterate_never_make_the_attack_weaker(linear, data):
    x, y = data
    eps = 0.08
    one = attacks.pgd(linear, x, y, eps, steps=5, generator=torch.Generator().manual_seed(3))
    five = attacks.pgd(linear, x, y, eps, steps=5, restarts=5,
                       generator=torch.Generator().manual_seed(3))
    last = attacks.pgd(linear, x, y, eps, steps=5, keep_best=False,
                       generator=torch.Generator().manual_seed(3))
    wrong = {k: linear(v).argmax(1) != y for k, v in dict(one=one, five=five, last=last).items()}
    assert (wrong["five"] >= wrong["one"]).all()   # first restart = the single run, so ⊇
    assert (wrong["one"] >= wrong["last"]).all()
    assert wrong["five"].sum() > 0


def test_same_generator_seed_same_result_other_seed_differs(linear, data):
    x, y = data
    runs = [attacks.run_attack("pgd10", linear, x, y, 0.1, generator=torch.Generator().manual_seed(s))
            for s in (5, 5, 6)]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


@pytest.mark.filterwarnings("ignore:size_average and reduce args")
def test_apgd_ce_equals_the_original_called_directly(linear, data):
    from pyautoattack.autopgd_base import APGDAttack

    x, y = data
    images = x  # already (N, 1, 6, 6)
    ours = attacks.apgd_ce(linear, x, y, 0.1, steps=20, seed=7)
    direct = APGDAttack(linear, n_iter=20, eps=0.1, seed=7, loss="ce", device="cpu")
    theirs = direct.perturb(images, y)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


@pytest.mark.filterwarnings("ignore:size_average and reduce args")
def test_autoattack_wrapper_agrees_with_the_original_and_records_the_breaking_attack(linear, data):
    from pyautoattack import AutoAttack

    x, y = data
    eps = 0.15
    parts = ["apgd-ce", "apgd-t"]
    # n_classes=4 limits APGD-T to 3 target classes, to keep the test short
    x_adv, broken_by = attacks.autoattack(linear, x, y, eps, version="custom",
                                          attacks_to_run=parts, seed=11, n_classes=4)
    direct = AutoAttack(linear, norm="Linf", eps=eps, seed=11, version="custom", attacks=parts,
                        device="cpu")
    direct.apgd.n_restarts = 1  # a custom cascade keeps the standard version's settings
    direct.apgd_targeted.n_target_classes = 3
    theirs, _ = direct.run_standard_evaluation(x, y, batch_size=250)
    our_robust = linear(x_adv).argmax(1) == y
    their_robust = linear(theirs).argmax(1) == y
    assert torch.equal(our_robust, their_robust)
    assert 0 < our_robust.sum() < len(y)           # the check has both outcomes to compare
    assert [b is None for b in broken_by] == our_robust.tolist()
    clean_wrong = (linear(x).argmax(1) != y).tolist()
    assert [b == "clean" for b in broken_by] == clean_wrong
    assert set(broken_by) <= {None, "clean", *parts}


@pytest.mark.filterwarnings("ignore:size_average and reduce args")
def test_a_custom_cascade_runs_each_part_as_the_standard_version_does(linear, data, monkeypatch):
    from pyautoattack.autopgd_base import APGDAttack

    restarts = []
    original = APGDAttack.perturb

    def spy(self, *args, **kwargs):
        restarts.append((self.loss, self.n_restarts))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(APGDAttack, "perturb", spy)
    x, y = data
    attacks.autoattack(linear, x, y, 0.15, version="custom", attacks_to_run=["apgd-ce", "apgd-dlr"],
                       seed=3)
    # the original code would run five restarts of each (its constructor's default)
    assert restarts and all(n == 1 for _, n in restarts)
    assert {loss for loss, _ in restarts} <= {"ce", "dlr"}


def linear_binary(w: torch.Tensor, b: float) -> nn.Module:
    """Logits (0, w·x + b): the decision boundary is the hyperplane w·x + b = 0."""
    layer = nn.Linear(w.numel(), 1)
    with torch.no_grad():
        layer.weight.copy_(w.view(1, -1))
        layer.bias.fill_(b)

    class Binary(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            z = self.layer(x.flatten(1))
            return torch.cat([torch.zeros_like(z), z], 1)

    return Binary()


def binary_case():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(20, generator=g)
    x = 0.4 + 0.2 * torch.rand(6, 20, generator=g)   # well inside the box, so it does not bind
    b = -(x @ w).mean().item()
    margin = x @ w + b
    y = (margin > 0).long()
    exact = margin.abs() / w.norm()
    return linear_binary(w, b), x, y, exact


def test_deepfool_finds_the_exact_distance_on_a_linear_model():
    model, x, y, exact = binary_case()
    overshoot = 0.02
    x_adv, norms, success = attacks.deepfool(model, x, y, overshoot=overshoot)
    assert success.all()
    # one step lands on the hyperplane (+1e-4 in the numerator); the overshoot scales it
    expected = (1 + overshoot) * (exact + 1e-4 / model.layer.weight.norm())
    torch.testing.assert_close(norms, expected, rtol=1e-4, atol=1e-5)


def test_deepfool_vectorised_equals_per_image_runs(data):
    x, _ = data
    model = random_bn_net(seed=3).eval()
    x_adv, norms, success = attacks.deepfool(model, x[:6])
    for i in range(6):
        one, one_norm, one_success = attacks.deepfool(model, x[i:i + 1])
        torch.testing.assert_close(one[0], x_adv[i], atol=1e-5, rtol=0)
        assert one_success.item() == success[i].item()


def load_benchmark(name: str):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deepfool_agrees_with_the_original_per_image_algorithm(data):
    x, _ = data
    model = random_bn_net(seed=5).eval()
    x_adv, _, _ = attacks.deepfool(model, x)
    # the benchmark's baseline: one image at a time, one backward pass per class
    reference = load_benchmark("bench_attacks").per_image_deepfool(model, x)
    torch.testing.assert_close(x_adv, reference, atol=1e-5, rtol=0)


def test_carlini_wagner_approaches_the_minimal_l2_distance():
    model, x, y, exact = binary_case()
    x_adv, norms, success = attacks.carlini_wagner_l2(model, x, y, binary_steps=8, max_iter=100,
                                                      lr=0.02, c_init=1.0)
    assert success.all()
    assert (norms >= exact * (1 - 1e-4)).all()   # nothing beats the exact distance
    assert (norms <= exact * 1.1 + 1e-3).all()   # and CW gets within 10 % of it


def test_carlini_wagner_moves_pixels_sitting_on_the_box_edges():
    w = torch.ones(4)
    model = linear_binary(w, -1.5)                # class 1 needs Σx > 1.5
    x = torch.tensor([[0.0, 0.0, 1.0, 0.0]])     # Σx = 1, pixels at 0 and at 1
    y = torch.tensor([0])
    for start in ("x", "zero"):
        x_adv, norms, success = attacks.carlini_wagner_l2(model, x, y, c_init=10.0, lr=0.05,
                                                          binary_steps=2, max_iter=100, x0=start)
        assert success.item(), start
        assert (x_adv[0, [0, 1, 3]] > 0).all()    # pixels at exactly 0 moved


def test_tanh_linf_breaks_the_linear_model_like_pgd(linear, data):
    x, y = data
    eps = 0.1
    tanh_acc = (linear(attacks.tanh_linf(linear, x, y, eps, steps=30)).argmax(1) == y).float().mean()
    pgd_acc = (linear(attacks.pgd(linear, x, y, eps, loss="cw")).argmax(1) == y).float().mean()
    clean_acc = (linear(x).argmax(1) == y).float().mean()
    assert tanh_acc < clean_acc
    assert abs(tanh_acc - pgd_acc) <= 0.15


def test_transfer_scores_on_the_target(linear, data):
    x, y = data
    source = random_bn_net(seed=4).eval()
    x_adv, correct = attacks.transfer(source, linear, x, y, attack="fgsm", eps=0.1)
    assert torch.equal(correct, linear(x_adv).argmax(1) == y)
    assert torch.equal(x_adv, attacks.fgsm(source, x, y, 0.1))


def test_zero_eps_returns_the_input(linear, data):
    x, y = data
    for name in ("fgsm", "pgd20", "odi", "tanh_linf"):
        assert torch.equal(attacks.run_attack(name, linear, x, y, 0.0, **CHEAP.get(name, {})), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_attacks_run_on_cuda(linear, data):
    model = copy.deepcopy(linear).cuda()
    x, y = (t.cuda() for t in data)
    for name in ("pgd20", "odi", "deepfool", "apgd_ce"):
        x_adv = attacks.run_attack(name, model, x, y, 0.1, **CHEAP.get(name, {}))
        assert x_adv.device.type == "cuda" and ((x_adv - x).abs() <= 0.1).all()


def test_l2_projection_is_inside_the_ball_where_rounding_bites():
    """x + δ rounds to x's precision: near 1 a tiny δ can come back longer than ε (hypothesis
    found eps = 2⁻⁸, one step, pixels at 0 and 1)."""
    x = torch.tensor([[0.0000, 0.2698, 0.0000, 0.0000, 0.2081, 1.0000, 0.7231]])
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        x_adv = (x + 0.01 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
        for eps in (2.0 ** -8, 1e-3, 0.05):
            projected = attacks.project(x_adv, x, eps, "l2")
            assert (projected - x).flatten(1).norm(dim=1).item() <= eps


@pytest.mark.parametrize("eps", [1.19e-7, 6e-8, 2.4e-7])
def test_l2_pgd_with_a_budget_near_one_ulp_stays_in_the_ball(eps):
    """Hypothesis found pgd(norm="l2", eps=1.19e-7) returning a perturbation of norm 1.25e-7: a
    δ of one ulp cannot be shrunk by a factor near 1, and x + δ rounds back to the same point."""
    bad = 0
    for seed in range(40):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(7, 4))
        x = torch.rand(5, 7)
        x[x < 0.2], x[x > 0.8] = 0.0, 1.0
        y = torch.randint(0, 4, (5,))
        x_adv = attacks.pgd(model, x, y, eps, steps=2, norm="l2", step_size=3 * eps,
                            generator=torch.Generator().manual_seed(seed))
        norms = (x_adv - x).flatten(1).norm(dim=1)   # in x's dtype, as a user computes it
        bad += int((norms > eps).sum())
        projected = attacks.project(x + 1e-7 * torch.randn(x.shape), x, eps, "l2")
        bad += int(((projected - x).flatten(1).norm(dim=1) > eps).sum())
    assert bad == 0


def test_the_book_margin_and_the_attack_margin_loss_have_opposite_signs():
    logits = torch.tensor([[3.0, 1.0, 2.5], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 0])
    assert attacks.margin(logits, y).tolist() == [0.5, -2.0]   # m = z_y − max_{k≠y} z_k
    assert attacks.margin_loss(logits, y).tolist() == [-0.5, 2.0]
    assert torch.equal(attacks.attack_loss(logits, y, "cw"), attacks.margin_loss(logits, y))


def test_seeded_generator_gives_each_tag_its_own_fixed_stream():
    draw = lambda *tags: torch.rand(4, generator=attacks.seeded_generator(3, *tags)).tolist()
    assert draw("LS", "pgd20") == draw("LS", "pgd20")
    assert draw("LS", "pgd20") != draw("CE", "pgd20") != draw()
    assert torch.rand(4, generator=attacks.seeded_generator(4, "LS", "pgd20")).tolist() != draw(
        "LS", "pgd20")
    for bad, name in [((-1,), "seed"), ((0, 7), "tags")]:
        with pytest.raises(ValueError, match=name):
            attacks.seeded_generator(*bad)


def test_pgd_treats_a_cut_graph_as_a_zero_gradient_and_reports_every_iterate():
    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(36, N_CLASSES)

        def forward(self, x):
            return self.layer(x.detach().flatten(1))

    x, y = blobs(8, seed=1)
    seen = []
    x_adv = attacks.pgd(Detached(), x, y, 0.1, steps=3, random_start=False,
                        on_step=lambda r, s, losses, wrong: seen.append((r, s, losses.shape)))
    assert torch.equal(x_adv, x)                      # no gradient: the attack cannot move
    assert seen == [(0, s, (8,)) for s in range(4)]   # the start and each of the 3 steps
    with pytest.raises(ValueError, match="on_step"):
        attacks.pgd(Detached(), x, y, 0.1, on_step="print")


@pytest.mark.parametrize("fill", [math.nan, math.inf, 0.0], ids=["nan", "inf", "zero"])
@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_no_attack_returns_or_counts_a_non_finite_image(name, fill, linear, data):
    """A layer whose backward yields nan (0·∞), inf or zero: the attack makes no move where the
    gradient is unusable, returns finite images in the ball, and says so."""
    from audit_models import BadGradient

    model = BadGradient(linear, fill)
    x, y = data
    eps = 0.05
    with _recorded() as seen:
        x_adv = attacks.run_attack(name, model, x, y, eps, generator=torch.Generator().manual_seed(1),
                                   **CHEAP.get(name, {}))
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and ((x_adv - x).abs() <= eps).all()
    uses_our_gradients = name not in ("square", "apgd_ce", "autoattack")
    if uses_our_gradients and not fill == 0.0:
        assert any(issubclass(w.category, attacks.NonFiniteGradientWarning) for w in seen), name
    if uses_our_gradients and name not in ("pgd10", "pgd20", "pgd40", "pgd_cw", "multitargeted", "odi"):
        # no random start: without a usable gradient nothing moves, so nothing is broken
        still = attacks.predict(linear, x_adv) == y
        assert (still | (attacks.predict(linear, x) != y)).all()


@pytest.mark.parametrize("attack", [attacks.deepfool, attacks.carlini_wagner_l2])
@pytest.mark.parametrize("fill", [math.nan, 0.0], ids=["nan", "zero"])
def test_minimal_attacks_success_flags_are_the_predictions_on_the_returned_images(attack, fill, linear, data):
    from audit_models import BadGradient

    model = BadGradient(linear, fill)
    x, y = data
    with _recorded():
        x_adv, norms, success = attack(model, x, y, max_iter=5)
    assert torch.isfinite(x_adv).all() and torch.isfinite(norms).all()
    assert torch.equal(success, attacks.predict(model, x_adv) != y)
    assert torch.equal(success, attacks.predict(model, x) != y)   # nothing could move


def test_pgd_refuses_a_non_finite_start(linear, data):
    x, y = data
    with pytest.raises(ValueError, match="x_init must hold finite values"):
        attacks.pgd(linear, x, y, 0.1, x_init=torch.full_like(x, math.nan))


def _recorded():
    import warnings

    class _Catch(warnings.catch_warnings):
        def __enter__(self):
            seen = super().__enter__()
            warnings.simplefilter("always")
            return seen
    return _Catch(record=True)


def test_the_original_autoattack_is_pyautoattacks_never_a_vendored_copy(linear, data, monkeypatch):
    """torchattacks ships an older AutoAttack as a top-level ``autoattack`` package; the wrappers
    must run the code PyPI's pyautoattack installs (pinned in requirements.txt)."""
    import importlib
    import sys
    from importlib.metadata import files

    wrappers = importlib.import_module("lsnotes.attacks.autoattack")
    original = wrappers._import_autoattack()
    assert original.__name__ == "pyautoattack"
    installed = {str(f).replace("\\", "/") for f in files("pyautoattack")}
    assert "pyautoattack/autoattack.py" in installed
    assert sys.modules[original.AutoAttack.__module__].__file__.endswith(
        "pyautoattack/autoattack.py")
    # every module the wrappers load comes from that package, whatever else is importable
    loaded = []
    real = importlib.import_module

    def recording(name, *args):
        loaded.append(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", recording)
    x, y = data
    attacks.apgd_ce(linear, x[:4], y[:4], 0.1, steps=2, seed=0)
    attacks.square(linear, x[:4], y[:4], 0.1, n_queries=2, seed=0)
    attacks.autoattack(linear, x[:4], y[:4], 0.1, version="custom", attacks_to_run=["apgd-ce"],
                       seed=0)
    assert loaded and all(name.split(".")[0] == "pyautoattack" for name in loaded), loaded


def test_the_original_autoattack_leaves_a_running_tracer_alone(linear, data):
    """pyautoattack's check for dynamic defences calls sys.settrace(None); a debugger or coverage
    tracer running around the wrapper must survive it."""
    import sys

    x, y = data
    calls = []

    def tracer(frame, event, arg):
        calls.append(event)
        return None

    before = sys.gettrace()
    sys.settrace(tracer)
    try:
        attacks.autoattack(linear, x[:4], y[:4], 0.1, version="custom",
                           attacks_to_run=["apgd-ce"], seed=0)
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(before)
