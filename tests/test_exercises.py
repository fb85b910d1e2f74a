"""Every exercise checker: its chapter's solution passes, the stub is "not attempted", and each
hint is reached by the wrong answer it was written for. The chapters' exercise sections are run
here cell by cell, so a solution that stops agreeing with the package fails this file."""

from __future__ import annotations

import math
import re

import jupytext
import pytest
import sympy as sp
import torch
import torch.nn.functional as F

import lsnotes.exercises
from conftest import REPO, toc_chapters
from lsnotes import attacks, toy
from lsnotes.exercises import EXERCISES, check

EXERCISE_CHAPTERS = [c for c in toc_chapters() if c not in ("preface", "bibliography")]
CHECK_CALL = re.compile(r"""check\(\s*["']([\w-]+)["']""")


@pytest.fixture(autouse=True)
def private_record(tmp_path, monkeypatch):
    """Passes go to a temporary file, never to the reader's record."""
    monkeypatch.setenv("LSNOTES_EXERCISES_FILE", str(tmp_path / "exercises.json"))


def exercise_section(chapter: str):
    """(kind, label, source) for the cells from the chapter's "## Exercises" heading on: kind is
    "markdown", "code" or "solution" (a code cell between solution-start and solution-end)."""
    cells = jupytext.read(REPO / "book" / f"{chapter}.md").cells
    start = next(i for i, c in enumerate(cells)
                 if c.cell_type == "markdown" and re.search(r"^## Exercises\s*$", c.source, re.M))
    inside = None
    for cell in cells[start:]:
        if cell.cell_type == "markdown":
            opened = re.findall(r"\{solution-start\}\s+([\w-]+)", cell.source)
            if "{solution-end}" in cell.source:
                inside = None
            if opened:
                inside = opened[-1]
            yield "markdown", None, cell.source
        else:
            yield ("solution" if inside else "code"), inside, cell.source


def directive_labels(chapter: str, directive: str) -> list[str]:
    source = (REPO / "book" / f"{chapter}.md").read_text()
    pattern = rf"[:`]{{3,}}\{{{directive}\}}[^\n]*\n(?::class:[^\n]*\n)?:label:\s*([\w-]+)"
    return re.findall(pattern, source)


@pytest.mark.parametrize("chapter", EXERCISE_CHAPTERS)
def test_chapter_has_three_labelled_exercises_each_with_a_collapsed_solution(chapter):
    source = (REPO / "book" / f"{chapter}.md").read_text()
    labels = directive_labels(chapter, "exercise")
    assert len(labels) >= 3, f"{chapter}: {labels}"
    for label in labels:
        assert label.startswith(f"{chapter}-"), label
        solution = re.search(rf"\{{solution(?:-start)?\}}\s+{label}\s*\n:class: dropdown", source)
        assert solution, f"{chapter}: no collapsed solution for {label}"


def test_checked_labels_are_exactly_the_registered_exercises():
    checked = set()
    for chapter in EXERCISE_CHAPTERS:
        labels = set(directive_labels(chapter, "exercise"))
        calls = {label for kind, _, src in exercise_section(chapter) if kind == "code"
                 for label in CHECK_CALL.findall(src)}
        assert calls <= labels, f"{chapter}: check() of an exercise not in the chapter: {calls - labels}"
        checked |= calls
    assert checked == set(EXERCISES), (sorted(checked - set(EXERCISES)),
                                       sorted(set(EXERCISES) - checked))


@pytest.mark.parametrize("chapter", EXERCISE_CHAPTERS)
def test_chapter_stubs_are_not_attempted_and_solutions_pass(chapter, monkeypatch, capsys):
    """Run the exercise section's cells in order, as a reader running them all would."""
    results = []

    def recording_check(label, answer, **kwargs):
        results.append((label, check(label, answer, record=False)))
        return results[-1][1]

    monkeypatch.setattr(lsnotes.exercises, "check", recording_check)
    namespace: dict = {}
    expected = []
    for kind, solved, source in exercise_section(chapter):
        if kind == "markdown":
            continue
        before = len(results)
        exec(compile(source, f"<{chapter} exercises>", "exec"), namespace)
        expected += [(label, kind == "solution") for label, _ in results[before:]]
        if kind == "solution":
            assert [label for label, _ in results[before:]] == [solved], source
    assert results == expected
    out = capsys.readouterr().out
    assert out.count("not attempted") == sum(not ok for _, ok in expected)
    assert "Traceback" not in out


# ------------------------------------------------------------------- wrong answers and hints
def _fn(label):
    """The namespace after the chapter's exercise cells, with ``label``'s solution run last."""
    namespace: dict = {}
    cells = [(kind, solved, src) for kind, solved, src in exercise_section(label.split("-")[0])
             if kind == "code" and not CHECK_CALL.search(src)
             or kind == "solution" and solved == label]
    for _, _, source in cells:
        exec(compile(re.sub(r"\bcheck\(", "(lambda *a, **k: None)(", source), label, "exec"),
             namespace)
    return namespace


def _answer_name(label):
    for kind, _, source in exercise_section(label.split("-")[0]):
        if kind == "code":
            match = re.search(rf"""check\(\s*["']{label}["'],\s*(\w+)""", source)
            if match:
                return match.group(1)
    raise AssertionError(label)


def reference(label):
    return _fn(label)[_answer_name(label)]


a_, K_ = sp.symbols("alpha K", positive=True)
z0, z1 = sp.symbols("z0 z1", real=True)
g_, b_ = sp.symbols("gamma b", real=True)
m_, t_ = sp.symbols("m t", positive=True)


def sls_gradient_variant(target):
    def answer(z, y, alpha):
        return target(z, y, alpha)
    return answer


def _q(z, y, alpha, off):
    q = torch.full_like(z, off)
    return q.scatter(1, y[:, None], 1 - alpha)


def fgsm_variant(step):
    def answer(model, x, y, eps):
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
        return step(x.detach(), grad, eps)
    return answer


def toy_acc(plus_clip=True, gamma_fixed=None, left_branch_wrong=False, constant=None):
    def answer(b, eps, gamma):
        if constant is not None:
            return constant
        gamma = gamma if gamma_fixed is None else gamma_fixed
        t = -b + eps
        if plus_clip:
            t = min(max(t, -1.0), 1.0)
        plus = (1 - t) ** 2 / 2 if (t > 0 or left_branch_wrong) else 1 - (1 + t) ** 2 / 2
        minus = (1 + min(max(-b - eps, -1.0), 0.0)) ** 2
        return gamma * plus + (1 - gamma) * minus
    return answer


def _margin(z, y):
    true = z.gather(1, y[:, None]).squeeze(1)
    return true, z.scatter(1, y[:, None], float("-inf")).max(1).values


def l2_variant(norm_p=2, all_classes=False, scale=1.0):
    def answer(model, x, y):
        x = x.clone().requires_grad_(True)
        z = model(x)
        true, others = _margin(z, y)
        if all_classes:
            others = z.max(1).values
        (grad,) = torch.autograd.grad((true - others).sum(), x)
        return scale * (true - others).detach() / grad.flatten(1).norm(p=norm_p, dim=1)
    return answer


def linear_variant(runner_up=False, true_row=False, scale=1.0):
    def answer(weight, bias, x, y):
        z = x @ weight.T + bias
        gaps = z.gather(1, y[:, None]) - z
        rows = weight[y][:, None, :] - (0 if true_row else weight[None])
        dist = (gaps / rows.norm(dim=2)).scatter(1, y[:, None], float("inf"))
        if runner_up:
            k = z.scatter(1, y[:, None], float("-inf")).argmax(1)
            return dist.gather(1, k[:, None]).squeeze(1)
        return scale * dist.min(1).values
    return answer


def refine_variant(swap_weight=False, swap_momentum=False, zero=False):
    def answer(s, p_clean, p_adv, clean_weight, momentum):
        if zero:
            return torch.zeros_like(s)
        if swap_weight:
            p_clean, p_adv = p_adv, p_clean
        if swap_momentum:
            momentum = 1 - momentum
        return momentum * s + (1 - momentum) * (clean_weight * p_clean + (1 - clean_weight) * p_adv)
    return answer


def temperature_variant(invert=False, constant=None):
    def answer(logits, labels):
        t = reference("training_with_ls-temperature")(logits, labels)
        return constant if constant is not None else (1 / t if invert else t)
    return answer


# label -> [(wrong answer, text its hint must contain)]: one per hint the checker can give.
WRONG = {
    "unified_framework-sls_gradient": [
        (lambda z, y, a: torch.softmax(z, 1) - (1 - a) * F.one_hot(y, z.shape[1]) - a / z.shape[1],
         "Szegedy's label"),
        (lambda z, y, a: _q(z, y, a, a / (z.shape[1] - 1)) - torch.softmax(z, 1), "check the sign"),
        (lambda z, y, a: torch.softmax(z, 1) - F.one_hot(y, z.shape[1]), "dropped the smoothing"),
        (lambda z, y, a: torch.zeros_like(z), "differentiate"),
        (lambda z, y, a: z[:1], "expected shape"),
        (lambda z, y, a: 1 / 0, "ZeroDivisionError"),
    ],
    "unified_framework-sls_margin": [
        (sp.log(1 + K_ * (1 - a_) / a_), "Szegedy's margin"),
        (sp.log((1 - a_) / a_), "factor K−1 is missing"),
        (-sp.log((K_ - 1) * (1 - a_) / a_), "check the sign"),
        (a_ * K_, "solve softmax"),
        (sp.Symbol("beta") * K_, "unknown symbols"),
        ("log(((", "could not read"),
    ],
    "adversarial_ls-worst_label": [
        (lambda z, y, a: (1 - a) * F.one_hot(y, z.shape[1]) + a * F.one_hot(z.argmax(1), z.shape[1]),
         "smallest logit, not the largest"),
        (lambda z, y, a: (1 - a) * F.one_hot(y, z.shape[1])
         + a * F.one_hot(z.scatter(1, y[:, None], float("inf")).argmin(1), z.shape[1]),
         "over all K classes"),
        (lambda z, y, a: F.one_hot(y, z.shape[1]) + a * F.one_hot(z.argmin(1), z.shape[1]),
         "sums to 1"),
        (lambda z, y, a: torch.ones_like(z) / z.shape[1], "maximises −log softmax"),
    ],
    "adversarial_ls-two_class_penalty": [
        (a_ * (z0 - z1) / 2, "Szegedy's label"),
        (a_ * (z1 - z0), "check the sign"),
        (a_ * z0, "apply Theorem 1"),
    ],
    "logit_squeezing-large_K": [
        (-sp.log((1 - a_) / a_), "check the sign"),
        (sp.log(1 - a_), "factor 1/α is missing"),
        (sp.log(1 / a_), "factor 1 − α is missing"),
        (sp.Integer(0), "1 + K(1 − α)/α"),
        (sp.log(K_), "α only"),
    ],
    "logit_squeezing-logit_penalty": [
        (lambda beta, k: reference("logit_squeezing-logit_penalty")(beta / 2, k), "factor 2"),
        (lambda beta, k: reference("logit_squeezing-logit_penalty")(beta, k + 1), "K − 1 wrong"),
        (lambda beta, k: 1.0, "set its derivative"),
        (lambda beta, k: "one", "expected a number"),
    ],
    "toy_problem-accuracy": [
        (toy_acc(constant=0.5), "without an attack"),
        (toy_acc(gamma_fixed=2 / 3), "weight them by γ"),
        (toy_acc(left_branch_wrong=True), "whole right half"),
        (toy_acc(plus_clip=False), "clip the probabilities"),
    ],
    "toy_problem-sls_term": [
        (-a_ * ((2 * g_ - 1) * b_ + (1 - g_) / 3), "check the sign"),
        (a_ * (2 * g_ - 1) * b_, "−1/3"),
        (a_ * b_, "take its expectation"),
    ],
    "toy_problem-half_accuracy_eps": [
        (None, "not attempted"),
    ],
    "training_with_ls-loss_floor": [
        (-(1 - a_ + a_ / K_) * sp.log(1 - a_ + a_ / K_) - (K_ - 1) * a_ / K_ * sp.log(a_ / K_), None),
        (-(-(1 - a_ + a_ / K_) * sp.log(1 - a_ + a_ / K_) - (K_ - 1) * a_ / K_ * sp.log(a_ / K_)),
         "never negative"),
        (-(1 - a_ + a_ / K_) * sp.log(1 - a_ + a_ / K_) - a_ / K_ * sp.log(a_ / K_),
         "K − 1 wrong classes"),
        (-(1 - a_) * sp.log(1 - a_) - a_ * sp.log(a_), "entropy of (1 − α, α)"),
        (a_, "−Σ_k q_k log q_k"),
    ],
    "training_with_ls-temperature": [
        (temperature_variant(invert=True), "multiplies them"),
        (temperature_variant(constant=1.0), "minimise the mean cross-entropy"),
    ],
    "training_with_ls-l2_distance": [
        (l2_variant(norm_p=1), "through the L2 norm"),
        (l2_variant(all_classes=True), "largest *wrong* logit"),
        (l2_variant(scale=2.0), "g(x) / ‖∇ₓ g(x)‖₂"),
    ],
    "classic_attacks-fgsm": [
        (fgsm_variant(lambda x, g, eps: x + eps * g.sign()), "clip to [0, 1]"),
        (fgsm_variant(lambda x, g, eps: (x - eps * g.sign()).clamp(0, 1)), "gradient sign"),
        (fgsm_variant(lambda x, g, eps: (x + eps * g).clamp(0, 1)), "use the sign of the gradient"),
        (fgsm_variant(lambda x, g, eps: x), "one step of ε·sign"),
    ],
    "classic_attacks-linear_distance": [
        (linear_variant(runner_up=True), "runner-up"),
        (linear_variant(true_row=True), "difference of the rows"),
        (linear_variant(scale=2.0), "min over k ≠ y"),
    ],
    "gradient_masking-margin_loss": [
        (lambda z, y: z.max(1).values - z.gather(1, y[:, None]).squeeze(1), "exclude the true class"),
        (lambda z, y: -attacks.margin_loss(z, y), "check the sign"),
        (lambda z, y: torch.zeros(len(z)), "max over k ≠ y"),
    ],
    "gradient_masking-saturation": [
        (None, "not attempted"),
        (1.0, "scan m"),
    ],
    "gradient_masking-worst_case": [
        (lambda c: c.float().mean(1).min().item(), "survives every attack"),
        (lambda c: c.float().mean().item(), "average over attacks"),
        (lambda c: 2.0, "every attack (row)"),
    ],
    "soft_labels_at-refine": [
        (refine_variant(swap_weight=True), "*clean* prediction"),
        (refine_variant(swap_momentum=True), "multiplies the old label"),
        (refine_variant(zero=True), "p̃ = λ p(x)"),
    ],
    "soft_labels_at-visits_weight": [
        ((1 - m_)**t_, "multiplies the old label"),
        (m_**(t_ + 1), "off by one"),
        (m_**(t_ - 1), "off by one"),
        (m_ * t_, "unroll"),
    ],
    "evaluation_checklist-examples_needed": [
        (2500, "1.96 standard errors"),
        (98, "square to get n"),
        (1, "0.01 on the accuracy scale"),
        (5000, "smallest whole n"),
        (float("nan"), "finite number"),
    ],
    "evaluation_checklist-unbounded_eps": [
        (lambda x: torch.ones(len(x)), "depends on the image"),
        (lambda x: x.flatten(1).max(1).values, "reach 0 *and* 1"),
        (lambda x: (1 - x).flatten(1).max(1).values, "reach 0 *and* 1"),
        (lambda x: torch.zeros(len(x)), "farther end"),
    ],
}
# Number answers whose known mistakes are other values the package computes.
WRONG["toy_problem-half_accuracy_eps"] += [(0.9, "solve acc(b_α, ε)")]


def _half_eps(b):
    from scipy import optimize
    clean = toy.accuracy(b, 0.0)
    return optimize.brentq(lambda e: toy.accuracy(b, e) - clean / 2, 0.0, 1.0)


def test_every_exercise_has_wrong_answers():
    assert set(WRONG) == set(EXERCISES)


@pytest.mark.parametrize("label", sorted(EXERCISES))
def test_reference_solution_passes_and_each_wrong_answer_gets_its_hint(label, capsys):
    assert check(label, reference(label)) is True
    assert "passed" in capsys.readouterr().out
    wrong = list(WRONG[label])
    if label == "toy_problem-half_accuracy_eps":
        wrong += [(_half_eps(toy.ce_bias()), "cross-entropy boundary"),
                  (_half_eps(-toy.bayes_boundary()), "Bayes boundary")]
    if label == "gradient_masking-saturation":
        saturation = reference(label)
        wrong += [(saturation + 1.0, "scan m")]
    for answer, hint in wrong:
        if hint is None:  # an equivalent form of the answer: must pass
            assert check(label, answer) is True
            capsys.readouterr()
            continue
        assert check(label, answer) is False, (label, hint)
        out = " ".join(capsys.readouterr().out.split())  # output lines are wrapped
        assert hint in out, (label, hint, out)
        assert "Traceback" not in out


@pytest.mark.parametrize("label", sorted(EXERCISES))
def test_stub_is_not_attempted(label, capsys):
    def stub(*args):
        ...

    def unfinished(*args):
        raise NotImplementedError

    stubs = [..., None] + ([stub, unfinished] if EXERCISES[label].kind == "function" else [])
    for answer in stubs:
        assert check(label, answer) is False
        assert "not attempted" in capsys.readouterr().out


def test_unknown_label_is_a_value_error_listing_the_labels():
    with pytest.raises(ValueError, match=r"label must be one of .*classic_attacks-fgsm"):
        check("classic_attacks-fsgm", ...)
    with pytest.raises(ValueError, match="label"):
        check(3, ...)


def test_passes_are_recorded_and_listed(capsys):
    from lsnotes.cli import main

    assert lsnotes.exercises.passes() == {}
    assert check("gradient_masking-worst_case", reference("gradient_masking-worst_case"))
    assert check("classic_attacks-fgsm", lambda *a: 1 / 0) is False
    assert set(lsnotes.exercises.passes()) == {"gradient_masking-worst_case"}
    capsys.readouterr()
    assert main(["exercises"]) == 0
    out = capsys.readouterr().out
    assert "[x] gradient_masking-worst_case" in out and "[ ] classic_attacks-fgsm" in out
    assert f"passed 1 of {len(EXERCISES)}" in out
    assert main(["exercises", "--chapter", "nope"]) == 2


def test_the_checker_never_prints_the_reference(capsys):
    """A failing number or expression gets a hint, never the value or expression it wanted."""
    wanted_expr = str(reference("unified_framework-sls_margin"))
    wanted = reference("evaluation_checklist-examples_needed")
    capsys.readouterr()
    check("unified_framework-sls_margin", a_ * K_)
    check("unified_framework-sls_margin", sp.log((1 - a_) / a_))
    out = capsys.readouterr().out
    assert wanted_expr not in out
    assert "(K - 1)" not in out and "(1 - alpha)" not in out
    check("evaluation_checklist-examples_needed", wanted + 10)
    assert str(wanted) not in capsys.readouterr().out
